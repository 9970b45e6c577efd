//! Finding key values in raw request bytes: query arguments, cookies, header values and the
//! Socket.IO 0.9 path form, plus percent-decoding into a bounded buffer.
//!
//! All functions take untrusted bytes and never panic, allocate, or read past their input.

use core::cell::RefCell;

use regex::bytes::{CaptureLocations, Regex};
use regex_automata::dfa::onepass;
use regex_automata::nfa::thompson;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};

use super::bytes::{find_byte, split_once, trim, unquote};

/// The longest key (after percent-decoding) that is used; longer values count as absent.
pub const MAX_KEY_LEN: usize = 256;

/// Why a candidate value was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Longer than [`MAX_KEY_LEN`] after decoding.
    TooLong,
    /// No memory to decode it into.
    NoMemory,
}

/// `raw` if it fits the key length limit.
#[inline]
pub fn within_limit(raw: &[u8]) -> Result<&[u8], Rejected> {
    if raw.len() > MAX_KEY_LEN {
        return Err(Rejected::TooLong);
    }
    Ok(raw)
}

/// Whether `raw` has anything for [`percent_decode`] to do.
#[inline]
pub fn needs_decoding(raw: &[u8]) -> bool {
    find_byte(raw, b'%').is_some()
}

/// Percent-decodes `raw` into `out` and returns the decoded length; `None` when `out` is too
/// short (it never is when it has `raw.len()` bytes: decoding only shortens). `%XY` with two
/// hex digits becomes one byte; any other `%` is kept literally; `+` is kept (it is not a space
/// outside HTML forms).
pub fn percent_decode(raw: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0usize;
    let mut i = 0usize;
    while let Some(&c) = raw.get(i) {
        let mut b = c;
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
        *out.get_mut(n)? = b;
        n += 1;
    }
    Some(n)
}

/// A key from raw request bytes: `raw` itself when there is nothing to decode (no copy), else
/// its percent-decoding, written into `scratch(raw.len())` (request memory). Keys longer than
/// [`MAX_KEY_LEN`] after decoding are rejected.
pub fn decode_key<'a>(
    raw: &'a [u8],
    scratch: impl FnOnce(usize) -> Option<&'a mut [u8]>,
) -> Result<&'a [u8], Rejected> {
    if !needs_decoding(raw) {
        return within_limit(raw);
    }
    // `%XY` is the only way to shorten: longer values cannot fit.
    if raw.len() > 3 * MAX_KEY_LEN {
        return Err(Rejected::TooLong);
    }
    let out = scratch(raw.len()).ok_or(Rejected::NoMemory)?;
    let n = percent_decode(raw, out).ok_or(Rejected::NoMemory)?;
    let out: &'a [u8] = out;
    within_limit(out.get(..n).unwrap_or_default())
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

/// The argument names one [`scan_query`] pass looks for, prepared once (at configuration
/// time): at most [`MAX_ARGS`] names, and for every byte the names (and the `EIO`/`sid`
/// checks) that a pair starting with it may match, so that the pass skips every other pair
/// after one look at its first byte.
#[derive(Debug, Clone)]
pub struct ArgNames {
    names: Vec<NameKey>,
    /// Per first byte: bit `i` for name `i`, plus [`EIO_BIT`] and [`SID_BIT`].
    candidates: [u16; 256],
}

const EIO_BIT: u16 = 1 << 8;
const SID_BIT: u16 = 1 << 9;

/// One wanted name, ready to be compared with the first 16 bytes of a pair at once: those
/// bytes, with 0x20 set where the name has a letter (ASCII case folding), masked to the
/// name's length plus its `=`, equal `lower`. Longer names are compared byte by byte.
#[derive(Debug, Clone)]
struct NameKey {
    /// Lowercase (names match case-insensitively).
    name: Vec<u8>,
    /// `name=` in the low bytes, when it fits in 16 bytes.
    lower: u128,
    fold: u128,
    mask: u128,
    fits: bool,
}

impl NameKey {
    fn new(name: &[u8]) -> NameKey {
        let name = name.to_ascii_lowercase();
        let mut k = NameKey {
            lower: 0,
            fold: 0,
            mask: 0,
            fits: name.len() < 16,
            name,
        };
        if k.fits {
            for (i, &c) in k.name.iter().chain(b"=").enumerate() {
                k.lower |= u128::from(c) << (8 * i);
                k.mask |= 0xff << (8 * i);
                if c.is_ascii_lowercase() {
                    k.fold |= 0x20 << (8 * i);
                }
            }
        }
        k
    }

    /// Whether the pair starts with `name=` (case-insensitively) and has a value after it.
    /// `head` is the pair's first 16 bytes (zero-padded past the end of the query string).
    #[inline(always)]
    fn matches(&self, pair: &[u8], head: u128) -> bool {
        let l = self.name.len();
        if pair.len() <= l + 1 {
            return false;
        }
        if self.fits {
            return (head | self.fold) & self.mask == self.lower;
        }
        pair.get(l) == Some(&b'=')
            && pair
                .iter()
                .zip(&self.name)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
    }
}

impl Default for ArgNames {
    fn default() -> Self {
        ArgNames::new::<&[u8]>(&[])
    }
}

impl ArgNames {
    /// Names past [`MAX_ARGS`] are dropped. A name that is empty or holds `=` or `&` can never
    /// be a whole argument name; it keeps its slot (slots are indices) but never matches.
    pub fn new<N: AsRef<[u8]>>(names: &[N]) -> Self {
        let mut a = ArgNames {
            names: Vec::new(),
            candidates: [0; 256],
        };
        // `EIO` and `sid` are always looked for, case-sensitively (see `QueryScan`).
        a.mark(b'E', EIO_BIT);
        a.mark(b's', SID_BIT);
        for (i, name) in names.iter().take(MAX_ARGS).enumerate() {
            let name = name.as_ref();
            match name.first() {
                Some(&c) if !name.iter().any(|&b| b == b'=' || b == b'&') => {
                    a.mark(c.to_ascii_lowercase(), 1 << i);
                    a.mark(c.to_ascii_uppercase(), 1 << i);
                    a.names.push(NameKey::new(name));
                }
                // Pairs never contain `&`: this name matches nothing.
                _ => a.names.push(NameKey::new(b"&")),
            }
        }
        a
    }

    fn mark(&mut self, first: u8, bit: u16) {
        if let Some(c) = self.candidates.get_mut(usize::from(first)) {
            *c |= bit;
        }
    }

    #[cfg(test)]
    fn slots(&self) -> usize {
        self.names.len()
    }
}

/// What one pass over a query string found.
#[derive(Debug, Default)]
pub struct QueryScan<'a> {
    /// The first non-empty value of each wanted name, in the order of the names.
    pub values: [Option<&'a [u8]>; MAX_ARGS],
    /// There is an `EIO=` argument (name matched exactly, any value).
    pub eio: bool,
    /// There is a non-empty `sid=` argument (name matched exactly).
    pub sid: bool,
    /// The query string holds a `%`: values may need percent-decoding.
    pub percent: bool,
}

const LO: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The 16 bytes of `b` from `at`, little-endian, zero-padded past its end.
#[inline(always)]
fn head16(b: &[u8], at: usize) -> u128 {
    match b.get(at..).and_then(|r| r.first_chunk::<16>()) {
        Some(w) => u128::from_le_bytes(*w),
        None => {
            let mut w = [0u8; 16];
            for (d, s) in w.iter_mut().zip(b.get(at..).unwrap_or_default()) {
                *d = *s;
            }
            u128::from_le_bytes(w)
        }
    }
}

/// The high bit of exactly the bytes of `w` that equal `b`.
#[inline(always)]
fn bytes_equal(w: u64, b: u8) -> u64 {
    let x = w ^ LO.wrapping_mul(u64::from(b));
    // A byte of `x` is zero iff neither its low seven bits nor its high bit are set; adding
    // 0x7f to the low seven bits cannot carry into the next byte.
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// For a block of 16 bytes: bit `i` set when byte `i` is `&`, and whether some byte is `%`.
/// Portable version: two words, their per-byte marks gathered into bits by a multiplication.
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
#[inline(always)]
fn block_marks_swar(block: &[u8; 16]) -> (u32, bool) {
    let v = u128::from_le_bytes(*block);
    let (lo, hi) = (v as u64, (v >> 64) as u64);
    // Marks sit in bits 7, 15, ..., 63; shifted to 0, 8, ..., 56 and multiplied, bit `i` of
    // the top byte collects byte `i` (the partial products never overlap, so never carry).
    let gather = |m: u64| ((m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32;
    let amp = gather(bytes_equal(lo, b'&')) | (gather(bytes_equal(hi, b'&')) << 8);
    let pct = (bytes_equal(lo, b'%') | bytes_equal(hi, b'%')) != 0;
    (amp, pct)
}

/// [`block_marks_swar`] with SSE2 (part of every x86-64 CPU): one compare per byte kind.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn block_marks_sse2(block: &[u8; 16]) -> (u32, bool) {
    use core::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8, _mm_set_epi64x};
    let v = u128::from_le_bytes(*block);
    let v = _mm_set_epi64x((v >> 64) as u64 as i64, v as u64 as i64);
    let amp = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'&' as i8)));
    let pct = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'%' as i8)));
    (amp as u32 & 0xffff, pct != 0)
}

#[inline(always)]
fn block_marks(block: &[u8; 16]) -> (u32, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
        unsafe { block_marks_sse2(block) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        block_marks_swar(block)
    }
}

/// One pass over `args` (the query string without `?`) into `scan`: for each of `names`, the
/// value [`query_arg`] would give; whether the request looks like an Engine.IO request with or
/// without a session id; whether anything may need percent-decoding. Sixteen bytes per step
/// (the `&` separators and any `%`); a pair is looked at only when its first byte may start
/// a wanted name.
#[inline(always)]
pub fn scan_query<'a>(args: &'a [u8], names: &ArgNames, scan: &mut QueryScan<'a>) {
    let len = args.len();
    let mut start = 0usize;
    let mut base = 0usize;
    let mut blocks = args.chunks_exact(16);
    for block in &mut blocks {
        let Ok(block) = <&[u8; 16]>::try_from(block) else {
            break;
        };
        scan.block(args, block_marks(block), base, &mut start, names);
        base += 16;
    }
    let rest = blocks.remainder().len();
    if rest > 0 {
        // The last 16 bytes when there are that many (the marks of bytes already seen are
        // shifted out), else the rest zero-padded (a zero byte is neither `&` nor `%`).
        let marks = match args.get(len.wrapping_sub(16)..).map(<&[u8; 16]>::try_from) {
            Some(Ok(last)) => {
                let (amp, pct) = block_marks(last);
                (amp >> (16 - rest), pct)
            }
            _ => {
                let mut block = [0u8; 16];
                for (d, s) in block.iter_mut().zip(blocks.remainder()) {
                    *d = *s;
                }
                block_marks(&block)
            }
        };
        scan.block(args, marks, base, &mut start, names);
    }
    scan.pair(args, start, len, names);
}

impl<'a> QueryScan<'a> {
    /// The marks of the block at `base`: every `&` ends the pair that began at `start`.
    #[inline(always)]
    fn block(
        &mut self,
        args: &'a [u8],
        (mut amp, pct): (u32, bool),
        base: usize,
        start: &mut usize,
        names: &ArgNames,
    ) {
        self.percent |= pct;
        while amp != 0 {
            let pos = base + amp.trailing_zeros() as usize;
            self.pair(args, *start, pos, names);
            *start = pos + 1;
            amp &= amp - 1;
        }
    }

    /// The pair `args[start..end]` (no `&` in it).
    #[inline(always)]
    fn pair(&mut self, args: &'a [u8], start: usize, end: usize, names: &ArgNames) {
        let mut wanted = match args.get(start) {
            Some(&c) if start < end => names.candidates.get(usize::from(c)).copied().unwrap_or(0),
            _ => return,
        };
        if wanted == 0 {
            return;
        }
        let Some(pair) = args.get(start..end) else {
            return;
        };
        let head = head16(args, start);
        if wanted & EIO_BIT != 0 && head as u32 == u32::from_le_bytes(*b"EIO=") {
            self.eio = true;
        }
        if wanted & SID_BIT != 0 && head as u32 == u32::from_le_bytes(*b"sid=") && pair.len() > 4 {
            self.sid = true;
        }
        wanted &= 0xff;
        while wanted != 0 {
            let i = wanted.trailing_zeros() as usize;
            wanted &= wanted - 1;
            if let (Some(slot @ None), Some(key)) = (self.values.get_mut(i), names.names.get(i)) {
                if key.matches(pair, head) {
                    *slot = pair.get(key.name.len() + 1..);
                }
            }
        }
    }
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
        let v = unquote(trim(v));
        (!v.is_empty()).then_some(v)
    })
}

/// Most distinct cookie names that one [`CookieScan`] looks for.
pub const MAX_COOKIES: usize = 8;

/// The values of several cookies, found in one pass over each `Cookie` header: for each wanted
/// name, what [`cookie`] gives for the first header that has it.
#[derive(Debug, Default)]
pub struct CookieScan<'a> {
    pub values: [Option<&'a [u8]>; MAX_COOKIES],
}

impl<'a> CookieScan<'a> {
    /// Looks at one `Cookie` header (headers are fed in order); `names` are the wanted names
    /// (at most [`MAX_COOKIES`]; the slot of a name is its position).
    pub fn feed<N: AsRef<[u8]>>(&mut self, header: &'a [u8], names: &[N]) {
        let mut rest = header;
        while !rest.is_empty() {
            let (pair, next) = match find_byte(rest, b';') {
                Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i + 1..)),
                None => (rest, None),
            };
            rest = next.unwrap_or_default();
            let Some((k, v)) = split_once(pair, b'=') else {
                continue;
            };
            let k = trim(k);
            for (slot, name) in self.values.iter_mut().zip(names) {
                let name = name.as_ref();
                if slot.is_none() && !name.is_empty() && k.eq_ignore_ascii_case(name) {
                    let v = unquote(trim(v));
                    if !v.is_empty() {
                        *slot = Some(v);
                    }
                }
            }
        }
    }

    /// Whether every wanted name has its value (later headers cannot change it).
    pub fn complete(&self, wanted: usize) -> bool {
        self.values.iter().take(wanted).all(Option::is_some)
    }
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
    // Most paths have no `1` at all.
    find_byte(uri, b'1')?;
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

/// The first capture group of a `uri:` regex (applied to the request URI) or of the `route=`
/// regex, if it matched and is non-empty.
pub fn first_capture<'a>(re: &Regex, uri: &'a [u8]) -> Option<&'a [u8]> {
    let m = re.captures(uri)?.get(1)?;
    let v = m.as_bytes();
    (!v.is_empty()).then_some(v)
}

/// A regex whose first capture group is a key (`uri:REGEX`, `route=REGEX`), with the scratch
/// space of its searches, so that a search allocates nothing. A regex anchored at its start
/// that the one-pass DFA can run is run by it directly: the same leftmost-first match as the
/// regex's, without the general engine's dispatch (measured: 453 instead of 629 instructions
/// for `^([0-9]+)-` on a 32-byte session id).
pub struct CaptureRegex {
    re: Regex,
    onepass: Option<onepass::DFA>,
    scratch: RefCell<Scratch>,
}

enum Scratch {
    OnePass(onepass::Cache, [Option<NonMaxUsize>; 4]),
    Locations(CaptureLocations),
}

impl CaptureRegex {
    /// `re` as `params` compiled it (bytes, no Unicode classes).
    pub fn new(re: Regex) -> CaptureRegex {
        let onepass = onepass_of(re.as_str());
        let scratch = match &onepass {
            Some(dfa) => Scratch::OnePass(dfa.create_cache(), [None; 4]),
            None => Scratch::Locations(re.capture_locations()),
        };
        CaptureRegex {
            re,
            onepass,
            scratch: RefCell::new(scratch),
        }
    }

    /// [`first_capture`] of this regex.
    pub fn first_capture<'a>(&self, hay: &'a [u8]) -> Option<&'a [u8]> {
        // (Searches never nest; were one to, it would search without the scratch space.)
        let Ok(mut scratch) = self.scratch.try_borrow_mut() else {
            return first_capture(&self.re, hay);
        };
        let (start, end) = match (&mut *scratch, &self.onepass) {
            (Scratch::OnePass(cache, slots), Some(dfa)) => {
                let input = Input::new(hay).anchored(Anchored::Yes);
                dfa.try_search_slots(cache, &input, slots).ok()??;
                (slots.get(2).copied()??.get(), slots.get(3).copied()??.get())
            }
            (Scratch::Locations(locs), _) => {
                self.re.captures_read(locs, hay)?;
                locs.get(1)?
            }
            (Scratch::OnePass(..), None) => return first_capture(&self.re, hay),
        };
        hay.get(start..end).filter(|v| !v.is_empty())
    }

    pub fn regex(&self) -> &Regex {
        &self.re
    }
}

/// The one-pass DFA of `pattern` (compiled as `params` compiles it) when every match starts
/// at the start of the input and the pattern is one-pass; `None` otherwise.
fn onepass_of(pattern: &str) -> Option<onepass::DFA> {
    let syntax = syntax::Config::new().unicode(false).utf8(false);
    let nfa = thompson::Compiler::new()
        .syntax(syntax)
        .configure(
            thompson::Config::new()
                .utf8(false)
                .nfa_size_limit(Some(1 << 20)),
        )
        .build(pattern)
        .ok()?;
    if !nfa.is_always_start_anchored() {
        return None;
    }
    onepass::Builder::new().build_from_nfa(nfa).ok()
}

/// Regexes of the kinds `uri:` and `route=` take (anchored or not, alternations, classes,
/// counted repetitions, flags), for the unit tests and the fuzz targets.
#[cfg(any(test, fuzzing))]
pub const SAMPLE_PATTERNS: [&str; 16] = [
    "^([0-9]+)-",
    "^(b[0-9]+)-",
    "^([a-z]{2})([0-9]*)",
    "^(?:x|y)(z*)",
    "^(b*)-",
    "([0-9])$",
    "-([a-z0-9]+)$",
    "^(a|ab)(c|bcd)",
    "^/dev/([^/]+)",
    "^(.)",
    "^/socket\\.io/([^/?]+)",
    "^(?:[^-]*-){2}([^-]+)",
    "^([0-9a-f]{8})(?:-[0-9a-f]{4}){3}",
    "^(\\w+)\\b",
    "(?m)^(x+)$",
    "^(?s)(.+)\\z",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned<'a>(args: &'a [u8], names: &ArgNames) -> QueryScan<'a> {
        let mut scan = QueryScan::default();
        scan_query(args, names, &mut scan);
        scan
    }

    fn decoded(raw: &[u8]) -> Result<Vec<u8>, Rejected> {
        let mut buf = vec![0u8; raw.len()];
        decode_key(raw, |n| buf.get_mut(..n)).map(<[u8]>::to_vec)
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
    fn capture_regex_agrees_with_the_regex() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        const ALPHABET: &[u8] = b"0123ab-/xyzcd\xff";
        for p in SAMPLE_PATTERNS {
            let re = regex::bytes::RegexBuilder::new(p)
                .unicode(false)
                .build()
                .unwrap();
            let c = CaptureRegex::new(re.clone());
            // Start-anchored one-pass patterns take the DFA; the others the regex.
            let anchored = p.starts_with('^') && p != "^(a|ab)(c|bcd)";
            assert_eq!(c.onepass.is_some(), anchored, "{p}");
            for len in 0..12 {
                for _ in 0..300 {
                    let hay: Vec<u8> = (0..len)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            ALPHABET[(x % ALPHABET.len() as u64) as usize]
                        })
                        .collect();
                    assert_eq!(
                        c.first_capture(&hay),
                        first_capture(&re, &hay),
                        "{p} {hay:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn cookie_scan_agrees_with_cookie() {
        let names: [&[u8]; 3] = [b"io", b"srv_route", b"IO"];
        let headers: [&[&[u8]]; 6] = [
            &[b"io=abc; srv_route=0123"],
            &[b"a=1", b"io=; io=x; SRV_ROUTE=\"q\""],
            &[b"io=\"\"", b"io=second", b"io=third"],
            &[b"", b";;;", b"srv_route"],
            &[b"  io = a ;\tsrv_route= b  ", b"io=c"],
            &[b"x=1; io=a=b", b"bio=1; srv_route2=2"],
        ];
        for hs in headers {
            let mut scan = CookieScan::default();
            for h in hs {
                scan.feed(h, &names);
            }
            for (i, name) in names.iter().enumerate() {
                let reference = hs.iter().find_map(|h| cookie(h, name));
                assert_eq!(scan.values[i], reference, "{hs:?} {name:?}");
            }
            assert_eq!(
                scan.complete(names.len()),
                scan.values[..3].iter().all(Option::is_some)
            );
        }
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
        let prepared = ArgNames::new(&names);
        for args in cases {
            let scan = scanned(args, &prepared);
            for (i, name) in names.iter().enumerate() {
                assert_eq!(scan.values[i], query_arg(args, name), "{args:?} {name:?}");
            }
        }
        let flags = |a: &[u8]| {
            let s = scanned(a, &ArgNames::default());
            (s.eio, s.sid)
        };
        assert_eq!(flags(b"EIO=4&transport=polling"), (true, false));
        assert_eq!(flags(b"EIO=4&sid=x"), (true, true));
        assert_eq!(flags(b"EIO=4&sid="), (true, false));
        assert_eq!(flags(b"EIO&sid"), (false, false));
        assert_eq!(flags(b"eio=4&SID=x"), (false, false));
        // More names than slots: the extra ones are not looked for.
        let many: Vec<Vec<u8>> = (0..12).map(|i| format!("n{i}").into_bytes()).collect();
        let scan = scanned(b"n0=a&n11=b", &ArgNames::new(&many));
        assert_eq!(scan.values[0], Some(&b"a"[..]));
        assert!(scan.values[1..].iter().all(Option::is_none));
        // Names that cannot be argument names keep their slot and match nothing.
        let odd = ArgNames::new(&[&b""[..], b"a=b", b"x&y", b"sid"]);
        assert_eq!(odd.slots(), 4);
        let scan = scanned(b"=1&a=b=2&x&y=3&a=b&sid=4", &odd);
        assert_eq!(scan.values[..4], [None, None, None, Some(&b"4"[..])]);
    }

    #[test]
    fn one_pass_scan_agrees_with_query_arg_on_generated_queries() {
        // Queries built from these pieces (up to five pairs, so that pairs and separators fall
        // at every offset of the eight-byte words), against every name.
        let pieces: [&[u8]; 16] = [
            b"transport=polling",
            b"sid=VGhpcyBpcyBhIHNpZA",
            b"device_id=%7e%7E%zz",
            b"%26=x",
            b"sid=abc",
            b"SID=",
            b"sid",
            b"EIO=4",
            b"eio=3",
            b"device_id=d%41",
            b"Device_ID=7",
            b"t=Nx",
            b"=x",
            b"",
            b"s=1",
            b"sidx=2",
        ];
        let names = [&b"sid"[..], b"device_id", b"t", b"EIO", b"s"];
        let prepared = ArgNames::new(&names);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 6) as usize;
            let mut args = Vec::new();
            for i in 0..n {
                if i > 0 {
                    args.push(b'&');
                }
                args.extend_from_slice(pieces[((seed >> (8 + 4 * i)) % 16) as usize]);
            }
            let scan = scanned(&args, &prepared);
            assert_eq!(scan.percent, args.contains(&b'%'), "{args:?}");
            for (i, name) in names.iter().enumerate() {
                assert_eq!(scan.values[i], query_arg(&args, name), "{args:?} {name:?}");
            }
            let pairs = || args.split(|&c| c == b'&');
            assert_eq!(
                scan.eio,
                pairs().any(|p| p.starts_with(b"EIO=")),
                "{args:?}"
            );
            assert_eq!(
                scan.sid,
                pairs().any(|p| p.starts_with(b"sid=") && p.len() > 4),
                "{args:?}"
            );
        }
    }

    #[test]
    fn block_marks_agree_with_a_byte_loop() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..5000 {
            let mut block = [0u8; 16];
            for b in block.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly separators and their neighbours, some anything.
                *b = match x % 8 {
                    0 => b'&',
                    1 => b'%',
                    2 => b'&' ^ 0x80,
                    3 => b'%' + 1,
                    4 => 0,
                    5 => 0xff,
                    _ => (x >> 8) as u8,
                };
            }
            if round == 0 {
                block = [b'&'; 16];
            }
            let amp = (0..16)
                .filter(|&i| block[i] == b'&')
                .fold(0u32, |m, i| m | 1 << i);
            let want = (amp, block.contains(&b'%'));
            assert_eq!(block_marks_swar(&block), want, "{block:?}");
            assert_eq!(block_marks(&block), want, "{block:?}");
        }
    }

    #[test]
    fn keys_are_copied_only_when_there_is_something_to_decode() {
        let mut asked = Vec::new();
        let mut buf = [0u8; 16];
        let raw = b"abc";
        let k = decode_key(raw, |n| {
            asked.push(n);
            buf.get_mut(..n)
        });
        assert_eq!(k.map(<[u8]>::as_ptr), Ok(raw.as_ptr()), "not copied");
        assert!(asked.is_empty());
        let mut buf = [0u8; 16];
        let k = decode_key(b"a%2Bb", |n| {
            asked.push(n);
            buf.get_mut(..n)
        });
        assert_eq!(k, Ok(&b"a+b"[..]));
        assert_eq!(asked, [5]);
        // No memory: the value is skipped, nothing breaks.
        assert_eq!(decode_key(b"%41", |_| None), Err(Rejected::NoMemory));
        assert_eq!(
            decode_key(b"%41", |_| Some(&mut [])),
            Err(Rejected::NoMemory)
        );
        // Too long to ever fit: no memory is asked for.
        let huge = b"%41".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            decode_key(&huge, |_| unreachable!()),
            Err(Rejected::TooLong)
        );
        assert_eq!(percent_decode(b"abc", &mut [0u8; 2]), None);
        let long = vec![b'x'; MAX_KEY_LEN + 1];
        assert_eq!(within_limit(&long), Err(Rejected::TooLong));
        assert_eq!(within_limit(&long[1..]), Ok(&long[1..]));
    }
}
