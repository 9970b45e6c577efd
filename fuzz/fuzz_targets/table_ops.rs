//! The session table (`logic::table`) under random operations, against a reference model.
//!
//! A block of a size from the input is laid out (`layout`) and formatted (`Table::format`),
//! either as the module lays it out in shared memory or with a bucket count from the input
//! (longer chains). Then a sequence of `learn`, `lookup`, `forget` (`#[cfg(any(test,
//! fuzzing))]`) and `eviction_report` calls with digests from a pool of at most 64 (taken from
//! the input, or `Table::digest` of bytes from it), peers, timeouts, and times that mostly move
//! forward, sometimes jump, and sometimes go back.
//!
//! Checked after every call:
//! - what the documentation promises: a lookup that finds something finds the peer learned
//!   last for that digest, unexpired; it finds nothing only when the entry expired, was
//!   forgotten or was evicted; `learn` says `New`, `Same` or `Replaced` as documented, with
//!   the once-a-minute `warn`; a digest just learned is found;
//! - the exact state against a model of the documented segmented LRU (probation and
//!   protected lists, one-second resolution of protected, first use protects, protected at
//!   most `Table::protected_max` (less than the capacity from 4 entries on), two expired
//!   entries per list reclaimed per insertion into a full table,
//!   eviction from probation first), entries, peers, times, order and every counter of the
//!   header, and `eviction_report` at most once a minute;
//! - the block's structure: both recency lists doubly linked from `head` to `tail` with their
//!   `len`, list bits and used bits; every live entry in the chain of its bucket and in no
//!   other; the free list, the never-used part and the live entries account for `used`.
#![no_main]

use std::collections::HashSet;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use socketio_sticky_fuzz::block::Block;
use socketio_sticky_fuzz::logic::table::{
    expired, layout, Entry, Evictions, Header, Learned, Table, BYTES_PER_SESSION, MAGIC, NIL,
};

const HEADER_SIZE: usize = core::mem::size_of::<Header>();

trait Parts {
    fn parts(&mut self) -> (&mut Header, &mut [u32], &mut [Entry]);
}

impl Parts for Block {
    fn parts(&mut self) -> (&mut Header, &mut [u32], &mut [Entry]) {
        Block::parts(self)
    }
}

/// Separate vectors: any bucket count.
struct Vecs {
    hdr: Header,
    buckets: Vec<u32>,
    entries: Vec<Entry>,
}

impl Parts for Vecs {
    fn parts(&mut self) -> (&mut Header, &mut [u32], &mut [Entry]) {
        (&mut self.hdr, &mut self.buckets, &mut self.entries)
    }
}

/// One entry as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct E {
    digest: u64,
    peer: u64,
    last: u32,
    /// Used after it was learned (protected once).
    used: bool,
}

const PROBATION: usize = 0;
const PROTECTED: usize = 1;
/// The top bits of `Entry::prev` (in the protected list) and `Entry::next` (used).
const TOP: u32 = 0x8000_0000;

/// The documented behaviour (module documentation of `logic::table`): two recency lists,
/// most recently used first.
#[derive(Default)]
struct Model {
    lists: [Vec<E>; 2],
    capacity: usize,
    /// `Table::protected_max` (a share of the capacity that tuning may change).
    protected_max: usize,
    collisions: u64,
    evictions: u64,
    evicted_used: u64,
    expired: u64,
    last_warn: u32,
    last_evict_report: u32,
    evictions_reported: u64,
    evicted_used_reported: u64,
}

impl Model {
    fn live(&self) -> usize {
        self.lists[0].len() + self.lists[1].len()
    }

    fn find(&self, d: u64) -> Option<(usize, usize)> {
        (0..2).find_map(|l| {
            self.lists[l]
                .iter()
                .position(|e| e.digest == d)
                .map(|i| (l, i))
        })
    }

    /// A use: on probation, protected from now on; protected, to the front (one-second
    /// resolution). Protected beyond its share sends its oldest back to probation.
    fn touch(&mut self, l: usize, i: usize, now: u32) {
        if l == PROTECTED && self.lists[l][i].last == now {
            return;
        }
        self.lists[l][i].last = now;
        if l == PROTECTED && i == 0 {
            return;
        }
        let mut e = self.lists[l].remove(i);
        e.used = true;
        self.lists[PROTECTED].insert(0, e);
        if self.lists[PROTECTED].len() > self.protected_max {
            let oldest = self.lists[PROTECTED].pop().unwrap();
            self.lists[PROBATION].insert(0, oldest);
        }
    }

    fn lookup(&mut self, d: u64, now: u32, timeout: u32) -> Option<u64> {
        let (l, i) = self.find(d)?;
        let E { peer, last, .. } = self.lists[l][i];
        if expired(last, now, timeout) {
            self.lists[l].remove(i);
            self.expired += 1;
            return None;
        }
        self.touch(l, i, now);
        Some(peer)
    }

    fn forget(&mut self, d: u64) -> bool {
        match self.find(d) {
            Some((l, i)) => {
                self.lists[l].remove(i);
                true
            }
            None => false,
        }
    }

    fn learn(&mut self, d: u64, peer: u64, now: u32, timeout: u32) -> Learned {
        if let Some((l, i)) = self.find(d) {
            let E {
                peer: old, last, ..
            } = self.lists[l][i];
            self.lists[l][i].peer = peer;
            if expired(last, now, timeout) {
                // A new session under an old id: on probation.
                let mut e = self.lists[l].remove(i);
                e.last = now;
                e.used = false;
                self.lists[PROBATION].insert(0, e);
                return Learned::New;
            }
            self.touch(l, i, now);
            if old == peer {
                return Learned::Same;
            }
            self.collisions += 1;
            let warn = self.last_warn == 0 || now.wrapping_sub(self.last_warn) >= 60;
            if warn {
                self.last_warn = now.max(1);
            }
            return Learned::Replaced {
                warn,
                total: self.collisions,
            };
        }
        // In a full table, up to two expired entries at the old end of each list go first.
        let full = self.live() == self.capacity;
        for l in [PROBATION, PROTECTED].into_iter().filter(|_| full) {
            for _ in 0..2 {
                match self.lists[l].last() {
                    Some(e) if expired(e.last, now, timeout) => {
                        self.lists[l].pop();
                        self.expired += 1;
                    }
                    _ => break,
                }
            }
        }
        // Full: the oldest of probation goes, of protected while probation is empty.
        if self.live() == self.capacity {
            let l = if self.lists[PROBATION].is_empty() {
                PROTECTED
            } else {
                PROBATION
            };
            let victim = self.lists[l].pop().unwrap();
            self.evictions += 1;
            self.evicted_used += u64::from(victim.used);
        }
        self.lists[PROBATION].insert(
            0,
            E {
                digest: d,
                peer,
                last: now,
                used: false,
            },
        );
        Learned::New
    }

    fn eviction_report(&mut self, now: u32) -> Option<Evictions> {
        let evicted = self.evictions - self.evictions_reported;
        if evicted == 0 {
            return None;
        }
        let since = now.wrapping_sub(self.last_evict_report);
        if self.last_evict_report != 0 && since < 60 {
            return None;
        }
        let r = Evictions {
            evicted,
            used: self.evicted_used - self.evicted_used_reported,
            seconds: if self.last_evict_report == 0 {
                0
            } else {
                since
            },
        };
        self.last_evict_report = now.max(1);
        self.evictions_reported = self.evictions;
        self.evicted_used_reported = self.evicted_used;
        Some(r)
    }

    fn check_header(&self, h: &Header) {
        assert_eq!(h.collisions, self.collisions, "collisions");
        assert_eq!(h.evictions, self.evictions, "evictions");
        assert_eq!(h.evicted_used, self.evicted_used, "evicted_used");
        assert_eq!(h.expired, self.expired, "expired");
        assert_eq!(h.last_warn, self.last_warn, "last_warn");
        assert_eq!(
            h.last_evict_report, self.last_evict_report,
            "last_evict_report"
        );
        assert_eq!(h.evictions_reported, self.evictions_reported);
        assert_eq!(h.evicted_used_reported, self.evicted_used_reported);
    }
}

fn bucket(digest: u64, n: usize) -> usize {
    ((u128::from(digest) * n as u128) >> 64) as usize
}

/// Walks the block and checks its structure; the two lists from most to least recently used.
fn structure(hdr: &Header, buckets: &[u32], entries: &[Entry]) -> [Vec<E>; 2] {
    let cap = entries.len();
    assert_eq!(hdr.magic, MAGIC);
    assert_eq!(hdr.capacity as usize, cap);
    assert_eq!(hdr.nbuckets as usize, buckets.len());
    assert!(hdr.used as usize <= cap, "used {} of {cap}", hdr.used);
    let mut live = HashSet::new();
    let mut lists: [Vec<E>; 2] = Default::default();
    for (which, out) in lists.iter_mut().enumerate() {
        let list = hdr.lists[which];
        let mut prev = NIL;
        let mut i = list.head;
        while i != NIL {
            assert!((i as usize) < cap, "list {which}: index {i} out of range");
            assert!(i < hdr.used, "list {which} holds a never-used entry {i}");
            assert!(live.insert(i), "entry {i} twice in the lists");
            let e = &entries[i as usize];
            assert_eq!(e.prev & !TOP, prev, "prev link of {i}");
            assert_eq!(e.prev & TOP != 0, which == PROTECTED, "list bit of {i}");
            let used = e.next & TOP != 0;
            if which == PROTECTED {
                assert!(used, "protected entry {i} not marked used");
            }
            out.push(E {
                digest: e.digest,
                peer: e.peer,
                last: e.last,
                used,
            });
            prev = i;
            i = e.next & !TOP;
        }
        assert_eq!(list.tail, prev, "tail of list {which}");
        assert_eq!(list.len as usize, out.len(), "length of list {which}");
    }
    // Bucket chains: every live entry in the chain of its bucket, exactly once.
    let mut chained = HashSet::new();
    for (b, &head) in buckets.iter().enumerate() {
        let mut i = head;
        while i != NIL {
            assert!(
                live.contains(&i),
                "bucket {b} chains entry {i}, which is not live"
            );
            assert!(chained.insert(i), "entry {i} chained twice");
            let e = &entries[i as usize];
            assert_eq!(
                bucket(e.digest, buckets.len()),
                b,
                "entry {i} in the wrong bucket"
            );
            i = e.hnext;
        }
    }
    assert_eq!(chained.len(), live.len(), "a live entry is in no chain");
    // Free list.
    let mut free = HashSet::new();
    let mut i = hdr.free;
    while i != NIL {
        assert!(i < hdr.used, "free entry {i} was never used");
        assert!(!live.contains(&i), "free entry {i} is live");
        assert!(free.insert(i), "free list loops at {i}");
        i = entries[i as usize].hnext;
    }
    assert_eq!(free.len() + live.len(), hdr.used as usize, "entries lost");
    // Digests are unique.
    let digests: HashSet<u64> = lists.iter().flatten().map(|e| e.digest).collect();
    assert_eq!(digests.len(), live.len(), "one digest in two entries");
    lists
}

fn time(u: &mut Unstructured, now: u32) -> arbitrary::Result<u32> {
    Ok(match u.arbitrary::<u8>()? {
        0..=199 => now.wrapping_add(u32::from(u.arbitrary::<u8>()? % 8)),
        200..=239 => now.wrapping_add(u32::from(u.arbitrary::<u16>()?)),
        240..=254 => now.wrapping_sub(u32::from(u.arbitrary::<u8>()? % 16)),
        255 => u.arbitrary()?,
    })
}

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    // The layout of a block of any size (no memory needed).
    let any: usize = u.arbitrary()?;
    check_layout(any);

    let bytes = usize::from(u.arbitrary::<u16>()? % 8192);
    check_layout(bytes);
    let Some(l) = layout(bytes) else {
        return Ok(());
    };
    let key: [u64; 2] = u.arbitrary()?;
    let mut mem: Box<dyn Parts> = if u.arbitrary::<u8>()? < 192 {
        Box::new(Block::new(l))
    } else {
        let nb = 1 + usize::from(u.arbitrary::<u8>()?) % (2 * l.capacity);
        Box::new(Vecs {
            hdr: Header::default(),
            buckets: vec![0x5a5a_5a5a; nb],
            entries: vec![Entry::default(); l.capacity],
        })
    };
    let protected_max = {
        let (hdr, buckets, entries) = mem.parts();
        let t = Table::format(hdr, buckets, entries, key).expect("format");
        assert_eq!(t.live(), 0);
        t.protected_max() as usize
    };
    // A share of the table, never all of a table of 4 entries or more.
    assert!(protected_max >= 1 && protected_max <= l.capacity);
    if l.capacity >= 4 {
        assert!(
            protected_max < l.capacity,
            "protected may take the whole table"
        );
    }

    // Digests: at most 64 distinct, so that no bucket chain is longer than MAX_CHAIN (64);
    // chosen by the input, they may all share a bucket.
    let npool = 1 + usize::from(u.arbitrary::<u8>()? % 64);
    let mut pool = Vec::with_capacity(npool);
    for _ in 0..npool {
        let d = if u.arbitrary::<u8>()? < 64 {
            let len = usize::from(u.arbitrary::<u8>()? % 24);
            let sid = u.bytes(len.min(u.len()))?;
            let (hdr, buckets, entries) = mem.parts();
            let t = Table::open(hdr, buckets, entries).expect("open");
            let d = t.digest(sid);
            assert_eq!(d, t.digest(sid));
            d
        } else {
            u.arbitrary()?
        };
        pool.push(d);
    }
    let timeout = match u.arbitrary::<u8>()? {
        0..=191 => u32::from(u.arbitrary::<u8>()? % 16),
        _ => u.arbitrary()?,
    };
    let mut now: u32 = u.arbitrary()?;
    let mut model = Model {
        capacity: l.capacity,
        protected_max,
        ..Model::default()
    };

    for _ in 0..4096 {
        if u.is_empty() {
            break;
        }
        let op: u8 = u.arbitrary()?;
        let d = pool[usize::from(u.arbitrary::<u8>()?) % pool.len()];
        now = time(u, now)?;
        let (hdr, buckets, entries) = mem.parts();
        let last_warn_before = hdr.last_warn;
        let mut t = Table::open(hdr, buckets, entries).expect("a formatted block opens");
        assert_eq!(t.protected_max() as usize, model.protected_max);
        match op % 8 {
            0..=2 => {
                let before = model.find(d).map(|(l, i)| model.lists[l][i]);
                let got = t.lookup(d, now, timeout);
                // The documented promise, then the model.
                if let Some(p) = got {
                    let e = before.expect("found a digest never learned, forgotten or dropped");
                    assert_eq!(p, e.peer, "lookup found another peer than the last learned");
                    assert!(
                        !expired(e.last, now, timeout),
                        "lookup found an expired entry"
                    );
                }
                let want = model.lookup(d, now, timeout);
                assert_eq!(got, want, "lookup({d:#x}, {now}, {timeout})");
            }
            3..=5 => {
                let peer = match u.arbitrary::<u8>()? {
                    0..=223 => u64::from(u.arbitrary::<u8>()? % 4),
                    _ => u.arbitrary()?,
                };
                let got = t.learn(d, peer, now, timeout);
                let want = model.learn(d, peer, now, timeout);
                assert_eq!(got, want, "learn({d:#x}, {peer}, {now}, {timeout})");
                if let Learned::Replaced { warn, .. } = got {
                    assert_eq!(
                        warn,
                        last_warn_before == 0 || now.wrapping_sub(last_warn_before) >= 60
                    );
                }
                // Learned now: there now (looked up only sometimes: a use protects it).
                let (l, i) = model.find(d).expect("learned, not in the model");
                assert_eq!(model.lists[l][i].peer, peer);
                if op & 0x80 != 0 {
                    assert_eq!(
                        t.lookup(d, now, timeout),
                        Some(peer),
                        "just learned, not found"
                    );
                    assert_eq!(model.lookup(d, now, timeout), Some(peer));
                }
            }
            6 => {
                let got = t.forget(d);
                assert_eq!(got, model.forget(d), "forget({d:#x})");
                assert_eq!(t.lookup(d, now, timeout), None, "forgotten, still found");
            }
            _ => {
                assert_eq!(
                    t.eviction_report(now),
                    model.eviction_report(now),
                    "report at {now}"
                );
            }
        }
        assert_eq!(t.live(), model.live());
        model.check_header(t.header());
        drop(t);
        let (hdr, buckets, entries) = mem.parts();
        let lists = structure(hdr, buckets, entries);
        assert_eq!(lists, model.lists, "table and model differ");
        assert!(
            lists[PROTECTED].len() <= model.protected_max,
            "protected beyond its share"
        );
        assert!(model.live() <= l.capacity);
        model.check_header(hdr);
        assert_eq!(hdr.key, key, "the key changed");
    }
    Ok(())
}

fn check_layout(bytes: usize) {
    let min = HEADER_SIZE + 8 + BYTES_PER_SESSION;
    match layout(bytes) {
        None => assert!(bytes < min, "no layout for {bytes} bytes"),
        Some(l) => {
            assert!(bytes >= min);
            assert!(l.capacity >= 1 && l.capacity < NIL as usize);
            assert_eq!(l.buckets_offset, HEADER_SIZE);
            assert_eq!(l.entries_offset % 8, 0);
            assert!(l.entries_offset >= l.buckets_offset + 4 * l.capacity);
            assert!(l.entries_offset < l.buckets_offset + 4 * l.capacity + 8);
            assert_eq!(l.total, l.entries_offset + 32 * l.capacity);
            assert!(l.total <= bytes, "layout of {bytes} bytes uses {}", l.total);
            // As many sessions as fit (up to the index limit).
            if l.capacity < NIL as usize - 1 {
                assert!(
                    HEADER_SIZE + 8 + (l.capacity + 1) * BYTES_PER_SESSION > bytes,
                    "{bytes} bytes hold more than {} sessions",
                    l.capacity
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
