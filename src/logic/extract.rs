//! Finding key values in raw request bytes: query arguments, cookies, header values and the
//! Socket.IO 0.9 path form, plus percent-decoding into a bounded buffer.
//!
//! All functions take untrusted bytes and never panic, allocate, or read past their input.

/// The longest key (after percent-decoding) that is used; longer values count as absent.
pub const MAX_KEY_LEN: usize = 256;

/// Why a candidate value was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Longer than [`MAX_KEY_LEN`] after decoding.
    TooLong,
}

/// A decoded key in a fixed buffer.
pub struct KeyBuf {
    buf: [u8; MAX_KEY_LEN],
    len: usize,
}

impl Default for KeyBuf {
    fn default() -> Self {
        KeyBuf {
            buf: [0; MAX_KEY_LEN],
            len: 0,
        }
    }
}

impl KeyBuf {
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Stores `raw` as is (for values nginx already decoded).
    pub fn set_raw(&mut self, raw: &[u8]) -> Result<(), Rejected> {
        let dst = self.buf.get_mut(..raw.len()).ok_or(Rejected::TooLong)?;
        dst.copy_from_slice(raw);
        self.len = raw.len();
        Ok(())
    }

    /// Stores `raw` percent-decoded. `%XY` with two hex digits becomes one byte; any other `%`
    /// is kept literally; `+` is kept (it is not a space outside HTML forms).
    pub fn set_decoded(&mut self, raw: &[u8]) -> Result<(), Rejected> {
        if find_byte(raw, b'%').is_none() {
            return self.set_raw(raw);
        }
        let mut out = 0usize;
        let mut i = 0usize;
        while i < raw.len() {
            let mut b = raw[i];
            i += 1;
            if b == b'%' {
                if let (Some(h), Some(l)) = (
                    raw.get(i).copied().and_then(hex),
                    raw.get(i + 1).copied().and_then(hex),
                ) {
                    b = (h << 4) | l;
                    i += 2;
                }
            }
            *self.buf.get_mut(out).ok_or(Rejected::TooLong)? = b;
            out += 1;
        }
        self.len = out;
        Ok(())
    }
}

#[inline]
fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The first non-empty value of query argument `name` (matched case-insensitively, as nginx's
/// `$arg_` does) in `args` (the part after `?`, without it). Arguments are split on `&`.
pub fn query_arg<'a>(args: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    if name.is_empty() {
        return None;
    }
    args.split(|&c| c == b'&').find_map(|pair| {
        let (k, v) = split_once(pair, b'=')?;
        (!v.is_empty() && k.eq_ignore_ascii_case(name)).then_some(v)
    })
}

/// Most distinct query argument names that one [`scan_query`] pass looks for.
pub const MAX_ARGS: usize = 8;

/// What one pass over a query string found.
#[derive(Debug, Default)]
pub struct QueryScan<'a> {
    /// The first non-empty value of each wanted name, in the order of the names.
    pub values: [Option<&'a [u8]>; MAX_ARGS],
    /// There is an `EIO=` argument (name matched exactly, any value).
    pub eio: bool,
    /// There is a non-empty `sid=` argument (name matched exactly).
    pub sid: bool,
}

/// One pass over `args` (the query string without `?`) that finds, for each of `names` (at
/// most [`MAX_ARGS`]; more are ignored), the value [`query_arg`] would give, and whether the
/// request looks like an Engine.IO request with or without a session id.
pub fn scan_query<'a, N: AsRef<[u8]>>(args: &'a [u8], names: &[N]) -> QueryScan<'a> {
    let mut scan = QueryScan::default();
    // The separators `&` and `=` are found eight bytes per step; each pair is then looked at
    // once: `start..end` with its first `=` at `eq`.
    let mut start = 0usize;
    let mut eq = usize::MAX;
    let mut base = 0usize;
    let mut chunks = args.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let mut marks = bytes_equal(w, b'&') | bytes_equal(w, b'=');
        while marks != 0 {
            let shift = marks.trailing_zeros() & !7;
            let pos = base + (shift / 8) as usize;
            if (w >> shift) as u8 == b'&' {
                scan.pair(args, start, eq, pos, names);
                start = pos + 1;
                eq = usize::MAX;
            } else if eq == usize::MAX {
                eq = pos;
            }
            marks &= marks - 1;
        }
        base += 8;
    }
    for (i, &c) in chunks.remainder().iter().enumerate() {
        let pos = base + i;
        if c == b'&' {
            scan.pair(args, start, eq, pos, names);
            start = pos + 1;
            eq = usize::MAX;
        } else if c == b'=' && eq == usize::MAX {
            eq = pos;
        }
    }
    scan.pair(args, start, eq, args.len(), names);
    scan
}

impl<'a> QueryScan<'a> {
    /// One `name=value` pair of `args`: `start..end`, `=` at `eq` (`usize::MAX`: none).
    #[inline]
    fn pair<N: AsRef<[u8]>>(
        &mut self,
        args: &'a [u8],
        start: usize,
        eq: usize,
        end: usize,
        names: &[N],
    ) {
        if eq >= end {
            return;
        }
        let (Some(k), Some(v)) = (args.get(start..eq), args.get(eq + 1..end)) else {
            return;
        };
        match k {
            b"EIO" => self.eio = true,
            b"sid" if !v.is_empty() => self.sid = true,
            _ => {}
        }
        if v.is_empty() {
            return;
        }
        for (slot, name) in self.values.iter_mut().zip(names) {
            let name = name.as_ref();
            if slot.is_none() && k.len() == name.len() && k.eq_ignore_ascii_case(name) {
                *slot = Some(v);
            }
        }
    }
}

/// A word with the high bit set in exactly the bytes of `w` equal to `b`.
#[inline]
fn bytes_equal(w: u64, b: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = w ^ 0x0101_0101_0101_0101u64.wrapping_mul(u64::from(b));
    // A byte of `x` is zero iff neither its low seven bits nor its high bit are set; adding
    // 0x7f to the low seven bits cannot carry into the next byte.
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// The position of the first `needle` in `hay`, eight bytes per step (no allocation, no
/// unsafe; for the short strings of a request it beats a call into `memchr`).
#[inline]
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(u64::from(needle));
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0usize;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // The lowest byte of `x` that is zero is the first match (borrows only run upwards).
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == needle)
        .map(|i| base + i)
}

/// The first non-empty value of cookie `name` in one `Cookie` header value. Pairs are split
/// on `;`; spaces and tabs around names and values are ignored; a value wrapped in double
/// quotes is unwrapped. Names match case-insensitively, as nginx's `$cookie_` does.
pub fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    if name.is_empty() {
        return None;
    }
    header.split(|&c| c == b';').find_map(|pair| {
        let (k, v) = split_once(pair, b'=')?;
        if !trim(k).eq_ignore_ascii_case(name) {
            return None;
        }
        let mut v = trim(v);
        if v.len() >= 2 && v.first() == Some(&b'"') && v.last() == Some(&b'"') {
            v = v.get(1..v.len() - 1).unwrap_or(&[]);
        }
        (!v.is_empty()).then_some(v)
    })
}

/// Header values are used trimmed of surrounding spaces and tabs.
pub fn header_value(value: &[u8]) -> Option<&[u8]> {
    let v = trim(value);
    (!v.is_empty()).then_some(v)
}

/// The session id of a Socket.IO 0.9 path, `/<resource>/1/<transport>/<sid>[/...]`: the
/// segment after the first `1` segment that is followed by a transport name and a non-empty
/// segment. `/socket.io/1/` (the handshake) has no sid.
pub fn socketio09_sid(uri: &[u8]) -> Option<&[u8]> {
    let mut segs = uri.split(|&c| c == b'/');
    // Never match the empty segment before the leading slash as a resource.
    while let Some(seg) = segs.next() {
        if seg != b"1" {
            continue;
        }
        let mut ahead = segs.clone();
        let transport = ahead.next()?;
        let sid = ahead.next()?;
        if is_transport(transport) && !sid.is_empty() {
            return Some(sid);
        }
    }
    None
}

fn is_transport(seg: &[u8]) -> bool {
    !seg.is_empty() && seg.iter().all(|c| c.is_ascii_lowercase() || *c == b'-')
}

#[inline]
fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&c| c == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

#[inline]
fn trim(s: &[u8]) -> &[u8] {
    let is_ws = |c: &u8| *c == b' ' || *c == b'\t';
    let start = s.iter().position(|c| !is_ws(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !is_ws(c)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(raw: &[u8]) -> Result<Vec<u8>, Rejected> {
        let mut k = KeyBuf::default();
        k.set_decoded(raw).map(|_| k.as_bytes().to_vec())
    }

    #[test]
    fn args_basic_and_order() {
        let a = b"EIO=4&transport=polling&sid=abc123&device_id=42";
        assert_eq!(query_arg(a, b"sid"), Some(&b"abc123"[..]));
        assert_eq!(query_arg(a, b"device_id"), Some(&b"42"[..]));
        assert_eq!(query_arg(a, b"EIO"), Some(&b"4"[..]));
        assert_eq!(query_arg(a, b"eio"), Some(&b"4"[..]));
        assert_eq!(query_arg(a, b"missing"), None);
        assert_eq!(query_arg(a, b"i"), None);
        assert_eq!(query_arg(b"", b"sid"), None);
        assert_eq!(query_arg(b"sid", b"sid"), None);
    }

    #[test]
    fn args_repeated_and_empty() {
        assert_eq!(query_arg(b"sid=&sid=b", b"sid"), Some(&b"b"[..]));
        assert_eq!(query_arg(b"sid=a&sid=b", b"sid"), Some(&b"a"[..]));
        assert_eq!(query_arg(b"sid=&&sid", b"sid"), None);
        assert_eq!(query_arg(b"&&&", b"sid"), None);
        assert_eq!(query_arg(b"xsid=1&sidx=2", b"sid"), None);
        assert_eq!(query_arg(b"sid==x", b"sid"), Some(&b"=x"[..]));
    }

    #[test]
    fn args_non_utf8() {
        let a = b"device_id=\xff\xfe\x80&x=1";
        assert_eq!(query_arg(a, b"device_id"), Some(&b"\xff\xfe\x80"[..]));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(decoded(b"a%20b").unwrap(), b"a b");
        assert_eq!(decoded(b"%41%42c").unwrap(), b"ABc");
        assert_eq!(decoded(b"%4a%4A").unwrap(), b"JJ");
        assert_eq!(decoded(b"100%").unwrap(), b"100%");
        assert_eq!(decoded(b"%zz%4").unwrap(), b"%zz%4");
        assert_eq!(decoded(b"a+b").unwrap(), b"a+b");
        assert_eq!(decoded(b"%ff%00").unwrap(), b"\xff\x00");
        assert_eq!(decoded(b"").unwrap(), b"");
    }

    #[test]
    fn length_limit() {
        let ok = vec![b'a'; MAX_KEY_LEN];
        assert_eq!(decoded(&ok).unwrap(), ok);
        let long = vec![b'a'; MAX_KEY_LEN + 1];
        assert_eq!(decoded(&long), Err(Rejected::TooLong));
        // 8 KB values never fit and never overflow.
        let huge = vec![b'x'; 8192];
        assert_eq!(decoded(&huge), Err(Rejected::TooLong));
        let huge_pct: Vec<u8> = b"%41".repeat(8192 / 3);
        assert_eq!(decoded(&huge_pct), Err(Rejected::TooLong));
        // Encoded length over the limit but decoded length within it is fine.
        let enc: Vec<u8> = b"%41".repeat(MAX_KEY_LEN);
        assert_eq!(decoded(&enc).unwrap(), vec![b'A'; MAX_KEY_LEN]);
        let mut big_args = b"device_id=".to_vec();
        big_args.extend(vec![b'7'; 8192]);
        big_args.extend_from_slice(b"&sid=s");
        assert_eq!(
            query_arg(&big_args, b"device_id").map(<[u8]>::len),
            Some(8192)
        );
        assert_eq!(query_arg(&big_args, b"sid"), Some(&b"s"[..]));
    }

    #[test]
    fn cookies_spacing_and_quoting() {
        assert_eq!(cookie(b"io=abc", b"io"), Some(&b"abc"[..]));
        assert_eq!(cookie(b"a=1; io=abc; b=2", b"io"), Some(&b"abc"[..]));
        assert_eq!(cookie(b"a=1;io=abc;b=2", b"io"), Some(&b"abc"[..]));
        assert_eq!(
            cookie(b"  a=1 ;\tio = abc  ; b=2", b"io"),
            Some(&b"abc"[..])
        );
        assert_eq!(cookie(b"io=\"quoted\"", b"io"), Some(&b"quoted"[..]));
        assert_eq!(cookie(b"io=\"\"; io=x", b"io"), Some(&b"x"[..]));
        assert_eq!(cookie(b"io=\"", b"io"), Some(&b"\""[..]));
        assert_eq!(cookie(b"IO=up", b"io"), Some(&b"up"[..]));
        assert_eq!(cookie(b"io=; io=second", b"io"), Some(&b"second"[..]));
        assert_eq!(cookie(b"bio=x; io2=y", b"io"), None);
        assert_eq!(cookie(b"io", b"io"), None);
        assert_eq!(cookie(b"", b"io"), None);
        assert_eq!(cookie(b";;;", b"io"), None);
        assert_eq!(cookie(b"io=a=b", b"io"), Some(&b"a=b"[..]));
        assert_eq!(cookie(b"io=\xc3\x28", b"io"), Some(&b"\xc3\x28"[..]));
    }

    #[test]
    fn header_values() {
        assert_eq!(header_value(b"  dev-1 \t"), Some(&b"dev-1"[..]));
        assert_eq!(header_value(b"   "), None);
        assert_eq!(header_value(b""), None);
    }

    #[test]
    fn socketio09_paths() {
        assert_eq!(
            socketio09_sid(b"/socket.io/1/websocket/123456789"),
            Some(&b"123456789"[..])
        );
        assert_eq!(
            socketio09_sid(b"/socket.io/1/xhr-polling/abc/"),
            Some(&b"abc"[..])
        );
        assert_eq!(
            socketio09_sid(b"/app/rt/1/jsonp-polling/SID9"),
            Some(&b"SID9"[..])
        );
        assert_eq!(socketio09_sid(b"/socket.io/1/"), None);
        assert_eq!(socketio09_sid(b"/socket.io/1/websocket/"), None);
        assert_eq!(socketio09_sid(b"/socket.io/1/websocket"), None);
        assert_eq!(socketio09_sid(b"/socket.io/"), None);
        assert_eq!(socketio09_sid(b"/1/x1/y"), None);
        assert_eq!(socketio09_sid(b"/socket.io/1/WEBSOCKET/s"), None);
        assert_eq!(socketio09_sid(b"/v/1/2/1/websocket/s2"), Some(&b"s2"[..]));
        assert_eq!(socketio09_sid(b""), None);
        assert_eq!(socketio09_sid(b"1/websocket/s"), Some(&b"s"[..]));
        assert_eq!(
            socketio09_sid(b"/\xff/1/websocket/\xfe"),
            Some(&b"\xfe"[..])
        );
    }

    #[test]
    fn find_byte_agrees_with_position() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..80usize {
            for _ in 0..50 {
                let hay: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        [b'a', b'&', b'%', 0x80, 0x00, 0xff, b'='][(x % 7) as usize]
                    })
                    .collect();
                for needle in [b'&', b'%', b'=', 0x80, 0x00, 0xff, b'z'] {
                    assert_eq!(
                        find_byte(&hay, needle),
                        hay.iter().position(|&c| c == needle),
                        "{hay:?} {needle}"
                    );
                }
            }
        }
    }

    #[test]
    fn one_pass_scan_agrees_with_query_arg() {
        let names = [&b"sid"[..], b"device_id", b"X", b"t"];
        let cases: [&[u8]; 12] = [
            b"",
            b"EIO=4&transport=polling&sid=abc",
            b"EIO=4&transport=polling&t=Nx1",
            b"sid=&SID=up&device_id=7&device_id=8",
            b"&&=&x&X=1&x=2",
            b"sid",
            b"EIO&sid=1",
            b"eio=4&Sid=2",
            b"a=b=c&t==&t=3",
            b"device_id=%41%42&sid=a%2Bb",
            b"x=1&x=&X=",
            b"EIO=3&j=0&sid=",
        ];
        for args in cases {
            let scan = scan_query(args, &names);
            for (i, name) in names.iter().enumerate() {
                assert_eq!(scan.values[i], query_arg(args, name), "{args:?} {name:?}");
            }
        }
        let flags = |a: &[u8]| {
            let s = scan_query::<&[u8]>(a, &[]);
            (s.eio, s.sid)
        };
        assert_eq!(flags(b"EIO=4&transport=polling"), (true, false));
        assert_eq!(flags(b"EIO=4&sid=x"), (true, true));
        assert_eq!(flags(b"EIO=4&sid="), (true, false));
        assert_eq!(flags(b"EIO&sid"), (false, false));
        assert_eq!(flags(b"eio=4&SID=x"), (false, false));
        // More names than slots: the extra ones are not looked for.
        let many: Vec<Vec<u8>> = (0..12).map(|i| format!("n{i}").into_bytes()).collect();
        let scan = scan_query(b"n0=a&n11=b", &many);
        assert_eq!(scan.values[0], Some(&b"a"[..]));
        assert!(scan.values[1..].iter().all(Option::is_none));
    }
}
