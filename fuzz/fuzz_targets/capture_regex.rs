//! `extract::CaptureRegex::first_capture` (the one-pass DFA for start-anchored patterns, the
//! regex crate with kept capture locations otherwise) against `extract::first_capture`
//! (`Regex::captures`), for the patterns the tests use and for patterns built from the input,
//! compiled as `params` compiles `uri:` and `route=` regexes (bytes, no Unicode classes,
//! 1 MiB size limit).
//!
//! Input: a selector byte (a fixed pattern, or a pattern of tokens up to a 0x00 byte, anchored
//! at the start when the selector is even), then
//! haystacks, each a length byte and its bytes (several searches through one scratch space).
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use regex::bytes::{Regex, RegexBuilder};
use socketio_sticky_fuzz::logic::extract::{first_capture, CaptureRegex, SAMPLE_PATTERNS};
use socketio_sticky_fuzz::naive;

/// Pieces of patterns; one input byte picks one.
const TOKENS: [&str; 48] = [
    "^",
    "$",
    "(",
    ")",
    "(?:",
    "|",
    "*",
    "+",
    "?",
    "*?",
    "+?",
    "{2}",
    "{1,3}",
    "{0,}",
    "[a-z]",
    "[^/]",
    "[0-9]",
    ".",
    "a",
    "b",
    "0",
    "1",
    "-",
    "/",
    "x",
    "\\d",
    "\\w",
    "\\s",
    "\\b",
    "\\B",
    "(?m)",
    "(?s)",
    "(?i)",
    "(?-u)",
    "(?u:\\w)",
    "\\A",
    "\\z",
    "(?<n>",
    "[\\x00-\\x7f]",
    "[\\x80-\\xff]",
    "\\x00",
    "\\xff",
    "\\.",
    "_",
    "[ab]",
    "(?U)",
    "??",
    "\\pL",
];

fn compile(p: &str) -> Option<Regex> {
    RegexBuilder::new(p)
        .unicode(false)
        .size_limit(1 << 20)
        .build()
        .ok()
}

thread_local! {
    static FIXED: Vec<(Regex, RefCell<CaptureRegex>)> = SAMPLE_PATTERNS
        .iter()
        .map(|p| {
            let re = compile(p).expect("fixed pattern");
            (re.clone(), RefCell::new(CaptureRegex::new(re)))
        })
        .collect();
}

thread_local! {
    static GENERATED: RefCell<HashMap<String, Option<(Regex, CaptureRegex)>>> =
        RefCell::new(HashMap::new());
}

/// Length-prefixed haystacks; the last one takes what is left.
fn haystacks(mut b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let [len, rest @ ..] = b {
        let n = usize::from(*len).min(rest.len());
        out.push(&rest[..n]);
        b = &rest[n..];
    }
    out
}

fn check(re: &Regex, c: &CaptureRegex, hays: &[&[u8]]) {
    for hay in hays {
        let want = first_capture(re, hay);
        let got = c.first_capture(hay);
        assert_eq!(
            naive::span(hay, got),
            naive::span(hay, want),
            "pattern {:?} on {:?}",
            re.as_str(),
            hay
        );
        if let Some(v) = got {
            assert!(!v.is_empty());
        }
        // The scratch space left by a search changes nothing.
        assert_eq!(
            naive::span(hay, c.first_capture(hay)),
            naive::span(hay, want)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let [sel, rest @ ..] = data else {
        return;
    };
    if usize::from(*sel) < 2 * SAMPLE_PATTERNS.len() {
        let hays = haystacks(rest);
        FIXED.with(|fixed| {
            let (re, c) = &fixed[usize::from(*sel) % SAMPLE_PATTERNS.len()];
            check(re, &c.borrow(), &hays);
        });
        return;
    }
    // A pattern of up to 24 tokens, up to the first 0x00; haystacks after it.
    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    let (tokens, hays) = rest.split_at(end);
    // Half of them anchored at the start: the one-pass DFA's patterns.
    let anchor = if sel & 1 == 0 { "^" } else { "" };
    let pattern: String = core::iter::once(anchor)
        .chain(
            tokens
                .iter()
                .take(24)
                .map(|&t| TOKENS[usize::from(t) % TOKENS.len()]),
        )
        .collect();
    let hays = haystacks(hays.get(1..).unwrap_or_default());
    // Compiled patterns are kept (compiling dominates the time of a run otherwise), as the
    // module keeps its regexes: each search reuses the scratch space of the previous one.
    GENERATED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= 4096 && !cache.contains_key(&pattern) {
            cache.clear();
        }
        let entry = cache
            .entry(pattern)
            .or_insert_with_key(|p| compile(p).map(|re| (re.clone(), CaptureRegex::new(re))));
        let Some((re, c)) = entry else {
            return;
        };
        assert_eq!(c.regex().as_str(), re.as_str());
        check(re, c, &hays);
    });
});
