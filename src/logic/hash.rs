//! Stable, unkeyed 64-bit hashing for ring placement.
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

/// A short, non-reversible tag of a key for debug logs (never the key itself).
#[inline]
pub fn log_tag(bytes: &[u8]) -> u32 {
    (hash64(0x5eed_10c5, bytes) >> 32) as u32
}

/// SipHash-1-3 with the 128-bit key `(k0, k1)` (the variant Rust's own `HashMap` uses against
/// hash flooding): the keyed digest of session ids in the shared table. Without the key (random
/// per zone) nobody can choose ids that collide or that pile up in one bucket.
#[inline]
pub fn siphash13(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    siphash::<1, 3>(k0, k1, msg)
}

/// SipHash-2-4, the reference variant (its published vectors check the shared core).
#[cfg(test)]
pub fn siphash24(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    siphash::<2, 4>(k0, k1, msg)
}

/// SipHash-c-d.
#[inline]
fn siphash<const C: usize, const D: usize>(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = msg.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        sip_block::<C>(&mut v, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(rest) {
        *d = *s;
    }
    w[7] = msg.len() as u8;
    sip_block::<C>(&mut v, u64::from_le_bytes(w));
    v[2] ^= 0xff;
    for _ in 0..D {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[inline]
fn sip_block<const C: usize>(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    for _ in 0..C {
        sip_round(v);
    }
    v[0] ^= m;
}

#[inline]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn siphash_reference_vectors() {
        // The reference implementation's vectors: key 00..0f, messages 00..(n-1).
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0u8..64).collect();
        assert_eq!(siphash24(k0, k1, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(k0, k1, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(k0, k1, &msg[..15]), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn siphash13_matches_std_hashmap_hasher() {
        // std's `DefaultHasher::new()` is SipHash-1-3 with a zero key, fed the raw bytes.
        use std::collections::hash_map::DefaultHasher;
        use std::hash::Hasher;
        for len in 0..64usize {
            let msg: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let mut h = DefaultHasher::new();
            h.write(&msg);
            assert_eq!(siphash13(0, 0, &msg), h.finish(), "len {len}");
        }
    }

    #[test]
    #[allow(deprecated)]
    fn siphash_matches_std() {
        use std::hash::{Hasher, SipHasher};
        let mut x = 0x1234_5678_9abc_def0u64;
        for len in 0..100usize {
            let msg: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let mut h = SipHasher::new_with_keys(x, !x);
            h.write(&msg);
            assert_eq!(siphash24(x, !x, &msg), h.finish(), "len {len}");
        }
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
}
