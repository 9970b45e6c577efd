//! `params::parse` with arbitrary words (never panics; `Ok` with parameters that satisfy what
//! the parser promises, or a `ParamError` whose message is not empty), and its number syntaxes
//! `parse_size` and `parse_time` against values built from the input.
//!
//! Input: a mode byte; then either words (each a selector and bytes: a known parameter, a
//! known parameter with bytes appended, or raw bytes) or the numbers of a size or a time.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use socketio_sticky_fuzz::logic::cookie::attributes;
use socketio_sticky_fuzz::logic::params::{
    parse, parse_size, parse_time, SameSite, Source, MIN_ZONE_SIZE,
};

const WORDS: [&[u8]; 43] = [
    b"sid=arg:sid,cookie:io,path",
    b"sid=",
    b"sid=uri:^/a{1,3}/(.+)$,arg:sid",
    b"sid=uri:",
    b"sid=$cookie_io,header:X-Sid",
    b"device_id=arg:device_id",
    b"device_id=header:X-Device,uri:^/d/([^/]+)",
    b"device_id=cookie:dev",
    b"route=^(b[0-9]+)-",
    b"route=([0-9])$",
    b"route=^b",
    b"route=(",
    b"zone=z",
    b"zone=z:1m",
    b"zone=z:31k",
    b"zone=:1m",
    b"timeout=1h30m",
    b"timeout=500ms",
    b"timeout=0",
    b"strict",
    b"strict=on",
    b"balance=least_conn",
    b"balance=round_robin",
    b"state=/var/lib/nginx/s",
    b"state=",
    b"cookie=srv",
    b"cookie=a;b",
    b"cookie=IO",
    b"cookie=Srv",
    b"sid=arg:sid,cookie:SRV",
    b"cookie_path=/socket.io/",
    b"cookie_domain=.example.com",
    b"cookie_max_age=1d",
    b"cookie_secure",
    b"cookie_secure=off",
    b"cookie_httponly=off",
    b"cookie_samesite=none",
    b"cookie_samesite=Lax",
    b"cookie_key=s3cret",
    b"cookie_key=",
    b"cookie_bogus=1",
    b"uri:",
    b"=",
];

fn word(u: &mut Unstructured) -> arbitrary::Result<Vec<u8>> {
    let sel: u8 = u.arbitrary()?;
    let len = usize::from(u.arbitrary::<u8>()? % 24);
    let tail = u.bytes(len.min(u.len()))?;
    Ok(match sel % 4 {
        0 | 1 => WORDS[usize::from(sel / 4) % WORDS.len()].to_vec(),
        2 => {
            let mut w = WORDS[usize::from(sel / 4) % WORDS.len()].to_vec();
            w.extend_from_slice(tail);
            w
        }
        _ => tail.to_vec(),
    })
}

fn check_source(s: &Source) {
    match s {
        Source::Arg(n) | Source::Cookie(n) | Source::Header(n) | Source::Variable(n) => {
            assert!(!n.is_empty(), "a source with an empty name");
            assert!(n.iter().all(u8::is_ascii_graphic));
        }
        Source::Path => {}
        Source::Uri(re) => assert!(re.captures_len() >= 2, "uri: regex without a group"),
    }
}

fn words(u: &mut Unstructured) -> arbitrary::Result<()> {
    let n = usize::from(u.arbitrary::<u8>()? % 8);
    let mut ws = Vec::new();
    for _ in 0..n {
        ws.push(word(u)?);
    }
    let args: Vec<&[u8]> = ws.iter().map(Vec::as_slice).collect();
    let got = parse(&args);
    // Deterministic.
    assert_eq!(got, parse(&args));
    match got {
        Ok(p) => {
            assert!(!p.sid.is_empty(), "no sid sources");
            assert!(!p.device_id.is_empty(), "no device_id sources");
            p.sid.iter().for_each(check_source);
            p.device_id.iter().for_each(check_source);
            assert!(p.timeout > 0);
            if let Some(z) = &p.zone {
                assert!(!z.name.is_empty());
                if let Some(size) = z.size {
                    assert!(size >= MIN_ZONE_SIZE);
                }
            }
            if let Some(r) = &p.route {
                assert!(r.0.captures_len() >= 2, "route= regex without a group");
            }
            if let Some(s) = &p.state {
                assert!(!s.is_empty());
            }
            if let Some(c) = &p.cookie {
                assert!(!c.name.is_empty());
                assert!(c
                    .name
                    .iter()
                    .all(|&b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)));
                assert!(c.path.first() == Some(&b'/'));
                assert!(!c.path.contains(&b';'));
                if c.samesite == Some(SameSite::None) {
                    assert!(c.secure, "SameSite=None without Secure");
                }
                if let Some(k) = &c.key {
                    assert!(!k.is_empty());
                }
                if let Some(a) = c.max_age {
                    assert!(a > 0);
                }
                // The route cookie never takes the name of a cookie the sid is read from.
                assert!(!p.sid.iter().any(|s| matches!(
                    s,
                    Source::Cookie(n) if n.eq_ignore_ascii_case(&c.name)
                )));
                // The Set-Cookie attributes hold no `;` but the separators'.
                let attrs = attributes(c);
                assert!(attrs.starts_with(b"; Path=/"));
                let parts = attrs.split(|&b| b == b';').count();
                let expect = 2
                    + usize::from(c.domain.is_some())
                    + usize::from(c.max_age.is_some())
                    + usize::from(c.secure)
                    + usize::from(c.httponly)
                    + usize::from(c.samesite.is_some());
                assert_eq!(parts, expect, "{:?}", String::from_utf8_lossy(&attrs));
            } else {
                // No cookie= means no cookie_* word was accepted.
                assert!(!args.iter().any(|w| w.starts_with(b"cookie")));
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

/// A time built from units in decreasing order, and its value in seconds (rounded up).
fn times(u: &mut Unstructured) -> arbitrary::Result<()> {
    const UNITS: [(&str, u64); 8] = [
        ("y", 365 * 86_400_000),
        ("M", 30 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut text = String::new();
    let mut total: Option<u64> = Some(0);
    let mask: u8 = u.arbitrary()?;
    let bare_seconds = u.arbitrary::<u8>()? % 4 == 0;
    for (i, (unit, ms)) in UNITS.iter().enumerate() {
        if mask & (1 << i) == 0 || (bare_seconds && i >= 6) {
            continue;
        }
        let v = u64::from(u.arbitrary::<u32>()?) >> (u.arbitrary::<u8>()? % 33);
        text.push_str(&format!("{v}{unit}"));
        total = total.and_then(|t| t.checked_add(v.checked_mul(*ms)?));
    }
    if bare_seconds {
        let v = u64::from(u.arbitrary::<u16>()?);
        text.push_str(&format!("{v}"));
        total = total.and_then(|t| t.checked_add(v * 1000));
    }
    if text.is_empty() {
        assert_eq!(parse_time(b""), None);
        return Ok(());
    }
    let want = total.and_then(|t| u32::try_from(t.div_ceil(1000)).ok());
    assert_eq!(parse_time(text.as_bytes()), want, "parse_time({text:?})");
    // Units out of order (the same unit twice) are refused.
    let twice = format!("{text}1h1h");
    assert_eq!(parse_time(twice.as_bytes()), None, "parse_time({twice:?})");
    Ok(())
}

fn sizes(u: &mut Unstructured) -> arbitrary::Result<()> {
    let v: u64 = u64::from(u.arbitrary::<u32>()?) << (u.arbitrary::<u8>()? % 40);
    let (suffix, scale) = *[
        ("", 1u64),
        ("k", 1 << 10),
        ("K", 1 << 10),
        ("m", 1 << 20),
        ("M", 1 << 20),
        ("g", 1 << 30),
        ("G", 1 << 30),
    ]
    .get(usize::from(u.arbitrary::<u8>()? % 7))
    .unwrap();
    let text = format!("{v}{suffix}");
    let want = v.checked_mul(scale).and_then(|b| usize::try_from(b).ok());
    assert_eq!(parse_size(text.as_bytes()), want, "parse_size({text:?})");
    // Raw bytes never panic, and only digits with one suffix are a size.
    let n = usize::from(u.arbitrary::<u8>()? % 24).min(u.len());
    let raw = u.bytes(n)?;
    if let Some(n) = parse_size(raw) {
        let digits = match raw.last() {
            Some(b'k' | b'K' | b'm' | b'M' | b'g' | b'G') => &raw[..raw.len() - 1],
            _ => raw,
        };
        assert!(
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
            "{raw:?} -> {n}"
        );
    }
    let _ = parse_time(raw);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mode) = u.arbitrary::<u8>() else {
        return;
    };
    let _ = match mode % 8 {
        0 => times(&mut u),
        1 => sizes(&mut u),
        _ => words(&mut u),
    };
});
