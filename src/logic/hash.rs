//! The module's hashes: stable, unkeyed 64-bit hashing for ring placement and peer identities,
//! and the keyed digest of session ids in the shared table.
//!
//! Every worker and every nginx node must agree on where a key lands, across restarts and
//! builds, so this is a fixed, documented function: FNV-1a (64-bit) over the bytes, followed
//! by the murmur3 `fmix64` finalizer so that every output bit depends on every input bit
//! (plain FNV-1a is weak in its low bits for short keys, and the ring uses the high bits).

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// murmur3's 64-bit finalizer: a bijection with full avalanche.
#[inline]
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Hash `bytes` with a `seed` (0 for keys; other seeds derive independent hashes).
#[inline]
pub fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET ^ fmix64(seed);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    fmix64(h ^ bytes.len() as u64)
}

/// Hash of a routing key (device_id, ...).
#[inline]
pub fn key_hash(bytes: &[u8]) -> u64 {
    hash64(0, bytes)
}

/// The identity of a peer as the session table stores it (the peer of a learned session): a
/// hash of its `server` string and its address, stable across reloads, reordering and
/// restarts.
pub fn peer_identity(server: &[u8], addr: &[u8]) -> u64 {
    let mut h = hash64(0x1d, server);
    h ^= hash64(h, addr);
    h
}

/// A short, non-reversible tag of a key for debug logs (never the key itself).
#[inline]
pub fn log_tag(bytes: &[u8]) -> u32 {
    (hash64(0x5eed_10c5, bytes) >> 32) as u32
}

/// Odd 64-bit constants (the golden ratio and splitmix64's multipliers).
const M0: u64 = 0x9e37_79b9_7f4a_7c15;
const M1: u64 = 0xbf58_476d_1ce4_e5b9;
const M2: u64 = 0x94d0_49bb_1331_11eb;

/// The 128-bit product of `a` and `b`, its halves xored: every output bit depends on most
/// input bits of both.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Little-endian word of `b` at `at` (eight bytes, or four for [`r32`]); 0 out of range.
#[inline]
fn r64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map_or(0, u64::from_le_bytes)
}

#[inline]
fn r32(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map_or(0, |w| u64::from(u32::from_le_bytes(w)))
}

/// The positions of an open-addressing probe sequence for `key` over `n` places: from the
/// place the key's high bits choose (a multiply-shift reduction), onward and around, at most
/// `max` of them (none when `n` is 0).
#[inline]
pub fn probe(key: u64, n: usize, max: usize) -> impl Iterator<Item = usize> {
    let start = ((u128::from(key) * n as u128) >> 64) as usize;
    (0..max.min(n)).map(move |i| (start + i) % n)
}

/// The keyed 64-bit digest of session ids in the shared table, under the 128-bit key
/// `(k0, k1)` (random per zone): a multiply-fold hash of the wyhash family. The length is
/// mixed in first; then every 16 bytes are folded into the state with one 64x64->128-bit
/// multiplication; the last 1 to 16 bytes are read as two (possibly overlapping) words, which
/// the length makes unambiguous; a last multiplication finishes. About 12 instructions per
/// 16 bytes, against some 90 for SipHash-1-3 at these lengths.
///
/// It is not a cryptographic function: it spreads backend-minted ids (random, or counters)
/// evenly and makes collisions as rare as random 64-bit values. Without the key nobody can
/// aim an id at a bucket or at another id's digest.
#[inline]
pub fn sid_digest(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let s = k1 ^ M1;
    let mut h = fold_mul(k0 ^ M0, (msg.len() as u64) ^ s);
    let mut rest = msg;
    while rest.len() > 16 {
        h = fold_mul(r64(rest, 0) ^ s, r64(rest, 8) ^ h);
        rest = rest.get(16..).unwrap_or_default();
    }
    let n = rest.len();
    let (a, b) = match n {
        9..=16 => (r64(rest, 0), r64(rest, n - 8)),
        4..=8 => (r32(rest, 0), r32(rest, n - 4)),
        1..=3 => {
            let at = |i: usize| u64::from(rest.get(i).copied().unwrap_or(0));
            ((at(0) << 16) | (at(n / 2) << 8) | at(n - 1), 0)
        }
        _ => (0, 0),
    };
    h = fold_mul(a ^ s ^ M2, b ^ h);
    fold_mul(h ^ M0, k0 ^ M2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_identity_is_stable_and_distinct() {
        assert_eq!(
            peer_identity(b"10.0.0.1:3000", b"10.0.0.1:3000"),
            peer_identity(b"10.0.0.1:3000", b"10.0.0.1:3000")
        );
        assert_ne!(
            peer_identity(b"a:1", b"10.0.0.1:1"),
            peer_identity(b"a:1", b"10.0.0.2:1")
        );
        assert_ne!(peer_identity(b"ab", b"c"), peer_identity(b"a", b"bc"));
    }

    #[test]
    fn stable_values() {
        // These values are part of the product's contract: changing them moves every device.
        let a = key_hash(b"device-1");
        let b = key_hash(b"device-1");
        assert_eq!(a, b);
        assert_ne!(key_hash(b"device-1"), key_hash(b"device-2"));
        assert_ne!(hash64(1, b"x"), hash64(2, b"x"));
        assert_eq!(key_hash(b"10.0.0.1:3000"), 0x2c09_e63c_d900_f73d);
    }

    /// xorshift64: test inputs without a crate.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn digest_is_keyed_and_covers_every_byte() {
        let (k0, k1) = (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        let msg: Vec<u8> = (0u8..80)
            .map(|b| b.wrapping_mul(37).wrapping_add(11))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for len in 0..=msg.len() {
            let m = &msg[..len];
            let d = sid_digest(k0, k1, m);
            assert_eq!(d, sid_digest(k0, k1, m));
            assert!(seen.insert(d), "prefix of length {len} collides");
            assert_ne!(d, sid_digest(k0 ^ 1, k1, m), "len {len}: k0 ignored");
            assert_ne!(
                d,
                sid_digest(k0, k1 ^ (1 << 63), m),
                "len {len}: k1 ignored"
            );
            // Every byte counts, wherever it sits (whole blocks, overlapping tail words).
            for i in 0..len {
                let mut x = m.to_vec();
                x[i] ^= 0x01;
                assert_ne!(d, sid_digest(k0, k1, &x), "len {len}, byte {i}");
            }
        }
        // Trailing zero bytes are not lost in the tail words.
        assert_ne!(sid_digest(k0, k1, b"ab"), sid_digest(k0, k1, b"ab\0"));
        assert_ne!(sid_digest(k0, k1, b""), sid_digest(k0, k1, b"\0"));
    }

    #[test]
    fn digest_avalanche() {
        // Flipping one input bit flips each output bit with a probability near 1/2.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in [1usize, 3, 7, 8, 15, 16, 20, 24, 32, 33] {
            let mut flips = [0u32; 64];
            let mut trials = 0u32;
            for _ in 0..40 {
                let (k0, k1) = (next(&mut x), next(&mut x));
                let m: Vec<u8> = (0..len).map(|_| next(&mut x) as u8).collect();
                let d = sid_digest(k0, k1, &m);
                for bit in 0..len * 8 {
                    let mut y = m.clone();
                    y[bit / 8] ^= 1 << (bit % 8);
                    let diff = d ^ sid_digest(k0, k1, &y);
                    for (o, f) in flips.iter_mut().enumerate() {
                        *f += ((diff >> o) & 1) as u32;
                    }
                    trials += 1;
                }
            }
            for (o, &f) in flips.iter().enumerate() {
                let p = f64::from(f) / f64::from(trials);
                assert!(
                    (0.4..0.6).contains(&p),
                    "len {len}: output bit {o} flips {p:.3}"
                );
            }
        }
    }

    #[test]
    fn digest_spreads_counters_and_random_ids_without_collisions() {
        // Ids as servers mint them: counters, and 20 random base64url characters (Socket.IO).
        let (k0, k1) = (0x5151_5151_5151_5151, 0x2a2a_2a2a_2a2a_2a2a);
        const N: usize = 200_000;
        const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let counters = (0..N).map(|i| i.to_string().into_bytes());
        let random = (0..N).map(|_| (0..20).map(|_| ABC[(next(&mut x) & 63) as usize]).collect());
        let ids: Vec<Vec<u8>> = counters.chain(random).collect();
        let mut digests: Vec<u64> = ids.iter().map(|id| sid_digest(k0, k1, id)).collect();
        // Buckets are picked from the high bits (multiply-shift): 64 of them, evenly.
        let mut buckets = [0u32; 64];
        for &d in &digests {
            buckets[((u128::from(d) * 64) >> 64) as usize] += 1;
        }
        let mean = (2 * N / 64) as u32;
        for &n in &buckets {
            assert!(n.abs_diff(mean) < mean / 20, "bucket {n}, mean {mean}");
        }
        digests.sort_unstable();
        digests.dedup();
        assert_eq!(digests.len(), 2 * N, "colliding digests");
    }

    #[test]
    fn high_bits_spread_for_sequential_keys() {
        // Sequential numeric ids must spread evenly over the top bits.
        let mut buckets = [0u32; 16];
        for i in 0..16_000u32 {
            let h = key_hash(i.to_string().as_bytes());
            buckets[(h >> 60) as usize] += 1;
        }
        for &n in &buckets {
            assert!((800..1200).contains(&n), "bucket {n}");
        }
    }

    #[test]
    fn probe_sequences_stay_in_range_and_wrap() {
        assert_eq!(probe(u64::MAX, 4, 64).collect::<Vec<_>>(), [3, 0, 1, 2]);
        assert_eq!(probe(0, 8, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(probe(1 << 63, 8, 2).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(probe(42, 0, 64).count(), 0);
    }
}
