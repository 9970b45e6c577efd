//! Learning the session id (sid) a backend minted from the first bytes of its Socket.IO
//! handshake response: the Engine.IO open packet (protocols 3 and 4, XHR and JSONP polling,
//! text and binary payload framing) and the Socket.IO 0.9 handshake line, plus the value of
//! a cookie set by a `Set-Cookie` response header.
//!
//! All functions take untrusted bytes and never panic. [`sniff`] reads at most [`LOOK_MAX`]
//! body bytes, does work linear in them and keeps its scratch space on the stack. A sid as
//! servers send it (no escapes) is returned in place; only an escaped one is copied.

use std::borrow::Cow;

use super::bytes::{find_byte, trim, unquote};
use super::extract::MAX_KEY_LEN;
use super::handshake::Kind;

/// How many response body bytes the module ever looks at.
pub const LOOK_MAX: usize = 512;

/// What [`sniff`] learned from the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniffed<'a> {
    /// The session id, validated (see [`sniff`]): in place in the bytes looked at, or
    /// unescaped.
    Sid(Cow<'a, [u8]>),
    /// A valid prefix of a recognised form that has not shown the whole sid yet.
    NeedMore,
    /// Not a recognised form, a form without a valid sid, or cut where no more bytes come.
    NotFound,
}

/// Looks at the first bytes of a 200 handshake response body. `look` holds the first
/// `min(len, LOOK_MAX)` bytes seen so far (bytes past [`LOOK_MAX`] are ignored); `complete`
/// says that the body ended or that no more bytes will be looked at.
///
/// Returns [`Sniffed::NeedMore`] only when `!complete && look.len() < LOOK_MAX` and the bytes
/// are a valid prefix of a recognised form whose sid has not been seen in full, and
/// [`Sniffed::NotFound`] as soon as they cannot be one. A longer prefix of the same body
/// never changes a `Sid` or `NotFound` answer.
///
/// [`Kind::EngineIo`] recognises, each also wrapped in JSONP (`___eio[N]("...");`), the open
/// packet `0{...}` of an Engine.IO 4 payload (packets split by `0x1e`), and as the first packet
/// of an Engine.IO 3 payload in text framing (`96:0{...}2:40`) or in binary framing (`0x00`,
/// length digits as bytes 0-9, `0xff`, packet). The sid is the value of the top-level key
/// `"sid"` of the open packet's JSON object when it is a string; the object is parsed as JSON
/// up to that value (a `"sid"` in a nested value does not count; the first string `"sid"` wins).
///
/// [`Kind::Legacy09`] recognises `SID:HEARTBEAT:CLOSE:TRANSPORTS` (`HEARTBEAT` empty or digits;
/// the sid is known once the second `:` is seen), also wrapped in JSONP (`io.j[N]("...");`).
///
/// A sid is 1 to [`MAX_KEY_LEN`] bytes (after unescaping), each in `0x21..=0x7e` except `"`
/// and `\`; any other sid gives `NotFound`.
pub fn sniff(kind: Kind, look: &[u8], complete: bool) -> Sniffed<'_> {
    let look = look.get(..LOOK_MAX).unwrap_or(look);
    let found = match kind {
        Kind::EngineIo => engine_io(look),
        Kind::Legacy09 => legacy09(look),
    };
    match found {
        Ok(sid) => Sniffed::Sid(sid),
        Err(Fail::Cut) if !complete && look.len() < LOOK_MAX => Sniffed::NeedMore,
        Err(_) => Sniffed::NotFound,
    }
}

/// The first bytes of a handshake response body, collected across the buffers it arrives in
/// (at most [`LOOK_MAX`]; later bytes are not kept).
pub struct Look {
    kind: Kind,
    len: usize,
    buf: [u8; LOOK_MAX],
}

impl Look {
    pub fn new(kind: Kind) -> Look {
        Look {
            kind,
            len: 0,
            buf: [0; LOOK_MAX],
        }
    }

    /// Adds the bytes of a buffer; what does not fit any more is not kept.
    pub fn feed(&mut self, data: &[u8]) {
        let n = data.len().min(LOOK_MAX - self.len);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), data.get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
        }
    }

    /// The bytes kept so far.
    pub fn seen(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// [`sniff`] over the bytes kept so far; `ended` says that no more bytes come.
    pub fn sniff(&self, ended: bool) -> Sniffed<'_> {
        let seen = self.buf.get(..self.len).unwrap_or(&[]);
        sniff(self.kind, seen, ended || self.len >= LOOK_MAX)
    }
}

/// Why a handshake body gave no sid, for the status counters: whether it was too long for the
/// module (its first [`LOOK_MAX`] bytes did not hold the whole sid, or the sid has more than
/// [`MAX_KEY_LEN`] bytes) rather than not a recognised form. Called once per such body; reads
/// at most the bytes given.
pub fn too_long(kind: Kind, look: &[u8]) -> bool {
    if look.len() >= LOOK_MAX {
        return true;
    }
    let run = |b: &[u8]| b.iter().take_while(|&&c| c != b'"' && c != b':').count();
    match kind {
        Kind::EngineIo => {
            let key = b"\"sid\"";
            let Some(at) = look.windows(key.len()).position(|w| w == key) else {
                return false;
            };
            let rest = look.get(at + key.len()..).unwrap_or_default();
            let rest = rest.trim_ascii_start();
            let Some(rest) = rest.strip_prefix(b":") else {
                return false;
            };
            match rest.trim_ascii_start().strip_prefix(b"\"") {
                Some(value) => run(value) > MAX_KEY_LEN,
                None => false,
            }
        }
        Kind::Legacy09 => {
            let line = match look.strip_prefix(b"io.j[") {
                Some(r) => r
                    .iter()
                    .position(|&c| c == b'"')
                    .and_then(|q| r.get(q + 1..))
                    .unwrap_or_default(),
                None => look,
            };
            run(line) > MAX_KEY_LEN
        }
    }
}

/// The value of cookie `name` if this `Set-Cookie` header value sets it
/// (`io=abc; Path=/; HttpOnly` with name `io` gives `abc`). Only the leading `name=value` pair
/// counts (what follows `;` are attributes). The name matches exactly (case-sensitively);
/// spaces and tabs around the name and the value are ignored; the value ends at `;` or at
/// the end; surrounding double quotes are removed; an empty value, or one longer than
/// [`MAX_KEY_LEN`] bytes, gives `None`. The value is returned as sent (Engine.IO
/// percent-encodes it; its generated ids need no encoding).
pub fn set_cookie<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let v = cookie_value(value, name)?;
    // As for ids in a body: longer ones are no session id a request could match.
    (!v.is_empty() && v.len() <= MAX_KEY_LEN).then_some(v)
}

/// Whether a `Set-Cookie` value sets the cookie `name` to a value longer than a session id
/// can be (so that [`set_cookie`] refused it).
pub fn set_cookie_too_long(value: &[u8], name: &[u8]) -> bool {
    cookie_value(value, name).is_some_and(|v| v.len() > MAX_KEY_LEN)
}

/// The value a `Set-Cookie` value gives the cookie `name`, of any length.
fn cookie_value<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    if name.is_empty() {
        return None;
    }
    let pair = value.split(|&c| c == b';').next()?;
    let eq = pair.iter().position(|&c| c == b'=')?;
    if trim(pair.get(..eq)?) != name {
        return None;
    }
    Some(unquote(trim(pair.get(eq + 1..)?)))
}

/// Why the bytes gave no sid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fail {
    /// The bytes ended inside a valid prefix of a recognised form.
    Cut,
    /// Not a recognised form, or its sid is not valid.
    Bad,
}

type Res<T> = Result<T, Fail>;

/// Nesting deeper than this inside the open packet's object is refused.
const MAX_DEPTH: u32 = 64;

/// Stands for a `\uXXXX` escape of a non-ASCII character: any byte >= 0x80 is never part of a
/// sid and never JSON structure, exactly like the character it replaces.
const NON_ASCII: u8 = 0x80;

/// A read position in bytes that may be cut anywhere: reading past the end is [`Fail::Cut`].
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn new(b: &'a [u8]) -> Self {
        Cur { b, i: 0 }
    }

    fn peek(&self) -> Res<u8> {
        self.b.get(self.i).copied().ok_or(Fail::Cut)
    }

    fn next(&mut self) -> Res<u8> {
        let c = self.peek()?;
        self.i += 1;
        Ok(c)
    }

    fn eat(&mut self, want: u8) -> Res<()> {
        if self.next()? == want {
            Ok(())
        } else {
            Err(Fail::Bad)
        }
    }

    fn lit(&mut self, want: &[u8]) -> Res<()> {
        want.iter().try_for_each(|&w| self.eat(w))
    }

    /// Skips ASCII digits; how many.
    fn digits(&mut self) -> Res<usize> {
        let mut n = 0;
        while self.peek()?.is_ascii_digit() {
            self.i += 1;
            n += 1;
        }
        Ok(n)
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
}

/// Whether a byte may be part of a sid: `0x21..=0x7e` but `"` and `\\`.
#[inline]
fn sid_byte(c: u8) -> bool {
    (0x21..=0x7e).contains(&c) && c != b'"' && c != b'\\'
}

/// The open packet's object as servers write it, read in place: `{"sid":"<sid>"` first and
/// no escape in the sid. `None` when the bytes are not of that form (or are cut before the
/// sid's end): the general reading then gives the same answer as this one would.
#[inline]
fn plain_open_sid(b: &[u8]) -> Option<Res<Cow<'_, [u8]>>> {
    let rest = b.strip_prefix(br#"{"sid":""#)?;
    let end = find_byte(rest, b'"')?;
    let sid = rest.get(..end)?;
    if !sid.is_empty() && sid.len() <= MAX_KEY_LEN && all_sid_bytes(sid) {
        return Some(Ok(Cow::Borrowed(sid)));
    }
    if sid.contains(&b'\\') {
        return None;
    }
    Some(Err(Fail::Bad))
}

/// Whether every byte of `s` may be part of a sid ([`sid_byte`]), sixteen bytes per step.
#[inline]
fn all_sid_bytes(s: &[u8]) -> bool {
    let mut blocks = s.chunks_exact(16);
    for b in &mut blocks {
        let Ok(b) = <&[u8; 16]>::try_from(b) else {
            return false;
        };
        if !block_of_sid_bytes(b) {
            return false;
        }
    }
    let rest = blocks.remainder();
    if rest.is_empty() {
        return true;
    }
    // The last sixteen bytes when there are that many (some seen already), else the rest
    // padded with a byte that is allowed.
    match s.len().checked_sub(16).and_then(|at| s.get(at..)) {
        Some(last) => <&[u8; 16]>::try_from(last).is_ok_and(block_of_sid_bytes),
        None => {
            let mut b = [b'a'; 16];
            for (d, c) in b.iter_mut().zip(rest) {
                *d = *c;
            }
            block_of_sid_bytes(&b)
        }
    }
}

#[inline(always)]
fn block_of_sid_bytes(b: &[u8; 16]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
        unsafe { block_of_sid_bytes_sse2(b) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        block_of_sid_bytes_swar(b)
    }
}

/// [`block_of_sid_bytes`] with SSE2: bytes as signed, `0x20 < c < 0x7f` (so below 0x80),
/// neither `"` nor `\\`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn block_of_sid_bytes_sse2(b: &[u8; 16]) -> bool {
    use core::arch::x86_64::{
        _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x,
    };
    let v = u128::from_le_bytes(*b);
    let v = _mm_set_epi64x((v >> 64) as u64 as i64, v as u64 as i64);
    let range = _mm_and_si128(
        _mm_cmpgt_epi8(v, _mm_set1_epi8(0x20)),
        _mm_cmplt_epi8(v, _mm_set1_epi8(0x7f)),
    );
    let quote = _mm_or_si128(
        _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
        _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
    );
    _mm_movemask_epi8(_mm_andnot_si128(quote, range)) == 0xffff
}

/// [`block_of_sid_bytes`] on two words: a byte is flagged (its high bit) when it is 0x80 or
/// more, below 0x21, 0x7f, `"` or `\\`.
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
fn block_of_sid_bytes_swar(b: &[u8; 16]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |w: u64| w.wrapping_sub(LO) & !w;
    let v = u128::from_le_bytes(*b);
    [v as u64, (v >> 64) as u64].into_iter().all(|w| {
        let flags = w
            | (w.wrapping_sub(LO * 0x21) & !w)
            | zero(w ^ (LO * 0x7f))
            | zero(w ^ (LO * u64::from(b'"')))
            | zero(w ^ (LO * u64::from(b'\\')));
        flags & HI == 0
    })
}

/// A sid being collected, validated byte by byte.
struct SidBuf {
    buf: [u8; MAX_KEY_LEN],
    len: usize,
}

impl SidBuf {
    fn new() -> Self {
        SidBuf {
            buf: [0; MAX_KEY_LEN],
            len: 0,
        }
    }

    fn push(&mut self, c: u8) -> Res<()> {
        if !sid_byte(c) {
            return Err(Fail::Bad);
        }
        *self.buf.get_mut(self.len).ok_or(Fail::Bad)? = c;
        self.len += 1;
        Ok(())
    }

    fn finish(&self) -> Res<Cow<'static, [u8]>> {
        match self.buf.get(..self.len) {
            Some(sid) if !sid.is_empty() => Ok(Cow::Owned(sid.to_vec())),
            _ => Err(Fail::Bad),
        }
    }
}

/// Engine.IO bodies: a payload, or a payload in a JSONP call.
fn engine_io(b: &[u8]) -> Res<Cow<'_, [u8]>> {
    if b.first() != Some(&b'_') {
        return eio_payload(b);
    }
    let mut c = Cur::new(b);
    c.lit(b"___eio[")?;
    // Engine.IO keeps only the digits of `j`, so there may be none.
    c.digits()?;
    c.lit(b"](\"")?;
    jsonp(&mut c, eio_payload)
}

/// An Engine.IO 4 payload or an Engine.IO 3 payload (text or binary framing) whose first
/// packet is the open packet.
fn eio_payload(b: &[u8]) -> Res<Cow<'_, [u8]>> {
    let mut c = Cur::new(b);
    match c.peek()? {
        // Binary framing; 0x01 (a binary packet) is never the open packet.
        0x00 => {
            c.i += 1;
            length(&mut c, binary_digit, 0xff)?;
        }
        // `0{` is an Engine.IO 4 open packet, `0:`/`01...` a length.
        b'0' => {
            let second = *b.get(1).ok_or(Fail::Cut)?;
            if second == b':' || second.is_ascii_digit() {
                length(&mut c, text_digit, b':')?;
            }
        }
        b'1'..=b'9' => length(&mut c, text_digit, b':')?,
        _ => return Err(Fail::Bad),
    }
    c.eat(b'0')?;
    open_sid(&mut c)
}

fn text_digit(c: u8) -> Option<u32> {
    c.is_ascii_digit().then(|| u32::from(c - b'0'))
}

fn binary_digit(c: u8) -> Option<u32> {
    match c {
        0..=9 => Some(u32::from(c)),
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        _ => None,
    }
}

/// An Engine.IO 3 packet length: 1 to 6 digits, not zero, then `end`. The value itself is in
/// UTF-16 units and is not relied on.
fn length(c: &mut Cur, digit: fn(u8) -> Option<u32>, end: u8) -> Res<()> {
    let mut n = 0u32;
    let mut value = 0u32;
    loop {
        let x = c.next()?;
        if x == end && n > 0 {
            break;
        }
        let d = digit(x).ok_or(Fail::Bad)?;
        n += 1;
        if n > 6 {
            return Err(Fail::Bad);
        }
        value = value * 10 + d;
    }
    if value == 0 {
        return Err(Fail::Bad);
    }
    Ok(())
}

/// The open packet's JSON object, after the `0`: the string value of its top-level `"sid"`.
fn open_sid<'a>(c: &mut Cur<'a>) -> Res<Cow<'a, [u8]>> {
    match plain_open_sid(c.b.get(c.i..).unwrap_or_default()) {
        Some(found) => found,
        None => open_sid_json(c),
    }
}

/// [`open_sid`] by parsing the object as JSON.
fn open_sid_json<'a>(c: &mut Cur<'a>) -> Res<Cow<'a, [u8]>> {
    const SID: &[u8] = b"sid";
    c.ws();
    c.eat(b'{')?;
    c.ws();
    if c.peek()? == b'}' {
        return Err(Fail::Bad);
    }
    loop {
        c.ws();
        c.eat(b'"')?;
        // How much of "sid" the decoded key matched so far; None once it differs.
        let mut matched = Some(0usize);
        json_str(c, &mut |b| {
            matched = matched.filter(|&n| SID.get(n) == Some(&b)).map(|n| n + 1);
            Ok(())
        })?;
        c.ws();
        c.eat(b':')?;
        c.ws();
        if matched == Some(SID.len()) && c.peek()? == b'"' {
            c.i += 1;
            let mut sid = SidBuf::new();
            json_str(c, &mut |b| sid.push(b))?;
            return sid.finish();
        }
        skip_value(c)?;
        c.ws();
        if c.next()? != b',' {
            // `}` ends the object without a sid; anything else is not JSON.
            return Err(Fail::Bad);
        }
    }
}

/// Reads a JSON string after its opening quote, through the closing one, handing each
/// decoded byte to `sink`. A `\uXXXX` escape of a non-ASCII character becomes [`NON_ASCII`];
/// raw bytes >= 0x80 pass as they are. A cut inside an escape sinks none of it.
fn json_str(c: &mut Cur, sink: &mut impl FnMut(u8) -> Res<()>) -> Res<()> {
    loop {
        let decoded = match c.next()? {
            b'"' => return Ok(()),
            b'\\' => match c.next()? {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => {
                    let mut v = 0u32;
                    for _ in 0..4 {
                        let h = char::from(c.next()?).to_digit(16).ok_or(Fail::Bad)?;
                        v = v << 4 | h;
                    }
                    u8::try_from(v)
                        .ok()
                        .filter(u8::is_ascii)
                        .unwrap_or(NON_ASCII)
                }
                _ => return Err(Fail::Bad),
            },
            x if x < 0x20 => return Err(Fail::Bad),
            x => x,
        };
        sink(decoded)?;
    }
}

/// Skips one JSON value (nested to at most [`MAX_DEPTH`]) and checks its syntax.
fn skip_value(c: &mut Cur) -> Res<()> {
    // Bit d is set when the container at depth d is an array.
    let mut arrays = 0u64;
    let mut depth = 0u32;
    loop {
        c.ws();
        let opened = match c.peek()? {
            b'"' => {
                c.i += 1;
                json_str(c, &mut |_| Ok(()))?;
                None
            }
            b't' => c.lit(b"true").map(|()| None)?,
            b'f' => c.lit(b"false").map(|()| None)?,
            b'n' => c.lit(b"null").map(|()| None)?,
            b'-' | b'0'..=b'9' => skip_number(c).map(|()| None)?,
            b'[' => Some(true),
            b'{' => Some(false),
            _ => return Err(Fail::Bad),
        };
        if let Some(is_array) = opened {
            c.i += 1;
            c.ws();
            if c.peek()? == if is_array { b']' } else { b'}' } {
                c.i += 1;
            } else {
                if depth >= MAX_DEPTH {
                    return Err(Fail::Bad);
                }
                if is_array {
                    arrays |= 1 << depth;
                } else {
                    arrays &= !(1 << depth);
                    member_name(c)?;
                }
                depth += 1;
                continue;
            }
        }
        // A value ended: close containers until one expects another value.
        loop {
            let Some(top) = depth.checked_sub(1) else {
                return Ok(());
            };
            let is_array = arrays >> top & 1 == 1;
            c.ws();
            match c.next()? {
                b',' => {
                    if !is_array {
                        member_name(c)?;
                    }
                    break;
                }
                b']' if is_array => depth = top,
                b'}' if !is_array => depth = top,
                _ => return Err(Fail::Bad),
            }
        }
    }
}

/// `"name" :` of a member of a nested object.
fn member_name(c: &mut Cur) -> Res<()> {
    c.ws();
    c.eat(b'"')?;
    json_str(c, &mut |_| Ok(()))?;
    c.ws();
    c.eat(b':')
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. Ending at the end of the bytes is a cut:
/// more digits may follow.
fn skip_number(c: &mut Cur) -> Res<()> {
    if c.peek()? == b'-' {
        c.i += 1;
    }
    match c.next()? {
        b'0' => {}
        b'1'..=b'9' => {
            c.digits()?;
        }
        _ => return Err(Fail::Bad),
    }
    if c.peek()? == b'.' {
        c.i += 1;
        if c.digits()? == 0 {
            return Err(Fail::Bad);
        }
    }
    if matches!(c.peek()?, b'e' | b'E') {
        c.i += 1;
        if matches!(c.peek()?, b'+' | b'-') {
            c.i += 1;
        }
        if c.digits()? == 0 {
            return Err(Fail::Bad);
        }
    }
    Ok(())
}

/// The JSON string literal of a JSONP call, after its opening quote: unescapes what there is
/// of it (at most [`LOOK_MAX`] bytes, as it is never longer than its escaped form) and reads
/// `inner` from that. A cut of the unescaped text counts as one only while the literal is
/// cut too; a sid seen before a bad escape stays found, as it would be in a shorter prefix.
fn jsonp<'a>(c: &mut Cur, inner: fn(&[u8]) -> Res<Cow<'_, [u8]>>) -> Res<Cow<'a, [u8]>> {
    let mut buf = [0u8; LOOK_MAX];
    let mut n = 0usize;
    let unescaped = json_str(c, &mut |b| {
        *buf.get_mut(n).ok_or(Fail::Bad)? = b;
        n += 1;
        Ok(())
    });
    match inner(buf.get(..n).unwrap_or(&[])) {
        Err(Fail::Cut) if unescaped != Err(Fail::Cut) => Err(Fail::Bad),
        found => found.map(|sid| Cow::Owned(sid.into_owned())),
    }
}

/// Socket.IO 0.9 bodies. A sid may start like `io.j[`, but cannot contain the `"` that the
/// JSONP form has before any `:`, so at most one of the two readings finds a sid.
fn legacy09(b: &[u8]) -> Res<Cow<'_, [u8]>> {
    let plain = legacy09_line(b);
    if plain.is_ok() {
        return plain;
    }
    let mut c = Cur::new(b);
    let wrapped = c
        .lit(b"io.j[")
        .and_then(|()| match c.digits()? {
            0 => Err(Fail::Bad),
            _ => c.lit(b"](\""),
        })
        .and_then(|()| jsonp(&mut c, legacy09_line));
    match (plain, wrapped) {
        (_, Ok(sid)) => Ok(sid),
        (Err(Fail::Cut), _) | (_, Err(Fail::Cut)) => Err(Fail::Cut),
        _ => Err(Fail::Bad),
    }
}

/// `SID:HEARTBEAT:CLOSE:TRANSPORTS`, read up to the second `:`.
fn legacy09_line(b: &[u8]) -> Res<Cow<'_, [u8]>> {
    let mut c = Cur::new(b);
    loop {
        match c.next()? {
            b':' => break,
            x if sid_byte(x) && c.i <= MAX_KEY_LEN => {}
            _ => return Err(Fail::Bad),
        }
    }
    let sid = b
        .get(..c.i - 1)
        .filter(|s| !s.is_empty())
        .ok_or(Fail::Bad)?;
    c.digits()?;
    c.eat(b':')?;
    Ok(Cow::Borrowed(sid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::test_rng::XorShift;

    #[test]
    fn set_cookie_too_long_is_what_set_cookie_refuses_for_its_length() {
        let long = format!("io={}; Path=/", "k".repeat(MAX_KEY_LEN + 1));
        let ok = format!("io={}; Path=/", "k".repeat(MAX_KEY_LEN));
        assert!(set_cookie_too_long(long.as_bytes(), b"io"));
        assert_eq!(set_cookie(long.as_bytes(), b"io"), None);
        assert!(!set_cookie_too_long(ok.as_bytes(), b"io"));
        assert!(set_cookie(ok.as_bytes(), b"io").is_some());
        assert!(!set_cookie_too_long(long.as_bytes(), b"other"));
        assert!(!set_cookie_too_long(b"io=; Path=/", b"io"));
    }

    #[test]
    fn too_long_tells_long_sids_from_other_bodies() {
        let long = "k".repeat(MAX_KEY_LEN + 1);
        let ok = "k".repeat(MAX_KEY_LEN);
        let v4 = |sid: &str| format!(r#"0{{"sid":"{sid}","upgrades":[]}}"#);
        assert!(too_long(Kind::EngineIo, v4(&long).as_bytes()));
        assert!(!too_long(Kind::EngineIo, v4(&ok).as_bytes()));
        assert_eq!(
            sniff(Kind::EngineIo, v4(&long).as_bytes(), true),
            Sniffed::NotFound
        );
        let spaced = format!(r#"0{{ "upgrades":[], "sid" : "{long}"}}"#);
        assert!(too_long(Kind::EngineIo, spaced.as_bytes()));
        // Cut inside the long sid: still too long.
        assert!(too_long(
            Kind::EngineIo,
            &v4(&long).as_bytes()[..9 + MAX_KEY_LEN + 1]
        ));
        // A head longer than the module reads.
        let padded = format!(r#"0{{"pad":"{}","sid":"abc"}}"#, "x".repeat(LOOK_MAX));
        assert!(too_long(Kind::EngineIo, padded.as_bytes()));
        assert!(!too_long(Kind::EngineIo, b"<html>not found</html>"));
        assert!(!too_long(Kind::EngineIo, br#"0{"sid":12}"#));
        assert!(!too_long(Kind::EngineIo, br#"0{"sid""#));
        assert!(!too_long(Kind::EngineIo, b""));
        let l9 = format!("{long}:60:60:websocket");
        assert!(too_long(Kind::Legacy09, l9.as_bytes()));
        assert!(!too_long(
            Kind::Legacy09,
            format!("{ok}:60:60:websocket").as_bytes()
        ));
        let l9j = format!(r#"io.j[0]("{long}:60:60:websocket");"#);
        assert!(too_long(Kind::Legacy09, l9j.as_bytes()));
        assert!(!too_long(Kind::Legacy09, b"io.j[0](\"abc:60:60:x\");"));
    }

    #[test]
    fn sid_byte_blocks_agree() {
        for c in 0..=255u8 {
            for at in 0..16 {
                let mut b = [b'Z'; 16];
                b[at] = c;
                assert_eq!(block_of_sid_bytes_swar(&b), sid_byte(c), "{c:#x} at {at}");
                assert_eq!(block_of_sid_bytes(&b), sid_byte(c), "{c:#x} at {at}");
            }
        }
    }

    #[test]
    fn all_sid_bytes_agrees_with_sid_byte() {
        for len in 0..40usize {
            for c in 0..=255u8 {
                for at in 0..len {
                    let mut s = vec![b'k'; len];
                    s[at] = c;
                    assert_eq!(all_sid_bytes(&s), sid_byte(c), "{c:#x} at {at} of {len}");
                }
            }
            assert!(all_sid_bytes(&vec![b'~'; len]));
        }
        let every: Vec<u8> = (0..=255u8).filter(|&c| sid_byte(c)).collect();
        assert!(all_sid_bytes(&every));
    }

    #[test]
    fn plain_open_packets_read_in_place_agree_with_json() {
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        const ALPHABET: &[u8] = b"ab09_-\"\\u{} :,\x00\x7f\xff";
        let mut seen = 0;
        for _ in 0..20_000 {
            let len = rng.below(12);
            let mut body = br#"{"sid":""#.to_vec();
            body.extend((0..len).map(|_| ALPHABET[rng.below(ALPHABET.len())]));
            if rng.below(3) > 0 {
                body.extend_from_slice(br#"","upgrades":[]}"#);
            }
            if let Some(fast) = plain_open_sid(&body) {
                seen += 1;
                assert_eq!(fast, open_sid_json(&mut Cur::new(&body)), "{body:?}");
            }
        }
        assert!(seen > 5_000);
        // Escapes take the JSON path.
        assert_eq!(plain_open_sid(br#"{"sid":"a\u0062"}"#), None);
        assert_eq!(
            eio(br#"0{"sid":"a\u0062c"}"#),
            Sniffed::Sid(Cow::Borrowed(&b"abc"[..]))
        );
        // In place: the sid is the bytes of the body.
        let body = br#"0{"sid":"xyz","upgrades":[]}"#;
        match sniff(Kind::EngineIo, body, true) {
            Sniffed::Sid(Cow::Borrowed(s)) => assert_eq!(s.as_ptr(), body[9..].as_ptr()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn look_collects_across_buffers() {
        let body = V4;
        for cut in 0..body.len() {
            let mut look = Look::new(Kind::EngineIo);
            look.feed(&body[..cut]);
            let early = look.sniff(false);
            assert!(early == Sniffed::NeedMore || early == found(DEFAULT_SID));
            look.feed(&body[cut..]);
            assert_eq!(look.sniff(true), found(DEFAULT_SID), "cut at {cut}");
        }
        // Bytes past LOOK_MAX are not kept, and a full look is conclusive.
        let mut look = Look::new(Kind::EngineIo);
        look.feed(&[b' '; LOOK_MAX + 10]);
        assert_eq!(look.len, LOOK_MAX);
        assert_eq!(look.sniff(false), Sniffed::NotFound);
    }

    /// The open packet of the Engine.IO 4 protocol description (engine.io-protocol README).
    const V4: &[u8] = br#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
    /// Engine.IO 3 handshake (engine.io-protocol README, v3) followed by Socket.IO 2's CONNECT.
    const V3: &[u8] = br#"96:0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}2:40"#;
    /// The same, as engine.io 3 JSONP polling writes it (`___eio[j](JSON.stringify(data));`).
    const V3_JSONP: &[u8] = br#"___eio[0]("96:0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,\"pingTimeout\":5000}2:40");"#;
    /// Engine.IO 4 JSONP with an `initialPacket` after the record separator.
    const V4_JSONP: &[u8] = br#"___eio[12]("0{\"sid\":\"AAAAAAAAAAAAAAAAAAAA\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}\u001e4hello");"#;
    /// Socket.IO 0.9 handshake with its default timeouts and transports.
    const L09: &[u8] = b"4d4f185e96a7b:60:60:websocket,htmlfile,xhr-polling,jsonp-polling";
    /// Socket.IO 0.9.19 ids are base64 of 15 bytes with `/` -> `_` and `+` -> `-`.
    const L09_B64: &[u8] =
        b"Kx2Ut0yX_QpSn5p-AAAB:60:60:websocket,htmlfile,xhr-polling,jsonp-polling";
    /// 0.9 JSONP handshake (`io.j[N](JSON.stringify(hs));`).
    const L09_JSONP: &[u8] =
        br#"io.j[0]("Kx2Ut0yX_QpSn5p-AAAB:60:60:websocket,htmlfile,xhr-polling,jsonp-polling");"#;

    const DEFAULT_SID: &[u8] = b"lv_VI97HAXpY6yYWAAAC";

    fn found(s: &[u8]) -> Sniffed<'static> {
        Sniffed::Sid(Cow::Owned(s.to_vec()))
    }

    fn eio(body: &[u8]) -> Sniffed<'_> {
        sniff(Kind::EngineIo, body, true)
    }

    fn l09(body: &[u8]) -> Sniffed<'_> {
        sniff(Kind::Legacy09, body, true)
    }

    /// Engine.IO 3 binary framing of one string packet: 0x00, length digits, 0xff, packet.
    fn binary_frame(packet: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8];
        out.extend(packet.len().to_string().bytes().map(|d| d - b'0'));
        out.push(0xff);
        out.extend_from_slice(packet);
        out
    }

    /// Engine.IO 3 text framing of one packet.
    fn text_frame(packet: &[u8]) -> Vec<u8> {
        let mut out = packet.len().to_string().into_bytes();
        out.push(b':');
        out.extend_from_slice(packet);
        out
    }

    /// What `JSON.stringify` of a string makes of ASCII text, wrapped as a JSONP call.
    fn jsonp_wrap(head: &[u8], text: &[u8]) -> Vec<u8> {
        let mut out = head.to_vec();
        out.extend_from_slice(b"(\"");
        for &c in text {
            match c {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                c if c < 0x20 => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
                c => out.push(c),
            }
        }
        out.extend_from_slice(b"\");");
        out
    }

    /// Every prefix of `body` gives NeedMore (open) / NotFound (ended) until some length, then
    /// `want` for both; returns that length.
    fn every_prefix(kind: Kind, body: &[u8], want: &[u8]) -> usize {
        assert!(body.len() <= LOOK_MAX);
        let mut first = None;
        for n in 0..=body.len() {
            let p = &body[..n];
            let open = sniff(kind, p, false);
            let ended = sniff(kind, p, true);
            if first.is_none() && open == found(want) {
                first = Some(n);
            }
            if first.is_some() {
                assert_eq!(
                    open,
                    found(want),
                    "prefix {n} of {:?}",
                    String::from_utf8_lossy(body)
                );
                assert_eq!(ended, found(want), "prefix {n} (complete)");
            } else {
                assert_eq!(
                    open,
                    Sniffed::NeedMore,
                    "prefix {n} of {:?}",
                    String::from_utf8_lossy(body)
                );
                assert_eq!(ended, Sniffed::NotFound, "prefix {n} (complete)");
            }
        }
        first.expect("the whole body gives the sid")
    }

    /// The index just past the first occurrence of `needle` in `hay`.
    fn end_of(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + needle.len())
            .expect("needle present")
    }

    // ---- Engine.IO 4 ----

    #[test]
    fn v4_open_packet() {
        assert_eq!(eio(V4), found(DEFAULT_SID));
        let first = every_prefix(Kind::EngineIo, V4, DEFAULT_SID);
        assert_eq!(first, end_of(V4, br#""lv_VI97HAXpY6yYWAAAC""#));
        // Followed by other packets of the payload.
        let mut more = V4.to_vec();
        more.extend_from_slice(b"\x1e40\x1e42[\"hello\"]");
        assert_eq!(eio(&more), found(DEFAULT_SID));
    }

    #[test]
    fn v4_key_orders_and_whitespace() {
        let bodies: &[&[u8]] = &[
            br#"0{"upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000,"sid":"S1"}"#,
            br#"0{"pingTimeout":2e4,"pingInterval":-25.5E+3,"ok":true,"no":false,"x":null,"sid":"S1"}"#,
            b"0 {\n  \"upgrades\" : [ \"websocket\" , \"polling\" ] ,\r\n\t\"sid\" :\t\"S1\"\n}",
            br#"0{"a":{},"b":[],"c":[[],{}],"d":{"e":[1,{"f":"g"}]},"sid":"S1"}"#,
            br#"0{"":"","sid ":"x","Sid":"y","si":"z","sidd":"w","sid":"S1"}"#,
            br#"0{"s\u0069d":"S1"}"#,
            br#"0{"\u0073\u0069\u0064":"S1"}"#,
            br#"0{"k\"ey":"v\\\"","sid":"S1"}"#,
            br#"0{"sid":123,"sid":"S1"}"#,
            br#"0{"sid":["a"],"sid":{"sid":"n"},"sid":null,"sid":"S1"}"#,
            br#"0{"sid":"S1","sid":"S2"}"#,
        ];
        for body in bodies {
            assert_eq!(eio(body), found(b"S1"), "{}", String::from_utf8_lossy(body));
            every_prefix(Kind::EngineIo, body, b"S1");
        }
    }

    #[test]
    fn v4_nested_sid_ignored() {
        assert_eq!(eio(br#"0{"data":{"sid":"nested"}}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"a":[{"sid":"nested"}]}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"a":"\"sid\":\"nested\""}"#), Sniffed::NotFound);
        assert_eq!(
            eio(br#"0{"data":{"sid":"nested"},"a":[{"sid":"n2"}],"sid":"real"}"#),
            found(b"real")
        );
        assert_eq!(
            eio(br#"0{"a":"\"sid\":\"n\"","sid":"real"}"#),
            found(b"real")
        );
        assert_eq!(
            eio(br#"0{"upgrades":[],"pingInterval":1}"#),
            Sniffed::NotFound
        );
        assert_eq!(eio(b"0{}"), Sniffed::NotFound);
        assert_eq!(eio(b"0{ }"), Sniffed::NotFound);
        // Not yet: more members may follow.
        assert_eq!(
            sniff(Kind::EngineIo, br#"0{"data":{"sid":"nested"}"#, false),
            Sniffed::NeedMore
        );
    }

    #[test]
    fn v4_sid_escapes() {
        assert_eq!(eio(br#"0{"sid":"a\/b"}"#), found(b"a/b"));
        assert_eq!(eio(br#"0{"sid":"\u0061bc"}"#), found(b"abc"));
        assert_eq!(eio(br#"0{"sid":"\u007E\u0021"}"#), found(b"~!"));
        assert_eq!(eio(br#"0{"sid":"a\"b"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"a\\b"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"a\u0022b"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"a\u005cb"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"a\nb"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"a\tb"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"a\u0020b"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"\u00e9"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"\u2028"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"\u0080"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"\u007f"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"\uzzzz"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"\x41"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"\'"}"#), Sniffed::NotFound);
        let escaped = br#"0{"sid":"\u0061\/\u0062","upgrades":[]}"#;
        assert_eq!(
            every_prefix(Kind::EngineIo, escaped, b"a/b"),
            end_of(escaped, br#"62""#)
        );
    }

    #[test]
    fn v4_bad_sids() {
        assert_eq!(eio(br#"0{"sid":""}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":"a b"}"#), Sniffed::NotFound);
        assert_eq!(eio(b"0{\"sid\":\"a\tb\"}"), Sniffed::NotFound);
        assert_eq!(eio(b"0{\"sid\":\"a\x7fb\"}"), Sniffed::NotFound);
        assert_eq!(
            eio("0{\"sid\":\"caf\u{e9}\"}".as_bytes()),
            Sniffed::NotFound
        );
        assert_eq!(eio(b"0{\"sid\":\"\xff\"}"), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":true}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"0{"sid":12345}"#), Sniffed::NotFound);
        // A bad byte is refused at once, before the string ends.
        assert_eq!(
            sniff(Kind::EngineIo, br#"0{"sid":"ab c"#, false),
            Sniffed::NotFound
        );
        // Every printable byte but `"` and `\` is accepted.
        let all: Vec<u8> = (0x21..=0x7eu8)
            .filter(|c| *c != b'"' && *c != b'\\')
            .collect();
        let mut body = br#"0{"sid":""#.to_vec();
        body.extend_from_slice(&all);
        body.extend_from_slice(br#""}"#);
        assert_eq!(eio(&body), found(&all));
    }

    #[test]
    fn sid_length_limit() {
        let make = |n: usize| {
            let mut b = br#"0{"sid":""#.to_vec();
            b.extend(std::iter::repeat(b'x').take(n));
            b.extend_from_slice(br#"","upgrades":[]}"#);
            b
        };
        assert_eq!(eio(&make(1)), found(b"x"));
        assert_eq!(eio(&make(MAX_KEY_LEN)), found(&[b'x'; MAX_KEY_LEN]));
        assert_eq!(eio(&make(MAX_KEY_LEN + 1)), Sniffed::NotFound);
        // Too long is known before the string ends.
        let cut = &make(MAX_KEY_LEN + 1)[..MAX_KEY_LEN + 10];
        assert_eq!(sniff(Kind::EngineIo, cut, false), Sniffed::NotFound);
        every_prefix(Kind::EngineIo, &make(MAX_KEY_LEN), &[b'x'; MAX_KEY_LEN]);
        // 0.9 too.
        let mut line = vec![b'y'; MAX_KEY_LEN];
        line.extend_from_slice(b":60:60:websocket");
        assert_eq!(l09(&line), found(&[b'y'; MAX_KEY_LEN]));
        line.insert(0, b'y');
        assert_eq!(l09(&line), Sniffed::NotFound);
    }

    #[test]
    fn bad_json() {
        let bodies: &[&[u8]] = &[
            b"0",
            b"0{",
            br#"0{"sid""#,
            br#"0{"sid":"#,
            br#"0{"sid":"abc"#,
            br#"0{sid:"x"}"#,
            br#"0{'sid':'x'}"#,
            br#"0{"a":1,,"sid":"x"}"#,
            br#"0{"a":1 "sid":"x"}"#,
            br#"0{"a" 1,"sid":"x"}"#,
            br#"0{,"sid":"x"}"#,
            br#"0{"a":01,"sid":"x"}"#,
            br#"0{"a":1.,"sid":"x"}"#,
            br#"0{"a":.5,"sid":"x"}"#,
            br#"0{"a":1e,"sid":"x"}"#,
            br#"0{"a":+1,"sid":"x"}"#,
            br#"0{"a":-,"sid":"x"}"#,
            br#"0{"a":tru,"sid":"x"}"#,
            br#"0{"a":True,"sid":"x"}"#,
            br#"0{"a":nul,"sid":"x"}"#,
            br#"0{"a":[1,],"sid":"x"}"#,
            br#"0{"a":[1 2],"sid":"x"}"#,
            br#"0{"a":[1},"sid":"x"}"#,
            br#"0{"a":{"b"},"sid":"x"}"#,
            br#"0{"a":{"b":1]},"sid":"x"}"#,
            br#"0{"a":{1:2},"sid":"x"}"#,
            br#"0{"a":undefined,"sid":"x"}"#,
            b"0{\"a\":\"raw\nnewline\",\"sid\":\"x\"}",
            b"0{\"a\x01\":1,\"sid\":\"x\"}",
            br#"0["sid","x"]"#,
            br#"0"sid""#,
            br#"1{"sid":"x"}"#,
            br#"4{"sid":"x"}"#,
            br#"{"sid":"x"}"#,
            br#" 0{"sid":"x"}"#,
            br#"00{"sid":"x"}"#,
        ];
        for body in bodies {
            assert_eq!(
                eio(body),
                Sniffed::NotFound,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Nesting depth is bounded.
        let mut deep = br#"0{"a":"#.to_vec();
        deep.extend(std::iter::repeat(b'[').take(100));
        deep.extend(std::iter::repeat(b']').take(100));
        deep.extend_from_slice(br#","sid":"x"}"#);
        assert_eq!(eio(&deep), Sniffed::NotFound);
        let mut ok = br#"0{"a":"#.to_vec();
        ok.extend(std::iter::repeat(b'[').take(MAX_DEPTH as usize));
        ok.extend(std::iter::repeat(b']').take(MAX_DEPTH as usize));
        ok.extend_from_slice(br#","sid":"x"}"#);
        assert_eq!(eio(&ok), found(b"x"));
        let mut objs = br#"0{"a":"#.to_vec();
        objs.extend(b"{\"b\":".repeat(40));
        objs.extend_from_slice(b"[1,{\"c\":[]}]");
        objs.extend(b"}".repeat(40));
        objs.extend_from_slice(br#","sid":"x"}"#);
        assert_eq!(eio(&objs), found(b"x"));
    }

    // ---- Engine.IO 3 text framing ----

    #[test]
    fn v3_text_payload() {
        // The length header of the protocol's example is right.
        let packet = &V3[3..V3.len() - 4];
        assert_eq!(packet.len(), 96);
        assert_eq!(text_frame(packet), &V3[..V3.len() - 4]);
        assert_eq!(eio(V3), found(DEFAULT_SID));
        let first = every_prefix(Kind::EngineIo, V3, DEFAULT_SID);
        assert_eq!(first, end_of(V3, br#""lv_VI97HAXpY6yYWAAAC""#));
        // Only the first packet counts, and it must be the open packet.
        assert_eq!(eio(b"2:40"), Sniffed::NotFound);
        assert_eq!(eio(br#"2:4096:0{"sid":"x"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"6:4"sid"96:0{"sid":"x"}"#), Sniffed::NotFound);
    }

    #[test]
    fn v3_length_header() {
        // The value is not relied on, only its shape.
        assert_eq!(eio(br#"5:0{"sid":"abc","upgrades":[]}"#), found(b"abc"));
        assert_eq!(eio(br#"999999:0{"sid":"abc"}"#), found(b"abc"));
        assert_eq!(eio(br#"0096:0{"sid":"abc"}"#), found(b"abc"));
        assert_eq!(eio(br#"1234567:0{"sid":"abc"}"#), Sniffed::NotFound);
        assert_eq!(sniff(Kind::EngineIo, b"1234567", false), Sniffed::NotFound);
        assert_eq!(sniff(Kind::EngineIo, b"123456", false), Sniffed::NeedMore);
        assert_eq!(eio(br#"0:0{"sid":"abc"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"000:0{"sid":"abc"}"#), Sniffed::NotFound);
        assert_eq!(eio(b"0:"), Sniffed::NotFound);
        assert_eq!(eio(br#":0{"sid":"abc"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"9x:0{"sid":"abc"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"96;0{"sid":"abc"}"#), Sniffed::NotFound);
        assert_eq!(eio(br#"96:1{"sid":"abc"}"#), Sniffed::NotFound);
        assert_eq!(eio(b"96:b4AAAA"), Sniffed::NotFound);
    }

    #[test]
    fn v3_other_servers() {
        // engine.io 6 answering an EIO=3 client: the open packet has maxPayload too.
        let packet = br#"0{"sid":"Hk5dCvrSr9n8DYKUAAAB","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        let mut body = text_frame(packet);
        body.extend_from_slice(b"2:40");
        let want = b"Hk5dCvrSr9n8DYKUAAAB";
        assert_eq!(
            every_prefix(Kind::EngineIo, &body, want),
            end_of(&body, b"AAAB\"")
        );
        // Keys in another order (other server implementations).
        let packet = br#"0{"pingInterval":25000,"pingTimeout":60000,"upgrades":["websocket"],"sid":"3b0a5f1e-7c1d-4a8e-9f00-2b3c4d5e6f70"}"#;
        let body = text_frame(packet);
        every_prefix(
            Kind::EngineIo,
            &body,
            b"3b0a5f1e-7c1d-4a8e-9f00-2b3c4d5e6f70",
        );
    }

    // ---- Engine.IO 3 binary framing ----

    #[test]
    fn v3_binary_payload() {
        let packet = &V3[3..V3.len() - 4];
        let mut body = binary_frame(packet);
        assert_eq!(&body[..4], &[0x00, 9, 6, 0xff]);
        body.extend_from_slice(&[0x01, 5, 0xff, 4, 1, 2, 3, 4]);
        assert_eq!(eio(&body), found(DEFAULT_SID));
        let first = every_prefix(Kind::EngineIo, &body, DEFAULT_SID);
        assert_eq!(first, end_of(&body, br#""lv_VI97HAXpY6yYWAAAC""#));
        // ASCII digits are accepted too.
        let mut ascii = vec![0x00, b'9', b'6', 0xff];
        ascii.extend_from_slice(packet);
        assert_eq!(eio(&ascii), found(DEFAULT_SID));
        // A binary packet first, no digits, too many digits, length zero, bad digit bytes.
        let mut bin = vec![0x01, 9, 6, 0xff];
        bin.extend_from_slice(packet);
        assert_eq!(eio(&bin), Sniffed::NotFound);
        assert_eq!(sniff(Kind::EngineIo, &[0x01], false), Sniffed::NotFound);
        for head in [
            &[0x00, 0xff][..],
            &[0x00, 1, 2, 3, 4, 5, 6, 7, 0xff],
            &[0x00, 0, 0xff],
            &[0x00, 10, 0xff],
            &[0x00, 9, b':'],
            &[0x00, 9, 6, 0xfe],
        ] {
            let mut b = head.to_vec();
            b.extend_from_slice(packet);
            assert_eq!(eio(&b), Sniffed::NotFound, "{head:?}");
        }
        assert_eq!(
            sniff(Kind::EngineIo, &[0x00, 9, 6], false),
            Sniffed::NeedMore
        );
    }

    // ---- JSONP ----

    #[test]
    fn jsonp_v3() {
        assert_eq!(eio(V3_JSONP), found(DEFAULT_SID));
        assert_eq!(V3_JSONP, &jsonp_wrap(b"___eio[0]", V3)[..]);
        let first = every_prefix(Kind::EngineIo, V3_JSONP, DEFAULT_SID);
        assert_eq!(first, end_of(V3_JSONP, br#"lv_VI97HAXpY6yYWAAAC\""#));
    }

    #[test]
    fn jsonp_v4() {
        let want = b"AAAAAAAAAAAAAAAAAAAA";
        assert_eq!(eio(V4_JSONP), found(want));
        every_prefix(Kind::EngineIo, V4_JSONP, want);
        let body = jsonp_wrap(b"___eio[3]", V4);
        assert_eq!(
            every_prefix(Kind::EngineIo, &body, DEFAULT_SID),
            end_of(&body, br#"AAAC\""#)
        );
        // Engine.IO keeps only the digits of `j`: none is possible.
        assert_eq!(eio(&jsonp_wrap(b"___eio[]", V4)), found(DEFAULT_SID));
        assert_eq!(
            eio(&jsonp_wrap(b"___eio[123456789012]", V4)),
            found(DEFAULT_SID)
        );
    }

    #[test]
    fn jsonp_binary_framing_inside() {
        // No server sends this (JSONP payloads are text), but forms 1-3 apply inside JSONP:
        // 0x00 and the length digits escaped, 0xff as a raw byte.
        let packet = &V3[3..V3.len() - 4];
        let body = jsonp_wrap(b"___eio[1]", &binary_frame(packet));
        assert!(body.starts_with(b"___eio[1](\"\\u0000\\t\\u0006\xff0{"));
        assert_eq!(eio(&body), found(DEFAULT_SID));
        every_prefix(Kind::EngineIo, &body, DEFAULT_SID);
        // `\u00ff` is the character U+00FF, not the byte 0xff.
        let escaped = br#"___eio[1]("\u0000\u0009\u0006\u00ff0{\"sid\":\"x\"}");"#;
        assert_eq!(eio(escaped), Sniffed::NotFound);
    }

    #[test]
    fn jsonp_escapes() {
        // Escapes of the JSON inside the literal are doubled.
        assert_eq!(eio(br#"___eio[0]("0{\"sid\":\"a\\/b\"}");"#), found(b"a/b"));
        assert_eq!(
            eio(br#"___eio[0]("0{\"sid\":\"a\\u0062\"}");"#),
            found(b"ab")
        );
        assert_eq!(
            eio(br#"___eio[0]("0{\"sid\":\"\u0061b\"}");"#),
            found(b"ab")
        );
        assert_eq!(eio(br#"___eio[0]("0{\"sid\":\"a\/b\"}");"#), found(b"a/b"));
        assert_eq!(
            eio(br#"___eio[0]("0{\"sid\":\"a\\\"b\"}");"#),
            Sniffed::NotFound
        );
        assert_eq!(
            eio(br#"___eio[0]("0{\"sid\":\"a\\\\b\"}");"#),
            Sniffed::NotFound
        );
        assert_eq!(
            eio(br#"___eio[0]("0{\"a\":\"\u2028\u2029\",\"sid\":\"x\"}");"#),
            found(b"x")
        );
        assert_eq!(
            eio(br#"___eio[0]("0{\"a\":\"\n\",\"sid\":\"x\"}");"#),
            Sniffed::NotFound
        );
        assert_eq!(
            eio(br#"___eio[0]("0{\"a\":\"\\n\",\"sid\":\"x\"}");"#),
            found(b"x")
        );
        assert_eq!(
            eio(br#"___eio[0]("0{\"sid\":\"\u2028\"}");"#),
            Sniffed::NotFound
        );
        assert_eq!(
            eio(br#"___eio[0]("0{\u2028\"sid\":\"x\"}");"#),
            Sniffed::NotFound
        );
        assert_eq!(eio(br#"___eio[0]("0{\n\"sid\":\"x\"}");"#), found(b"x"));
        assert_eq!(
            eio(br#"___eio[0]("0{\x22sid\x22:\x22x\x22}");"#),
            Sniffed::NotFound
        );
        assert_eq!(
            eio(b"___eio[0](\"0{\\\"sid\\\":\\\"x\x01\\\"}\");"),
            Sniffed::NotFound
        );
        // A cut inside an escape waits for the rest.
        let body = br#"___eio[0]("0{\"sid\":\"\u0061bc\"}");"#;
        for n in 0..=end_of(body, br#"\u0061"#) {
            assert_eq!(
                sniff(Kind::EngineIo, &body[..n], false),
                Sniffed::NeedMore,
                "{n}"
            );
        }
        every_prefix(Kind::EngineIo, body, b"abc");
    }

    #[test]
    fn jsonp_bad() {
        let bodies: &[&[u8]] = &[
            br#"___eio[0]('0{"sid":"x"}');"#,
            br#"___eio[0](0{"sid":"x"});"#,
            br#"___eio(0)("0{\"sid\":\"x\"}");"#,
            br#"___eio[a]("0{\"sid\":\"x\"}");"#,
            br#"___eio[0] ("0{\"sid\":\"x\"}");"#,
            br#"__eio[0]("0{\"sid\":\"x\"}");"#,
            br#"___EIO[0]("0{\"sid\":\"x\"}");"#,
            br#"io.j[0]("0{\"sid\":\"x\"}");"#,
            br#"___eio[0]("___eio[0](\"0{}\")");"#,
            // The literal ended before the sid did.
            br#"___eio[0]("0{\"sid\":\"x");"#,
            br#"___eio[0]("0{\"sid\":");"#,
            br#"___eio[0]("96:0");"#,
            br#"___eio[0]("");"#,
            br#"___eio[0]("0{\"a\":1}");"#,
        ];
        for body in bodies {
            assert_eq!(
                eio(body),
                Sniffed::NotFound,
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(
                sniff(Kind::EngineIo, body, false),
                Sniffed::NotFound,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    // ---- Socket.IO 0.9 ----

    #[test]
    fn legacy09_line() {
        assert_eq!(l09(L09), found(b"4d4f185e96a7b"));
        assert_eq!(every_prefix(Kind::Legacy09, L09, b"4d4f185e96a7b"), 17);
        assert_eq!(
            every_prefix(Kind::Legacy09, L09_B64, b"Kx2Ut0yX_QpSn5p-AAAB"),
            24
        );
        // Heartbeats disabled, close timeout empty, only the two colons needed.
        assert_eq!(l09(b"abc::60:websocket"), found(b"abc"));
        assert_eq!(l09(b"abc:::"), found(b"abc"));
        assert_eq!(l09(b"abc:15:"), found(b"abc"));
        assert_eq!(every_prefix(Kind::Legacy09, b"abc::", b"abc"), 5);
        // A sid may start like the JSONP call, or contain its characters.
        assert_eq!(l09(b"io.j[0]:60:60:xhr-polling"), found(b"io.j[0]"));
        every_prefix(Kind::Legacy09, b"io.j[0]:60:60:xhr-polling", b"io.j[0]");
        assert_eq!(l09(b"io:60:60:xhr-polling"), found(b"io"));
        // Generated ids of 0.9.0 (decimal digits).
        assert_eq!(
            l09(b"17347816281452006898:60:60:websocket"),
            found(b"17347816281452006898")
        );
    }

    #[test]
    fn legacy09_bad() {
        let bodies: &[&[u8]] = &[
            b"",
            b":60:60:websocket",
            b"abc",
            b"abc:",
            b"abc:60",
            b"abc:6x:60:websocket",
            b"abc:-1:60:websocket",
            b"abc: 60:60:websocket",
            b"a c:60:60:websocket",
            b"a\"c:60:60:websocket",
            b"a\\c:60:60:websocket",
            b"a\tc:60:60:websocket",
            b"\xffc:60:60:websocket",
            b"handshake unauthorized",
            b"handshake error",
            br#"io.j[0](new Error("handshake unauthorized"));"#,
            br#"0{"sid":"x"}"#,
        ];
        for body in bodies {
            assert_eq!(
                l09(body),
                Sniffed::NotFound,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(sniff(Kind::Legacy09, b"abc:60", false), Sniffed::NeedMore);
        assert_eq!(sniff(Kind::Legacy09, b"a c", false), Sniffed::NotFound);
        // Engine.IO bodies are not 0.9 ones and the other way round.
        assert_eq!(l09(V4), Sniffed::NotFound);
        assert_eq!(l09(V3_JSONP), Sniffed::NotFound);
        assert_eq!(eio(L09), Sniffed::NotFound);
        assert_eq!(eio(L09_JSONP), Sniffed::NotFound);
    }

    #[test]
    fn legacy09_jsonp() {
        let want = b"Kx2Ut0yX_QpSn5p-AAAB";
        assert_eq!(l09(L09_JSONP), found(want));
        assert_eq!(L09_JSONP, &jsonp_wrap(b"io.j[0]", L09_B64)[..]);
        assert_eq!(every_prefix(Kind::Legacy09, L09_JSONP, want), 9 + 24);
        assert_eq!(l09(&jsonp_wrap(b"io.j[17]", b"s::60:x")), found(b"s"));
        assert_eq!(l09(br#"io.j[0]("a\u0062c::");"#), found(b"abc"));
        assert_eq!(l09(br#"io.j[]("abc::");"#), Sniffed::NotFound);
        assert_eq!(l09(br#"io.j[0]("abc:");"#), Sniffed::NotFound);
        assert_eq!(l09(br#"io.j[0]("a\"c::");"#), Sniffed::NotFound);
        // Not JSONP, but a valid line: `'` and `(` are sid bytes.
        assert_eq!(l09(br#"io.j[0]('abc::');"#), found(b"io.j[0]('abc"));
        assert_eq!(l09(br#"___eio[0]("abc::");"#), Sniffed::NotFound);
    }

    // ---- limits and garbage ----

    #[test]
    fn look_limit() {
        // The sid ends exactly at the last byte looked at: found.
        let mut at_end = br#"0{"pad":""#.to_vec();
        let tail = br#"","sid":"abc""#;
        at_end.extend(std::iter::repeat(b'p').take(LOOK_MAX - at_end.len() - tail.len()));
        at_end.extend_from_slice(tail);
        assert_eq!(at_end.len(), LOOK_MAX);
        at_end.extend_from_slice(b"}");
        assert_eq!(sniff(Kind::EngineIo, &at_end, false), found(b"abc"));
        assert_eq!(
            sniff(Kind::EngineIo, &at_end[..LOOK_MAX], false),
            found(b"abc")
        );
        // One byte further: not found, even if more bytes are passed or might come.
        let mut past = br#"0{"pad":"p"#.to_vec();
        past.extend_from_slice(&at_end[9..]);
        assert_eq!(past.len(), LOOK_MAX + 2);
        assert_eq!(eio(&past), Sniffed::NotFound);
        assert_eq!(sniff(Kind::EngineIo, &past, false), Sniffed::NotFound);
        assert_eq!(
            sniff(Kind::EngineIo, &past[..LOOK_MAX], false),
            Sniffed::NotFound
        );
        assert_eq!(
            sniff(Kind::EngineIo, &past[..LOOK_MAX - 1], false),
            Sniffed::NeedMore
        );
        // A sid starting after byte 512.
        let mut late = br#"0{"pad":""#.to_vec();
        late.extend(std::iter::repeat(b'p').take(600));
        late.extend_from_slice(br#"","sid":"abc"}"#);
        assert_eq!(eio(&late), Sniffed::NotFound);
        assert_eq!(sniff(Kind::EngineIo, &late, false), Sniffed::NotFound);
        // The same through JSONP and 0.9.
        let wrapped = jsonp_wrap(b"___eio[0]", &late);
        assert_eq!(sniff(Kind::EngineIo, &wrapped, false), Sniffed::NotFound);
        let mut long09 = vec![b'a'; 600];
        long09.extend_from_slice(b"::");
        assert_eq!(sniff(Kind::Legacy09, &long09, false), Sniffed::NotFound);
        // A body of exactly LOOK_MAX bytes that is still a valid prefix is not NeedMore.
        let mut full = br#"0{"pad":""#.to_vec();
        full.resize(LOOK_MAX, b'p');
        assert_eq!(sniff(Kind::EngineIo, &full, false), Sniffed::NotFound);
        assert_eq!(
            sniff(Kind::EngineIo, &full[..LOOK_MAX - 1], false),
            Sniffed::NeedMore
        );
    }

    #[test]
    fn empty_and_garbage() {
        for kind in [Kind::EngineIo, Kind::Legacy09] {
            assert_eq!(sniff(kind, b"", false), Sniffed::NeedMore);
            assert_eq!(sniff(kind, b"", true), Sniffed::NotFound);
        }
        let bodies: &[&[u8]] = &[
            b"<html><body>502 Bad Gateway</body></html>",
            br#"{"code":1,"message":"Session ID unknown"}"#,
            br#"{"code":0,"message":"Transport unknown"}"#,
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
            b"\x00",
            b"\xff\xfe\xfd",
            b"ok",
            b"\n0{\"sid\":\"x\"}",
            b"\xef\xbb\xbf0{\"sid\":\"x\"}",
        ];
        for body in bodies {
            assert_eq!(eio(body), Sniffed::NotFound, "{body:?}");
            assert_eq!(l09(body), Sniffed::NotFound, "{body:?}");
        }
        assert_eq!(sniff(Kind::EngineIo, b"\x00", false), Sniffed::NeedMore);
    }

    // ---- set_cookie ----

    #[test]
    fn set_cookie_values() {
        fn io(v: &[u8]) -> Option<&[u8]> {
            set_cookie(v, b"io")
        }
        assert_eq!(io(b"io=abc; Path=/; HttpOnly"), Some(&b"abc"[..]));
        assert_eq!(
            io(b"io=lv_VI97HAXpY6yYWAAAC; Path=/; HttpOnly; SameSite=Strict"),
            Some(&b"lv_VI97HAXpY6yYWAAAC"[..])
        );
        assert_eq!(io(b"io=abc"), Some(&b"abc"[..]));
        assert_eq!(io(b"  io=abc;Path=/"), Some(&b"abc"[..]));
        assert_eq!(io(b"\tio = abc ;"), Some(&b"abc"[..]));
        assert_eq!(io(b"io=\"abc\"; Path=/"), Some(&b"abc"[..]));
        assert_eq!(io(b"io=\"\"; Path=/"), None);
        assert_eq!(io(b"io=\""), Some(&b"\""[..]));
        assert_eq!(io(b"io=a=b"), Some(&b"a=b"[..]));
        assert_eq!(io(b"io=; Path=/"), None);
        assert_eq!(io(b"io=; Max-Age=0"), None);
        assert_eq!(io(b"io"), None);
        assert_eq!(io(b""), None);
        assert_eq!(io(b";io=abc"), None);
        assert_eq!(io(b"IO=abc"), None);
        assert_eq!(io(b"io2=abc"), None);
        assert_eq!(io(b"bio=abc"), None);
        // Attributes are not cookies.
        assert_eq!(io(b"other=1; io=abc"), None);
        assert_eq!(set_cookie(b"io=abc; Path=/", b"Path"), None);
        assert_eq!(set_cookie(b"io=abc", b""), None);
        // As long as a sid may be, and no longer.
        let longest = format!("io={}", "k".repeat(MAX_KEY_LEN));
        assert_eq!(
            set_cookie(longest.as_bytes(), b"io").map(<[u8]>::len),
            Some(MAX_KEY_LEN)
        );
        let long = format!("io={}; Path=/", "k".repeat(10_000));
        assert_eq!(set_cookie(long.as_bytes(), b"io"), None);
        assert_eq!(set_cookie(b"=abc", b""), None);
        assert_eq!(
            set_cookie(b"my.sid=s%3Aabc; Path=/", b"my.sid"),
            Some(&b"s%3Aabc"[..])
        );
        assert_eq!(io(b"io=\xff\xfe"), Some(&b"\xff\xfe"[..]));
    }

    // ---- no panics ----

    /// Checks the answers for every prefix of `body`: NeedMore only where allowed, and once
    /// an answer is Sid or NotFound, longer prefixes keep it.
    fn consistent(kind: Kind, body: &[u8]) {
        let mut settled: Option<Sniffed> = None;
        for n in 0..=body.len().min(LOOK_MAX + 8) {
            let p = &body[..n];
            let open = sniff(kind, p, false);
            let ended = sniff(kind, p, true);
            assert_ne!(ended, Sniffed::NeedMore);
            if n >= LOOK_MAX {
                assert_ne!(open, Sniffed::NeedMore);
            }
            match &open {
                Sniffed::NeedMore => {
                    assert!(settled.is_none(), "{kind:?} {body:?} at {n}");
                    assert_eq!(ended, Sniffed::NotFound);
                }
                Sniffed::Sid(s) => {
                    assert!(!s.is_empty() && s.len() <= MAX_KEY_LEN);
                    assert!(s
                        .iter()
                        .all(|c| (0x21..=0x7e).contains(c) && *c != b'"' && *c != b'\\'));
                    assert_eq!(ended, open);
                }
                Sniffed::NotFound => assert_eq!(ended, Sniffed::NotFound),
            }
            if let Some(prev) = &settled {
                assert_eq!(prev, &open, "{kind:?} {body:?} at {n}");
            } else if open != Sniffed::NeedMore {
                settled = Some(open);
            }
        }
    }

    #[test]
    fn fuzz_random_bytes() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let len = rng.below(700);
            let body: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            for kind in [Kind::EngineIo, Kind::Legacy09] {
                for complete in [false, true] {
                    let r = sniff(kind, &body, complete);
                    if complete || body.len() >= LOOK_MAX {
                        assert_ne!(r, Sniffed::NeedMore);
                    }
                }
            }
            let _ = crate::logic::handshake::handshake_kind(&body, &body);
            let _ = set_cookie(&body, b"io");
        }
    }

    #[test]
    fn fuzz_structured() {
        // Bytes that mean something to the parsers, to get deep into them.
        const ALPHABET: &[u8] = b"0123456789{}[]\":,\\u/_eio.j()sidSID tfnrl-+eE\x00\x01\xff\x1e\n";
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..1500 {
            let len = rng.below(80);
            let mut body: Vec<u8> = match rng.below(4) {
                0 => br#"0{"sid":""#.to_vec(),
                1 => b"___eio[0](\"".to_vec(),
                2 => br#"96:0{"a":"#.to_vec(),
                _ => Vec::new(),
            };
            body.extend((0..len).map(|_| ALPHABET[rng.below(ALPHABET.len())]));
            consistent(Kind::EngineIo, &body);
            consistent(Kind::Legacy09, &body);
        }
    }

    #[test]
    fn fuzz_mutated_bodies() {
        let mut bin = binary_frame(&V3[3..V3.len() - 4]);
        bin.extend_from_slice(b"\x00\x02\xff40");
        let bodies: [&[u8]; 7] = [V4, V3, V3_JSONP, V4_JSONP, &bin, L09_B64, L09_JSONP];
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        for round in 0..400 {
            for (i, body) in bodies.iter().enumerate() {
                let mut b = body.to_vec();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(b.len());
                    match rng.below(3) {
                        0 => b[at] = rng.next_u64() as u8,
                        1 => {
                            b.remove(at);
                        }
                        _ => b.insert(at, b"\"\\{}[]:,0u"[rng.below(10)]),
                    }
                }
                let kind = if i >= 5 {
                    Kind::Legacy09
                } else {
                    Kind::EngineIo
                };
                if round % 8 == 0 {
                    consistent(kind, &b);
                } else {
                    let _ = sniff(kind, &b, false);
                    let _ = sniff(kind, &b, true);
                }
            }
        }
    }

    #[test]
    fn every_real_body_is_consistent() {
        for body in [V4, V3, V3_JSONP, V4_JSONP] {
            consistent(Kind::EngineIo, body);
            consistent(Kind::Legacy09, body);
        }
        for body in [L09, L09_B64, L09_JSONP] {
            consistent(Kind::Legacy09, body);
            consistent(Kind::EngineIo, body);
        }
    }
}
