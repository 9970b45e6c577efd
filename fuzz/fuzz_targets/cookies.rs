//! Cookies in both directions:
//! - request side: `extract::cookie` against a naive reference, `extract::CookieScan::feed`
//!   (one pass per header, several names) against `cookie()` per name, `header_value`;
//! - response side: `sniff::set_cookie` against a naive reference;
//! - the route cookie (`logic::cookie`): `decode` against a naive parse of exactly 16
//!   lowercase hex digits, `encode` round trip, `write_set_cookie` with arbitrary names,
//!   attributes and buffer sizes, `attributes` of arbitrary `params::Cookie` values, and
//!   `CookieKey` ids.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use socketio_sticky_fuzz::logic::cookie::{
    attributes, decode, encode, write_set_cookie, CookieKey, ID_LEN,
};
use socketio_sticky_fuzz::logic::extract::{cookie, header_value, CookieScan, MAX_COOKIES};
use socketio_sticky_fuzz::logic::params::{Cookie, SameSite};
use socketio_sticky_fuzz::logic::sniff::set_cookie;
use socketio_sticky_fuzz::naive;

const NAMES: [&[u8]; 6] = [b"io", b"srv_route", b"IO", b"route", b"a", b"my.sid"];

fn name<'a>(u: &mut Unstructured<'a>) -> arbitrary::Result<&'a [u8]> {
    let sel: u8 = u.arbitrary()?;
    if sel < 128 {
        return Ok(NAMES[usize::from(sel) % NAMES.len()]);
    }
    let len = usize::from(u.arbitrary::<u8>()? % 12);
    u.bytes(len)
}

fn chunk<'a>(u: &mut Unstructured<'a>, max: u8) -> arbitrary::Result<&'a [u8]> {
    let len = usize::from(u.arbitrary::<u8>()? % max);
    u.bytes(len.min(u.len()))
}

/// The id as `decode` documents it: exactly 16 lowercase hex digits.
fn naive_decode(v: &[u8]) -> Option<u64> {
    if v.len() != 16 || !v.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(core::str::from_utf8(v).ok()?, 16).ok()
}

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    let count: u8 = u.arbitrary()?;
    let mut names = Vec::new();
    for _ in 0..count % 11 {
        names.push(name(u)?);
    }
    let nheaders = 1 + usize::from(u.arbitrary::<u8>()? % 4);
    let mut headers = Vec::new();
    for _ in 0..nheaders {
        headers.push(chunk(u, 200)?);
    }

    // cookie() is what its documentation says.
    for h in &headers {
        for n in &names {
            assert_eq!(
                naive::span(h, cookie(h, n)),
                naive::span(h, naive::cookie(h, n)),
                "cookie({h:?}, {n:?})"
            );
        }
        assert_eq!(
            header_value(h).map(|v| naive::span(h, Some(v))),
            Some(naive::trim(h))
                .filter(|v| !v.is_empty())
                .map(|v| naive::span(h, Some(v))),
            "header_value({h:?})"
        );
    }

    // One scan over the headers, in order: the first header that has each name decides.
    let mut scan = CookieScan::default();
    for (k, h) in headers.iter().enumerate() {
        scan.feed(h, &names);
        for (i, slot) in scan.values.iter().enumerate() {
            let want = names
                .get(i)
                .filter(|_| i < MAX_COOKIES)
                .and_then(|n| headers[..=k].iter().find_map(|h| cookie(h, n)));
            assert_eq!(
                slot.map(<[u8]>::as_ptr),
                want.map(<[u8]>::as_ptr),
                "CookieScan slot {i} ({:?}) after {:?}",
                names.get(i),
                &headers[..=k]
            );
            assert_eq!(*slot, want);
        }
        for wanted in 0..=MAX_COOKIES {
            assert_eq!(
                scan.complete(wanted),
                scan.values[..wanted].iter().all(Option::is_some)
            );
        }
    }

    // Set-Cookie: only the leading pair, the name exactly.
    for h in &headers {
        for n in &names {
            assert_eq!(
                naive::span(h, set_cookie(h, n)),
                naive::span(h, naive::set_cookie(h, n)),
                "set_cookie({h:?}, {n:?})"
            );
        }
    }

    // The route cookie id.
    for h in &headers {
        assert_eq!(decode(h), naive_decode(h), "decode({h:?})");
        if h.len() >= ID_LEN {
            let v = &h[..ID_LEN];
            assert_eq!(decode(v), naive_decode(v), "decode({v:?})");
        }
    }
    let id: u64 = u.arbitrary()?;
    let enc = encode(id);
    assert_eq!(&enc[..], format!("{id:016x}").as_bytes());
    assert_eq!(decode(&enc), Some(id));
    // One changed byte is another id or none.
    let at = usize::from(u.arbitrary::<u8>()?) % ID_LEN;
    let mut tampered = enc;
    tampered[at] = u.arbitrary()?;
    assert_eq!(decode(&tampered), naive_decode(&tampered));
    if tampered != enc {
        assert_ne!(decode(&tampered), Some(id));
    }

    // Set-Cookie value: NAME=ID then the attributes, in a buffer of any size.
    let cname = chunk(u, 40)?;
    let attrs = chunk(u, 120)?;
    let need = cname.len() + 1 + ID_LEN + attrs.len();
    let size = usize::from(u.arbitrary::<u16>()?) % (need + 16);
    let mut out = vec![0x5au8; size + 8];
    match write_set_cookie(&mut out[..size], cname, id, attrs) {
        Some(n) => {
            assert!(size >= need, "wrote {need} bytes into {size}");
            assert_eq!(n, need);
            let mut want = cname.to_vec();
            want.push(b'=');
            want.extend_from_slice(&enc);
            want.extend_from_slice(attrs);
            assert_eq!(&out[..n], &want[..]);
            assert!(out[n..].iter().all(|&b| b == 0x5a), "wrote past the value");
        }
        None => {
            assert!(size < need, "{need} bytes do fit in {size}");
            assert!(
                out.iter().all(|&b| b == 0x5a),
                "wrote into a buffer too short"
            );
        }
    }

    // The attributes of any cookie configuration.
    let c = Cookie {
        name: cname.to_vec(),
        path: chunk(u, 30)?.to_vec(),
        domain: if u.arbitrary()? {
            Some(chunk(u, 30)?.to_vec())
        } else {
            None
        },
        max_age: u.arbitrary()?,
        secure: u.arbitrary()?,
        httponly: u.arbitrary()?,
        samesite: match u.arbitrary::<u8>()? % 4 {
            0 => None,
            1 => Some(SameSite::Strict),
            2 => Some(SameSite::Lax),
            _ => Some(SameSite::None),
        },
        key: None,
    };
    let mut want = b"; Path=".to_vec();
    want.extend_from_slice(&c.path);
    if let Some(d) = &c.domain {
        want.extend_from_slice(b"; Domain=");
        want.extend_from_slice(d);
    }
    if let Some(a) = c.max_age {
        want.extend_from_slice(format!("; Max-Age={a}").as_bytes());
    }
    if c.secure {
        want.extend_from_slice(b"; Secure");
    }
    if c.httponly {
        want.extend_from_slice(b"; HttpOnly");
    }
    if let Some(s) = c.samesite {
        want.extend_from_slice(b"; SameSite=");
        want.extend_from_slice(s.as_str().as_bytes());
    }
    assert_eq!(attributes(&c), want);

    // Peer ids: deterministic; the split between server and address counts.
    let secret = if u.arbitrary()? {
        Some(chunk(u, 20)?)
    } else {
        None
    };
    let upstream = chunk(u, 20)?;
    let key = CookieKey::derive(secret, upstream);
    assert_eq!(key, CookieKey::derive(secret, upstream));
    if secret.is_some() {
        // The upstream's name counts only without a secret.
        assert_eq!(key, CookieKey::derive(secret, b"another upstream"));
    }
    let joined = chunk(u, 40)?;
    let cut = usize::from(u.arbitrary::<u8>()?) % (joined.len() + 1);
    let cut2 = usize::from(u.arbitrary::<u8>()?) % (joined.len() + 1);
    let (s1, a1) = joined.split_at(cut);
    let (s2, a2) = joined.split_at(cut2);
    let id1 = key.peer_id(s1, a1);
    assert_eq!(id1, key.peer_id(s1, a1));
    if cut != cut2 {
        // A collision here would need a 64-bit SipHash collision of two framed inputs.
        assert_ne!(id1, key.peer_id(s2, a2), "{s1:?}+{a1:?} vs {s2:?}+{a2:?}");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
