//! The table of learned sessions: `digest(sid) -> peer identity`, laid out in one block of
//! shared memory that every worker maps.
//!
//! Layout (all indices, no pointers, so the block means the same in every process):
//! a [`Header`], then `nbuckets` bucket heads (`u32`), then `capacity` [`Entry`]s of 32 bytes.
//! There is one bucket per entry, so chains stay short. Entries sit on two lists: their
//! bucket's chain (`hnext`) and one doubly linked recency list (`prev`/`next`, most recently
//! used at `head`, at a resolution of one second). Unused entries are handed out in order (`used`), freed ones go on a free
//! list (through `hnext`). When every entry is taken the least recently used one is reused, so
//! inserting never fails.
//!
//! The key is a keyed 64-bit digest of the session id (`hash::sid_digest`, a multiply-fold
//! hash) under a random 128-bit key chosen when the zone is created; the id itself is never
//! stored. With `n` entries, the chance that an
//! unknown id matches some entry is about `n / 2^64` per lookup (5e-14 at a million entries)
//! and the chance that two live ids share a digest is about `n^2 / 2^65` (3e-8 at a million).
//!
//! Every walk is bounded and every index is checked, so a corrupted block (a worker killed in
//! the middle of an update) gives wrong answers at worst, never a crash or an endless loop.

use super::hash::sid_digest;

/// "No entry".
pub const NIL: u32 = u32::MAX;
/// Format tag of the block; a zone kept over a reload is reused only when it matches.
pub const MAGIC: u64 = 0x736f_636b_7374_0003;
/// Longest bucket chain walked; chains of random digests are far shorter.
const MAX_CHAIN: usize = 64;

/// One learned session (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// Keyed digest of the session id.
    pub digest: u64,
    /// Identity of the peer (`hash::peer_identity`).
    pub peer: u64,
    /// When it was learned or last used (seconds).
    pub last: u32,
    /// Next entry of the same bucket, or of the free list.
    pub hnext: u32,
    /// Recency list: the more recently used neighbour.
    pub prev: u32,
    /// Recency list: the less recently used neighbour.
    pub next: u32,
}

/// The block's header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Header {
    pub magic: u64,
    pub key: [u64; 2],
    pub capacity: u32,
    pub nbuckets: u32,
    /// Entries handed out so far from the never-used part.
    pub used: u32,
    /// Head of the free list.
    pub free: u32,
    /// Live entries.
    pub count: u32,
    /// Most recently used entry.
    pub head: u32,
    /// Least recently used entry.
    pub tail: u32,
    /// When the last "same session id from two backends" warning was logged.
    pub last_warn: u32,
    /// Session ids learned from a second backend while the first entry was live.
    pub collisions: u64,
    /// Live entries dropped because the table was full.
    pub evictions: u64,
    /// Entries dropped because they expired.
    pub expired: u64,
}

/// Where the parts of a block of a given size go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub capacity: usize,
    pub buckets_offset: usize,
    pub entries_offset: usize,
    /// Bytes used, at most the block size.
    pub total: usize,
}

const HEADER_SIZE: usize = core::mem::size_of::<Header>();
const ENTRY_SIZE: usize = core::mem::size_of::<Entry>();

/// Bytes of table per session: one entry and one bucket head.
pub const BYTES_PER_SESSION: usize = ENTRY_SIZE + 4;

/// The layout for a block of `bytes` bytes (8-byte aligned), or `None` if not even one
/// entry fits or the capacity would not fit the 32-bit indices.
pub fn layout(bytes: usize) -> Option<Layout> {
    let room = bytes.checked_sub(HEADER_SIZE + 8)?;
    let capacity = (room / BYTES_PER_SESSION).min(NIL as usize - 1);
    if capacity == 0 {
        return None;
    }
    let buckets_offset = HEADER_SIZE;
    let entries_offset = (buckets_offset + capacity * 4).next_multiple_of(8);
    let total = entries_offset + capacity * ENTRY_SIZE;
    (total <= bytes).then_some(Layout {
        capacity,
        buckets_offset,
        entries_offset,
        total,
    })
}

/// Result of [`Table::learn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// A new entry.
    New,
    /// The id was already there for the same peer (refreshed).
    Same,
    /// The id was live for another peer: now it names the new one. `warn` is true at most
    /// once a minute (the caller logs then); `total` counts such events.
    Replaced { warn: bool, total: u64 },
}

/// A view of a formatted block.
pub struct Table<'a> {
    hdr: &'a mut Header,
    buckets: &'a mut [u32],
    entries: &'a mut [Entry],
}

impl<'a> Table<'a> {
    /// Formats a block: empty table, digest key `key`.
    pub fn format(
        hdr: &'a mut Header,
        buckets: &'a mut [u32],
        entries: &'a mut [Entry],
        key: [u64; 2],
    ) -> Option<Table<'a>> {
        let capacity = u32::try_from(entries.len()).ok().filter(|&c| c < NIL)?;
        let nbuckets = u32::try_from(buckets.len()).ok().filter(|&c| c > 0)?;
        *hdr = Header {
            magic: MAGIC,
            key,
            capacity,
            nbuckets,
            used: 0,
            free: NIL,
            count: 0,
            head: NIL,
            tail: NIL,
            last_warn: 0,
            collisions: 0,
            evictions: 0,
            expired: 0,
        };
        buckets.fill(NIL);
        Some(Table {
            hdr,
            buckets,
            entries,
        })
    }

    /// A view of an already formatted block, if its header matches the slices.
    pub fn open(
        hdr: &'a mut Header,
        buckets: &'a mut [u32],
        entries: &'a mut [Entry],
    ) -> Option<Table<'a>> {
        (hdr.magic == MAGIC
            && hdr.capacity as usize == entries.len()
            && hdr.nbuckets as usize == buckets.len()
            && !buckets.is_empty())
        .then_some(Table {
            hdr,
            buckets,
            entries,
        })
    }

    /// The keyed digest of a session id.
    #[inline]
    pub fn digest(&self, sid: &[u8]) -> u64 {
        sid_digest(self.hdr.key[0], self.hdr.key[1], sid)
    }

    /// Live entries (expired ones count until they are met).
    pub fn live(&self) -> usize {
        self.hdr.count as usize
    }

    #[cfg(test)]
    pub fn header(&self) -> &Header {
        self.hdr
    }

    /// The peer learned for `digest`, refreshing the entry; an expired entry is dropped.
    #[inline]
    pub fn lookup(&mut self, digest: u64, now: u32, timeout: u32) -> Option<u64> {
        let (index, _) = self.find(digest)?;
        let e = *self.entries.get(index as usize)?;
        if expired(e.last, now, timeout) {
            self.remove(index);
            self.hdr.expired += 1;
            return None;
        }
        self.touch(index, now);
        Some(e.peer)
    }

    /// Stores `digest -> peer` as the most recently used entry.
    pub fn learn(&mut self, digest: u64, peer: u64, now: u32, timeout: u32) -> Learned {
        if let Some((index, _)) = self.find(digest) {
            let Some(e) = self.entries.get_mut(index as usize) else {
                return Learned::New;
            };
            let live = !expired(e.last, now, timeout);
            let old = e.peer;
            e.peer = peer;
            self.touch(index, now);
            if !live || old == peer {
                return if live { Learned::Same } else { Learned::New };
            }
            self.hdr.collisions += 1;
            let warn = self.hdr.last_warn == 0 || now.wrapping_sub(self.hdr.last_warn) >= 60;
            if warn {
                self.hdr.last_warn = now.max(1);
            }
            return Learned::Replaced {
                warn,
                total: self.hdr.collisions,
            };
        }

        // Expired entries at the old end go first, a couple per insertion.
        for _ in 0..2 {
            let tail = self.hdr.tail;
            match self.entries.get(tail as usize) {
                Some(e) if expired(e.last, now, timeout) => {
                    self.remove(tail);
                    self.hdr.expired += 1;
                }
                _ => break,
            }
        }

        let Some(index) = self.allocate() else {
            return Learned::New;
        };
        let bucket = self.bucket(digest);
        let chain = self.buckets.get(bucket).copied().unwrap_or(NIL);
        if let Some(e) = self.entries.get_mut(index as usize) {
            *e = Entry {
                digest,
                peer,
                last: now,
                hnext: chain,
                prev: NIL,
                next: NIL,
            };
        }
        if let Some(b) = self.buckets.get_mut(bucket) {
            *b = index;
        }
        self.push_front(index);
        self.hdr.count += 1;
        Learned::New
    }

    /// Drops the entry of `digest`, if any.
    #[cfg(test)]
    pub fn forget(&mut self, digest: u64) -> bool {
        match self.find(digest) {
            Some((index, _)) => {
                self.remove(index);
                true
            }
            None => false,
        }
    }

    #[inline]
    fn bucket(&self, digest: u64) -> usize {
        // Range reduction by multiplication: uniform for uniform digests, no division.
        ((u128::from(digest) * self.buckets.len() as u128) >> 64) as usize
    }

    /// The entry of `digest` and its predecessor in the bucket chain (NIL when first).
    #[inline]
    fn find(&self, digest: u64) -> Option<(u32, u32)> {
        let mut prev = NIL;
        let mut index = *self.buckets.get(self.bucket(digest))?;
        for _ in 0..MAX_CHAIN {
            let e = self.entries.get(index as usize)?;
            if e.digest == digest {
                return Some((index, prev));
            }
            prev = index;
            index = e.hnext;
        }
        None
    }

    /// A free entry: from the free list, the never-used part, or the least recently used.
    fn allocate(&mut self) -> Option<u32> {
        let free = self.hdr.free;
        if let Some(e) = self.entries.get(free as usize) {
            self.hdr.free = e.hnext;
            return Some(free);
        }
        if self.hdr.used < self.hdr.capacity {
            self.hdr.used += 1;
            return Some(self.hdr.used - 1);
        }
        let tail = self.hdr.tail;
        self.entries.get(tail as usize)?;
        self.remove(tail);
        self.hdr.evictions += 1;
        let free = self.hdr.free;
        let e = self.entries.get(free as usize)?;
        self.hdr.free = e.hnext;
        Some(free)
    }

    /// Unlinks an entry from its bucket and the recency list and frees it.
    fn remove(&mut self, index: u32) {
        let Some(e) = self.entries.get(index as usize).copied() else {
            return;
        };
        // Bucket chain.
        let bucket = self.bucket(e.digest);
        let mut prev = NIL;
        let mut cur = self.buckets.get(bucket).copied().unwrap_or(NIL);
        for _ in 0..MAX_CHAIN {
            if cur == index || cur == NIL {
                break;
            }
            prev = cur;
            cur = self.entries.get(cur as usize).map_or(NIL, |c| c.hnext);
        }
        if cur == index {
            if prev == NIL {
                if let Some(b) = self.buckets.get_mut(bucket) {
                    *b = e.hnext;
                }
            } else if let Some(p) = self.entries.get_mut(prev as usize) {
                p.hnext = e.hnext;
            }
        }
        self.unlink(index);
        if let Some(x) = self.entries.get_mut(index as usize) {
            *x = Entry {
                hnext: self.hdr.free,
                prev: NIL,
                next: NIL,
                ..Entry::default()
            };
        }
        self.hdr.free = index;
        self.hdr.count = self.hdr.count.saturating_sub(1);
    }

    /// Marks an entry used now: it becomes the most recently used. Recency has a resolution of
    /// one second: an entry already used in this second keeps its place.
    fn touch(&mut self, index: u32, now: u32) {
        let Some(e) = self.entries.get_mut(index as usize) else {
            return;
        };
        if e.last == now {
            return;
        }
        e.last = now;
        if self.hdr.head != index {
            self.unlink(index);
            self.push_front(index);
        }
    }

    fn unlink(&mut self, index: u32) {
        let Some(e) = self.entries.get(index as usize).copied() else {
            return;
        };
        match self.entries.get_mut(e.prev as usize) {
            Some(p) => p.next = e.next,
            None => {
                if self.hdr.head == index {
                    self.hdr.head = e.next;
                }
            }
        }
        match self.entries.get_mut(e.next as usize) {
            Some(n) => n.prev = e.prev,
            None => {
                if self.hdr.tail == index {
                    self.hdr.tail = e.prev;
                }
            }
        }
        if let Some(x) = self.entries.get_mut(index as usize) {
            x.prev = NIL;
            x.next = NIL;
        }
    }

    fn push_front(&mut self, index: u32) {
        let head = self.hdr.head;
        if let Some(x) = self.entries.get_mut(index as usize) {
            x.prev = NIL;
            x.next = head;
        }
        match self.entries.get_mut(head as usize) {
            Some(h) => h.prev = index,
            None => self.hdr.tail = index,
        }
        self.hdr.head = index;
    }

    /// Entries from most to least recently used (bounded by the capacity), for tests.
    #[cfg(test)]
    fn recency(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = self.hdr.head;
        while let Some(e) = self.entries.get(i as usize) {
            out.push(i);
            if out.len() > self.entries.len() {
                break;
            }
            i = e.next;
        }
        out
    }
}

/// Whether an entry last used at `last` has expired at `now`: more than `timeout` seconds
/// have passed. A clock that went back expires nothing.
#[inline]
pub fn expired(last: u32, now: u32, timeout: u32) -> bool {
    i64::from(now) - i64::from(last) > i64::from(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Block {
        hdr: Header,
        buckets: Vec<u32>,
        entries: Vec<Entry>,
    }

    impl Block {
        fn new(capacity: usize) -> Block {
            let mut b = Block {
                hdr: Header::default(),
                buckets: vec![0; capacity],
                entries: vec![Entry::default(); capacity],
            };
            Table::format(&mut b.hdr, &mut b.buckets, &mut b.entries, [7, 9]).unwrap();
            b
        }
        fn table(&mut self) -> Table<'_> {
            Table::open(&mut self.hdr, &mut self.buckets, &mut self.entries).unwrap()
        }
    }

    fn sid(i: usize) -> Vec<u8> {
        format!("sid-{i:08}").into_bytes()
    }

    #[test]
    fn layout_density() {
        assert_eq!(ENTRY_SIZE, 32);
        let l = layout(1 << 20).unwrap();
        assert!(l.capacity >= 29_000, "{}", l.capacity);
        assert!(l.total <= 1 << 20);
        assert_eq!(l.entries_offset % 8, 0);
        assert!(layout(HEADER_SIZE).is_none());
        assert!(layout(0).is_none());
        let small = layout(HEADER_SIZE + 8 + BYTES_PER_SESSION).unwrap();
        assert_eq!(small.capacity, 1);
        assert!(small.total <= HEADER_SIZE + 8 + BYTES_PER_SESSION);
    }

    #[test]
    fn learn_and_lookup() {
        let mut b = Block::new(1000);
        let mut t = b.table();
        for i in 0..1000 {
            let d = t.digest(&sid(i));
            assert_eq!(t.learn(d, i as u64, 100, 600), Learned::New);
        }
        assert_eq!(t.live(), 1000);
        for i in 0..1000 {
            let d = t.digest(&sid(i));
            assert_eq!(t.lookup(d, 101, 600), Some(i as u64), "{i}");
        }
        assert_eq!(t.lookup(t.digest(b"unknown"), 101, 600), None);
        let d = t.digest(&sid(5));
        assert_eq!(t.learn(d, 5, 102, 600), Learned::Same);
        assert_eq!(t.live(), 1000);
    }

    #[test]
    fn digest_is_keyed() {
        let mut a = Block::new(4);
        let mut b = Block::new(4);
        b.hdr.key = [8, 9];
        assert_ne!(a.table().digest(b"x"), b.table().digest(b"x"));
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut b = Block::new(3);
        let mut t = b.table();
        let d: Vec<u64> = (0..5).map(|i| t.digest(&sid(i))).collect();
        t.learn(d[0], 0, 10, 600);
        t.learn(d[1], 1, 11, 600);
        t.learn(d[2], 2, 12, 600);
        // Using 0 makes 1 the oldest.
        assert_eq!(t.lookup(d[0], 13, 600), Some(0));
        assert_eq!(t.learn(d[3], 3, 14, 600), Learned::New);
        assert_eq!(t.lookup(d[1], 15, 600), None);
        assert_eq!(t.lookup(d[0], 15, 600), Some(0));
        assert_eq!(t.lookup(d[2], 15, 600), Some(2));
        assert_eq!(t.lookup(d[3], 15, 600), Some(3));
        assert_eq!(t.header().evictions, 1);
        assert_eq!(t.live(), 3);
        assert_eq!(t.recency().len(), 3);
    }

    #[test]
    fn never_fails_when_full() {
        let mut b = Block::new(100);
        let mut t = b.table();
        for i in 0..10_000 {
            let d = t.digest(&sid(i));
            assert_eq!(
                t.learn(d, i as u64, 1000 + (i / 100) as u32, 600),
                Learned::New
            );
            assert_eq!(t.lookup(d, 1000 + (i / 100) as u32, 600), Some(i as u64));
        }
        assert_eq!(t.live(), 100);
        // Exactly the last 100 survive.
        for i in 0..10_000 {
            let found = t.lookup(t.digest(&sid(i)), 1100, 600).is_some();
            assert_eq!(found, i >= 9_900, "{i}");
        }
        assert_eq!(t.header().evictions, 9_900);
    }

    #[test]
    fn expiry() {
        let mut b = Block::new(10);
        let mut t = b.table();
        let d = t.digest(b"a");
        t.learn(d, 1, 100, 5);
        assert_eq!(t.lookup(d, 105, 5), Some(1)); // 5 s idle: still there, refreshed
        assert_eq!(t.lookup(d, 110, 5), Some(1));
        assert_eq!(t.lookup(d, 116, 5), None); // 6 s idle: gone
        assert_eq!(t.live(), 0);
        assert_eq!(t.header().expired, 1);
        // A clock going back expires nothing.
        t.learn(d, 1, 200, 5);
        assert_eq!(t.lookup(d, 150, 5), Some(1));
        // Expired entries at the old end are reclaimed by insertions.
        let mut b = Block::new(10);
        let mut t = b.table();
        for i in 0..5 {
            t.learn(t.digest(&sid(i)), 0, 100, 5);
        }
        t.learn(t.digest(b"new"), 0, 200, 5);
        assert_eq!(t.live(), 4);
        assert_eq!(t.header().expired, 2);
        // An expired id learned again is new, not a collision.
        let d = t.digest(&sid(4));
        assert_eq!(t.learn(d, 9, 300, 5), Learned::New);
        assert_eq!(t.header().collisions, 0);
    }

    #[test]
    fn colliding_ids_keep_the_newest_and_warn_once_a_minute() {
        let mut b = Block::new(10);
        let mut t = b.table();
        let d = t.digest(b"1");
        t.learn(d, 1, 1000, 600);
        assert_eq!(
            t.learn(d, 2, 1001, 600),
            Learned::Replaced {
                warn: true,
                total: 1
            }
        );
        assert_eq!(t.lookup(d, 1002, 600), Some(2));
        assert_eq!(
            t.learn(d, 1, 1030, 600),
            Learned::Replaced {
                warn: false,
                total: 2
            }
        );
        assert_eq!(
            t.learn(d, 2, 1061, 600),
            Learned::Replaced {
                warn: true,
                total: 3
            }
        );
        assert_eq!(t.live(), 1);
    }

    #[test]
    fn removal_keeps_lists_consistent() {
        let mut b = Block::new(64);
        let mut t = b.table();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut live = std::collections::HashMap::new();
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = (x % 200) as usize;
            let d = t.digest(&sid(key));
            match x >> 62 {
                0 => {
                    if t.forget(d) {
                        live.remove(&key);
                    }
                }
                1 => {
                    let got = t.lookup(d, step, 1_000_000);
                    if let Some(p) = got {
                        assert_eq!(live.get(&key), Some(&p));
                    }
                }
                _ => {
                    t.learn(d, key as u64, step, 1_000_000);
                    live.insert(key, key as u64);
                }
            }
            assert_eq!(t.recency().len(), t.live());
            assert!(t.live() <= 64);
        }
    }

    #[test]
    fn corrupted_block_is_survivable() {
        let mut b = Block::new(16);
        {
            let mut t = b.table();
            for i in 0..16 {
                t.learn(t.digest(&sid(i)), 0, 1, 600);
            }
        }
        // Cycles and wild indices everywhere.
        for (i, e) in b.entries.iter_mut().enumerate() {
            e.hnext = (i as u32 * 7) % 19;
            e.next = i as u32;
            e.prev = 1_000_000;
        }
        b.buckets.iter_mut().for_each(|x| *x = 3);
        b.hdr.tail = 5;
        b.hdr.free = 12;
        let mut t = b.table();
        for i in 0..100 {
            let d = t.digest(&sid(i));
            let _ = t.lookup(d, 2, 600);
            let _ = t.learn(d, 1, 2, 600);
            let _ = t.forget(d);
        }
    }
}
