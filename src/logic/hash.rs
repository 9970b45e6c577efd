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
