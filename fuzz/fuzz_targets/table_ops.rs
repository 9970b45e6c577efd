//! The session table (`logic::table`) under random operations, against a reference model.
//!
//! A block of a size from the input is laid out (`layout`) and formatted (`Table::format`),
//! either as the module lays it out in shared memory (`slots_for` slots: 32 below 8 KiB) or in
//! separate vectors with a bucket count from the input (longer chains), 0 to 8 slots (more
//! servers than slots: some sessions are "untracked") or 64, and any record count. Then a sequence of `learn`,
//! `lookup`, `forget` (`#[cfg(any(test, fuzzing))]`), `eviction_report` and `reclaim_expired`
//! calls with digests from a pool of at most 64 (taken from the input, or `Table::digest` of
//! bytes from it), peers (mostly 0 to 3, sometimes any), timeouts, and times that mostly move
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
//!   header (`learned`: a new entry, an entry learned again for another peer, or learned again
//!   after it expired), and `eviction_report` at most once a minute; `reclaim_expired` drops
//!   at most `max` expired entries from the old ends of probation, then protected, and stops
//!   early only at a live tail;
//! - sessions per server: the model keeps the servers that hold a slot (at most `nslots`, a
//!   slot whose server has no session left is free again; 0 counts as 1) and `untracked`;
//!   `sessions_of` of every peer used equals the model, which equals the live entries of that
//!   peer unless the peer is short of some (untracked ones); the shortfalls add up to
//!   `untracked`, the slots' sessions plus `untracked` to the live entries; no identity has
//!   two slots and every slot is on its identity's probe sequence with no empty slot before
//!   it;
//! - the block's structure: both recency lists doubly linked from `head` to `tail` with their
//!   `len`, list bits and used bits; every live entry in the chain of its bucket and in no
//!   other; the free list, the never-used part and the live entries account for `used`; the
//!   block's records (`tally`) stay zero.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use core::sync::atomic::Ordering::Relaxed;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use socketio_sticky_fuzz::block::Block;
use socketio_sticky_fuzz::logic::table::{
    expired, layout, slots_for, Entry, Evictions, Header, Learned, Parts, Slot, Table,
    BYTES_PER_SESSION, MAGIC, NIL,
};
use socketio_sticky_fuzz::logic::tally::Record;

const HEADER_SIZE: usize = core::mem::size_of::<Header>();
const SLOT_SIZE: usize = 16;
const RECORD_SIZE: usize = 72;
/// `slots_for`: one slot (and one record) per 8 KiB, a power of two from 32 to 4,096.
const BYTES_PER_SLOT: usize = 8192;
const MIN_SLOTS: usize = 32;
const MAX_SLOTS: usize = 4096;
const _: () = assert!(core::mem::size_of::<Slot>() == SLOT_SIZE);
const _: () = assert!(core::mem::size_of::<Record>() == RECORD_SIZE);
/// The longest probe sequence of the slots (`table::MAX_PROBE`): with at most this many
/// slots, a server finds a free slot whenever there is one, as the model assumes.
const MAX_PROBE: usize = 64;

trait Mem {
    fn parts(&mut self) -> Parts<'_>;
    /// The records after the slots: the table leaves them alone.
    fn records_untouched(&mut self) -> bool {
        true
    }
}

impl Mem for Block {
    fn parts(&mut self) -> Parts<'_> {
        Block::parts(self).0
    }
    fn records_untouched(&mut self) -> bool {
        Block::parts(self)
            .1
            .iter()
            .all(|r| r.key.load(Relaxed) == 0 && r.values() == [0; 8])
    }
}

/// Separate vectors: any bucket count, any slot count.
struct Vecs {
    hdr: Header,
    buckets: Vec<u32>,
    entries: Vec<Entry>,
    slots: Vec<Slot>,
}

impl Mem for Vecs {
    fn parts(&mut self) -> Parts<'_> {
        Parts {
            hdr: &mut self.hdr,
            buckets: &mut self.buckets,
            entries: &mut self.entries,
            slots: &mut self.slots,
        }
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
    learned: u64,
    /// Servers (identity, 0 counted as 1) holding a slot, with their sessions (never 0: a
    /// slot whose server holds no session is free for another one).
    slots: BTreeMap<u64, u32>,
    nslots: usize,
    nrecords: usize,
    /// Sessions counted in no slot.
    untracked: u64,
}

impl Model {
    /// One more session of `peer`: in its slot, in a free slot, or untracked when every slot
    /// holds sessions of other servers.
    fn count_in(&mut self, peer: u64) {
        let id = peer.max(1);
        if let Some(s) = self.slots.get_mut(&id) {
            *s += 1;
        } else if self.slots.len() < self.nslots {
            self.slots.insert(id, 1);
        } else {
            self.untracked += 1;
        }
    }

    /// One session of `peer` less: from its slot if it has one, else from `untracked`.
    fn count_out(&mut self, peer: u64) {
        let id = peer.max(1);
        match self.slots.get_mut(&id) {
            Some(s) => {
                *s -= 1;
                if *s == 0 {
                    self.slots.remove(&id);
                }
            }
            None => {
                self.untracked = self
                    .untracked
                    .checked_sub(1)
                    .expect("model: a session of a server without slot, none untracked");
            }
        }
    }

    /// The sessions a slot holds for `peer`.
    fn sessions_of(&self, peer: u64) -> u64 {
        self.slots.get(&peer.max(1)).map_or(0, |&s| u64::from(s))
    }

    /// The entry at `(l, i)` leaves the table.
    fn drop_at(&mut self, l: usize, i: usize) -> E {
        let e = self.lists[l].remove(i);
        self.count_out(e.peer);
        e
    }

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
            self.drop_at(l, i);
            self.expired += 1;
            return None;
        }
        self.touch(l, i, now);
        Some(peer)
    }

    fn forget(&mut self, d: u64) -> bool {
        match self.find(d) {
            Some((l, i)) => {
                self.drop_at(l, i);
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
            let live = !expired(last, now, timeout);
            if old != peer || !live {
                self.learned += 1;
            }
            if old != peer {
                self.count_out(old);
                self.count_in(peer);
            }
            if !live {
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
                        self.drop_at(l, self.lists[l].len() - 1);
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
            let victim = self.drop_at(l, self.lists[l].len() - 1);
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
        self.learned += 1;
        self.count_in(peer);
        Learned::New
    }

    /// Expired entries from the old end of probation, then of protected, at most `max`.
    fn reclaim_expired(&mut self, now: u32, timeout: u32, max: usize) -> usize {
        let mut n = 0;
        for l in [PROBATION, PROTECTED] {
            while n < max {
                match self.lists[l].last() {
                    Some(e) if expired(e.last, now, timeout) => {
                        self.drop_at(l, self.lists[l].len() - 1);
                        self.expired += 1;
                        n += 1;
                    }
                    _ => break,
                }
            }
        }
        n
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
        assert_eq!(h.learned, self.learned, "learned");
        assert_eq!(h.untracked, self.untracked, "untracked");
        assert_eq!(h.nslots as usize, self.nslots, "nslots");
        assert_eq!(h.nrecords as usize, self.nrecords, "nrecords");
    }

    /// Live entries per server identity (0 counted as 1).
    fn live_per_server(&self) -> HashMap<u64, u64> {
        let mut m = HashMap::new();
        for e in self.lists.iter().flatten() {
            *m.entry(e.peer.max(1)).or_insert(0) += 1;
        }
        m
    }

    /// `Table::sessions_of` for every peer used (and a few never used) against the model
    /// and the live entries.
    fn check_sessions(&self, t: &Table, peers: &BTreeSet<u64>) {
        let live = self.live_per_server();
        let mut short = 0;
        for &p in peers.iter().chain(&[0, 1, 2, 3, u64::MAX]) {
            let got = t.sessions_of(p);
            assert_eq!(got, self.sessions_of(p), "sessions_of({p})");
            assert_eq!(
                got,
                t.sessions_of(p.max(1)),
                "sessions_of(0) != sessions_of(1)"
            );
            let n = live.get(&p.max(1)).copied().unwrap_or(0);
            // Exact unless some of its sessions are untracked.
            assert!(got <= n, "sessions_of({p}) = {got}, {n} live");
            if got < n {
                assert!(
                    self.untracked >= n - got,
                    "{p} short of {} sessions",
                    n - got
                );
            }
            if self.untracked == 0 {
                assert_eq!(got, n, "sessions_of({p}) with nothing untracked");
            }
        }
        for (&id, &n) in &live {
            let got = t.sessions_of(id);
            assert!(got <= n, "sessions_of({id}) = {got}, {n} live");
            short += n - got;
        }
        assert_eq!(
            short, self.untracked,
            "shortfalls of the servers != untracked"
        );
    }

    /// The slots of the block: the model's servers and sessions, one slot per identity, each
    /// on its identity's probe sequence with no empty slot before it.
    fn check_slots(&self, hdr: &Header, slots: &[Slot]) {
        let n = slots.len();
        let mut ids = HashSet::new();
        let mut held = BTreeMap::new();
        let mut sum = 0u64;
        for (at, s) in slots.iter().enumerate() {
            assert_eq!(s.reserved, 0, "slot {at}: reserved");
            if s.identity == 0 {
                assert_eq!(s.sessions, 0, "empty slot {at} with sessions");
                continue;
            }
            assert!(ids.insert(s.identity), "two slots for {}", s.identity);
            sum += u64::from(s.sessions);
            if s.sessions > 0 {
                held.insert(s.identity, s.sessions);
            }
            let start = ((u128::from(s.identity) * n as u128) >> 64) as usize;
            let dist = (at + n - start) % n;
            assert!(
                dist < MAX_PROBE.min(n),
                "slot {at} beyond the probe sequence"
            );
            for k in 0..dist {
                assert_ne!(slots[(start + k) % n].identity, 0, "empty slot before {at}");
            }
        }
        assert_eq!(held, self.slots, "servers and sessions of the slots");
        assert_eq!(
            sum + hdr.untracked,
            self.live() as u64,
            "slots + untracked != live entries"
        );
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

    let small = usize::from(u.arbitrary::<u16>()? % 8192);
    check_layout(small);
    // Past the fixed part of a small block (header, slots, records): 0 to 227 entries.
    let fixed = HEADER_SIZE + 8 + slots_for(0) * (SLOT_SIZE + RECORD_SIZE);
    let bytes = fixed + small;
    check_layout(bytes);
    let Some(l) = layout(bytes) else {
        assert!(small < BYTES_PER_SESSION, "no layout for {bytes} bytes");
        return Ok(());
    };
    let key: [u64; 2] = u.arbitrary()?;
    let (mut mem, nslots, nrecords): (Box<dyn Mem>, usize, usize) = if u.arbitrary::<u8>()? < 192 {
        (Box::new(Block::new(l)), l.nslots, l.nrecords)
    } else {
        let nb = 1 + usize::from(u.arbitrary::<u8>()?) % (2 * l.capacity);
        // Mostly fewer slots than servers may come (peers 0 to 3 and any), sometimes the most
        // the model can follow.
        let nslots = match u.arbitrary::<u8>()? {
            x @ 0..=223 => usize::from(x % 9),
            _ => MAX_PROBE,
        };
        let nrecords = match u.arbitrary::<u8>()? {
            0..=191 => usize::from(u.arbitrary::<u16>()?),
            192..=254 => u.arbitrary::<u32>()? as usize,
            255 => u.arbitrary()?,
        };
        let slot = Slot {
            identity: 0x5a5a,
            sessions: 7,
            reserved: 0,
        };
        (
            Box::new(Vecs {
                hdr: Header::default(),
                buckets: vec![0x5a5a_5a5a; nb],
                entries: vec![Entry::default(); l.capacity],
                slots: vec![slot; nslots],
            }),
            nslots,
            nrecords,
        )
    };
    // The model's slots assume a probe sequence that reaches every slot.
    assert!(
        nslots <= MAX_PROBE,
        "{nslots} slots: the model needs at most {MAX_PROBE}"
    );
    let protected_max = {
        let Some(t) = Table::format(mem.parts(), nrecords, key) else {
            assert!(u32::try_from(nrecords).is_err(), "format failed");
            return Ok(());
        };
        assert!(
            u32::try_from(nrecords).is_ok(),
            "format took {nrecords} records"
        );
        assert_eq!(t.live(), 0);
        for p in [0, 1, 2, 3, u64::MAX] {
            assert_eq!(t.sessions_of(p), 0);
        }
        t.protected_max() as usize
    };
    let parts = mem.parts();
    assert_eq!(parts.hdr.learned, 0);
    assert_eq!(parts.hdr.untracked, 0);
    assert_eq!(parts.hdr.nslots as usize, nslots);
    assert_eq!(parts.hdr.nrecords as usize, nrecords);
    assert!(
        parts.slots.iter().all(|s| *s == Slot::default()),
        "slots not cleared"
    );
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
            let t = Table::open(mem.parts()).expect("open");
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
        nslots,
        nrecords,
        ..Model::default()
    };
    let mut peers = BTreeSet::new();

    for _ in 0..4096 {
        if u.is_empty() {
            break;
        }
        let op: u8 = u.arbitrary()?;
        let d = pool[usize::from(u.arbitrary::<u8>()?) % pool.len()];
        now = time(u, now)?;
        let parts = mem.parts();
        let last_warn_before = parts.hdr.last_warn;
        let mut t = Table::open(parts).expect("a formatted block opens");
        assert_eq!(t.protected_max() as usize, model.protected_max);
        match op % 9 {
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
                peers.insert(peer);
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
            7 => {
                assert_eq!(
                    t.eviction_report(now),
                    model.eviction_report(now),
                    "report at {now}"
                );
            }
            _ => {
                // As a status request sweeps (at most `SWEEP_MAX`), or without bound.
                let max = match u.arbitrary::<u8>()? {
                    x @ 0..=191 => usize::from(x % 8),
                    192..=254 => usize::MAX,
                    255 => u.arbitrary()?,
                };
                let tmo = match u.arbitrary::<u8>()? {
                    0..=223 => timeout,
                    x => u32::from(x % 16),
                };
                let expired_before = t.header().expired;
                let got = t.reclaim_expired(now, tmo, max);
                assert!(got <= max, "reclaimed {got}, at most {max}");
                assert_eq!(t.header().expired - expired_before, got as u64);
                let want = model.reclaim_expired(now, tmo, max);
                assert_eq!(got, want, "reclaim_expired({now}, {tmo}, {max})");
                // Short of `max`: both old ends are live (or the lists empty).
                if got < max {
                    for l in &model.lists {
                        if let Some(e) = l.last() {
                            assert!(!expired(e.last, now, tmo), "an expired tail stayed");
                        }
                    }
                }
            }
        }
        assert_eq!(t.live(), model.live());
        model.check_header(t.header());
        model.check_sessions(&t, &peers);
        drop(t);
        let Parts {
            hdr,
            buckets,
            entries,
            slots,
        } = mem.parts();
        let lists = structure(hdr, buckets, entries);
        assert_eq!(lists, model.lists, "table and model differ");
        assert!(
            lists[PROTECTED].len() <= model.protected_max,
            "protected beyond its share"
        );
        assert!(model.live() <= l.capacity);
        model.check_header(hdr);
        model.check_slots(hdr, slots);
        assert_eq!(hdr.key, key, "the key changed");
    }
    assert!(mem.records_untouched(), "the table wrote into the records");
    Ok(())
}

/// Slots (and records) for a block of `bytes`, as `slots_for` documents it: one per
/// `BYTES_PER_SLOT`, a power of two from `MIN_SLOTS` to `MAX_SLOTS`.
fn naive_slots(bytes: usize) -> usize {
    let mut n = 1;
    while n < bytes / BYTES_PER_SLOT {
        n *= 2;
    }
    n.clamp(MIN_SLOTS, MAX_SLOTS)
}

fn check_layout(bytes: usize) {
    let nslots = naive_slots(bytes);
    assert_eq!(slots_for(bytes), nslots, "slots_for({bytes})");
    assert!(nslots.is_power_of_two());
    // The fixed part: the header, alignment, the slots and the records.
    let fixed = HEADER_SIZE + 8 + nslots * (SLOT_SIZE + RECORD_SIZE);
    let min = fixed + BYTES_PER_SESSION;
    match layout(bytes) {
        None => assert!(bytes < min, "no layout for {bytes} bytes"),
        Some(l) => {
            assert!(bytes >= min, "a layout for {bytes} bytes");
            assert!(l.capacity >= 1 && l.capacity < NIL as usize);
            assert_eq!(l.buckets_offset, HEADER_SIZE);
            assert_eq!(l.entries_offset % 8, 0);
            assert!(l.entries_offset >= l.buckets_offset + 4 * l.capacity);
            assert!(l.entries_offset < l.buckets_offset + 4 * l.capacity + 8);
            assert_eq!(
                (l.nslots, l.nrecords),
                (nslots, nslots),
                "slots and records"
            );
            assert_eq!(l.slots_offset, l.entries_offset + 32 * l.capacity);
            assert_eq!(l.slots_offset % 8, 0);
            assert_eq!(l.records_offset, l.slots_offset + SLOT_SIZE * l.nslots);
            assert_eq!(l.records_offset % 8, 0);
            assert_eq!(l.total, l.records_offset + RECORD_SIZE * l.nrecords);
            assert!(l.total <= bytes, "layout of {bytes} bytes uses {}", l.total);
            // As many sessions as fit beside the fixed part (up to the index limit).
            if l.capacity < NIL as usize - 1 {
                assert!(
                    fixed + (l.capacity + 1) * BYTES_PER_SESSION > bytes,
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
