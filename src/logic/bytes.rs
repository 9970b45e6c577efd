//! Small byte-string helpers shared by the parsers of request and response bytes: trimming,
//! unquoting, splitting and finding a byte. None of them panics, allocates or reads past its
//! input.

/// `s` without the spaces and tabs around it.
#[inline]
pub fn trim(s: &[u8]) -> &[u8] {
    let is_ws = |c: &u8| *c == b' ' || *c == b'\t';
    let start = s.iter().position(|c| !is_ws(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !is_ws(c)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or(&[])
}

/// `s` without one pair of double quotes around it (a cookie value may be quoted).
#[inline]
pub fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

/// `s` split at the first `sep` (which belongs to neither part).
#[inline]
pub fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = find_byte(s, sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The position of the first `needle` in `hay`, eight bytes per step (no allocation, no
/// unsafe; for the short strings of a request it beats a call into `memchr`).
#[inline]
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_and_unquote() {
        assert_eq!(trim(b"  a b\t "), b"a b");
        assert_eq!(trim(b" \t "), b"");
        assert_eq!(trim(b""), b"");
        assert_eq!(unquote(b"\"x\""), b"x");
        assert_eq!(unquote(b"\"\""), b"");
        assert_eq!(unquote(b"\""), b"\"");
        assert_eq!(unquote(b"\"x"), b"\"x");
        assert_eq!(unquote(b"x"), b"x");
    }

    #[test]
    fn split_once_at_the_first() {
        assert_eq!(split_once(b"a=b=c", b'='), Some((&b"a"[..], &b"b=c"[..])));
        assert_eq!(split_once(b"=", b'='), Some((&b""[..], &b""[..])));
        assert_eq!(split_once(b"abc", b'='), None);
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
}
