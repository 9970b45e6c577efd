//! The route cookie: opaque, stable peer ids and the `Set-Cookie` header that carries them.
//!
//! A peer's id is SipHash-2-4 of its identity (the `server` string as written and the
//! address), under a 128-bit key derived from `cookie_key=` (or, without it, from the
//! upstream's name). It depends on nothing else, so every worker, every node with the same
//! configuration and every reload agree on it, and reordering `server` lines changes nothing.
//! SipHash is a pseudo-random function: without the key, an id tells nothing about the
//! address, and no client can forge the id of another peer except by guessing 64 bits.

use core::hash::Hasher;

use siphasher::sip::SipHasher24;

use super::params::Cookie;

/// Length of an encoded id: 16 lowercase hex digits.
pub const ID_LEN: usize = 16;

/// The 128-bit key of the peer ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieKey(u64, u64);

impl CookieKey {
    /// From `cookie_key=SECRET`, or from the upstream's name when there is no secret.
    pub fn derive(secret: Option<&[u8]>, upstream: &[u8]) -> CookieKey {
        // Fixed derivation keys, so that every node derives the same key from the same text.
        const D0: (u64, u64) = (0x736f_636b_6574_696f, 0x5f73_7469_636b_7931);
        const D1: (u64, u64) = (0x726f_7574_655f_636f, 0x6f6b_6965_5f6b_6579);
        let (tag, text): (&[u8], &[u8]) = match secret {
            Some(s) => (b"key", s),
            None => (b"upstream", upstream),
        };
        let derive = |d: (u64, u64)| {
            let mut h = SipHasher24::new_with_keys(d.0, d.1);
            h.write(tag);
            h.write(&[0]);
            h.write(text);
            h.finish()
        };
        CookieKey(derive(D0), derive(D1))
    }

    /// The id of the peer `server` (as written in its `server` line) at `addr`.
    pub fn peer_id(&self, server: &[u8], addr: &[u8]) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.0, self.1);
        h.write(&(server.len() as u64).to_le_bytes());
        h.write(server);
        h.write(addr);
        h.finish()
    }
}

/// The id as it travels in the cookie.
pub fn encode(id: u64) -> [u8; ID_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; ID_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        let nibble = (id >> (60 - 4 * i)) & 0xf;
        *o = HEX[nibble as usize];
    }
    out
}

/// The value of each lowercase hex digit; 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// An id from a cookie value: exactly what [`encode`] makes, anything else is `None`.
pub fn decode(v: &[u8]) -> Option<u64> {
    let v: &[u8; ID_LEN] = v.try_into().ok()?;
    let mut id = 0u64;
    let mut bad = 0u8;
    for &c in v {
        let d = HEX_VALUE.get(usize::from(c)).copied().unwrap_or(0xff);
        bad |= d;
        id = (id << 4) | u64::from(d & 0x0f);
    }
    // A byte that is no digit has its high bit set.
    (bad & 0x80 == 0).then_some(id)
}

/// What follows `NAME=ID` in the `Set-Cookie` header: `; Path=/` and the other attributes.
pub fn attributes(c: &Cookie) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(b"; Path=");
    s.extend_from_slice(&c.path);
    if let Some(d) = &c.domain {
        s.extend_from_slice(b"; Domain=");
        s.extend_from_slice(d);
    }
    if let Some(age) = c.max_age {
        s.extend_from_slice(format!("; Max-Age={age}").as_bytes());
    }
    if c.secure {
        s.extend_from_slice(b"; Secure");
    }
    if c.httponly {
        s.extend_from_slice(b"; HttpOnly");
    }
    if let Some(ss) = c.samesite {
        s.extend_from_slice(b"; SameSite=");
        s.extend_from_slice(ss.as_str().as_bytes());
    }
    s
}

/// The whole `Set-Cookie` value for `id`, written into `out` (`name.len() + 1 + ID_LEN +
/// attributes.len()` bytes); returns the length written, or `None` if `out` is too short.
pub fn write_set_cookie(out: &mut [u8], name: &[u8], id: u64, attributes: &[u8]) -> Option<usize> {
    let len = name.len() + 1 + ID_LEN + attributes.len();
    let out = out.get_mut(..len)?;
    let (n, rest) = out.split_at_mut(name.len());
    n.copy_from_slice(name);
    let (eq, rest) = rest.split_at_mut(1);
    eq[0] = b'=';
    let (v, rest) = rest.split_at_mut(ID_LEN);
    v.copy_from_slice(&encode(id));
    rest.copy_from_slice(attributes);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::params::SameSite;

    fn siphash(k0: u64, k1: u64, msg: &[u8]) -> u64 {
        let mut h = SipHasher24::new_with_keys(k0, k1);
        h.write(msg);
        h.finish()
    }

    #[test]
    fn siphash_reference_vectors() {
        // The paper's key 00 01 .. 0f and messages 00 01 .. (n-1): the first values of the
        // reference implementation's vectors.h (little-endian outputs).
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0u8..64).collect();
        assert_eq!(siphash(k0, k1, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash(k0, k1, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash(k0, k1, &msg[..15]), 0xa129_ca61_49be_45e5);
        // Streaming in pieces gives the same value.
        let mut h = SipHasher24::new_with_keys(k0, k1);
        h.write(&msg[..3]);
        h.write(&msg[3..11]);
        h.write(&msg[11..15]);
        assert_eq!(h.finish(), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn ids_are_stable_keyed_and_distinct() {
        let k = CookieKey::derive(Some(b"s3cret"), b"chat");
        let a = k.peer_id(b"10.0.0.1:3000", b"10.0.0.1:3000");
        assert_eq!(a, k.peer_id(b"10.0.0.1:3000", b"10.0.0.1:3000"));
        assert_ne!(a, k.peer_id(b"10.0.0.2:3000", b"10.0.0.2:3000"));
        // The server string and the address both count, and cannot be shifted into another.
        assert_ne!(
            k.peer_id(b"app:3000", b"10.0.0.1:3000"),
            k.peer_id(b"app:3000", b"10.0.0.2:3000")
        );
        assert_ne!(k.peer_id(b"ab", b"c"), k.peer_id(b"a", b"bc"));
        // Another secret, or none, gives other ids; the upstream name counts only without one.
        let other = CookieKey::derive(Some(b"s3cret2"), b"chat");
        assert_ne!(a, other.peer_id(b"10.0.0.1:3000", b"10.0.0.1:3000"));
        assert_eq!(k, CookieKey::derive(Some(b"s3cret"), b"other"));
        assert_ne!(
            CookieKey::derive(None, b"chat"),
            CookieKey::derive(None, b"chat2")
        );
        assert_ne!(
            CookieKey::derive(None, b"s3cret"),
            CookieKey::derive(Some(b"s3cret"), b"")
        );
        // A fixed value: part of the contract between nodes and builds (changing it reissues
        // every route cookie).
        assert_eq!(&encode(a), b"9cc9a37fde10ec42");
    }

    #[test]
    fn encode_decode() {
        assert_eq!(&encode(0x0123_4567_89ab_cdef), b"0123456789abcdef");
        assert_eq!(decode(b"0123456789abcdef"), Some(0x0123_4567_89ab_cdef));
        assert_eq!(decode(&encode(u64::MAX)), Some(u64::MAX));
        assert_eq!(decode(&encode(0)), Some(0));
        // Tampered: wrong length, upper case, other characters.
        assert_eq!(decode(b"0123456789abcde"), None);
        assert_eq!(decode(b"0123456789abcdef0"), None);
        assert_eq!(decode(b"0123456789ABCDEF"), None);
        assert_eq!(decode(b"0123456789abcdeg"), None);
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"0123456789abcd\"f"), None);
    }

    #[test]
    fn set_cookie_header() {
        let mut c = Cookie {
            name: b"route".to_vec(),
            path: b"/".to_vec(),
            domain: None,
            max_age: None,
            secure: false,
            httponly: true,
            samesite: None,
            key: None,
        };
        let mut buf = [0u8; 128];
        let attrs = attributes(&c);
        let n = write_set_cookie(&mut buf, b"route", 0xab, &attrs).unwrap();
        assert_eq!(&buf[..n], b"route=00000000000000ab; Path=/; HttpOnly");
        c.path = b"/socket.io/".to_vec();
        c.domain = Some(b".example.com".to_vec());
        c.max_age = Some(3600);
        c.secure = true;
        c.httponly = false;
        c.samesite = Some(SameSite::None);
        let attrs = attributes(&c);
        let n = write_set_cookie(&mut buf, b"r", 1, &attrs).unwrap();
        assert_eq!(
            &buf[..n],
            &b"r=0000000000000001; Path=/socket.io/; Domain=.example.com; Max-Age=3600; Secure; SameSite=None"[..]
        );
        assert_eq!(write_set_cookie(&mut buf[..10], b"route", 1, &attrs), None);
    }
}
