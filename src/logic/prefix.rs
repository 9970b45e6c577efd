//! Tagged session ids (`sid_prefix`): the session id a client reads from a handshake answered
//! by server S becomes `TAG.SID`, where `TAG` names S; the client sends it back
//! (`?sid=TAG.SID`), the request is routed by the tag and the tag is stripped before the
//! request reaches the backend, which only ever sees its own `SID`.
//!
//! - [`tag`] / [`tag_id`]: a server's tag from its peer id ([`super::cookie::CookieKey::peer_id`])
//!   and back.
//! - [`split`]: the tag and the backend's sid of a tagged sid.
//! - [`strip_query`] / [`strip_query_into`]: a query string with the tag of its sid removed.
//!
//! Engine.IO servers mint sids from `[A-Za-z0-9_-]`, Socket.IO 0.9 ones from digits, so the
//! separator `.` is never part of a minted sid, and neither it nor the tag's base64url
//! characters need escaping in JSON, JSONP, query strings or cookies.
//!
//! All functions take untrusted bytes and never panic.

// The nginx side of `sid_prefix` is not written yet: nothing in the module calls these.
#![cfg_attr(not(test), allow(dead_code))]

/// Length of a tag: 8 base64url characters.
pub const TAG_LEN: usize = 8;

/// What separates the tag from the backend's sid.
pub const SEP: u8 = b'.';

/// How many bits of a peer id a tag carries.
pub const TAG_BITS: u32 = 48;

/// The bits of a peer id that its tag carries (`tag_id(&tag(id)) == Some(id & TAG_MASK)`).
pub const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

/// The base64url alphabet (RFC 4648, section 5).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The value of each base64url character; 0xff for every other byte.
const VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 64 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// The tag of a peer id: its low [`TAG_BITS`] bits as 8 base64url characters, most
/// significant first.
pub fn tag(id: u64) -> [u8; TAG_LEN] {
    let mut out = [0u8; TAG_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        let six = (id >> (TAG_BITS as usize - 6 * (i + 1))) & 0x3f;
        *o = ALPHABET.get(six as usize).copied().unwrap_or(b'A');
    }
    out
}

/// The bits of the peer id a tag carries: exactly what [`tag`] makes (8 base64url
/// characters), anything else is `None`.
pub fn tag_id(tag: &[u8]) -> Option<u64> {
    let tag: &[u8; TAG_LEN] = tag.try_into().ok()?;
    let mut id = 0u64;
    let mut bad = 0u8;
    for &c in tag {
        let v = VALUE.get(usize::from(c)).copied().unwrap_or(0xff);
        bad |= v;
        id = (id << 6) | u64::from(v & 0x3f);
    }
    // A byte outside the alphabet has its high bit set.
    (bad & 0x80 == 0).then_some(id)
}

/// The tag and the backend's sid of a tagged sid: [`TAG_LEN`] base64url characters, [`SEP`],
/// then at least one byte (any). Anything else is `None`.
pub fn split(sid: &[u8]) -> Option<(&[u8; TAG_LEN], &[u8])> {
    let (tag, rest) = sid.split_first_chunk::<TAG_LEN>()?;
    let rest = rest.strip_prefix(&[SEP])?;
    (!rest.is_empty() && tag_id(tag).is_some()).then_some((tag, rest))
}

/// A query string whose sid lost its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripped {
    /// The tag that was removed.
    pub tag: [u8; TAG_LEN],
    /// The query string without the tag and its separator.
    pub args: Vec<u8>,
}

/// `args` (the query string without `?`) with the tag and separator removed from the value of
/// argument `name`, when that value is a tagged sid ([`split`]); `None` when it is not (then
/// nothing is to be rewritten).
///
/// The argument is the one an Engine.IO server reads: the first `name=` argument with a
/// non-empty value (`sid=` counts as absent), the name matched exactly and case-sensitively
/// (as [`super::extract::scan_query`] matches `sid` for the handshake test, not as `$arg_`
/// does), arguments split on `&` only. A later argument of the same name is never looked at,
/// so a tagged value after an untagged one is left as it is. The value is taken as written: a
/// percent-encoded tag or separator is no tag. A `name` that is empty or holds `=` or `&`
/// matches nothing.
pub fn strip_query(args: &[u8], name: &[u8]) -> Option<Stripped> {
    let (at, tag) = tagged_arg(args, name)?;
    let mut out = Vec::with_capacity(args.len());
    out.extend_from_slice(args.get(..at)?);
    out.extend_from_slice(args.get(at + TAG_LEN + 1..)?);
    Some(Stripped {
        tag: *tag,
        args: out,
    })
}

/// [`strip_query`] into `out` (which `args.len()` bytes always suffice for): the tag and the
/// length of the new query string. `None` when there is no tag to strip or `out` is shorter
/// than `args.len() - TAG_LEN - 1`.
pub fn strip_query_into(
    args: &[u8],
    name: &[u8],
    out: &mut [u8],
) -> Option<([u8; TAG_LEN], usize)> {
    let (at, tag) = tagged_arg(args, name)?;
    let before = args.get(..at)?;
    let after = args.get(at + TAG_LEN + 1..)?;
    let n = before.len() + after.len();
    out.get_mut(..at)?.copy_from_slice(before);
    out.get_mut(at..n)?.copy_from_slice(after);
    Some((*tag, n))
}

/// Where the tagged value of the argument [`strip_query`] looks at starts, and its tag.
fn tagged_arg<'a>(args: &'a [u8], name: &[u8]) -> Option<(usize, &'a [u8; TAG_LEN])> {
    if name.is_empty() || name.iter().any(|&c| c == b'=' || c == b'&') {
        return None;
    }
    let mut start = 0usize;
    for pair in args.split(|&c| c == b'&') {
        let at = start + name.len() + 1;
        start += pair.len() + 1;
        let value = match pair.strip_prefix(name).and_then(|r| r.strip_prefix(b"=")) {
            Some(v) if !v.is_empty() => v,
            _ => continue,
        };
        return split(value).map(|(tag, _)| (at, tag));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tag with every kind of character.
    const T: [u8; TAG_LEN] = *b"Ab9-_zQ0";

    const DEFAULT_SID: &[u8] = b"lv_VI97HAXpY6yYWAAAC";

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
            &from[self.below(from.len())]
        }
    }

    // ---- tags ----

    #[test]
    fn tags_round_trip() {
        assert_eq!(&tag(0), b"AAAAAAAA");
        assert_eq!(&tag(1), b"AAAAAAAB");
        assert_eq!(&tag(63), b"AAAAAAA_");
        assert_eq!(&tag(64), b"AAAAAABA");
        assert_eq!(&tag(TAG_MASK), b"________");
        assert_eq!(&tag(u64::MAX), b"________");
        assert_eq!(tag_id(b"Ab9-_zQ0"), Some(0x01bf_7eff_3434));
        assert_eq!(&tag(0x01bf_7eff_3434), b"Ab9-_zQ0");
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let id = rng.next();
            let t = tag(id);
            assert!(t.iter().all(|c| ALPHABET.contains(c)), "{t:?}");
            assert_eq!(tag_id(&t), Some(id & TAG_MASK));
            assert_eq!(tag(id & TAG_MASK), t);
            assert_eq!(split(&[&t[..], b".x"].concat()), Some((&t, &b"x"[..])));
        }
    }

    #[test]
    fn tag_id_takes_exactly_tags() {
        for c in 0..=255u8 {
            for at in 0..TAG_LEN {
                let mut t = *b"AAAAAAAA";
                t[at] = c;
                let ok = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
                assert_eq!(tag_id(&t).is_some(), ok, "{c:#x} at {at}");
            }
        }
        for len in 0..=20 {
            if len != TAG_LEN {
                assert_eq!(tag_id(&vec![b'A'; len]), None, "{len}");
            }
        }
        // Standard base64 and its padding are not base64url.
        assert_eq!(tag_id(b"AAAAAAA+"), None);
        assert_eq!(tag_id(b"AAAAAAA/"), None);
        assert_eq!(tag_id(b"AAAAAAA="), None);
    }

    #[test]
    fn split_takes_exactly_tagged_sids() {
        let base = *b"Ab9-_zQ0.x";
        for c in 0..=255u8 {
            for at in 0..base.len() {
                let mut s = base;
                s[at] = c;
                let ok = match at {
                    0..=7 => c.is_ascii_alphanumeric() || c == b'-' || c == b'_',
                    8 => c == SEP,
                    _ => true,
                };
                assert_eq!(split(&s).is_some(), ok, "{c:#x} at {at}");
                if ok {
                    assert_eq!(split(&s), Some((&s[..8].try_into().unwrap(), &s[9..])));
                }
            }
        }
        for n in 0..base.len() {
            assert_eq!(split(&base[..n]), None, "{n}");
        }
        assert_eq!(split(b"Ab9-_zQ0."), None);
        assert_eq!(split(b"Ab9-_zQ0..x"), Some((&T, &b".x"[..])));
        assert_eq!(
            split(b"Ab9-_zQ0.lv_VI97HAXpY6yYWAAAC"),
            Some((&T, DEFAULT_SID))
        );
        // A sid with a tag of another length, or none.
        assert_eq!(split(b"Ab9-_zQ.lv_VI97HAXpY6yYWAAAC"), None);
        assert_eq!(split(b"Ab9-_zQ0x.lv_VI97HAXpY6yYWAAAC"), None);
        assert_eq!(split(DEFAULT_SID), None);
        assert_eq!(split(b"17347816281452006898"), None);
    }

    // ---- query strings ----

    /// `strip_query` and `strip_query_into` agree; the new query string as text.
    fn strip(args: &str, name: &str) -> Option<(String, String)> {
        let (args, name) = (args.as_bytes(), name.as_bytes());
        let got = strip_query(args, name);
        let mut out = vec![0xaa; args.len()];
        let into = strip_query_into(args, name, &mut out);
        match &got {
            Some(s) => {
                assert_eq!(into, Some((s.tag, s.args.len())));
                assert_eq!(&out[..s.args.len()], &s.args[..]);
                assert_eq!(s.args.len(), args.len() - TAG_LEN - 1);
                let n = s.args.len();
                assert!(strip_query_into(args, name, &mut vec![0; n]).is_some());
                assert_eq!(strip_query_into(args, name, &mut vec![0; n - 1]), None);
            }
            None => assert_eq!(into, None),
        }
        got.map(|s| {
            (
                String::from_utf8(s.tag.to_vec()).unwrap(),
                String::from_utf8(s.args).unwrap(),
            )
        })
    }

    #[test]
    fn strip_query_layouts() {
        let t = "Ab9-_zQ0";
        let some = |a: &str| Some((t.to_string(), a.to_string()));
        let cases: &[(&str, Option<(String, String)>)] = &[
            ("sid=Ab9-_zQ0.abc", some("sid=abc")),
            ("sid=Ab9-_zQ0.abc&EIO=4", some("sid=abc&EIO=4")),
            (
                "EIO=4&transport=polling&sid=Ab9-_zQ0.abc",
                some("EIO=4&transport=polling&sid=abc"),
            ),
            (
                "EIO=4&sid=Ab9-_zQ0.abc&t=N8hyd6w",
                some("EIO=4&sid=abc&t=N8hyd6w"),
            ),
            (
                "EIO=3&transport=polling&t=1&b64=1&sid=Ab9-_zQ0.lv_VI97HAXpY6yYWAAAC",
                some("EIO=3&transport=polling&t=1&b64=1&sid=lv_VI97HAXpY6yYWAAAC"),
            ),
            // Empty and bare `sid` count as absent; the first non-empty one decides.
            ("sid=&sid=Ab9-_zQ0.abc", some("sid=&sid=abc")),
            ("sid&sid=Ab9-_zQ0.abc", some("sid&sid=abc")),
            ("sid=abc&sid=Ab9-_zQ0.x", None),
            (
                "sid=Ab9-_zQ0.a&sid=Ab9-_zQ0.b",
                some("sid=a&sid=Ab9-_zQ0.b"),
            ),
            (
                "sid=Ab9-_zQ0.a&sid=AAAAAAAA.b",
                Some(("Ab9-_zQ0".into(), "sid=a&sid=AAAAAAAA.b".into())),
            ),
            // Names that only end with or contain `sid`, or differ in case.
            ("xsid=Ab9-_zQ0.a", None),
            ("io_sid=Ab9-_zQ0.a", None),
            ("sidx=Ab9-_zQ0.a", None),
            ("SID=Ab9-_zQ0.a", None),
            ("Sid=Ab9-_zQ0.a", None),
            (
                "xsid=Ab9-_zQ0.a&sid=Ab9-_zQ0.b",
                some("xsid=Ab9-_zQ0.a&sid=b"),
            ),
            // Untagged values, and tags that are not quite tags.
            ("sid=abc", None),
            ("sid=lv_VI97HAXpY6yYWAAAC", None),
            ("sid=Ab9-_zQ0", None),
            ("sid=Ab9-_zQ0.", None),
            ("sid=Ab9-_zQ0.&EIO=4", None),
            ("sid=Ab9+_zQ0.abc", None),
            ("sid=Ab9-_zQ.abc", None),
            ("sid=Ab9-_zQ0x.abc", None),
            ("sid=Ab9-_zQ0%2Eabc", None),
            ("sid=%41b9-_zQ0.abc", None),
            ("sid= Ab9-_zQ0.abc", None),
            ("sid==Ab9-_zQ0.abc", None),
            // The rest is the backend's business, taken as written.
            ("sid=Ab9-_zQ0.a=b", some("sid=a=b")),
            ("sid=Ab9-_zQ0.abc%2E", some("sid=abc%2E")),
            ("sid=Ab9-_zQ0..", some("sid=.")),
            // Separators.
            ("&&sid=Ab9-_zQ0.a&&", some("&&sid=a&&")),
            ("&sid=Ab9-_zQ0.a", some("&sid=a")),
            ("sid=Ab9-_zQ0.a&", some("sid=a&")),
            ("a=1;sid=Ab9-_zQ0.a", None),
            ("", None),
            ("&", None),
            ("=", None),
            ("sid", None),
            ("sid=", None),
            ("Ab9-_zQ0.abc", None),
            ("=Ab9-_zQ0.abc", None),
        ];
        for (args, want) in cases {
            assert_eq!(&strip(args, "sid"), want, "{args}");
        }
        // Other names; names that can never be a whole argument name.
        assert_eq!(
            strip("token=Ab9-_zQ0.x&sid=1", "token"),
            some("token=x&sid=1")
        );
        assert_eq!(strip("sid=Ab9-_zQ0.x", ""), None);
        assert_eq!(strip("=Ab9-_zQ0.x", ""), None);
        assert_eq!(strip("s=d=Ab9-_zQ0.x", "s=d"), None);
        assert_eq!(strip("a&b=Ab9-_zQ0.x", "a&b"), None);
        // Non-UTF-8 bytes are bytes.
        assert_eq!(
            strip_query(b"\xff=1&sid=Ab9-_zQ0.\xfe", b"sid").map(|s| s.args),
            Some(b"\xff=1&sid=\xfe".to_vec())
        );
    }

    /// [`strip_query`] written the obvious way.
    fn strip_reference(args: &[u8], name: &[u8]) -> Option<Stripped> {
        let pairs: Vec<&[u8]> = args.split(|&c| c == b'&').collect();
        let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
        for (i, p) in pairs.iter().enumerate() {
            let named = p.len() > name.len() + 1 && p.starts_with(name) && p[name.len()] == b'=';
            if name.is_empty() || name.contains(&b'=') || !named {
                continue;
            }
            let v = &p[name.len() + 1..];
            if !(v.len() > TAG_LEN + 1 && v[TAG_LEN] == b'.' && v[..TAG_LEN].iter().all(b64)) {
                return None;
            }
            let mut out = pairs.clone();
            let new = [&p[..name.len() + 1], &v[TAG_LEN + 1..]].concat();
            out[i] = &new;
            return Some(Stripped {
                tag: v[..TAG_LEN].try_into().unwrap(),
                args: out.join(&b'&'),
            });
        }
        None
    }

    #[test]
    fn strip_query_random_layouts() {
        const PIECES: &[&[u8]] = &[
            b"sid=",
            b"sid=Ab9-_zQ0.abc",
            b"sid=AAAAAAAA.",
            b"sid=Ab9-_zQ0",
            b"sid",
            b"SID=",
            b"xsid=",
            b"EIO=4",
            b"transport=polling",
            b"=",
            b"&",
            b"&",
            b"&",
            b"Ab9-_zQ0",
            b"AAAAAAAA",
            b"Ab9+_zQ0",
            b"Ab9-_zQ",
            b".",
            b"abc",
            b"%2E",
            b"+",
            b"\xff",
        ];
        const NAMES: &[&[u8]] = &[b"sid", b"xsid", b"EIO", b"s", b"", b"sid="];
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut stripped = 0;
        for _ in 0..50_000 {
            let args: Vec<u8> = (0..rng.below(10))
                .flat_map(|_| rng.pick(PIECES).iter().copied())
                .collect();
            let name = *rng.pick(NAMES);
            let got = strip_query(&args, name);
            assert_eq!(
                got,
                strip_reference(&args, name),
                "{:?}",
                String::from_utf8_lossy(&args)
            );
            if let Some(s) = &got {
                stripped += 1;
                assert!(tag_id(&s.tag).is_some());
                let mut out = vec![0; args.len()];
                let (t, n) = strip_query_into(&args, name, &mut out).unwrap();
                assert_eq!((t, &out[..n]), (s.tag, &s.args[..]));
            }
        }
        assert!(stripped > 500, "{stripped}");
    }
}
