//! The session table on arbitrary contents: a block (laid out as in shared memory, or with a
//! bucket count and a slot count from the input: 0 to 8, the layout's, or more than the
//! longest probe sequence) whose header (counters, `nslots`, `nrecords`, `untracked`
//! included), bucket heads, entries and slots (identities mostly those of the entries,
//! session counts from 0 to `u32::MAX`) are fuzz bytes, as a worker killed in the middle of an
//! update or a damaged state file (`state=`) may leave it.
//!
//! - `Table::open` accepts the block exactly when the magic, capacity, bucket count and slot
//!   count match (the input keeps them consistent most of the time, so that operations run);
//! - then `lookup`, `learn`, `forget`, `reclaim_expired` (at most as much as a status
//!   request sweeps), `sessions_of`, `digest` and `live` with digests and peers that are mostly
//!   in the block already, and times that move both ways: never a panic (including arithmetic
//!   overflow: cargo-fuzz builds with overflow checks), never an endless loop (libFuzzer's
//!   `-timeout`); AddressSanitizer watches every access (the block is one allocation, as in
//!   the module); `reclaim_expired` reclaims at most `max`; the tally records after the slots
//!   are never written.
//!
//! Also the state file's first bytes (`state_file::found`: empty, ours, foreign) against a
//! naive check, and its layout and header (`file_layout`, `write_header`, `header_matches`).
//!
//! Module documentation: "Every walk is bounded and every index is checked, so a corrupted
//! block gives wrong answers at worst, never a crash or an endless loop."
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use socketio_sticky_fuzz::block::Block;
use socketio_sticky_fuzz::logic::state_file::{
    file_layout, found, header_matches, write_header, FileHeader, Found, FILE_MAGIC, HEADER_LEN,
};
use socketio_sticky_fuzz::logic::table::{
    layout, slots_for, Entry, Header, List, Parts, Slot, Table, MAGIC, NIL,
};
use socketio_sticky_fuzz::logic::tally::Record;

const HEADER_SIZE: usize = core::mem::size_of::<Header>();
const SLOT_SIZE: usize = core::mem::size_of::<Slot>();
const RECORD_SIZE: usize = core::mem::size_of::<Record>();

/// An index: mostly in range or just past it, sometimes NIL, sometimes anything.
fn index(u: &mut Unstructured, n: usize) -> arbitrary::Result<u32> {
    Ok(match u.arbitrary::<u8>()? {
        0..=199 => (usize::from(u.arbitrary::<u8>()?) % (n + 2)) as u32,
        200..=239 => NIL,
        _ => u.arbitrary()?,
    })
}

/// The top bit of `prev` (protected list) and `next` (used), or not.
fn top(u: &mut Unstructured) -> arbitrary::Result<u32> {
    Ok(if u.arbitrary()? { 0x8000_0000 } else { 0 })
}

/// What a file at a `state=` path is (`state_file::found`) and the file's layout.
fn state_file(u: &mut Unstructured) -> arbitrary::Result<()> {
    let len: u64 = match u.arbitrary::<u8>()? {
        0..=31 => 0,
        _ => u.arbitrary()?,
    };
    let n = usize::from(u.arbitrary::<u8>()? % 17);
    let mut head = u.bytes(n.min(u.len()))?.to_vec();
    if head.len() >= 8 && u.arbitrary::<u8>()? < 128 {
        head[..8].copy_from_slice(&FILE_MAGIC.to_ne_bytes());
    }
    let want = if len == 0 {
        Found::Empty
    } else if head.len() >= 8 && head[..8] == FILE_MAGIC.to_ne_bytes() {
        Found::Ours
    } else {
        Found::Foreign
    };
    assert_eq!(found(len, &head), want, "found({len}, {head:?})");

    let size = usize::from(u.arbitrary::<u16>()?);
    match file_layout(size) {
        Some((flen, l)) => {
            assert_eq!(Some(l), layout(size - HEADER_LEN));
            assert_eq!(flen, HEADER_LEN + l.total);
            assert!(flen <= size);
            let mut h = FileHeader {
                magic: 0,
                table_magic: 0,
                len: 0,
                lock: 0.into(),
                reserved: [0; 4],
            };
            write_header(&mut h, flen);
            assert!(header_matches(&h, flen as u64, flen));
            assert!(!header_matches(&h, flen as u64 + 1, flen));
            assert!(!header_matches(&h, flen as u64, flen + 8));
            assert_eq!(found(flen as u64, &h.magic.to_ne_bytes()), Found::Ours);
        }
        None => assert!(size < HEADER_LEN || layout(size - HEADER_LEN).is_none()),
    }
    Ok(())
}

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    state_file(u)?;
    let capacity = 1 + usize::from(u.arbitrary::<u8>()? % 48);
    // The fixed part (header, alignment, slots and records) of a small block, then the
    // entries and bucket heads.
    let nslots = slots_for(0);
    let bytes = HEADER_SIZE + 8 + nslots * (SLOT_SIZE + RECORD_SIZE) + capacity * 36;
    assert_eq!(slots_for(bytes), nslots);
    let l = layout(bytes).expect("room for the capacity");
    assert_eq!(l.capacity, capacity);
    let mut block = Block::new(l);
    let separate = u.arbitrary::<u8>()? >= 192;
    let nb = if separate {
        1 + usize::from(u.arbitrary::<u8>()? % 64)
    } else {
        capacity
    };
    let ns = if separate {
        match u.arbitrary::<u8>()? {
            x @ 0..=191 => usize::from(x % 9),
            192..=223 => l.nslots,
            x => 60 + usize::from(x % 80),
        }
    } else {
        l.nslots
    };
    let mut hdr_v = Header::default();
    let mut buckets_v = vec![0u32; nb];
    let mut entries_v = vec![Entry::default(); capacity];
    let mut slots_v = vec![Slot::default(); ns];
    // The records after the slots: a pattern that must stay.
    const PATTERN: u8 = 0xa5;
    block.bytes_mut()[l.records_offset..].fill(PATTERN);

    // Some digests, the ones the entries and the operations use.
    let pool: Vec<u64> = (0..1 + u.arbitrary::<u8>()? % 8)
        .map(|_| u.arbitrary())
        .collect::<arbitrary::Result<_>>()?;
    let digest = |u: &mut Unstructured| -> arbitrary::Result<u64> {
        let sel: u8 = u.arbitrary()?;
        Ok(if sel < 224 {
            pool[usize::from(sel) % pool.len()]
        } else {
            u.arbitrary()?
        })
    };
    // Some peers, the ones the entries, the slots and the operations use (0 and 1 are one).
    let mut peers: Vec<u64> = vec![0, 1];
    for _ in 0..u.arbitrary::<u8>()? % 8 {
        peers.push(u.arbitrary()?);
    }
    let peer = |u: &mut Unstructured| -> arbitrary::Result<u64> {
        let sel: u8 = u.arbitrary()?;
        Ok(if sel < 224 {
            peers[usize::from(sel) % peers.len()]
        } else {
            u.arbitrary()?
        })
    };
    let sessions = |u: &mut Unstructured| -> arbitrary::Result<u32> {
        Ok(match u.arbitrary::<u8>()? {
            x @ 0..=159 => u32::from(x % 4),
            160..=191 => u32::MAX,
            192..=223 => u32::MAX - 1,
            _ => u.arbitrary()?,
        })
    };

    {
        let Parts {
            hdr,
            buckets,
            entries,
            slots,
        } = if separate {
            Parts {
                hdr: &mut hdr_v,
                buckets: &mut buckets_v[..],
                entries: &mut entries_v[..],
                slots: &mut slots_v[..],
            }
        } else {
            block.parts().0
        };
        let flags: u8 = u.arbitrary()?;
        let list = |u: &mut Unstructured| -> arbitrary::Result<List> {
            Ok(List {
                head: index(u, capacity)?,
                tail: index(u, capacity)?,
                len: index(u, capacity)?,
            })
        };
        let lists = [list(u)?, list(u)?];
        *hdr = Header {
            magic: if flags & 1 == 0 {
                MAGIC
            } else {
                u.arbitrary()?
            },
            key: u.arbitrary()?,
            capacity: if flags & 2 == 0 {
                capacity as u32
            } else {
                u.arbitrary()?
            },
            nbuckets: if flags & 4 == 0 {
                buckets.len() as u32
            } else {
                u.arbitrary()?
            },
            used: index(u, capacity)?,
            free: index(u, capacity)?,
            lists,
            last_warn: u.arbitrary()?,
            last_evict_report: u.arbitrary()?,
            collisions: u.arbitrary()?,
            evictions: u.arbitrary()?,
            evicted_used: u.arbitrary()?,
            expired: u.arbitrary()?,
            evictions_reported: u.arbitrary()?,
            evicted_used_reported: u.arbitrary()?,
            learned: u.arbitrary()?,
            nslots: if flags & 8 == 0 {
                slots.len() as u32
            } else {
                u.arbitrary()?
            },
            nrecords: u.arbitrary()?,
            untracked: match u.arbitrary::<u8>()? {
                x @ 0..=159 => u64::from(x % 4),
                160..=191 => u64::MAX,
                _ => u.arbitrary()?,
            },
        };
        for b in buckets.iter_mut() {
            *b = index(u, capacity)?;
        }
        for s in slots.iter_mut() {
            *s = match u.arbitrary::<u8>()? {
                0..=63 => Slot::default(),
                x => Slot {
                    identity: if x < 224 { peer(u)? } else { u.arbitrary()? },
                    sessions: sessions(u)?,
                    reserved: if x & 1 == 0 { 0 } else { u.arbitrary()? },
                },
            };
        }
        for e in entries.iter_mut() {
            *e = Entry {
                digest: digest(u)?,
                peer: peer(u)?,
                last: u.arbitrary()?,
                hnext: index(u, capacity)?,
                prev: index(u, capacity)? | top(u)?,
                next: index(u, capacity)? | top(u)?,
            };
        }
    }
    let parts = if separate {
        Parts {
            hdr: &mut hdr_v,
            buckets: &mut buckets_v[..],
            entries: &mut entries_v[..],
            slots: &mut slots_v[..],
        }
    } else {
        block.parts().0
    };
    let fits = parts.hdr.magic == MAGIC
        && parts.hdr.capacity as usize == parts.entries.len()
        && parts.hdr.nbuckets as usize == parts.buckets.len()
        && parts.hdr.nslots as usize == parts.slots.len();
    let Some(mut t) = Table::open(parts) else {
        assert!(!fits, "a consistent block did not open");
        return Ok(());
    };
    assert!(fits, "an inconsistent block opened");

    let timeout: u32 = match u.arbitrary::<u8>()? {
        0..=191 => u32::from(u.arbitrary::<u8>()? % 16),
        _ => u.arbitrary()?,
    };
    let mut now: u32 = u.arbitrary()?;
    for _ in 0..1024 {
        if u.is_empty() {
            break;
        }
        let op: u8 = u.arbitrary()?;
        now = match u.arbitrary::<u8>()? {
            0..=199 => now.wrapping_add(u32::from(u.arbitrary::<u8>()? % 8)),
            200..=254 => now.wrapping_sub(u32::from(u.arbitrary::<u8>()? % 16)),
            255 => u.arbitrary()?,
        };
        let d = digest(u)?;
        match op % 10 {
            0..=2 => {
                let _ = t.lookup(d, now, timeout);
            }
            3..=4 => {
                let p = peer(u)?;
                let _ = t.learn(d, p, now, timeout);
            }
            5 => {
                let _ = t.forget(d);
            }
            6 => {
                let _ = t.eviction_report(now);
                let _ = t.live();
                let _ = t.protected_max();
            }
            7 => {
                // Any bound, even none: a tail that names an entry without its list's bit
                // stops the sweep, so it ends on a corrupted block too, and never takes more
                // entries than the block has.
                let max = match u.arbitrary::<u8>()? {
                    x @ 0..=191 => usize::from(x % 8),
                    192..=223 => 256,
                    _ => usize::MAX,
                };
                let n = t.reclaim_expired(now, timeout, max);
                assert!(n <= max, "reclaimed {n}, at most {max}");
                assert!(
                    n <= capacity,
                    "reclaimed {n} from a table of {capacity} entries"
                );
            }
            8 => {
                for &p in &peers {
                    let n = t.sessions_of(p);
                    assert!(n <= u64::from(u32::MAX));
                }
                let _ = t.sessions_of(u.arbitrary()?);
                let _ = t.header().untracked;
            }
            _ => {
                let len = usize::from(u.arbitrary::<u8>()? % 32);
                let sid = u.bytes(len.min(u.len()))?;
                let d = t.digest(sid);
                let _ = t.learn(d, peer(u)?, now, timeout);
                let _ = t.lookup(d, now, timeout);
            }
        }
    }
    drop(t);
    assert!(
        block.bytes_mut()[l.records_offset..]
            .iter()
            .all(|&b| b == PATTERN),
        "the table wrote into the records"
    );
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
