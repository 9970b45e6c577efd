//! `sid_prefix`'s pure part (`logic::prefix`) on untrusted bytes:
//!
//! - `find_tagged` on any query string answers what a naive reading of its doc comment does
//!   (the first `sid=` argument with a value, split on `&` only, whose value is 8 base64url
//!   characters, `.` and at least one byte), and the tag, its id and its place agree;
//! - the handshake rewrite (`tag_head`, `insert_tag`, `insert_tag_found`) on any body: never a
//!   panic; a rewrite only of a body `sniff` reads a sid from, of Engine.IO kind; the body the
//!   client gets is that body with the tag and `.` before the sid (every framing length fixed):
//!   `sniff` reads `TAG.SID` from it, and it is 9 or 10 bytes longer; `insert_tag_found` with
//!   the sid sniff read in place gives what `insert_tag` gives at that place.
#![no_main]

use std::borrow::Cow;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use socketio_sticky_fuzz::logic::handshake::Kind;
use socketio_sticky_fuzz::logic::prefix::{
    find_tagged, insert_tag, insert_tag_found, tag_head, tag_id, SEP, TAGGED, TAG_LEN,
};
use socketio_sticky_fuzz::logic::sniff::{sniff, Sniffed, LOOK_MAX};

/// Starts of handshake bodies, so that raw bodies get deep into the forms.
const PREFIXES: [&[u8]; 7] = [
    b"",
    b"0{\"sid\":\"",
    b"96:0{\"sid\":\"",
    b"\x00\x09\x06\xff0{\"sid\":\"",
    b"___eio[0](\"0{\\\"sid\\\":\\\"",
    b"___eio[3](\"96:0{\\\"sid\\\":\\\"",
    b"0{\"upgrades\":[],\"sid\":\"",
];

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// The doc comment of `strip_query`, read naively: where the tag of the first `sid=`
/// argument with a value starts, if that value is a tagged sid.
fn naive_tag_at(args: &[u8]) -> Option<usize> {
    let mut start = 0;
    for pair in args.split(|&c| c == b'&') {
        let at = start + 4;
        start += pair.len() + 1;
        if pair.len() > 4 && pair.starts_with(b"sid=") {
            let v = &pair[4..];
            let tagged = v.len() > TAGGED
                && v[..TAG_LEN].iter().all(|&c| base64url(c))
                && v[TAG_LEN] == SEP;
            return tagged.then_some(at);
        }
    }
    None
}

fn query(args: &[u8]) {
    let found = find_tagged(args, b"sid");
    assert_eq!(found.map(|f| f.at), naive_tag_at(args), "{:?}", String::from_utf8_lossy(args));
    if let Some(f) = found {
        assert_eq!(&args[f.at..f.at + TAG_LEN], &f.tag[..]);
        assert_eq!(args[f.at + TAG_LEN], SEP);
        assert_eq!(tag_id(&f.tag), Some(f.id));
    }
}

fn body(kind: Kind, head: &[u8], tag: &[u8; TAG_LEN]) {
    let seen = sniff(kind, head, true);
    let sid: Option<Vec<u8>> = match &seen {
        Sniffed::Sid(s) => Some(s.to_vec()),
        _ => None,
    };
    // In place: the same head as `insert_tag` at that place.
    if let Sniffed::Sid(Cow::Borrowed(s)) = &seen {
        let at = s.as_ptr() as usize - head.as_ptr() as usize;
        let found = insert_tag_found(kind, head, s, tag);
        if at + s.len() <= LOOK_MAX {
            assert_eq!(found, insert_tag(kind, head, at, s.len(), tag));
        }
    }
    let Some(h) = tag_head(kind, head, tag) else {
        return;
    };
    assert_eq!(kind, Kind::EngineIo);
    let sid = sid.expect("a rewrite of a body without a sid");
    assert!(tag_id(tag).is_some());
    assert!(h.replaced <= head.len().min(LOOK_MAX));
    let mut out = h.bytes.clone();
    out.extend_from_slice(&head[h.replaced..]);
    let growth = out.len() - head.len();
    assert!(growth == TAGGED || growth == TAGGED + 1, "grew by {growth}");
    let mut want = tag.to_vec();
    want.push(SEP);
    want.extend_from_slice(&sid);
    match sniff(kind, &out, true) {
        Sniffed::Sid(s) => assert_eq!(&s[..], &want[..]),
        other => panic!("the rewritten body reads {:?}", matches!(other, Sniffed::NeedMore)),
    }
    // The tag goes right before the sid, as the body writes it.
    assert!(head[h.replaced..].starts_with(&sid));
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mode) = u.arbitrary::<u8>() else {
        return;
    };
    if mode % 3 == 0 {
        let rest = u.take_rest();
        query(rest);
        return;
    }
    let kind = if mode % 3 == 1 {
        Kind::EngineIo
    } else {
        Kind::Legacy09
    };
    let mut tag = [0u8; TAG_LEN];
    for t in &mut tag {
        let Ok(c) = u.arbitrary::<u8>() else {
            return;
        };
        // Mostly base64url; now and then any byte (no tag: never rewritten).
        *t = if c < 250 { B64URL[usize::from(c) % B64URL.len()] } else { c };
    }
    let Ok(p) = u.arbitrary::<u8>() else {
        return;
    };
    let mut head = PREFIXES[usize::from(p) % PREFIXES.len()].to_vec();
    head.extend_from_slice(u.take_rest());
    body(kind, &head, &tag);
});
