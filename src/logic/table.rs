//! The table of learned sessions: `digest(sid) -> peer identity`, laid out in one block of
//! shared memory that every worker maps.
//!
//! Layout (all indices, no pointers, so the block means the same in every process):
//! a [`Header`], then `nbuckets` bucket heads (`u32`), then `capacity` [`Entry`]s of 32 bytes,
//! then `nslots` [`Slot`]s (the sessions each server holds), then the records of the request
//! counters (`tally::Record`, read and written by `tally`). There is one bucket per entry, so
//! chains stay short. Unused entries are handed out in order (`used`), freed ones go on a free
//! list (through `hnext`).
//!
//! **Sessions per server are exact**: every change of an entry (learned, learned again for
//! another server, evicted, expired, forgotten) adjusts the slot of its server, found by open
//! addressing on the server's identity; a status request reads them in O(servers).
//!
//! **Two recency lists, so that a flood of handshakes cannot push out the sessions in use** (a
//! segmented LRU): a session learned from a handshake enters *probation*; the first request
//! that finds it moves it to *protected*, whose entries are moved to its front when used again
//! (at a resolution of one second). When every entry is taken, a new session evicts the least
//! recently used entry of probation: a handshake nobody followed up. Only while probation is
//! empty does it evict the least recently used protected session. Protected holds at most
//! 3/4 of the table (see [`Table::protected_max`]); beyond that, promoting an entry moves the
//! least recently used protected one back to probation, so that new sessions always have room
//! to live until their first request. Inserting never fails.
//!
//! The key is a keyed 64-bit digest of the session id (`hash::sid_digest`, a multiply-fold
//! hash) under a random 128-bit key chosen when the zone is created; the id itself is never
//! stored. With `n` entries, the chance that an unknown id matches some entry is about
//! `n / 2^64` per lookup (5e-14 at a million entries) and the chance that two live ids share a
//! digest is about `n^2 / 2^65` (3e-8 at a million).
//!
//! Every walk is bounded, every index is checked and every counter saturates, so a corrupted
//! block (a worker killed in the middle of an update) gives wrong answers at worst, never a
//! crash, an overflow or an endless loop.

use super::hash::{probe, sid_digest};
use super::tally::Record;

/// "No entry" (index fields hold 31 bits).
pub const NIL: u32 = 0x7fff_ffff;
/// The top bit of [`Entry::prev`]: the entry is in the protected list.
const PROTECTED: u32 = 0x8000_0000;
/// The top bit of [`Entry::next`]: the entry was used after it was learned (it stays set when
/// the entry goes back on probation).
const USED: u32 = 0x8000_0000;
/// Format tag of the block; a zone kept over a reload is reused only when it matches.
pub const MAGIC: u64 = 0x736f_636b_7374_0005;
/// Longest bucket chain walked; chains of random digests are far shorter.
const MAX_CHAIN: usize = 64;
/// Seconds between two log lines about the same kind of event.
const REPORT_EVERY: u32 = 60;

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
    /// Its recency list's more recently used neighbour; the top bit says which list
    /// (`PROTECTED`).
    pub prev: u32,
    /// Its recency list's less recently used neighbour; the top bit says whether it was used
    /// since it was learned (`USED`).
    pub next: u32,
}

impl Entry {
    fn prev_index(&self) -> u32 {
        self.prev & NIL
    }

    fn protected(&self) -> bool {
        self.prev & PROTECTED != 0
    }

    fn set_prev(&mut self, index: u32) {
        self.prev = (self.prev & PROTECTED) | (index & NIL);
    }

    fn next_index(&self) -> u32 {
        self.next & NIL
    }

    fn used(&self) -> bool {
        self.next & USED != 0
    }

    fn set_next(&mut self, index: u32) {
        self.next = (self.next & USED) | (index & NIL);
    }
}

/// The sessions of one server (16 bytes): identity 0 is an empty slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// The server's identity (`hash::peer_identity`; 0 is stored as 1).
    pub identity: u64,
    /// Entries of the table learned for it.
    pub sessions: u32,
    pub reserved: u32,
}

/// Longest probe sequence among the slots.
const MAX_PROBE: usize = 64;

/// One recency list: most recently used at `head`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct List {
    pub head: u32,
    pub tail: u32,
    pub len: u32,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
    len: 0,
};

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
    /// Probation (`[0]`: learned, not used since) and protected (`[1]`: used since).
    pub lists: [List; 2],
    /// When the last "same session id from two backends" warning was logged.
    pub last_warn: u32,
    /// When evictions were last reported.
    pub last_evict_report: u32,
    /// Session ids learned from a second backend while the first entry was live.
    pub collisions: u64,
    /// Live entries dropped because the table was full.
    pub evictions: u64,
    /// Of those, sessions that had been used after their handshake.
    pub evicted_used: u64,
    /// Entries dropped because they expired.
    pub expired: u64,
    /// `evictions` and `evicted_used` when evictions were last reported.
    pub evictions_reported: u64,
    pub evicted_used_reported: u64,
    /// Sessions learned: a new entry, an entry learned again for another server, or an
    /// expired entry learned again.
    pub learned: u64,
    /// Slots of servers.
    pub nslots: u32,
    /// Records of the request counters after the slots (`tally`).
    pub nrecords: u32,
    /// Entries whose server found no slot (all taken by other servers).
    pub untracked: u64,
}

const PROBATION: usize = 0;
const PROTECTED_LIST: usize = 1;

/// Where the parts of a block of a given size go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub capacity: usize,
    pub buckets_offset: usize,
    pub entries_offset: usize,
    pub nslots: usize,
    pub slots_offset: usize,
    pub nrecords: usize,
    pub records_offset: usize,
    /// Bytes used, at most the block size.
    pub total: usize,
}

const HEADER_SIZE: usize = core::mem::size_of::<Header>();
const ENTRY_SIZE: usize = core::mem::size_of::<Entry>();

/// Bytes of table per session: one entry and one bucket head.
pub const BYTES_PER_SESSION: usize = ENTRY_SIZE + 4;

const SLOT_SIZE: usize = core::mem::size_of::<Slot>();
const RECORD_SIZE: usize = core::mem::size_of::<Record>();

/// Slots (and records) for a block of `bytes`: one per 8 KiB, a power of two from 32 to
/// 4,096 (a 1m zone: 128 of each, 11 KiB of its 1,024; a 32k zone: 32). A zone's servers
/// need a slot each, and a record each per upstream, plus a record per upstream.
pub fn slots_for(bytes: usize) -> usize {
    (bytes / 8192).next_power_of_two().clamp(32, 4096)
}

/// The layout for a block of `bytes` bytes (8-byte aligned), or `None` if not even one
/// entry fits or the capacity would not fit the 31-bit indices.
pub fn layout(bytes: usize) -> Option<Layout> {
    let nslots = slots_for(bytes);
    let nrecords = nslots;
    let fixed = HEADER_SIZE + 8 + nslots * SLOT_SIZE + nrecords * RECORD_SIZE;
    let room = bytes.checked_sub(fixed)?;
    let capacity = (room / BYTES_PER_SESSION).min(NIL as usize - 1);
    if capacity == 0 {
        return None;
    }
    let buckets_offset = HEADER_SIZE;
    let entries_offset = (buckets_offset + capacity * 4).next_multiple_of(8);
    let slots_offset = entries_offset + capacity * ENTRY_SIZE;
    let records_offset = slots_offset + nslots * SLOT_SIZE;
    let total = records_offset + nrecords * RECORD_SIZE;
    (total <= bytes).then_some(Layout {
        capacity,
        buckets_offset,
        entries_offset,
        nslots,
        slots_offset,
        nrecords,
        records_offset,
        total,
    })
}

/// The parts of a block the table works on (the records are `tally`'s).
pub struct Parts<'a> {
    pub hdr: &'a mut Header,
    pub buckets: &'a mut [u32],
    pub entries: &'a mut [Entry],
    pub slots: &'a mut [Slot],
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

/// Evictions since the last report (see [`Table::eviction_report`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evictions {
    /// Sessions evicted since the last report.
    pub evicted: u64,
    /// Of those, sessions in use (used after their handshake).
    pub used: u64,
    /// Seconds since the last report (0 for the first one).
    pub seconds: u32,
}

/// A view of a formatted block.
pub struct Table<'a> {
    hdr: &'a mut Header,
    buckets: &'a mut [u32],
    entries: &'a mut [Entry],
    slots: &'a mut [Slot],
}

impl<'a> Table<'a> {
    /// Formats a block: empty table, digest key `key`, `nrecords` records after the slots
    /// (their bytes are the caller's to zero).
    pub fn format(parts: Parts<'a>, nrecords: usize, key: [u64; 2]) -> Option<Table<'a>> {
        let Parts {
            hdr,
            buckets,
            entries,
            slots,
        } = parts;
        let capacity = u32::try_from(entries.len()).ok().filter(|&c| c < NIL)?;
        let nbuckets = u32::try_from(buckets.len()).ok().filter(|&c| c > 0)?;
        let nslots = u32::try_from(slots.len()).ok()?;
        let nrecords = u32::try_from(nrecords).ok()?;
        *hdr = Header {
            magic: MAGIC,
            key,
            capacity,
            nbuckets,
            used: 0,
            free: NIL,
            lists: [EMPTY; 2],
            nslots,
            nrecords,
            ..Header::default()
        };
        buckets.fill(NIL);
        slots.fill(Slot::default());
        Some(Table {
            hdr,
            buckets,
            entries,
            slots,
        })
    }

    /// A view of an already formatted block, if its header matches the slices.
    pub fn open(parts: Parts<'a>) -> Option<Table<'a>> {
        let Parts {
            hdr,
            buckets,
            entries,
            slots,
        } = parts;
        (hdr.magic == MAGIC
            && hdr.capacity as usize == entries.len()
            && hdr.nbuckets as usize == buckets.len()
            && hdr.nslots as usize == slots.len()
            && !buckets.is_empty())
        .then_some(Table {
            hdr,
            buckets,
            entries,
            slots,
        })
    }

    /// The sessions the table holds for the server `identity`.
    pub fn sessions_of(&self, identity: u64) -> u64 {
        self.slot_of(identity)
            .and_then(|i| self.slots.get(i))
            .map_or(0, |s| u64::from(s.sessions))
    }

    /// The slot of `identity`, if it has one.
    fn slot_of(&self, identity: u64) -> Option<usize> {
        let id = identity.max(1);
        for at in probe(id, self.slots.len(), MAX_PROBE) {
            match self.slots.get(at)?.identity {
                x if x == id => return Some(at),
                0 => return None,
                _ => {}
            }
        }
        None
    }

    /// One more session for `identity` (its slot claimed now if it has none: an empty one,
    /// or one whose server holds no session any more; slots are never emptied, so a probe
    /// sequence never breaks).
    fn count_in(&mut self, identity: u64) {
        let id = identity.max(1);
        let at = self.slot_of(id).or_else(|| self.free_slot(id));
        match at.and_then(|at| self.slots.get_mut(at)) {
            Some(s) => {
                s.identity = id;
                s.sessions = s.sessions.saturating_add(1);
            }
            None => self.hdr.untracked = self.hdr.untracked.saturating_add(1),
        }
    }

    /// The first slot on `id`'s probe sequence that is empty or holds no session.
    fn free_slot(&self, id: u64) -> Option<usize> {
        probe(id, self.slots.len(), MAX_PROBE).find(|&at| {
            self.slots
                .get(at)
                .is_some_and(|s| s.identity == 0 || s.sessions == 0)
        })
    }

    /// One session less for `identity`.
    fn count_out(&mut self, identity: u64) {
        match self.slot_of(identity).and_then(|at| self.slots.get_mut(at)) {
            Some(s) if s.sessions > 0 => s.sessions -= 1,
            _ => self.hdr.untracked = self.hdr.untracked.saturating_sub(1),
        }
    }

    /// Drops expired entries from the old end of each list (at most `max` in all) and says
    /// how many; so that the sessions per server of a status request count no expired entry
    /// there.
    pub fn reclaim_expired(&mut self, now: u32, timeout: u32, max: usize) -> usize {
        // No table holds more entries than it has (a corrupted one may loop).
        let max = max.min(self.entries.len());
        let mut n = 0;
        for list in [PROBATION, PROTECTED_LIST] {
            while n < max && self.drop_expired_tail(list, now, timeout) {
                n += 1;
            }
        }
        n
    }

    /// Drops the old end of `list` if it expired; whether it did. An entry at the tail that
    /// does not carry the list's bit (a corrupted block) is left alone: removing it would
    /// unlink it from the other list and leave this tail where it is.
    fn drop_expired_tail(&mut self, list: usize, now: u32, timeout: u32) -> bool {
        let tail = self.list(list).tail;
        match self.entries.get(tail as usize) {
            Some(e)
                if expired(e.last, now, timeout) && e.protected() == (list == PROTECTED_LIST) =>
            {
                self.remove(tail);
                self.hdr.expired = self.hdr.expired.saturating_add(1);
                self.list(list).tail != tail
            }
            _ => false,
        }
    }

    /// The keyed digest of a session id.
    #[inline]
    pub fn digest(&self, sid: &[u8]) -> u64 {
        sid_digest(self.hdr.key[0], self.hdr.key[1], sid)
    }

    /// Live entries (expired ones count until they are met).
    pub fn live(&self) -> usize {
        let [p, q] = self.hdr.lists;
        p.len.saturating_add(q.len) as usize
    }

    /// The header, to read the counters.
    pub fn header(&self) -> &Header {
        self.hdr
    }

    /// The most entries the protected list holds: three quarters of the table, so that new
    /// sessions always have a quarter to live in until their first request, even while
    /// protected is full of sessions that ended (a quarter of a 1m zone is 7,224 handshakes
    /// waiting for their first request; a sixteenth lost live sessions when a few dozen
    /// clients connected at once into a small zone).
    pub fn protected_max(&self) -> u32 {
        let c = self.entries.len() as u32;
        c - c / 4
    }

    /// The peer learned for `digest`, refreshing the entry (its first use after the handshake
    /// protects it); an expired entry is dropped.
    #[inline]
    pub fn lookup(&mut self, digest: u64, now: u32, timeout: u32) -> Option<u64> {
        let (index, _) = self.find(digest)?;
        let e = *self.entries.get(index as usize)?;
        if expired(e.last, now, timeout) {
            self.remove(index);
            self.hdr.expired = self.hdr.expired.saturating_add(1);
            return None;
        }
        self.touch(index, now);
        Some(e.peer)
    }

    /// Stores `digest -> peer` as the most recently learned entry (on probation).
    pub fn learn(&mut self, digest: u64, peer: u64, now: u32, timeout: u32) -> Learned {
        if let Some((index, _)) = self.find(digest) {
            let Some(e) = self.entries.get_mut(index as usize) else {
                return Learned::New;
            };
            let live = !expired(e.last, now, timeout);
            let old = e.peer;
            e.peer = peer;
            if old != peer || !live {
                self.hdr.learned = self.hdr.learned.saturating_add(1);
            }
            if old != peer {
                self.count_out(old);
                self.count_in(peer);
            }
            if !live {
                // A new session under an old id: on probation, as any new one.
                if let Some(e) = self.entries.get_mut(index as usize) {
                    e.last = now;
                    e.next &= !USED;
                }
                self.unlink(index);
                self.push_front(PROBATION, index);
                return Learned::New;
            }
            self.touch(index, now);
            if old == peer {
                return Learned::Same;
            }
            self.hdr.collisions = self.hdr.collisions.saturating_add(1);
            let warn =
                self.hdr.last_warn == 0 || now.wrapping_sub(self.hdr.last_warn) >= REPORT_EVERY;
            if warn {
                self.hdr.last_warn = now.max(1);
            }
            return Learned::Replaced {
                warn,
                total: self.hdr.collisions,
            };
        }

        // In a full table, expired entries at the old ends go first, a couple per insertion
        // (they would be found and dropped by a lookup anyway; here they spare a live one).
        let full = self.entries.get(self.hdr.free as usize).is_none()
            && self.hdr.used >= self.hdr.capacity;
        for list in [PROBATION, PROTECTED_LIST].into_iter().filter(|_| full) {
            for _ in 0..2 {
                if !self.drop_expired_tail(list, now, timeout) {
                    break;
                }
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
        self.push_front(PROBATION, index);
        self.hdr.learned = self.hdr.learned.saturating_add(1);
        self.count_in(peer);
        Learned::New
    }

    /// The evictions since the last report, at most once a minute (the caller logs them then,
    /// naming no session); `None` when there were none or the last report is recent.
    pub fn eviction_report(&mut self, now: u32) -> Option<Evictions> {
        let h = &mut *self.hdr;
        let evicted = h.evictions.saturating_sub(h.evictions_reported);
        if evicted == 0 {
            return None;
        }
        let since = now.wrapping_sub(h.last_evict_report);
        if h.last_evict_report != 0 && since < REPORT_EVERY {
            return None;
        }
        let report = Evictions {
            evicted,
            used: h.evicted_used.saturating_sub(h.evicted_used_reported),
            seconds: if h.last_evict_report == 0 { 0 } else { since },
        };
        h.last_evict_report = now.max(1);
        h.evictions_reported = h.evictions;
        h.evicted_used_reported = h.evicted_used;
        Some(report)
    }

    /// Drops the entry of `digest`, if any.
    #[cfg(any(test, fuzzing))]
    pub fn forget(&mut self, digest: u64) -> bool {
        match self.find(digest) {
            Some((index, _)) => {
                self.remove(index);
                true
            }
            None => false,
        }
    }

    fn list(&self, which: usize) -> List {
        self.hdr.lists.get(which).copied().unwrap_or(EMPTY)
    }

    fn list_mut(&mut self, which: usize) -> Option<&mut List> {
        self.hdr.lists.get_mut(which)
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

    /// A free entry: from the free list, the never-used part, or by evicting the least
    /// recently used entry of probation (of protected while probation is empty).
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
        let victim = match self.list(PROBATION).tail {
            t if self.entries.get(t as usize).is_some() => t,
            _ => self.list(PROTECTED_LIST).tail,
        };
        let used = self.entries.get(victim as usize)?.used();
        self.remove(victim);
        self.hdr.evictions = self.hdr.evictions.saturating_add(1);
        if used {
            self.hdr.evicted_used = self.hdr.evicted_used.saturating_add(1);
        }
        let free = self.hdr.free;
        let e = self.entries.get(free as usize)?;
        self.hdr.free = e.hnext;
        Some(free)
    }

    /// Unlinks an entry from its bucket and its recency list and frees it.
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
        self.count_out(e.peer);
        if let Some(x) = self.entries.get_mut(index as usize) {
            *x = Entry {
                hnext: self.hdr.free,
                prev: NIL,
                next: NIL,
                ..Entry::default()
            };
        }
        self.hdr.free = index;
    }

    /// Marks an entry used now. On probation, it is protected from now on (whatever the
    /// second); protected, it becomes the most recently used, at a resolution of one second.
    #[inline]
    fn touch(&mut self, index: u32, now: u32) {
        match self.entries.get(index as usize) {
            Some(e) if e.protected() && e.last == now => {}
            Some(_) => self.move_up(index, now),
            None => {}
        }
    }

    /// `touch` in a new second, or the first use.
    #[inline(never)]
    fn move_up(&mut self, index: u32, now: u32) {
        let Some(e) = self.entries.get_mut(index as usize) else {
            return;
        };
        let protected = e.protected();
        e.last = now;
        if protected {
            self.bring_forward(PROTECTED_LIST, index);
            return;
        }
        self.unlink(index);
        self.push_front(PROTECTED_LIST, index);
        // Protected is full: its least recently used entry goes back on probation.
        if self.list(PROTECTED_LIST).len > self.protected_max() {
            let tail = self.list(PROTECTED_LIST).tail;
            if tail != index && self.entries.get(tail as usize).is_some() {
                self.unlink(tail);
                self.push_front(PROBATION, tail);
            }
        }
    }

    /// Moves an entry of list `which` to that list's front (the list's length and the
    /// entry's bits unchanged): unlink and push in one, for the common case of a protected
    /// session used again.
    fn bring_forward(&mut self, which: usize, index: u32) {
        let Some(mut list) = self.hdr.lists.get(which).copied() else {
            return;
        };
        let Some(e) = self.entries.get(index as usize).copied() else {
            return;
        };
        if list.head == index {
            return;
        }
        let (prev, next) = (e.prev_index(), e.next_index());
        if let Some(p) = self.entries.get_mut(prev as usize) {
            p.set_next(next);
        }
        match self.entries.get_mut(next as usize) {
            Some(n) => n.set_prev(prev),
            None => list.tail = prev,
        }
        if let Some(h) = self.entries.get_mut(list.head as usize) {
            h.set_prev(index);
        }
        if let Some(x) = self.entries.get_mut(index as usize) {
            x.set_prev(NIL);
            x.set_next(list.head);
        }
        list.head = index;
        if let Some(l) = self.hdr.lists.get_mut(which) {
            *l = list;
        }
    }

    /// Takes an entry out of its recency list (the list's bit of the entry is kept).
    fn unlink(&mut self, index: u32) {
        let Some(e) = self.entries.get(index as usize).copied() else {
            return;
        };
        let which = usize::from(e.protected());
        let (prev, next) = (e.prev_index(), e.next_index());
        let mut list = self.list(which);
        match self.entries.get_mut(prev as usize) {
            Some(p) => p.set_next(next),
            None => {
                if list.head == index {
                    list.head = next;
                }
            }
        }
        match self.entries.get_mut(next as usize) {
            Some(n) => n.set_prev(prev),
            None => {
                if list.tail == index {
                    list.tail = prev;
                }
            }
        }
        list.len = list.len.saturating_sub(1);
        if let Some(l) = self.list_mut(which) {
            *l = list;
        }
        if let Some(x) = self.entries.get_mut(index as usize) {
            x.set_prev(NIL);
            x.set_next(NIL);
        }
    }

    /// Puts an unlinked entry at the front of list `which`.
    fn push_front(&mut self, which: usize, index: u32) {
        let mut list = self.list(which);
        if let Some(x) = self.entries.get_mut(index as usize) {
            x.prev = if which == PROTECTED_LIST {
                PROTECTED | NIL
            } else {
                NIL
            };
            // Protected once, used for good.
            x.next = (x.next & USED) | if which == PROTECTED_LIST { USED } else { 0 } | list.head;
        }
        match self.entries.get_mut(list.head as usize) {
            Some(h) => h.set_prev(index),
            None => list.tail = index,
        }
        list.head = index;
        list.len = list.len.saturating_add(1);
        if let Some(l) = self.list_mut(which) {
            *l = list;
        }
    }

    /// Entries of list `which` from most to least recently used (bounded by the capacity),
    /// for tests.
    #[cfg(test)]
    fn recency(&self, which: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = self.list(which).head;
        while let Some(e) = self.entries.get(i as usize) {
            out.push(i);
            if out.len() > self.entries.len() {
                break;
            }
            i = e.next_index();
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
        slots: Vec<Slot>,
    }

    impl Block {
        fn new(capacity: usize) -> Block {
            Block::with_slots(capacity, 64)
        }
        fn with_slots(capacity: usize, slots: usize) -> Block {
            let mut b = Block {
                hdr: Header::default(),
                buckets: vec![0; capacity],
                entries: vec![Entry::default(); capacity],
                slots: vec![Slot::default(); slots],
            };
            Table::format(b.parts(), 0, [7, 9]).unwrap();
            b
        }
        fn parts(&mut self) -> Parts<'_> {
            Parts {
                hdr: &mut self.hdr,
                buckets: &mut self.buckets,
                entries: &mut self.entries,
                slots: &mut self.slots,
            }
        }
        fn table(&mut self) -> Table<'_> {
            Table::open(self.parts()).unwrap()
        }
    }

    /// Every slot's count equals the entries of its server in the lists, and no server has
    /// two slots.
    fn check_counts(t: &Table) {
        let mut by_peer = std::collections::HashMap::<u64, u32>::new();
        for which in [PROBATION, PROTECTED_LIST] {
            for i in t.recency(which) {
                *by_peer
                    .entry(t.entries[i as usize].peer.max(1))
                    .or_default() += 1;
            }
        }
        let mut seen = std::collections::HashSet::new();
        for s in t.slots.iter().filter(|s| s.identity != 0) {
            assert!(seen.insert(s.identity), "two slots for {}", s.identity);
            assert_eq!(
                s.sessions,
                by_peer.get(&s.identity).copied().unwrap_or(0),
                "{}",
                s.identity
            );
        }
        let tracked: u32 = t.slots.iter().map(|s| s.sessions).sum();
        assert_eq!(
            u64::from(tracked) + t.hdr.untracked,
            t.live() as u64,
            "tracked + untracked = live"
        );
    }

    fn sid(i: usize) -> Vec<u8> {
        format!("sid-{i:08}").into_bytes()
    }

    #[test]
    fn layout_density() {
        assert_eq!(ENTRY_SIZE, 32);
        assert_eq!(SLOT_SIZE, 16);
        assert_eq!(RECORD_SIZE, 72);
        let l = layout(1 << 20).unwrap();
        assert!(l.capacity >= 28_500, "{}", l.capacity);
        assert_eq!((l.nslots, l.nrecords), (128, 128));
        assert!(l.total <= 1 << 20);
        assert_eq!(l.entries_offset % 8, 0);
        assert_eq!(l.slots_offset % 8, 0);
        assert_eq!(l.records_offset % 8, 0);
        assert_eq!(l.records_offset, l.slots_offset + 128 * SLOT_SIZE);
        assert!(layout(HEADER_SIZE).is_none());
        assert!(layout(0).is_none());
        let fixed = HEADER_SIZE + 8 + 32 * (SLOT_SIZE + RECORD_SIZE);
        let small = layout(fixed + BYTES_PER_SESSION).unwrap();
        assert_eq!(small.capacity, 1);
        assert!(small.total <= fixed + BYTES_PER_SESSION);
        assert!(layout(fixed).is_none());
        assert_eq!(layout(32 << 10).unwrap().nslots, 32);
        assert_eq!(layout(64 << 20).unwrap().nslots, 4096);
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
        assert_eq!(t.recency(0).len() + t.recency(1).len(), 3);
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
        // In a full table, expired entries at the old end are reclaimed by insertions (two
        // each), before anything is evicted; a table with room leaves them to lookups.
        let mut b = Block::new(5);
        let mut t = b.table();
        for i in 0..5 {
            t.learn(t.digest(&sid(i)), 0, 100, 5);
        }
        t.learn(t.digest(b"new"), 0, 200, 5);
        assert_eq!(t.live(), 4);
        assert_eq!(t.header().expired, 2);
        assert_eq!(t.header().evictions, 0);
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
            assert_eq!(t.recency(0).len() + t.recency(1).len(), t.live());
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
        b.hdr.lists[0].tail = 5;
        b.hdr.lists[1] = List {
            head: 9,
            tail: 2,
            len: u32::MAX,
        };
        b.hdr.free = 12;
        b.hdr.evictions = u64::MAX;
        b.hdr.expired = u64::MAX - 1;
        let mut t = b.table();
        for i in 0..100 {
            let d = t.digest(&sid(i));
            let _ = t.lookup(d, 2, 600);
            let _ = t.learn(d, 1, 2, 600);
            let _ = t.forget(d);
        }
    }

    #[test]
    fn a_flood_of_handshakes_keeps_the_sessions_in_use() {
        // A 1 MiB table's capacity, 500 sessions in use, a million handshakes nobody follows.
        let cap = layout(1 << 20).unwrap().capacity;
        let mut b = Block::new(cap);
        let mut t = b.table();
        let used: Vec<u64> = (0..500).map(|i| t.digest(&sid(i))).collect();
        for (i, &d) in used.iter().enumerate() {
            t.learn(d, i as u64, 1000, 600);
        }
        let mut now = 1000;
        for i in 0..1_000_000usize {
            // The sessions poll every 2 s; the flood is 45,000 handshakes a second.
            if i % 45_000 == 0 {
                now += 1;
            }
            if i % 90_000 == 0 {
                for (k, &d) in used.iter().enumerate() {
                    assert_eq!(
                        t.lookup(d, now, 600),
                        Some(k as u64),
                        "session {k} lost at {i}"
                    );
                }
            }
            let d = t.digest(format!("flood-{i}").as_bytes());
            t.learn(d, 7, now, 600);
        }
        for (k, &d) in used.iter().enumerate() {
            assert_eq!(t.lookup(d, now, 600), Some(k as u64));
        }
        assert_eq!(t.header().evicted_used, 0);
        assert!(t.header().evictions > 900_000);
        // The newest handshakes are there: they have room until their first request.
        assert!(t.lookup(t.digest(b"flood-999999"), now, 600).is_some());
    }

    #[test]
    fn first_use_protects_within_the_second() {
        let mut b = Block::new(4);
        let mut t = b.table();
        let d: Vec<u64> = (0..6).map(|i| t.digest(&sid(i))).collect();
        t.learn(d[0], 0, 10, 600);
        // Used in the second it was learned: protected all the same.
        assert_eq!(t.lookup(d[0], 10, 600), Some(0));
        assert_eq!(t.recency(1), vec![0]);
        for (i, &digest) in d.iter().enumerate().skip(1) {
            t.learn(digest, i as u64, 10, 600);
        }
        // Five handshakes through a table of four: the used session stays.
        assert_eq!(t.lookup(d[0], 11, 600), Some(0));
        assert_eq!(t.header().evicted_used, 0);
        assert_eq!(t.header().evictions, 2);
    }

    #[test]
    fn protected_holds_at_most_three_quarters() {
        let mut b = Block::new(64);
        let mut t = b.table();
        assert_eq!(t.protected_max(), 48);
        for i in 0..64 {
            let d = t.digest(&sid(i));
            t.learn(d, i as u64, 100 + i as u32, 600);
            t.lookup(d, 100 + i as u32, 600);
        }
        assert_eq!(t.recency(1).len(), 48);
        assert_eq!(t.recency(0).len(), 16);
        // The least recently used went back on probation, most recent first.
        assert_eq!(t.recency(0), (0..16).rev().collect::<Vec<u32>>());
        // A new session evicts one of those, not a protected one.
        t.learn(t.digest(b"new"), 99, 200, 600);
        assert_eq!(t.lookup(t.digest(&sid(0)), 200, 600), None);
        assert_eq!(t.header().evicted_used, 1);
        assert_eq!(t.lookup(t.digest(&sid(63)), 200, 600), Some(63));
    }

    #[test]
    fn new_sessions_have_a_quarter_while_protected_is_full_of_ended_ones() {
        let mut b = Block::new(128);
        let mut t = b.table();
        // 1,000 sessions, each used once and then ended: protected is full of them.
        for i in 0..1000 {
            let d = t.digest(&sid(i));
            t.learn(d, i as u64, 100, 600);
            assert_eq!(t.lookup(d, 100, 600), Some(i as u64));
        }
        assert_eq!(t.recency(1).len(), 96);
        // Waves of 32 clients connecting at once (32 handshakes, then the first request of
        // each): every one is found.
        let mut n = 1000;
        for _ in 0..20 {
            let wave: Vec<(u64, u64)> =
                (n..n + 32).map(|i| (t.digest(&sid(i)), i as u64)).collect();
            n += 32;
            for &(d, peer) in &wave {
                t.learn(d, peer, 101, 600);
            }
            for &(d, peer) in &wave {
                assert_eq!(t.lookup(d, 101, 600), Some(peer));
            }
        }
        // One more than a quarter at once: the first of them has gone.
        let wave: Vec<u64> = (n..n + 33).map(|i| t.digest(&sid(i))).collect();
        for (k, &d) in wave.iter().enumerate() {
            t.learn(d, k as u64, 102, 600);
        }
        assert_eq!(t.lookup(wave[0], 102, 600), None);
        assert_eq!(t.lookup(wave[1], 102, 600), Some(1));
    }

    #[test]
    fn sessions_per_server_follow_every_change() {
        let mut b = Block::new(100);
        let mut t = b.table();
        // 150 sessions of 3 servers into 100 entries: evictions.
        for i in 0..150u64 {
            t.learn(t.digest(&sid(i as usize)), 1 + i % 3, 100, 5);
            check_counts(&t);
        }
        let total: u64 = (1..=3).map(|p| t.sessions_of(p)).sum();
        assert_eq!(total, 100);
        assert_eq!(t.header().learned, 150);
        // Learned again for another server: moves.
        let d = t.digest(&sid(149));
        let before = (t.sessions_of(1), t.sessions_of(3));
        assert!(matches!(t.learn(d, 1, 100, 5), Learned::Replaced { .. }));
        assert_eq!(
            (t.sessions_of(1), t.sessions_of(3)),
            (before.0 + 1, before.1 - 1)
        );
        check_counts(&t);
        // The same again: nothing changes.
        assert_eq!(t.learn(d, 1, 101, 5), Learned::Same);
        check_counts(&t);
        // Expired, found by a lookup: gone.
        assert_eq!(t.lookup(t.digest(&sid(148)), 200, 5), None);
        check_counts(&t);
        // Forgotten.
        assert!(t.forget(t.digest(&sid(147))));
        check_counts(&t);
        // Learned again after it expired, for another server.
        t.learn(t.digest(&sid(146)), 2, 300, 5);
        check_counts(&t);
        // A status request's sweep: every expired entry at the old ends goes.
        let n = t.reclaim_expired(300, 5, usize::MAX);
        assert!(n >= 90, "{n}");
        check_counts(&t);
        assert_eq!(t.live(), 1);
        assert_eq!(
            (t.sessions_of(1), t.sessions_of(2), t.sessions_of(3)),
            (0, 1, 0)
        );
        assert_eq!(t.sessions_of(99), 0);
    }

    #[test]
    fn more_servers_than_slots() {
        let mut b = Block::with_slots(64, 4);
        let mut t = b.table();
        // Eight servers, four slots: four are counted, the others are "untracked".
        for i in 0..64u64 {
            t.learn(t.digest(&sid(i as usize)), 10 + i % 8, 100, 600);
        }
        check_counts(&t);
        assert_eq!(t.header().untracked, 32);
        // Servers whose sessions all went give their slot to another one.
        for i in 0..64u64 {
            if i % 8 < 4 {
                assert!(t.forget(t.digest(&sid(i as usize))));
            }
        }
        check_counts(&t);
        for i in 64..72u64 {
            t.learn(t.digest(&sid(i as usize)), 20 + i % 8, 100, 600);
        }
        check_counts(&t);
        // Identity 0 is counted as 1.
        t.learn(t.digest(b"zero"), 0, 100, 600);
        check_counts(&t);
    }

    #[test]
    fn while_probation_is_empty_a_used_session_goes() {
        let mut b = Block::new(1);
        let mut t = b.table();
        let (a, z) = (t.digest(b"a"), t.digest(b"z"));
        t.learn(a, 1, 10, 600);
        t.lookup(a, 10, 600);
        t.learn(z, 2, 11, 600);
        assert_eq!(t.lookup(a, 12, 600), None);
        assert_eq!(t.lookup(z, 12, 600), Some(2));
        assert_eq!(t.header().evicted_used, 1);
    }

    #[test]
    fn expired_ids_learned_again_start_on_probation() {
        let mut b = Block::new(8);
        let mut t = b.table();
        let d = t.digest(b"a");
        t.learn(d, 1, 100, 5);
        t.lookup(d, 101, 5);
        assert_eq!(t.recency(1), vec![0]);
        assert_eq!(t.learn(d, 2, 200, 5), Learned::New);
        assert_eq!(t.recency(1), Vec::<u32>::new());
        assert_eq!(t.recency(0), vec![0]);
    }

    #[test]
    fn evictions_are_reported_at_most_once_a_minute() {
        let mut b = Block::new(2);
        let mut t = b.table();
        assert_eq!(t.eviction_report(100), None);
        for i in 0..5 {
            t.learn(t.digest(&sid(i)), 0, 100, 600);
        }
        assert_eq!(
            t.eviction_report(100),
            Some(Evictions {
                evicted: 3,
                used: 0,
                seconds: 0
            })
        );
        t.learn(t.digest(&sid(9)), 0, 120, 600);
        assert_eq!(t.eviction_report(120), None);
        assert_eq!(
            t.eviction_report(160),
            Some(Evictions {
                evicted: 1,
                used: 0,
                seconds: 60
            })
        );
        assert_eq!(t.eviction_report(300), None);
    }
}
