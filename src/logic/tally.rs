//! Request counters shared by every worker: one record per upstream and server, in the zone's
//! block next to the session table (so they outlive a reload, and with `state=` a restart).
//!
//! A record is a key and eight counters. Records are found by open addressing over the
//! array, bounded; a key is claimed once (under the zone's lock) and never given back, so a
//! worker may keep a record's address and count into it without the lock: counting is one
//! relaxed atomic increment. A server's record counts its requests by route
//! (`status::ROUTES`); the upstream's own record (server identity 0) counts the handshakes
//! whose session id was not learned, by reason (`status::SKIP_REASONS`).

use core::sync::atomic::{AtomicU64, Ordering};

use super::hash::{hash64, probe};

/// Counters per record.
pub const COUNTS: usize = 8;
/// Longest probe sequence: records are few (one per upstream and server) and the array has
/// room for twice as many as a zone's users normally need.
const MAX_PROBE: usize = 64;

/// One record (72 bytes). All-zero bytes are an empty record.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Record {
    /// The record's key ([`key`]); 0 while empty.
    pub key: AtomicU64,
    pub counts: [AtomicU64; COUNTS],
}

impl Record {
    /// Adds one to counter `i` (nothing for an `i` out of range).
    #[inline]
    pub fn add(&self, i: usize) {
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters' values.
    pub fn values(&self) -> [u64; COUNTS] {
        let mut out = [0; COUNTS];
        for (o, c) in out.iter_mut().zip(&self.counts) {
            *o = c.load(Ordering::Relaxed);
        }
        out
    }
}

/// The key of the record of server `identity` in upstream `upstream` (identity 0: the
/// upstream's own record). Never 0.
pub fn key(upstream: &[u8], identity: u64) -> u64 {
    let k = hash64(0x7a11, upstream) ^ identity.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    k.max(1)
}

/// A view of the records of a block.
pub struct Tally<'a> {
    records: &'a [Record],
}

impl<'a> Tally<'a> {
    pub fn new(records: &'a [Record]) -> Tally<'a> {
        Tally { records }
    }

    /// The record of `key`, if it was claimed.
    pub fn find(&self, key: u64) -> Option<&'a Record> {
        self.walk(key, false)
    }

    /// The record of `key`, claimed now if it was not; `None` when the probe sequence is full.
    /// The caller holds the zone's lock (claims are not atomic among themselves).
    pub fn claim(&self, key: u64) -> Option<&'a Record> {
        self.walk(key, true)
    }

    /// The probe sequence of `key` up to its record or the first empty one (claimed for it
    /// with `claim`).
    fn walk(&self, key: u64, claim: bool) -> Option<&'a Record> {
        for at in probe(key, self.records.len(), MAX_PROBE) {
            let r = self.records.get(at)?;
            match r.key.load(Ordering::Relaxed) {
                k if k == key => return Some(r),
                0 if claim => {
                    r.key.store(key, Ordering::Relaxed);
                    return Some(r);
                }
                0 => return None,
                _ => {}
            }
        }
        None
    }

    /// Records claimed so far.
    #[cfg(test)]
    pub fn claimed(&self) -> usize {
        self.records
            .iter()
            .filter(|r| r.key.load(Ordering::Relaxed) != 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<Record> {
        (0..n).map(|_| Record::default()).collect()
    }

    #[test]
    fn claim_find_and_count() {
        let rs = records(64);
        let t = Tally::new(&rs);
        let a = key(b"chat", 0);
        let b = key(b"chat", 42);
        let c = key(b"other", 42);
        assert!(a != b && b != c && a != c);
        assert!(t.find(a).is_none());
        t.claim(a).unwrap().add(3);
        t.claim(b).unwrap().add(0);
        t.claim(b).unwrap().add(0);
        assert_eq!(t.find(a).unwrap().values(), [0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(t.find(b).unwrap().values(), [2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(t.find(c).is_none());
        // Out of range: nothing counted, no panic.
        t.find(a).unwrap().add(COUNTS);
        assert_eq!(t.find(a).unwrap().values()[3], 1);
        assert_eq!(t.claimed(), 2);
    }

    #[test]
    fn a_full_array_claims_nothing_more() {
        let rs = records(8);
        let t = Tally::new(&rs);
        let keys: Vec<u64> = (0..8).map(|i| key(b"u", i + 1)).collect();
        for &k in &keys {
            assert!(t.claim(k).is_some());
        }
        assert!(t.claim(key(b"u", 100)).is_none());
        for &k in &keys {
            assert_eq!(t.find(k).map(|r| r.key.load(Ordering::Relaxed)), Some(k));
        }
        assert!(Tally::new(&[]).claim(1).is_none());
    }

    #[test]
    fn keys_are_never_zero() {
        for i in 0..1000u64 {
            assert_ne!(key(b"", i), 0);
            assert_ne!(key(format!("u{i}").as_bytes(), 0), 0);
        }
    }
}
