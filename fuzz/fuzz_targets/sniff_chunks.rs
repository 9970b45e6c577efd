//! `sniff::sniff` and `sniff::Look` over handshake response bodies that arrive in chunks
//! (the split points come from the input), checking what the doc comment of `sniff` states:
//!
//! - `NeedMore` only while not complete and fewer than `LOOK_MAX` bytes were seen;
//! - a longer prefix never changes a `Sid` or `NotFound` answer;
//! - `Look` after each chunk answers what `sniff` answers on that prefix, and at the end
//!   what `sniff` answers on the whole body at once;
//! - a found sid is 1 to `MAX_KEY_LEN` bytes of `0x21..=0x7e` without `"` and `\`; one
//!   returned in place lies in the body.
//!
//! Half of the inputs are raw bytes (after an optional prefix of a recognised form); the other
//! half build a valid handshake body of every recognised form (Engine.IO 4, Engine.IO 3 text
//! and binary framing, JSONP, Socket.IO 0.9 and its JSONP) around a sid from the input, with
//! JSON escapes, whitespace and decoy members: there the answer must be that sid.
//!
//! `sniff::set_cookie` is in the `cookies` target.
#![no_main]

use std::borrow::Cow;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use socketio_sticky_fuzz::logic::extract::MAX_KEY_LEN;
use socketio_sticky_fuzz::logic::handshake::Kind;
use socketio_sticky_fuzz::logic::sniff::{sniff, Look, Sniffed, LOOK_MAX};
use socketio_sticky_fuzz::naive;

/// Starts of recognised forms, so that raw bodies get deep into the parsers.
const PREFIXES: [&[u8]; 10] = [
    b"",
    b"0{\"sid\":\"",
    b"0{",
    b"96:0{\"",
    b"\x00\x09\x06\xff0{",
    b"___eio[0](\"0{\\\"",
    b"___eio[](\"96:0{\\\"sid\\\":\\\"",
    b"io.j[0](\"",
    b"abc:",
    b"0{\"pingInterval\":25000,",
];

fn sid_byte(c: u8) -> bool {
    (0x21..=0x7e).contains(&c) && c != b'"' && c != b'\\'
}

fn check_sid(s: &[u8]) {
    assert!(
        !s.is_empty() && s.len() <= MAX_KEY_LEN,
        "sid of {} bytes",
        s.len()
    );
    assert!(
        s.iter().all(|&c| sid_byte(c)),
        "sid with a forbidden byte: {s:?}"
    );
}

/// The answer for a prefix, with the checks that hold for any prefix.
fn answer(kind: Kind, p: &[u8]) -> Sniffed<'_> {
    let open = sniff(kind, p, false);
    let ended = sniff(kind, p, true);
    assert_ne!(ended, Sniffed::NeedMore, "NeedMore though complete");
    match &open {
        Sniffed::NeedMore => {
            assert!(p.len() < LOOK_MAX, "NeedMore after {} bytes", p.len());
            assert_eq!(
                ended,
                Sniffed::NotFound,
                "a cut body that ended must be NotFound"
            );
        }
        Sniffed::Sid(s) => {
            check_sid(s);
            if let Cow::Borrowed(b) = s {
                assert!(naive::within(p, b), "a borrowed sid outside the body");
            }
            assert_eq!(ended, open, "the end of the body changed a found sid");
        }
        Sniffed::NotFound => assert_eq!(ended, Sniffed::NotFound),
    }
    open
}

/// Feeds `body` through a `Look` in chunks of the given lengths (the rest in a last chunk).
fn chunked(kind: Kind, body: &[u8], lens: &[u8]) {
    let mut look = Look::new(kind);
    let mut fed = 0usize;
    let mut settled: Option<Sniffed<'static>> = None;
    let cuts = lens
        .iter()
        .map(|&l| usize::from(l))
        .chain(core::iter::once(usize::MAX));
    for len in cuts {
        let n = len.min(body.len() - fed);
        look.feed(&body[fed..fed + n]);
        fed += n;
        let seen = fed.min(LOOK_MAX);
        let now = look.sniff(false);
        // What sniff gives on the prefix seen, with or without the bytes past LOOK_MAX.
        let direct = answer(kind, &body[..seen]);
        assert_eq!(now, direct, "Look after {fed} bytes");
        assert_eq!(
            sniff(kind, &body[..fed], false),
            direct,
            "bytes past LOOK_MAX counted"
        );
        if now == Sniffed::NeedMore {
            assert!(seen < LOOK_MAX);
        }
        match &settled {
            Some(prev) => assert_eq!(
                &now, prev,
                "a longer prefix ({fed} bytes) changed the answer"
            ),
            None if now != Sniffed::NeedMore => settled = Some(owned(&now)),
            None => {}
        }
        if fed == body.len() {
            break;
        }
    }
    // At the end: the whole body at once.
    let whole = sniff(kind, body, true);
    assert_eq!(
        look.sniff(true),
        whole,
        "Look at the end and sniff on the whole body differ"
    );
    if let Some(prev) = settled {
        assert_eq!(whole, prev, "the end of the body changed a settled answer");
    }
}

fn owned(s: &Sniffed) -> Sniffed<'static> {
    match s {
        Sniffed::Sid(v) => Sniffed::Sid(Cow::Owned(v.to_vec())),
        Sniffed::NeedMore => Sniffed::NeedMore,
        Sniffed::NotFound => Sniffed::NotFound,
    }
}

// ---- valid bodies ----

fn pick<'a, T>(u: &mut Unstructured, from: &'a [T]) -> arbitrary::Result<&'a T> {
    Ok(&from[usize::from(u.arbitrary::<u8>()?) % from.len()])
}

fn ws(u: &mut Unstructured, out: &mut Vec<u8>) -> arbitrary::Result<()> {
    if u.arbitrary::<u8>()? < 200 {
        return Ok(());
    }
    const WS: [&[u8]; 5] = [b" ", b"\n", b"\t", b"\r\n ", b"  "];
    out.extend_from_slice(pick(u, &WS)?);
    Ok(())
}

/// A JSON string body for `s` (without quotes), escaping bytes as the input says.
fn json_escape(u: &mut Unstructured, s: &[u8], out: &mut Vec<u8>) -> arbitrary::Result<()> {
    for &c in s {
        let how = u.arbitrary::<u8>().unwrap_or(0);
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            c if c < 0x20 || how > 250 => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c if how > 245 => out.extend_from_slice(format!("\\u{c:04X}").as_bytes()),
            b'/' if how > 200 => out.extend_from_slice(b"\\/"),
            c => out.push(c),
        }
    }
    Ok(())
}

/// Members that may come before `"sid"` in the open packet: none of them is a top-level
/// string `"sid"`.
const BEFORE: [&[u8]; 12] = [
    br#""upgrades":["websocket"]"#,
    br#""pingInterval":25000"#,
    br#""a":{"sid":"nested"}"#,
    br#""b":[{"sid":"x"},1,-2.5e+3,true,false,null,[]]"#,
    br#""sidx":"no""#,
    br#""SID":"no""#,
    br#""si":"no""#,
    br#""\u00e9":"\u00e9\ud83d\ude00""#,
    br#""e":"\"sid\":\"fake\"""#,
    br#""sid":null"#,
    br#""sid":{"sid":"q"}"#,
    br#""sid":0.5E-2"#,
];
const AFTER: [&[u8]; 4] = [
    br#","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000"#,
    b"",
    br#","sid":"second""#,
    br#","x":{"y":[1,2,{"z":null}]}"#,
];
const SID_KEYS: [&[u8]; 4] = [b"sid", br"\u0073id", br"s\u0069d", br"si\u0064"];

/// The open packet's JSON object around `sid`.
fn open_object(u: &mut Unstructured, sid: &[u8]) -> arbitrary::Result<Vec<u8>> {
    let mut o = b"{".to_vec();
    ws(u, &mut o)?;
    for _ in 0..u.arbitrary::<u8>()? % 3 {
        o.extend_from_slice(pick(u, &BEFORE)?);
        ws(u, &mut o)?;
        o.push(b',');
        ws(u, &mut o)?;
    }
    o.push(b'"');
    o.extend_from_slice(pick(u, &SID_KEYS)?);
    o.push(b'"');
    ws(u, &mut o)?;
    o.push(b':');
    ws(u, &mut o)?;
    o.push(b'"');
    json_escape(u, sid, &mut o)?;
    o.push(b'"');
    ws(u, &mut o)?;
    o.extend_from_slice(pick(u, &AFTER)?);
    o.push(b'}');
    Ok(o)
}

/// 1 to 6 digits of a value that is not zero.
fn length_digits(u: &mut Unstructured) -> arbitrary::Result<Vec<u8>> {
    let n = 1 + u.arbitrary::<u32>()? % 999_999;
    let zeros = usize::from(u.arbitrary::<u8>()? % 3);
    let mut d = format!("{n}").into_bytes();
    for _ in 0..zeros {
        if d.len() < 6 {
            d.insert(0, b'0');
        }
    }
    Ok(d)
}

/// A valid handshake body of `kind` carrying `sid`.
fn valid_body(u: &mut Unstructured, kind: Kind, sid: &[u8]) -> arbitrary::Result<Vec<u8>> {
    let digits = |u: &mut Unstructured, min: u8| -> arbitrary::Result<Vec<u8>> {
        let n = min + u.arbitrary::<u8>()? % 3;
        (0..n)
            .map(|_| Ok(b'0' + u.arbitrary::<u8>()? % 10))
            .collect()
    };
    let jsonp = u.arbitrary::<u8>()? % 3 == 0;
    Ok(match kind {
        Kind::EngineIo => {
            let form = u.arbitrary::<u8>()? % 3;
            let obj = open_object(u, sid)?;
            let mut p = Vec::new();
            match form {
                // Engine.IO 4: the open packet, maybe more packets after 0x1e.
                0 => {
                    p.push(b'0');
                    p.extend_from_slice(&obj);
                    if u.arbitrary()? {
                        p.extend_from_slice(b"\x1e40");
                    }
                }
                // Engine.IO 3, text framing.
                1 => {
                    p.extend_from_slice(&length_digits(u)?);
                    p.extend_from_slice(b":0");
                    p.extend_from_slice(&obj);
                    if u.arbitrary()? {
                        p.extend_from_slice(b"2:40");
                    }
                }
                // Engine.IO 3, binary framing (never inside JSONP).
                _ => {
                    p.push(0);
                    p.extend(length_digits(u)?.iter().map(|d| d - b'0'));
                    p.push(0xff);
                    p.push(b'0');
                    p.extend_from_slice(&obj);
                }
            }
            if jsonp && form != 2 {
                let mut b = b"___eio[".to_vec();
                b.extend_from_slice(&digits(u, 0)?);
                b.extend_from_slice(b"](\"");
                json_escape(u, &p, &mut b)?;
                b.extend_from_slice(b"\");");
                b
            } else {
                p
            }
        }
        Kind::Legacy09 => {
            let mut line = sid.to_vec();
            line.push(b':');
            line.extend_from_slice(&digits(u, 0)?);
            line.push(b':');
            line.extend_from_slice(&digits(u, 0)?);
            line.extend_from_slice(b":websocket,xhr-polling");
            if jsonp {
                let mut b = b"io.j[".to_vec();
                b.extend_from_slice(&digits(u, 1)?);
                b.extend_from_slice(b"](\"");
                json_escape(u, &line, &mut b)?;
                b.extend_from_slice(b"\");");
                b
            } else {
                line
            }
        }
    })
}

fn structured(u: &mut Unstructured, kind: Kind, lens: &[u8]) -> arbitrary::Result<()> {
    // A sid of valid bytes (no `:` for 0.9, where it ends the sid), sometimes too long.
    let len = match u.arbitrary::<u8>()? {
        0..=239 => 1 + usize::from(u.arbitrary::<u8>()? % 40),
        _ => 200 + usize::from(u.arbitrary::<u8>()? % 100),
    };
    let alphabet: Vec<u8> = (0x21..=0x7e)
        .filter(|&c| sid_byte(c) && !(kind == Kind::Legacy09 && c == b':'))
        .collect();
    let sid: Vec<u8> = (0..len)
        .map(|i| {
            let b = u.arbitrary::<u8>().unwrap_or(i as u8);
            alphabet[usize::from(b) % alphabet.len()]
        })
        .collect();
    let body = valid_body(u, kind, &sid)?;
    if body.len() <= LOOK_MAX {
        let want = if sid.len() <= MAX_KEY_LEN {
            Sniffed::Sid(Cow::Borrowed(&sid[..]))
        } else {
            Sniffed::NotFound
        };
        assert_eq!(
            sniff(kind, &body, true),
            want,
            "valid {kind:?} body {:?}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(sniff(kind, &body, false), want);
    }
    chunked(kind, &body, lens);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let [mode, nsplit, rest @ ..] = data else {
        return;
    };
    let kind = if mode & 1 == 0 {
        Kind::EngineIo
    } else {
        Kind::Legacy09
    };
    let nsplit = usize::from(nsplit % 17).min(rest.len());
    let (lens, rest) = rest.split_at(nsplit);
    if mode & 2 == 0 {
        let [prefix, body @ ..] = rest else {
            return;
        };
        let mut b = PREFIXES[usize::from(*prefix) % PREFIXES.len()].to_vec();
        b.extend_from_slice(body);
        chunked(kind, &b, lens);
        chunked(kind, &b[..b.len().min(LOOK_MAX + 16)], &[1; 16]);
    } else {
        let _ = structured(&mut Unstructured::new(rest), kind, lens);
    }
});
