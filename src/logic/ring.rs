//! Weighted consistent hashing with a Maglev-style lookup table.
//!
//! Each ring member (one `server` address) owns a share of a table of `M` slots (`M` prime)
//! proportional to its weight. Slots are claimed by walking each member's own permutation of
//! the table, derived from the member's identity string only, and members take turns in the
//! order of their identities, so the table depends on the set of (identity, weight) pairs and
//! nothing else: not on the order of `server` lines, the worker, or the node.
//!
//! A key maps to the slot `(hash * M) >> 64`; when the slot's member is unusable, the walk goes
//! on through the following slots, so a key always meets the same substitute while its member
//! is out and goes home when it is back.

use super::hash::hash64;

/// Table sizes (primes); the smallest one with at least `SLOTS_PER_MEMBER` slots per member is
/// used.
const TABLE_SIZES: [usize; 6] = [65_537, 131_071, 262_147, 524_287, 1_048_573, 2_097_143];
const SLOTS_PER_MEMBER: usize = 256;

/// The most members a ring can hold (slots store member indices as `u16`).
pub const MAX_MEMBERS: usize = u16::MAX as usize;

const SEED_OFFSET: u64 = 0x6f66_6673_6574;
const SEED_SKIP: u64 = 0x736b_6970;

/// One ring member: the identity string that places it, and its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub identity: Vec<u8>,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingError {
    NoMembers,
    TooManyMembers(usize),
    ZeroWeight,
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::NoMembers => f.write_str("no servers for the hash ring"),
            RingError::TooManyMembers(n) => {
                write!(
                    f,
                    "{n} servers, more than the {MAX_MEMBERS} a ring can hold"
                )
            }
            RingError::ZeroWeight => f.write_str("a server has weight 0"),
        }
    }
}

/// The lookup table.
#[derive(Debug, Clone)]
pub struct Ring {
    table: Box<[u16]>,
    members: usize,
}

impl Ring {
    /// Builds the table. Members with the same identity are told apart by their occurrence
    /// (the second `server 10.0.0.1:3000` line is `10.0.0.1:3000#2`).
    pub fn build(members: &[Member]) -> Result<Ring, RingError> {
        let n = members.len();
        if n == 0 {
            return Err(RingError::NoMembers);
        }
        if n > MAX_MEMBERS {
            return Err(RingError::TooManyMembers(n));
        }
        if members.iter().any(|m| m.weight == 0) {
            return Err(RingError::ZeroWeight);
        }

        let size = TABLE_SIZES
            .iter()
            .copied()
            .find(|&s| s >= n * SLOTS_PER_MEMBER)
            .unwrap_or(TABLE_SIZES[TABLE_SIZES.len() - 1]);

        // Distinct identities, then a canonical order that ignores the order of server lines.
        let idents = unique_identities(members);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| idents[a].cmp(&idents[b]));

        let m = size as u64;
        let offset: Vec<u64> = idents
            .iter()
            .map(|id| hash64(SEED_OFFSET, id) % m)
            .collect();
        let skip: Vec<u64> = idents
            .iter()
            .map(|id| hash64(SEED_SKIP, id) % (m - 1) + 1)
            .collect();
        let mut next = vec![0u64; n];
        let mut credit = vec![0u64; n];
        let wmax = u64::from(members.iter().map(|m| m.weight).max().unwrap_or(1));

        const EMPTY: u16 = u16::MAX;
        let mut table = vec![EMPTY; size];
        let mut filled = 0usize;

        'fill: loop {
            for &i in &order {
                credit[i] += u64::from(members[i].weight);
                while credit[i] >= wmax {
                    credit[i] -= wmax;
                    // Walk this member's permutation to its next free slot. The permutation
                    // visits every slot (m is prime), and a free slot exists while filled < m.
                    loop {
                        let c = ((offset[i] + next[i] * skip[i]) % m) as usize;
                        next[i] += 1;
                        if let Some(slot) = table.get_mut(c) {
                            if *slot == EMPTY {
                                *slot = i as u16;
                                break;
                            }
                        }
                    }
                    filled += 1;
                    if filled == size {
                        break 'fill;
                    }
                }
            }
        }

        Ok(Ring {
            table: table.into_boxed_slice(),
            members: n,
        })
    }

    /// Number of members.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Number of slots.
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.table.len()
    }

    /// The home slot of a key hash.
    #[inline]
    pub fn slot_of(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.table.len() as u128) >> 64) as usize
    }

    /// The member owning a slot (any slot number; it wraps around).
    #[inline]
    pub fn member_at(&self, slot: usize) -> usize {
        let len = self.table.len();
        self.table.get(slot % len).copied().map_or(0, usize::from)
    }

    /// The member a key hash maps to when every member is usable.
    #[cfg(test)]
    pub fn lookup(&self, hash: u64) -> usize {
        self.member_at(self.slot_of(hash))
    }

    /// The walk for a key: distinct members in the order the key meets them, starting with its
    /// home member. At most `max_steps` slots are looked at.
    pub fn walk(&self, hash: u64, max_steps: usize) -> Walk<'_> {
        Walk {
            ring: self,
            slot: self.slot_of(hash),
            steps_left: max_steps,
            last: None,
        }
    }
}

/// Iterator over the members a key meets walking the table (consecutive duplicates skipped).
pub struct Walk<'a> {
    ring: &'a Ring,
    slot: usize,
    steps_left: usize,
    last: Option<usize>,
}

impl Iterator for Walk<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.steps_left > 0 {
            self.steps_left -= 1;
            let m = self.ring.member_at(self.slot);
            self.slot = (self.slot + 1) % self.ring.table.len();
            if self.last != Some(m) {
                self.last = Some(m);
                return Some(m);
            }
        }
        None
    }
}

fn unique_identities(members: &[Member]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let seen = members[..i]
            .iter()
            .filter(|p| p.identity == m.identity)
            .count();
        let mut id = m.identity.clone();
        if seen > 0 {
            id.extend_from_slice(format!("#{}", seen + 1).as_bytes());
        }
        out.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::hash::key_hash;

    fn members(names: &[&str]) -> Vec<Member> {
        names
            .iter()
            .map(|n| Member {
                identity: n.as_bytes().to_vec(),
                weight: 1,
            })
            .collect()
    }

    /// Deterministic pseudo-random ids (xorshift64*), formatted like real device ids.
    fn ids(count: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut x = seed | 1;
        (0..count)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                format!("{:016x}", x.wrapping_mul(0x2545_f491_4f6c_dd1d)).into_bytes()
            })
            .collect()
    }

    fn loads(ring: &Ring, keys: &[Vec<u8>]) -> Vec<usize> {
        let mut l = vec![0usize; ring.members()];
        for k in keys {
            l[ring.lookup(key_hash(k))] += 1;
        }
        l
    }

    fn max_over_mean(l: &[usize]) -> f64 {
        let mean = l.iter().sum::<usize>() as f64 / l.len() as f64;
        *l.iter().max().unwrap() as f64 / mean
    }

    const FOUR: [&str; 4] = [
        "10.0.0.1:3000",
        "10.0.0.2:3000",
        "10.0.0.3:3000",
        "10.0.0.4:3000",
    ];

    #[test]
    fn balance_four_equal_servers() {
        let ring = Ring::build(&members(&FOUR)).unwrap();
        let keys = ids(100_000, 7);
        let l = loads(&ring, &keys);
        let r = max_over_mean(&l);
        eprintln!("ring: 4 servers, 100000 ids, loads {l:?}, max/mean {r:.4}");
        assert!(r <= 1.05, "max/mean {r}");
    }

    #[test]
    fn balance_other_names_and_sizes() {
        for n in [2usize, 3, 4, 8, 16, 64] {
            let names: Vec<String> = (0..n).map(|i| format!("127.0.0.1:{}", 8000 + i)).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let ring = Ring::build(&members(&refs)).unwrap();
            let l = loads(&ring, &ids(100_000, 11));
            let r = max_over_mean(&l);
            assert!(r <= 1.05 + 0.002 * n as f64, "{n} servers: max/mean {r}");
        }
    }

    #[test]
    fn adding_a_fifth_server_moves_about_a_fifth() {
        let four = Ring::build(&members(&FOUR)).unwrap();
        let mut five_names = FOUR.to_vec();
        five_names.push("10.0.0.5:3000");
        let five = Ring::build(&members(&five_names)).unwrap();
        let keys = ids(100_000, 3);
        let moved = keys
            .iter()
            .filter(|k| {
                let h = key_hash(k);
                four.lookup(h) != five.lookup(h)
            })
            .count();
        let frac = moved as f64 / keys.len() as f64;
        eprintln!(
            "ring: 4 -> 5 servers moved {:.2}% of 100000 ids",
            frac * 100.0
        );
        assert!(frac <= 0.22, "moved {frac}");
        // Nearly everything that moved went to the new server (Maglev's small extra churn).
        let among_old = keys
            .iter()
            .filter(|k| {
                let h = key_hash(k);
                four.lookup(h) != five.lookup(h) && five.lookup(h) != 4
            })
            .count();
        eprintln!("ring: of those, {among_old} moved between the old servers");
        assert!((among_old as f64) < 0.02 * keys.len() as f64);
    }

    #[test]
    fn adding_a_third_server_to_two_moves_about_a_third() {
        let two = Ring::build(&members(&["127.0.0.1:8001", "127.0.0.1:8002"])).unwrap();
        let three = Ring::build(&members(&[
            "127.0.0.1:8001",
            "127.0.0.1:8002",
            "127.0.0.1:8003",
        ]))
        .unwrap();
        let keys = ids(100_000, 23);
        let moved = keys
            .iter()
            .filter(|k| two.lookup(key_hash(k)) != three.lookup(key_hash(k)))
            .count();
        let frac = moved as f64 / keys.len() as f64;
        eprintln!(
            "ring: 2 -> 3 servers moved {:.2}% of 100000 ids",
            frac * 100.0
        );
        assert!((0.30..0.36).contains(&frac), "moved {frac}");
    }

    #[test]
    fn removing_a_server_moves_only_its_keys() {
        let four = Ring::build(&members(&FOUR)).unwrap();
        let three = Ring::build(&members(&FOUR[..3])).unwrap();
        let keys = ids(50_000, 5);
        let mut moved = 0;
        for k in &keys {
            let h = key_hash(k);
            let before = four.lookup(h);
            if before != 3 && three.lookup(h) != before {
                moved += 1;
            }
        }
        let frac = moved as f64 / keys.len() as f64;
        assert!(frac < 0.03, "keys of surviving servers moved: {frac}");
    }

    #[test]
    fn order_of_server_lines_does_not_matter() {
        let a = Ring::build(&members(&FOUR)).unwrap();
        let rev: Vec<&str> = FOUR.iter().rev().copied().collect();
        let b = Ring::build(&members(&rev)).unwrap();
        for k in ids(10_000, 9) {
            let h = key_hash(&k);
            assert_eq!(FOUR[a.lookup(h)], rev[b.lookup(h)]);
        }
    }

    #[test]
    fn weights_are_honoured() {
        let mut m = members(&FOUR[..2]);
        m[1].weight = 3;
        let ring = Ring::build(&m).unwrap();
        let l = loads(&ring, &ids(100_000, 13));
        let ratio = l[1] as f64 / l[0] as f64;
        eprintln!("ring: weight 3 vs 1 over 100000 ids: {ratio:.3}x");
        assert!((2.85..3.15).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn duplicate_identities_are_distinct_members() {
        let ring = Ring::build(&members(&["a:1", "a:1", "b:1"])).unwrap();
        let l = loads(&ring, &ids(30_000, 17));
        assert!(l.iter().all(|&n| n > 8_500), "{l:?}");
    }

    #[test]
    fn walk_gives_the_same_substitute_and_spreads_them() {
        let ring = Ring::build(&members(&FOUR)).unwrap();
        let keys = ids(40_000, 19);
        let mut subs = [0usize; 4];
        for k in &keys {
            let h = key_hash(k);
            let mut w = ring.walk(h, 1024);
            let home = w.next().unwrap();
            assert_eq!(home, ring.lookup(h));
            let sub = w.next().unwrap();
            assert_ne!(sub, home);
            let again: Vec<usize> = ring.walk(h, 1024).take(2).collect();
            assert_eq!(again, vec![home, sub]);
            if home == 0 {
                subs[sub] += 1;
            }
        }
        // Member 0's keys spread over the other three.
        assert_eq!(subs[0], 0);
        for &s in &subs[1..] {
            assert!(s > 2_500, "{subs:?}");
        }
    }

    #[test]
    fn walk_is_bounded_with_one_member() {
        let ring = Ring::build(&members(&["only:1"])).unwrap();
        let v: Vec<usize> = ring.walk(key_hash(b"x"), 1024).collect();
        assert_eq!(v, vec![0]);
    }

    #[test]
    fn errors() {
        assert_eq!(Ring::build(&[]).unwrap_err(), RingError::NoMembers);
        let mut m = members(&["a"]);
        m[0].weight = 0;
        assert_eq!(Ring::build(&m).unwrap_err(), RingError::ZeroWeight);
    }

    #[test]
    fn table_is_full_and_shares_match_weights() {
        let mut m = members(&["a", "b", "c"]);
        m[2].weight = 2;
        let ring = Ring::build(&m).unwrap();
        let mut counts = [0usize; 3];
        for s in 0..ring.size() {
            counts[ring.member_at(s)] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), ring.size());
        assert!(
            (counts[2] as i64 - 2 * counts[0] as i64).abs() <= 2,
            "{counts:?}"
        );
    }
}
