//! Tagged session ids (`sid_prefix`): the session id a client reads from a handshake answered
//! by server S becomes `TAG.SID`, where `TAG` names S; the client sends it back
//! (`?sid=TAG.SID`), the request is routed by the tag and the tag is stripped before the
//! request reaches the backend, which only ever sees its own `SID`.
//!
//! - [`tag`] / [`tag_id`]: a server's tag from its peer id ([`super::cookie::CookieKey::peer_id`])
//!   and back.
//! - [`split`]: the tag and the backend's sid of a tagged sid.
//! - [`strip_query`] / [`find_tagged`]: a query string with the tag of its sid removed, or
//!   where that tag is.
//! - [`tag_head`] / [`insert_tag`]: the first bytes of a handshake body with the tag inserted
//!   before the sid and every length that frames the open packet fixed.
//!
//! Engine.IO servers mint sids from `[A-Za-z0-9_-]`, Socket.IO 0.9 ones from digits, so the
//! separator `.` is never part of a minted sid, and neither it nor the tag's base64url
//! characters need escaping in JSON, JSONP, query strings or cookies.
//!
//! All functions take untrusted bytes and never panic.

use std::borrow::Cow;
use std::ops::Range;

use super::bytes::find_byte;
use super::handshake::Kind;
use super::sniff::{sniff, Sniffed, LOOK_MAX};

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
#[cfg(test)]
pub fn split(sid: &[u8]) -> Option<(&[u8; TAG_LEN], &[u8])> {
    split_id(sid).map(|(tag, _, rest)| (tag, rest))
}

/// [`split`] with the tag's id.
fn split_id(sid: &[u8]) -> Option<(&[u8; TAG_LEN], u64, &[u8])> {
    let (tag, rest) = sid.split_first_chunk::<TAG_LEN>()?;
    let rest = rest.strip_prefix(&[SEP])?;
    if rest.is_empty() {
        return None;
    }
    tag_id(tag).map(|id| (tag, id, rest))
}

/// A query string whose sid lost its tag.
#[cfg(test)]
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
#[cfg(test)]
pub fn strip_query(args: &[u8], name: &[u8]) -> Option<Stripped> {
    let found = find_tagged(args, name)?;
    let mut out = Vec::with_capacity(args.len());
    out.extend_from_slice(args.get(..found.at)?);
    out.extend_from_slice(args.get(found.at + TAGGED..)?);
    Some(Stripped {
        tag: found.tag,
        args: out,
    })
}

/// The bytes a tag takes in a tagged sid: the tag and [`SEP`].
pub const TAGGED: usize = TAG_LEN + 1;

/// The tag in a query string that [`strip_query`] would remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Where the tag starts: `args[at..at + TAGGED]` are the tag and its separator.
    pub at: usize,
    /// The tag.
    pub tag: [u8; TAG_LEN],
    /// Its id ([`tag_id`]).
    pub id: u64,
}

/// Where the tagged value of the argument [`strip_query`] looks at starts, its tag and the
/// tag's id; `None` when [`strip_query`] would find nothing to remove.
pub fn find_tagged(args: &[u8], name: &[u8]) -> Option<Found> {
    if name.is_empty() || name.iter().any(|&c| c == b'=' || c == b'&') {
        return None;
    }
    // Argument by argument, jumping from `&` to `&` eight bytes at a time.
    let mut start = 0usize;
    while let Some(rest) = args.get(start..) {
        let end = find_byte(rest, b'&').unwrap_or(rest.len());
        let pair = rest.get(..end).unwrap_or_default();
        let at = start + name.len() + 1;
        start += end + 1;
        let value = match pair.strip_prefix(name).and_then(|r| r.strip_prefix(b"=")) {
            Some(v) if !v.is_empty() => v,
            _ => continue,
        };
        return split_id(value).map(|(tag, id, _)| Found { at, tag: *tag, id });
    }
    None
}

/// The first bytes of a handshake body, rewritten: the client gets `bytes`, then the body
/// from offset `replaced` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The body's bytes up to the sid, lengths fixed, then the tag and [`SEP`].
    pub bytes: Vec<u8>,
    /// How many bytes of the body `bytes` stands for (where the sid starts).
    pub replaced: usize,
}

impl Head {
    /// How much longer the body gets (for its `Content-Length`).
    #[cfg(test)]
    pub fn growth(&self) -> usize {
        self.bytes.len().saturating_sub(self.replaced)
    }
}

/// How many places [`tag_head`] tries when the sid is not read in place.
const MAX_TRIES: usize = 4;

/// [`insert_tag`] where [`sniff`] finds the sid in `head` (the bytes it looked at, which hold
/// the whole sid). A sid read in place is where sniff read it; otherwise (JSONP, a sid that is
/// not the first member, ...) the first few places in `head` where the sid's bytes follow a
/// `"` are tried, and [`insert_tag`]'s checks decide.
pub fn tag_head(kind: Kind, head: &[u8], tag: &[u8; TAG_LEN]) -> Option<Head> {
    let head = head.get(..LOOK_MAX).unwrap_or(head);
    let sid = match sniff(kind, head, true) {
        Sniffed::Sid(sid) => sid,
        _ => return None,
    };
    if let Cow::Borrowed(s) = &sid {
        return insert_tag_found(kind, head, s, tag);
    }
    // `windows` wants a non-empty size (sniff never finds an empty sid).
    if sid.is_empty() {
        return None;
    }
    head.windows(sid.len())
        .enumerate()
        .filter(|&(at, w)| {
            w == &sid[..] && at.checked_sub(1).and_then(|q| head.get(q)) == Some(&b'"')
        })
        .take(MAX_TRIES)
        .find_map(|(at, _)| insert_tag(kind, head, at, sid.len(), tag))
}

/// The first bytes of an Engine.IO handshake body with `tag` and [`SEP`] inserted before the
/// sid. `head` is what [`sniff`] looked at (at most [`LOOK_MAX`] bytes are used);
/// `head[sid_at..sid_at + sid_len]` is the sid it found there.
///
/// The length that frames the open packet grows by `TAG_LEN + 1` (and may gain a digit):
/// Engine.IO 3 text framing (`96:0{...}2:40`, the length counting UTF-16 units), its JSONP
/// form (the length counts the characters of the unescaped string) and binary framing (length
/// digits as bytes 0-9, counting bytes). Engine.IO 4 payloads, plain or JSONP, have no
/// length.
///
/// `None`, so that the body is to be passed untouched, unless all of this holds: the kind is
/// [`Kind::EngineIo`]; [`sniff`] finds exactly the bytes at `sid_at` as the sid in `head`,
/// and `TAG.SID` in the rewritten head; the tag is base64url; the sid lies within the
/// declared length of its packet; the new length has at most six digits; JSONP length digits
/// are written as they are (not escaped); binary length digits are bytes 0-9 (clients read
/// ASCII digits there as other numbers). So a sid that sniff reads unescaped from escapes
/// is not tagged, nor one whose tagged form exceeds the longest sid sniff accepts or would
/// end past [`LOOK_MAX`].
///
/// [`Kind::Legacy09`] is never rewritten: Socket.IO 0.9 clients put the sid in the request
/// path (`/socket.io/1/xhr-polling/SID`), where the tag would not be stripped.
pub fn insert_tag(
    kind: Kind,
    head: &[u8],
    sid_at: usize,
    sid_len: usize,
    tag: &[u8; TAG_LEN],
) -> Option<Head> {
    let head = head.get(..LOOK_MAX).unwrap_or(head);
    let sid = head.get(sid_at..sid_at.checked_add(sid_len)?)?;
    if !sniffs_to(kind, head, |s| s == sid) {
        return None;
    }
    tag_at(kind, head, sid_at, sid_len, tag)
}

/// [`insert_tag`] for the sid that [`sniff`] read in place from `head` (`sid` is the slice of
/// `head` it returned): that it is the sid there needs no second look. `None` when `sid` is
/// not a part of `head`.
pub fn insert_tag_found(kind: Kind, head: &[u8], sid: &[u8], tag: &[u8; TAG_LEN]) -> Option<Head> {
    let at = (sid.as_ptr() as usize).checked_sub(head.as_ptr() as usize)?;
    let within = head.get(at..at.checked_add(sid.len())?)?;
    if !core::ptr::eq(within.as_ptr(), sid.as_ptr()) {
        return None;
    }
    tag_at(
        kind,
        head.get(..LOOK_MAX).unwrap_or(head),
        at,
        sid.len(),
        tag,
    )
}

/// [`insert_tag`] once the sid at `sid_at` is known to be the one sniff reads.
fn tag_at(
    kind: Kind,
    head: &[u8],
    sid_at: usize,
    sid_len: usize,
    tag: &[u8; TAG_LEN],
) -> Option<Head> {
    if kind != Kind::EngineIo || tag_id(tag).is_none() {
        return None;
    }
    let sid_end = sid_at.checked_add(sid_len)?;
    let sid = head.get(sid_at..sid_end).filter(|s| !s.is_empty())?;
    let mut bytes = up_to_sid(head, sid_at, sid_end)?;
    bytes.extend_from_slice(tag);
    bytes.push(SEP);
    // The client reads the sid as sniff does: it must read the tagged one. (The rewritten
    // head is put together on the stack: at most LOOK_MAX bytes and what the tag adds.)
    let rest = head.get(sid_at..)?;
    let mut rewritten = [0u8; REWRITTEN_MAX];
    let n = bytes.len() + rest.len();
    let (a, b) = rewritten.get_mut(..n)?.split_at_mut(bytes.len());
    a.copy_from_slice(&bytes);
    b.copy_from_slice(rest);
    let tagged = |s: &[u8]| {
        s.len() == TAGGED + sid.len()
            && s.get(..TAG_LEN) == Some(&tag[..])
            && s.get(TAG_LEN) == Some(&SEP)
            && s.get(TAGGED..) == Some(sid)
    };
    if !sniffs_to(kind, rewritten.get(..n)?, tagged) {
        return None;
    }
    Some(Head {
        bytes,
        replaced: sid_at,
    })
}

/// The longest rewritten head: [`LOOK_MAX`] bytes, the tag, its separator, and a length that
/// gained a digit.
const REWRITTEN_MAX: usize = LOOK_MAX + TAGGED + 1;

/// `head` up to the sid at `sid_at..sid_end`, with the length that frames the open packet (if
/// any) grown by `TAG_LEN + 1`; `None` unless the sid is inside that packet, as far as its
/// length says. (Its capacity leaves room for the tag.)
fn up_to_sid(head: &[u8], sid_at: usize, sid_end: usize) -> Option<Vec<u8>> {
    let framing = framing(head)?;
    // After the open packet's type `0`.
    if sid_at <= framing.packet_at {
        return None;
    }
    let mut out = Vec::with_capacity(sid_at + TAGGED + 1);
    let Some(len) = framing.length else {
        out.extend_from_slice(head.get(..sid_at)?);
        return Some(out);
    };
    let covered = head.get(framing.packet_at..sid_end)?;
    let units = match (len.binary, framing.jsonp) {
        (true, _) => covered.len(),
        (false, false) => text_units(covered)?,
        (false, true) => literal_units(covered)?,
    };
    if units > len.value {
        return None;
    }
    out.extend_from_slice(head.get(..len.digits.start)?);
    out.extend(digits(
        len.value + TAG_LEN + 1,
        len.digits.len(),
        len.binary,
    )?);
    out.extend_from_slice(head.get(len.digits.end..sid_at)?);
    Some(out)
}

/// Whether [`sniff`] finds a sid in `head` that `want` accepts.
fn sniffs_to(kind: Kind, head: &[u8], want: impl Fn(&[u8]) -> bool) -> bool {
    matches!(sniff(kind, head, true), Sniffed::Sid(s) if want(&s))
}

/// Where the open packet of a handshake body starts and what frames it.
struct Framing {
    /// Offset of the packet's type `0`.
    packet_at: usize,
    /// The packet's length (Engine.IO 3 framing), if any.
    length: Option<Length>,
    /// The payload is the string literal of a JSONP call.
    jsonp: bool,
}

/// An Engine.IO 3 packet length.
struct Length {
    /// Where its digits are.
    digits: Range<usize>,
    /// What they say.
    value: usize,
    /// Binary framing: digits as bytes 0-9, counting bytes; else ASCII digits counting UTF-16
    /// units.
    binary: bool,
}

/// The framing of a handshake body as [`sniff`] reads it, from the bytes as written (escaped
/// JSONP length digits, or binary framing inside JSONP, give `None`).
fn framing(head: &[u8]) -> Option<Framing> {
    let (start, jsonp) = match jsonp_literal(head) {
        Some(at) => (at, true),
        None => (0, false),
    };
    let payload = head.get(start..)?;
    let framed = |binary: bool, skip: usize| {
        let (digits, value) = length(payload, skip, binary)?;
        Some(Framing {
            packet_at: start + digits.end + 1,
            length: Some(Length {
                digits: start + digits.start..start + digits.end,
                value,
                binary,
            }),
            jsonp,
        })
    };
    match (payload.first()?, payload.get(1)) {
        (0x00, _) if !jsonp => framed(true, 1),
        (b'0', Some(c)) if *c == b':' || c.is_ascii_digit() => framed(false, 0),
        (b'0', _) => Some(Framing {
            packet_at: start,
            length: None,
            jsonp,
        }),
        (b'1'..=b'9', _) => framed(false, 0),
        _ => None,
    }
}

/// Where the string literal of an Engine.IO JSONP call (`___eio[N]("`) starts.
fn jsonp_literal(head: &[u8]) -> Option<usize> {
    let rest = head.strip_prefix(b"___eio[")?;
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    rest.get(digits..)?.strip_prefix(b"](\"")?;
    Some(b"___eio[".len() + digits + b"](\"".len())
}

/// The digits of a length starting at `b[at]` (1 to 6, then `:`, or `0xff` for binary
/// framing), and its value, which is not zero.
fn length(b: &[u8], at: usize, binary: bool) -> Option<(Range<usize>, usize)> {
    let (end, digit): (u8, fn(u8) -> Option<u8>) = if binary {
        (0xff, |c| (c <= 9).then_some(c))
    } else {
        (b':', |c| c.is_ascii_digit().then(|| c - b'0'))
    };
    let mut value = 0usize;
    let mut i = at;
    loop {
        let c = *b.get(i)?;
        if c == end && i > at {
            break;
        }
        let d = digit(c)?;
        if i - at == 6 {
            return None;
        }
        value = value * 10 + usize::from(d);
        i += 1;
    }
    (value > 0).then_some((at..i, value))
}

/// A length's digits: ASCII, or bytes 0-9 for binary framing, zero-padded to `width` (the
/// width of the length they replace: a server's leading zeros stay, and the body grows by as
/// much as the packet unless the length gains a digit). At most six.
fn digits(value: usize, width: usize, binary: bool) -> Option<Vec<u8>> {
    let text = format!("{value:0width$}").into_bytes();
    if text.len() > 6 {
        return None;
    }
    Some(if binary {
        text.iter().map(|d| d - b'0').collect()
    } else {
        text
    })
}

/// How many UTF-16 units the UTF-8 text `b` is; `None` if it is not UTF-8.
fn text_units(b: &[u8]) -> Option<usize> {
    Some(std::str::from_utf8(b).ok()?.encode_utf16().count())
}

/// How many UTF-16 units a part of a JSON string literal stands for: each escape is one
/// (a character outside the BMP is two `\u` escapes), raw text counts as [`text_units`].
/// `None` if the part is no whole sequence of characters and escapes.
fn literal_units(b: &[u8]) -> Option<usize> {
    let mut units = 0usize;
    let mut rest = b;
    loop {
        let raw = find_byte(rest, b'\\').unwrap_or(rest.len());
        units += text_units(rest.get(..raw)?)?;
        rest = match rest.get(raw..)? {
            [] => return Some(units),
            [b'\\', b'u', tail @ ..] => {
                let (hex, tail) = tail.split_first_chunk::<4>()?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                tail
            }
            [b'\\', c, tail @ ..] if b"\"\\/bfnrt".contains(c) => tail,
            _ => return None,
        };
        units += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::extract::MAX_KEY_LEN;
    use crate::logic::test_rng::XorShift;

    /// A tag with every kind of character.
    const T: [u8; TAG_LEN] = *b"Ab9-_zQ0";

    /// The open packet of the Engine.IO 4 protocol description (engine.io-protocol README).
    const V4: &[u8] = br#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
    /// Engine.IO 3 handshake (engine.io-protocol README, v3) followed by Socket.IO 2's CONNECT.
    const V3: &[u8] = br#"96:0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}2:40"#;
    /// The same, as engine.io 3 JSONP polling writes it.
    const V3_JSONP: &[u8] = br#"___eio[0]("96:0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,\"pingTimeout\":5000}2:40");"#;
    /// Engine.IO 4 JSONP with an `initialPacket` after the record separator.
    const V4_JSONP: &[u8] = br#"___eio[12]("0{\"sid\":\"AAAAAAAAAAAAAAAAAAAA\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}\u001e4hello");"#;
    const L09: &[u8] = b"4d4f185e96a7b:60:60:websocket,htmlfile,xhr-polling,jsonp-polling";
    const L09_JSONP: &[u8] =
        br#"io.j[0]("Kx2Ut0yX_QpSn5p-AAAB:60:60:websocket,htmlfile,xhr-polling,jsonp-polling");"#;
    const DEFAULT_SID: &[u8] = b"lv_VI97HAXpY6yYWAAAC";

    fn tagged(sid: &[u8]) -> Vec<u8> {
        [&T[..], &[SEP], sid].concat()
    }

    fn found(s: &[u8]) -> Sniffed<'static> {
        Sniffed::Sid(Cow::Owned(s.to_vec()))
    }

    /// What the client gets.
    fn apply(h: &Head, body: &[u8]) -> Vec<u8> {
        let mut out = h.bytes.clone();
        out.extend_from_slice(&body[h.replaced..]);
        out
    }

    /// Rewrites `body` (its first LOOK_MAX bytes as the head) with the tag `T`, checks what
    /// every rewrite must give, and returns the body the client gets.
    fn rewrite(body: &[u8], sid: &[u8]) -> Vec<u8> {
        let look = &body[..body.len().min(LOOK_MAX)];
        let h = tag_head(Kind::EngineIo, look, &T)
            .unwrap_or_else(|| panic!("not rewritten: {}", String::from_utf8_lossy(body)));
        assert!(h.bytes.ends_with(&tagged(b"")));
        assert_eq!(&body[h.replaced..h.replaced + sid.len()], sid);
        assert_eq!(
            insert_tag(Kind::EngineIo, look, h.replaced, sid.len(), &T).as_ref(),
            Some(&h)
        );
        // A sid that sniff read in place gives the same head without the second look.
        if let Sniffed::Sid(Cow::Borrowed(s)) = sniff(Kind::EngineIo, look, true) {
            assert_eq!(
                insert_tag_found(Kind::EngineIo, look, s, &T).as_ref(),
                Some(&h)
            );
        }
        let out = apply(&h, body);
        assert_eq!(out.len(), body.len() + h.growth());
        assert!(h.growth() == TAG_LEN + 1 || h.growth() == TAG_LEN + 2);
        assert_eq!(sniff(Kind::EngineIo, &out, true), found(&tagged(sid)));
        out
    }

    /// Engine.IO 3 binary framing of one string packet: 0x00, length digits, 0xff, packet.
    fn binary_frame(packet: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8];
        out.extend(packet.len().to_string().bytes().map(|d| d - b'0'));
        out.push(0xff);
        out.extend_from_slice(packet);
        out
    }

    /// Engine.IO 3 text framing of one packet (the length in UTF-16 units).
    fn text_frame(packet: &str) -> String {
        format!("{}:{packet}", packet.encode_utf16().count())
    }

    /// `JSON.stringify` of a string.
    fn json_string(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// What engine.io's JSONP transport writes for a payload: the JSON string, with U+2028
    /// and U+2029 escaped too, in a call.
    fn jsonp_wrap(head: &str, payload: &str) -> String {
        let js = json_string(payload)
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029");
        format!("{head}({js});")
    }

    /// The string a JSONP body passes to its callback (an independent JSON string decoder).
    fn jsonp_text(body: &[u8]) -> String {
        let rest = body.strip_prefix(b"___eio[").expect("JSONP");
        let open = rest.iter().position(|&c| c == b'(').expect("call");
        assert_eq!(rest[open + 1], b'"');
        assert!(rest.ends_with(b"\");"));
        let lit = &rest[open + 2..rest.len() - 3];
        let mut units: Vec<u16> = Vec::new();
        let mut i = 0;
        while i < lit.len() {
            if lit[i] == b'\\' {
                let e = lit[i + 1];
                i += 2;
                units.push(match e {
                    b'"' => 0x22,
                    b'\\' => 0x5c,
                    b'/' => 0x2f,
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => 0x0a,
                    b'r' => 0x0d,
                    b't' => 0x09,
                    b'u' => {
                        let hex = std::str::from_utf8(&lit[i..i + 4]).unwrap();
                        i += 4;
                        u16::from_str_radix(hex, 16).unwrap()
                    }
                    _ => panic!("bad escape {e}"),
                });
            } else {
                assert_ne!(lit[i], b'"', "raw quote in the literal");
                let end = lit[i..]
                    .iter()
                    .position(|&c| c == b'\\')
                    .map_or(lit.len(), |p| i + p);
                units.extend(std::str::from_utf8(&lit[i..end]).unwrap().encode_utf16());
                i = end;
            }
        }
        String::from_utf16(&units).unwrap()
    }

    /// The packets of an Engine.IO 3 text payload (`len:packet`..., lengths in UTF-16 units);
    /// panics unless the lengths frame the payload exactly.
    fn text_frames(payload: &str) -> Vec<String> {
        let units: Vec<u16> = payload.encode_utf16().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < units.len() {
            let mut n = 0usize;
            let start = i;
            while units[i] != u16::from(b':') {
                let d = units[i].wrapping_sub(u16::from(b'0'));
                assert!(d < 10, "not a digit in {payload:?}");
                n = n * 10 + usize::from(d);
                i += 1;
            }
            assert!(i > start, "no length in {payload:?}");
            i += 1;
            assert!(i + n <= units.len(), "frame past the end of {payload:?}");
            out.push(String::from_utf16(&units[i..i + n]).unwrap());
            i += n;
        }
        out
    }

    /// The frames of an Engine.IO 3 binary payload (string or not, packet); panics unless the
    /// lengths frame the payload exactly.
    fn binary_frames(mut b: &[u8]) -> Vec<(bool, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let string = match b[0] {
                0 => true,
                1 => false,
                x => panic!("frame type {x}"),
            };
            let mut i = 1;
            let mut n = 0usize;
            while b[i] != 0xff {
                assert!(b[i] <= 9);
                n = n * 10 + usize::from(b[i]);
                i += 1;
            }
            assert!(i > 1);
            i += 1;
            assert!(i + n <= b.len(), "frame past the end");
            out.push((string, b[i..i + n].to_vec()));
            b = &b[i + n..];
        }
        out
    }

    /// An open packet whose `"sid"` member is followed by a padding member, `len` UTF-16
    /// units long (at least 22).
    fn padded_packet(sid: &str, len: usize) -> String {
        let fixed = format!(r#"0{{"sid":"{sid}","p":""}}"#).len();
        format!(r#"0{{"sid":"{sid}","p":"{}"}}"#, "x".repeat(len - fixed))
    }

    fn tag_packet(packet: &str, sid: &str) -> String {
        let t = String::from_utf8(tagged(sid.as_bytes())).unwrap();
        packet.replacen(&format!("\"{sid}\""), &format!("\"{t}\""), 1)
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
            let id = rng.next_u64();
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

    /// `strip_query` and `find_tagged` agree; the new query string as text.
    fn strip(args: &str, name: &str) -> Option<(String, String)> {
        let (args, name) = (args.as_bytes(), name.as_bytes());
        let got = strip_query(args, name);
        let found = find_tagged(args, name);
        match &got {
            Some(s) => {
                let f = found.unwrap();
                assert_eq!((f.tag, Some(f.id)), (s.tag, tag_id(&s.tag)));
                assert_eq!(args[f.at + TAG_LEN], SEP);
                assert_eq!([&args[..f.at], &args[f.at + TAGGED..]].concat(), s.args);
                assert_eq!(s.args.len(), args.len() - TAG_LEN - 1);
            }
            None => assert_eq!(found, None),
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
                let f = find_tagged(&args, name).unwrap();
                assert_eq!(f.tag, s.tag);
                assert_eq!([&args[..f.at], &args[f.at + TAGGED..]].concat(), s.args);
            }
        }
        assert!(stripped > 500, "{stripped}");
    }

    // ---- handshake bodies: Engine.IO 4 ----

    #[test]
    fn v4_plain() {
        let h = tag_head(Kind::EngineIo, V4, &T).unwrap();
        assert_eq!(h.bytes, br#"0{"sid":"Ab9-_zQ0."#);
        assert_eq!(h.replaced, 9);
        assert_eq!(h.growth(), 9);
        let out = rewrite(V4, DEFAULT_SID);
        assert_eq!(
            out,
            br#"0{"sid":"Ab9-_zQ0.lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
        // Other packets of the payload are untouched.
        let mut more = V4.to_vec();
        more.extend_from_slice(b"\x1e40\x1e42[\"hello\"]");
        let out = rewrite(&more, DEFAULT_SID);
        assert!(out.ends_with(b"1000000}\x1e40\x1e42[\"hello\"]"));
        // A cut head that holds the whole sid is enough.
        let cut = &V4[..V4.len() - 50];
        let h = tag_head(Kind::EngineIo, cut, &T).unwrap();
        assert_eq!(apply(&h, V4), out[..V4.len() + 9]);
    }

    #[test]
    fn v4_sid_elsewhere() {
        let bodies: &[(&[u8], &[u8])] = &[
            (
                br#"0{"upgrades":["websocket"],"pingInterval":25000,"sid":"S1","maxPayload":1}"#,
                br#"0{"upgrades":["websocket"],"pingInterval":25000,"sid":"Ab9-_zQ0.S1","maxPayload":1}"#,
            ),
            (
                b"0 {\n  \"upgrades\" : [ \"websocket\" ] ,\r\n\t\"sid\" :\t\"S1\"\n}",
                b"0 {\n  \"upgrades\" : [ \"websocket\" ] ,\r\n\t\"sid\" :\t\"Ab9-_zQ0.S1\"\n}",
            ),
            // The same bytes in other places first: only the sid gets the tag.
            (
                br#"0{"a":"S1","data":{"sid":"S1"},"b":["S1"],"sid":"S1"}"#,
                br#"0{"a":"S1","data":{"sid":"S1"},"b":["S1"],"sid":"Ab9-_zQ0.S1"}"#,
            ),
            (
                br#"0{"S1":"x","sid":"S1"}"#,
                br#"0{"S1":"x","sid":"Ab9-_zQ0.S1"}"#,
            ),
            (
                br#"0{"sid":"S1","a":"S1"}"#,
                br#"0{"sid":"Ab9-_zQ0.S1","a":"S1"}"#,
            ),
            (
                br#"0{"s\u0069d":"S1"}"#,
                br#"0{"s\u0069d":"Ab9-_zQ0.S1"}"#,
            ),
        ];
        for (body, want) in bodies {
            assert_eq!(
                &rewrite(body, b"S1"),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // At most MAX_TRIES places are tried.
        let decoys = |n: usize| {
            let mut b = br#"0{"#.to_vec();
            for i in 0..n {
                b.extend_from_slice(format!(r#""k{i}":"S1","#).as_bytes());
            }
            b.extend_from_slice(br#""sid":"S1"}"#);
            b
        };
        rewrite(&decoys(MAX_TRIES - 1), b"S1");
        assert_eq!(tag_head(Kind::EngineIo, &decoys(MAX_TRIES), &T), None);
        let body = decoys(MAX_TRIES);
        let at = body.len() - 4;
        assert!(insert_tag(Kind::EngineIo, &body, at, 2, &T).is_some());
    }

    #[test]
    fn escaped_sids_are_not_tagged() {
        for body in [
            &br#"0{"sid":"a\/b"}"#[..],
            br#"0{"sid":"\u0061bc"}"#,
            br#"0{"x":"abc","sid":"\u0061bc"}"#,
            br#"___eio[0]("0{\"sid\":\"a\\/b\"}");"#,
            br#"___eio[0]("0{\"sid\":\"\u0061bc\"}");"#,
        ] {
            assert!(matches!(sniff(Kind::EngineIo, body, true), Sniffed::Sid(_)));
            assert_eq!(tag_head(Kind::EngineIo, body, &T), None, "{body:?}");
        }
    }

    // ---- Engine.IO 3 text framing ----

    #[test]
    fn v3_text() {
        let out = rewrite(V3, DEFAULT_SID);
        let packet = std::str::from_utf8(&V3[3..V3.len() - 4]).unwrap();
        let frames = text_frames(std::str::from_utf8(&out).unwrap());
        assert_eq!(
            frames,
            [tag_packet(packet, "lv_VI97HAXpY6yYWAAAC"), "40".into()]
        );
        assert!(out.starts_with(b"105:0{\"sid\":\"Ab9-_zQ0.lv_"));
        let h = tag_head(Kind::EngineIo, V3, &T).unwrap();
        assert_eq!(h.bytes, br#"105:0{"sid":"Ab9-_zQ0."#);
        assert_eq!(h.replaced, 12);
        assert_eq!(h.growth(), 10);
        // Leading zeros are read, and kept: the length keeps its width (the body grows by 9).
        let mut zeros = b"0".to_vec();
        zeros.extend_from_slice(V3);
        let out = rewrite(&zeros, DEFAULT_SID);
        assert!(out.starts_with(b"105:0{"));
        assert_eq!(out.len(), zeros.len() + TAG_LEN + 1);
        let short = padded_packet("abc", 68);
        let body = format!("0{}", text_frame(&short));
        assert!(body.starts_with("068:"));
        let out = rewrite(body.as_bytes(), b"abc");
        assert!(
            out.starts_with(b"077:0{"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(out.len(), body.len() + TAG_LEN + 1);
        let body = format!("00{}", text_frame(&padded_packet("abc", 995)));
        assert!(rewrite(body.as_bytes(), b"abc").starts_with(b"01004:0{"));
    }

    #[test]
    fn v3_text_lengths_gain_digits() {
        for len in (22..=130).chain(985..=1010) {
            let packet = padded_packet("abc", len);
            assert_eq!(packet.len(), len);
            let body = format!("{}2:40", text_frame(&packet));
            let out = rewrite(body.as_bytes(), b"abc");
            let out = String::from_utf8(out).unwrap();
            assert_eq!(text_frames(&out), [tag_packet(&packet, "abc"), "40".into()]);
            assert!(out.starts_with(&format!("{}:0", len + 9)), "{out}");
        }
        for (len, head) in [(91, "100:"), (99, "108:"), (990, "999:"), (991, "1000:")] {
            let body = text_frame(&padded_packet("abc", len));
            assert!(rewrite(body.as_bytes(), b"abc").starts_with(head.as_bytes()));
        }
        // Six digits at most, as sniff reads them.
        let body = text_frame(&padded_packet("abc", 999_990));
        assert!(rewrite(body.as_bytes(), b"abc").starts_with(b"999999:0{"));
        let body = text_frame(&padded_packet("abc", 999_991));
        assert_eq!(
            tag_head(Kind::EngineIo, &body.as_bytes()[..LOOK_MAX], &T),
            None
        );
    }

    #[test]
    fn v3_text_counts_utf16_units() {
        // Two-byte, three-byte and four-byte (two units) characters before the sid.
        let packet = r#"0{"name":"é€😀 ","sid":"abc","more":"ü😀"}"#;
        let body = format!("{}2:40", text_frame(packet));
        assert!(body.starts_with("42:"));
        let out = String::from_utf8(rewrite(body.as_bytes(), b"abc")).unwrap();
        assert_eq!(text_frames(&out), [tag_packet(packet, "abc"), "40".into()]);
        assert!(out.starts_with("51:"));
        // Not UTF-8 before the sid: the length cannot be checked.
        let body = b"40:0{\"name\":\"\xff\",\"sid\":\"abc\"}";
        assert!(matches!(sniff(Kind::EngineIo, body, true), Sniffed::Sid(_)));
        assert_eq!(tag_head(Kind::EngineIo, body, &T), None);
    }

    #[test]
    fn v3_text_length_must_hold_the_sid() {
        // `0{"sid":"abc` is 12 units.
        let tail = br#"0{"sid":"abc"}"#;
        for (len, ok) in [(5, false), (11, false), (12, true), (14, true), (900, true)] {
            let mut body = format!("{len}:").into_bytes();
            body.extend_from_slice(tail);
            let h = tag_head(Kind::EngineIo, &body, &T);
            assert_eq!(h.is_some(), ok, "{len}");
            if let Some(h) = h {
                let want = format!("{}:", len + 9);
                assert!(apply(&h, &body).starts_with(want.as_bytes()));
            }
        }
    }

    #[test]
    fn length_must_hold_the_sid_counted_as_the_client_does() {
        // Non-ASCII characters and escapes before the sid; the sid ends `units` UTF-16 units
        // into the packet, and `bytes` bytes.
        let packet = format!(r#"0{{"k":{},"sid":"abc"}}"#, json_string("\n\u{2028}é😀\""));
        let before_end = &packet[..packet.find("abc").unwrap() + 3];
        let units = before_end.encode_utf16().count();
        let bytes = before_end.len();
        assert_eq!((units, bytes), (27, 32));
        for declared in [units - 1, units, units + 1] {
            let ok = declared >= units;
            let text = format!("{declared}:{packet}");
            assert_eq!(tag_head(Kind::EngineIo, text.as_bytes(), &T).is_some(), ok);
            let jsonp = jsonp_wrap("___eio[0]", &text);
            assert_eq!(tag_head(Kind::EngineIo, jsonp.as_bytes(), &T).is_some(), ok);
        }
        for declared in [bytes - 1, bytes, bytes + 1] {
            let mut binary = vec![0u8];
            binary.extend(declared.to_string().bytes().map(|d| d - b'0'));
            binary.push(0xff);
            binary.extend_from_slice(packet.as_bytes());
            let h = tag_head(Kind::EngineIo, &binary, &T);
            assert_eq!(h.is_some(), declared >= bytes);
        }
    }

    // ---- Engine.IO 3 binary framing ----

    #[test]
    fn v3_binary() {
        let packet = &V3[3..V3.len() - 4];
        let mut body = binary_frame(packet);
        body.extend_from_slice(b"\x00\x02\xff40");
        body.extend_from_slice(&[0x01, 5, 0xff, 4, 1, 2, 3, 4]);
        let out = rewrite(&body, DEFAULT_SID);
        let want = tag_packet(std::str::from_utf8(packet).unwrap(), "lv_VI97HAXpY6yYWAAAC");
        assert_eq!(
            binary_frames(&out),
            [
                (true, want.into_bytes()),
                (true, b"40".to_vec()),
                (false, vec![4, 1, 2, 3, 4])
            ]
        );
        assert!(out.starts_with(&[0, 1, 0, 5, 0xff, b'0']));
        // A leading zero digit stays: 0,6,8 becomes 0,7,7.
        let packet = padded_packet("abc", 68);
        let mut body = vec![0, 0, 6, 8, 0xff];
        body.extend_from_slice(packet.as_bytes());
        let out = rewrite(&body, b"abc");
        assert!(out.starts_with(&[0, 0, 7, 7, 0xff, b'0']));
        assert_eq!(out.len(), body.len() + TAG_LEN + 1);
        for len in (22..=130).chain(985..=1010) {
            let packet = padded_packet("abc", len);
            let mut body = binary_frame(packet.as_bytes());
            body.extend_from_slice(b"\x00\x01\xff6");
            let out = rewrite(&body, b"abc");
            assert_eq!(
                binary_frames(&out),
                [
                    (true, tag_packet(&packet, "abc").into_bytes()),
                    (true, b"6".to_vec())
                ]
            );
        }
        // Binary framing counts bytes.
        let packet = r#"0{"name":"é😀","sid":"abc"}"#;
        let out = rewrite(&binary_frame(packet.as_bytes()), b"abc");
        assert_eq!(
            binary_frames(&out),
            [(true, tag_packet(packet, "abc").into_bytes())]
        );
        assert_eq!(packet.len(), 30);
        assert!(out.starts_with(&[0, 3, 9, 0xff]));
        // Clients read ASCII digits as other numbers: not rewritten (sniff accepts them).
        let mut ascii = vec![0x00, b'9', b'6', 0xff];
        ascii.extend_from_slice(packet.as_bytes());
        assert!(matches!(
            sniff(Kind::EngineIo, &ascii, true),
            Sniffed::Sid(_)
        ));
        assert_eq!(tag_head(Kind::EngineIo, &ascii, &T), None);
        // The length must hold the sid.
        let mut short = vec![0x00, 1, 1, 0xff];
        short.extend_from_slice(br#"0{"sid":"abc"}"#);
        assert_eq!(tag_head(Kind::EngineIo, &short, &T), None);
        short[2] = 2;
        assert!(tag_head(Kind::EngineIo, &short, &T).is_some());
    }

    // ---- JSONP ----

    #[test]
    fn jsonp_v3() {
        let out = rewrite(V3_JSONP, DEFAULT_SID);
        assert!(out.starts_with(br#"___eio[0]("105:0{\"sid\":\"Ab9-_zQ0.lv_"#));
        let packet = std::str::from_utf8(&V3[3..V3.len() - 4]).unwrap();
        assert_eq!(
            text_frames(&jsonp_text(&out)),
            [tag_packet(packet, "lv_VI97HAXpY6yYWAAAC"), "40".into()]
        );
        assert_eq!(jsonp_text(V3_JSONP), std::str::from_utf8(V3).unwrap());
    }

    #[test]
    fn jsonp_v3_escapes_elsewhere() {
        // Escapes before the sid count one unit each, non-ASCII characters as in UTF-16.
        let packets = [
            format!(
                r#"0{{"k\"ey":{},"nl":{},"sid":"abc","after":{}}}"#,
                json_string(r#"v\""#),
                json_string("a\nb"),
                json_string("\"")
            ),
            format!(
                r#"0{{"u":{},"sid":"abc"}}"#,
                json_string("\u{2028}\u{2029}é😀\u{1}\t")
            ),
            format!(
                r#"0{{"upgrades":["websocket"],"sid":"abc","x":"{}"}}"#,
                '\u{2028}'
            ),
        ];
        // Three escapes and U+2028 instead of seven `x`: as many UTF-16 units.
        let escapes = format!(r#"\"\\\n{}"#, '\u{2028}');
        for packet in packets.iter().cloned().chain((85..=100).map(|len| {
            let p = padded_packet("abc", len).replacen("xxxxxxx", &escapes, 1);
            assert_eq!(p.encode_utf16().count(), len);
            p
        })) {
            let payload = format!("{}2:40", text_frame(&packet));
            let body = jsonp_wrap("___eio[7]", &payload);
            assert_eq!(jsonp_text(body.as_bytes()), payload);
            let out = rewrite(body.as_bytes(), b"abc");
            assert_eq!(
                text_frames(&jsonp_text(&out)),
                [tag_packet(&packet, "abc"), "40".into()],
                "{body}"
            );
        }
    }

    #[test]
    fn jsonp_v4() {
        let want = b"AAAAAAAAAAAAAAAAAAAA";
        let out = rewrite(V4_JSONP, want);
        assert!(out.starts_with(br#"___eio[12]("0{\"sid\":\"Ab9-_zQ0.AAAA"#));
        assert!(out.ends_with(br#"\u001e4hello");"#));
        let v4 = std::str::from_utf8(V4).unwrap();
        for head in ["___eio[3]", "___eio[]", "___eio[123456789012]"] {
            let body = jsonp_wrap(head, v4);
            let out = rewrite(body.as_bytes(), DEFAULT_SID);
            assert_eq!(jsonp_text(&out), tag_packet(v4, "lv_VI97HAXpY6yYWAAAC"));
        }
        let packet = format!(
            "0{{\"pingInterval\":1,\"name\":{},\"sid\":\"abc\"}}\u{1e}40",
            json_string("\"\\\u{2028}")
        );
        let out = rewrite(jsonp_wrap("___eio[0]", &packet).as_bytes(), b"abc");
        assert_eq!(jsonp_text(&out), tag_packet(&packet, "abc"));
    }

    #[test]
    fn jsonp_refused() {
        let bodies: &[&[u8]] = &[
            // Length digits written as escapes.
            br#"___eio[0]("\u0039\u0036:0{\"sid\":\"abc\"}");"#,
            br#"___eio[0]("9\u0036:0{\"sid\":\"abc\"}");"#,
            // Binary framing inside JSONP: no server sends it.
            b"___eio[1](\"\\u0000\\t\\u0006\xff0{\\\"sid\\\":\\\"abc\\\"}\");",
            // A length that does not hold the sid (`0{"sid":"abc` is 12 units).
            br#"___eio[0]("11:0{\"sid\":\"abc\"}");"#,
        ];
        for body in bodies {
            assert!(
                matches!(sniff(Kind::EngineIo, body, true), Sniffed::Sid(_)),
                "{body:?}"
            );
            assert_eq!(tag_head(Kind::EngineIo, body, &T), None, "{body:?}");
        }
        assert!(tag_head(
            Kind::EngineIo,
            br#"___eio[0]("12:0{\"sid\":\"abc\"}");"#,
            &T
        )
        .is_some());
    }

    // ---- what is never rewritten ----

    #[test]
    fn legacy09_is_never_rewritten() {
        for body in [L09, L09_JSONP] {
            assert!(matches!(sniff(Kind::Legacy09, body, true), Sniffed::Sid(_)));
            assert_eq!(tag_head(Kind::Legacy09, body, &T), None);
        }
        assert_eq!(insert_tag(Kind::Legacy09, L09, 0, 13, &T), None);
        assert_eq!(insert_tag(Kind::Legacy09, L09_JSONP, 9, 20, &T), None);
        // Nor an Engine.IO body read as 0.9 (or a 0.9 body as Engine.IO).
        assert_eq!(tag_head(Kind::Legacy09, V4, &T), None);
        assert_eq!(tag_head(Kind::EngineIo, L09, &T), None);
    }

    #[test]
    fn insert_tag_found_takes_only_a_part_of_the_head() {
        let at = 9;
        let sid = &V4[at..at + 20];
        assert!(insert_tag_found(Kind::EngineIo, V4, sid, &T).is_some());
        // The same bytes elsewhere, a part that runs past the head, an empty head.
        let copy = sid.to_vec();
        assert_eq!(insert_tag_found(Kind::EngineIo, V4, &copy, &T), None);
        assert_eq!(
            insert_tag_found(Kind::EngineIo, &V4[..at + 10], sid, &T),
            None
        );
        assert_eq!(
            insert_tag_found(Kind::EngineIo, &V4[at + 1..], sid, &T),
            None
        );
        assert_eq!(insert_tag_found(Kind::EngineIo, &[], sid, &T), None);
        assert_eq!(insert_tag_found(Kind::Legacy09, V4, sid, &T), None);
    }

    #[test]
    fn insert_tag_checks_its_input() {
        let ok = insert_tag(Kind::EngineIo, V4, 9, 20, &T);
        assert!(ok.is_some());
        for (at, len) in [
            (8, 20),
            (10, 19),
            (9, 19),
            (9, 21),
            (9, 0),
            (0, 1),
            (200, 20),
            (usize::MAX, 20),
            (9, usize::MAX),
            (usize::MAX, usize::MAX),
        ] {
            assert_eq!(
                insert_tag(Kind::EngineIo, V4, at, len, &T),
                None,
                "{at} {len}"
            );
        }
        for bad in [
            *b"Ab9+_zQ0",
            *b"AAAAAAA.",
            *b"AAAAAAA=",
            [0; TAG_LEN],
            [0xff; TAG_LEN],
        ] {
            assert_eq!(insert_tag(Kind::EngineIo, V4, 9, 20, &bad), None);
            assert_eq!(tag_head(Kind::EngineIo, V4, &bad), None);
        }
        // Decoys: the same bytes where they are not the sid.
        let body = br#"0{"a":"S1","sid":"S1"}"#;
        assert_eq!(insert_tag(Kind::EngineIo, body, 7, 2, &T), None);
        assert!(insert_tag(Kind::EngineIo, body, 18, 2, &T).is_some());
        let body = br#"0{"upgrades":["S1"],"sid":"S1"}"#;
        assert_eq!(insert_tag(Kind::EngineIo, body, 15, 2, &T), None);
        // Not a handshake, or no sid.
        for body in [
            &b""[..],
            b"0",
            b"0{}",
            br#"0{"sid":""}"#,
            b"<html>",
            br#"0{"sid":"abc"#,
        ] {
            assert_eq!(tag_head(Kind::EngineIo, body, &T), None, "{body:?}");
        }
    }

    #[test]
    fn long_sids() {
        let longest = vec![b'k'; MAX_KEY_LEN - TAG_LEN - 1];
        let body = [&br#"0{"sid":""#[..], &longest, br#""}"#].concat();
        let out = rewrite(&body, &longest);
        assert_eq!(out.len(), body.len() + TAG_LEN + 1);
        // Tagged, it would be longer than sniff (and the session table) takes.
        let body = [&br#"0{"sid":""#[..], &longest, br#"k"}"#].concat();
        assert!(matches!(
            sniff(Kind::EngineIo, &body, true),
            Sniffed::Sid(_)
        ));
        assert_eq!(tag_head(Kind::EngineIo, &body, &T), None);
    }

    #[test]
    fn look_limit() {
        // The tagged sid's closing quote must be within the bytes sniff looks at.
        for pad in 400..LOOK_MAX {
            let body = format!(r#"0{{"p":"{}","sid":"abc","x":1}}"#, "x".repeat(pad));
            let quote = pad + 19;
            assert_eq!(&body[quote..quote + 1], "\"");
            let look = &body.as_bytes()[..body.len().min(LOOK_MAX)];
            let h = tag_head(Kind::EngineIo, look, &T);
            assert_eq!(h.is_some(), quote + TAG_LEN + 1 < LOOK_MAX, "{pad}");
            if h.is_some() {
                rewrite(body.as_bytes(), b"abc");
            }
        }
        // Bytes past LOOK_MAX are not looked at.
        let mut body = V4.to_vec();
        body.resize(LOOK_MAX + 100, b' ');
        let h = tag_head(Kind::EngineIo, &body, &T).unwrap();
        assert_eq!(h, tag_head(Kind::EngineIo, V4, &T).unwrap());
    }

    // ---- generated bodies ----

    /// A random JSON value that never holds a sid's bytes after a `"`.
    fn value(rng: &mut XorShift, depth: u32) -> String {
        const TEXT: &[&str] = &[
            " ", "é", "😀", "\n", "\"", "\\", "\u{2028}", "{", "}", ":", ",", "~", "\u{1}",
            "\u{1e}",
        ];
        match rng.below(if depth > 2 { 4 } else { 6 }) {
            0 => json_string(
                &(0..rng.below(12))
                    .map(|_| *rng.pick(TEXT))
                    .collect::<String>(),
            ),
            1 => rng.below(100_000).to_string(),
            2 => rng.pick(&["true", "false", "null", "-2.5e3"]).to_string(),
            3 => "[]".into(),
            4 => {
                let items: Vec<String> = (0..rng.below(3)).map(|_| value(rng, depth + 1)).collect();
                format!("[{}]", items.join(","))
            }
            _ => {
                let items: Vec<String> = (0..rng.below(3))
                    .map(|i| format!("\"~{i}\":{}", value(rng, depth + 1)))
                    .collect();
                format!("{{{}}}", items.join(","))
            }
        }
    }

    /// A random open packet with `sid`, and the same packet with the tagged sid.
    fn packets(rng: &mut XorShift, sid: &str) -> (String, String) {
        let n = rng.below(4);
        let at = rng.below(n + 1);
        let ws = |rng: &mut XorShift| *rng.pick(&["", "", " ", "\n\t"]);
        let mut members = Vec::new();
        for i in 0..n {
            members.push(format!(
                "{}\"~k{i}\"{}:{}{}",
                ws(rng),
                ws(rng),
                ws(rng),
                value(rng, 0)
            ));
        }
        let sid_member = |s: &str| format!("\"sid\":\"{s}\"");
        let t = String::from_utf8(tagged(sid.as_bytes())).unwrap();
        let mut plain = members.clone();
        plain.insert(at, sid_member(sid));
        members.insert(at, sid_member(&t));
        (
            format!("0{{{}}}", plain.join(",")),
            format!("0{{{}}}", members.join(",")),
        )
    }

    #[test]
    fn generated_bodies() {
        const SID: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        let mut rewritten = [0usize; 5];
        for round in 0..20_000 {
            let sid: String = (0..1 + rng.below(30))
                .map(|_| char::from(*rng.pick(SID)))
                .collect();
            let (packet, tagged_packet) = packets(&mut rng, &sid);
            let form = round % 5;
            let frame = |p: &str| -> Vec<u8> {
                match form {
                    0 => format!("{p}\u{1e}40").into_bytes(),
                    1 => format!("{}2:40", text_frame(p)).into_bytes(),
                    2 => [binary_frame(p.as_bytes()), vec![0, 2, 0xff, b'4', b'0']].concat(),
                    3 => jsonp_wrap("___eio[3]", &format!("{}2:40", text_frame(p))).into_bytes(),
                    _ => jsonp_wrap("___eio[]", &format!("{p}\u{1e}40")).into_bytes(),
                }
            };
            let (body, want) = (frame(&packet), frame(&tagged_packet));
            let look = &body[..body.len().min(LOOK_MAX)];
            let sniffed = sniff(Kind::EngineIo, look, true);
            let possible = sniffed == found(sid.as_bytes())
                && sniff(Kind::EngineIo, &want, true) == found(&tagged(sid.as_bytes()));
            match tag_head(Kind::EngineIo, look, &T) {
                Some(h) => {
                    assert!(possible);
                    assert_eq!(apply(&h, &body), want, "{}", String::from_utf8_lossy(&body));
                    rewritten[form] += 1;
                }
                None => assert!(!possible, "{}", String::from_utf8_lossy(&body)),
            }
        }
        assert!(rewritten.iter().all(|&n| n > 2_000), "{rewritten:?}");
    }

    #[test]
    fn never_panics() {
        const ALPHABET: &[u8] =
            b"0123456789{}[]\":,\\u/_eio.j()sidSID tfnrl-+eE\x00\x01\x09\xff\x1e\n";
        let mut bin = binary_frame(&V3[3..V3.len() - 4]);
        bin.extend_from_slice(b"\x00\x02\xff40");
        let bodies: [&[u8]; 5] = [V4, V3, V3_JSONP, V4_JSONP, &bin];
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        let mut some = 0;
        for round in 0..30_000 {
            let mut b = bodies[round % bodies.len()].to_vec();
            match rng.below(3) {
                0 => b = (0..rng.below(600)).map(|_| rng.next_u64() as u8).collect(),
                1 => b = (0..rng.below(80)).map(|_| *rng.pick(ALPHABET)).collect(),
                _ => {
                    for _ in 0..1 + rng.below(3) {
                        let at = rng.below(b.len());
                        match rng.below(3) {
                            0 => b[at] = rng.next_u64() as u8,
                            1 => {
                                b.remove(at);
                            }
                            _ => b.insert(at, *rng.pick(ALPHABET)),
                        }
                    }
                }
            }
            for kind in [Kind::EngineIo, Kind::Legacy09] {
                let tag = if rng.below(8) == 0 {
                    [rng.next_u64() as u8; TAG_LEN]
                } else {
                    T
                };
                let sniffed = sniff(kind, &b, true);
                let check = |h: Head| {
                    let Sniffed::Sid(sid) = &sniffed else {
                        panic!("rewritten without a sid: {b:?}");
                    };
                    assert_eq!(kind, Kind::EngineIo);
                    assert!(h.replaced <= b.len().min(LOOK_MAX));
                    assert!(h.bytes.ends_with(&[&tag[..], b"."].concat()));
                    let out = apply(&h, &b);
                    let want = [&tag[..], b".", sid].concat();
                    assert_eq!(sniff(kind, &out, true), found(&want), "{b:?}");
                };
                if let Some(h) = tag_head(kind, &b, &tag) {
                    some += 1;
                    check(h);
                }
                let (at, len) = (rng.below(b.len() + 2), rng.below(40));
                if let Some(h) = insert_tag(kind, &b, at, len, &tag) {
                    check(h);
                }
            }
            let _ = split(&b);
            let _ = tag_id(&b);
            let _ = strip_query(&b, b"sid");
        }
        assert!(some > 1_000, "{some}");
    }
}
