//! The session table on arbitrary contents: a block (laid out as in shared memory, or with a
//! bucket count from the input) whose header, bucket heads and entries are fuzz bytes, as a
//! worker killed in the middle of an update or a damaged state file (`state=`) may leave it.
//!
//! - `Table::open` accepts the block exactly when the magic, capacity and bucket count match
//!   (the input keeps them consistent most of the time, so that operations run);
//! - then `lookup`, `learn`, `digest` and `live` with digests that are mostly in the block
//!   already, and times that move both ways: never a panic (including arithmetic overflow:
//!   cargo-fuzz builds with overflow checks), never an endless loop (libFuzzer's `-timeout`);
//!   AddressSanitizer watches every access (the block is one allocation, as in the module).
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
use socketio_sticky_fuzz::logic::table::{layout, Entry, Header, List, Table, MAGIC, NIL};

const HEADER_SIZE: usize = core::mem::size_of::<Header>();

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
    let bytes = HEADER_SIZE + 8 + capacity * 36;
    let l = layout(bytes).expect("room for the capacity");
    assert_eq!(l.capacity, capacity);
    let mut block = Block::new(l);
    let separate = u.arbitrary::<u8>()? >= 192;
    let nb = if separate {
        1 + usize::from(u.arbitrary::<u8>()? % 64)
    } else {
        capacity
    };
    let mut hdr_v = Header::default();
    let mut buckets_v = vec![0u32; nb];
    let mut entries_v = vec![Entry::default(); capacity];

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

    {
        let (hdr, buckets, entries) = if separate {
            (&mut hdr_v, &mut buckets_v[..], &mut entries_v[..])
        } else {
            block.parts()
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
        };
        for b in buckets.iter_mut() {
            *b = index(u, capacity)?;
        }
        for e in entries.iter_mut() {
            *e = Entry {
                digest: digest(u)?,
                peer: u.arbitrary()?,
                last: u.arbitrary()?,
                hnext: index(u, capacity)?,
                prev: index(u, capacity)? | top(u)?,
                next: index(u, capacity)? | top(u)?,
            };
        }
    }
    let (hdr, buckets, entries) = if separate {
        (&mut hdr_v, &mut buckets_v[..], &mut entries_v[..])
    } else {
        block.parts()
    };
    let fits = hdr.magic == MAGIC
        && hdr.capacity as usize == entries.len()
        && hdr.nbuckets as usize == buckets.len();
    let Some(mut t) = Table::open(hdr, buckets, entries) else {
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
        match op % 8 {
            0..=2 => {
                let _ = t.lookup(d, now, timeout);
            }
            3..=4 => {
                let peer: u64 = u.arbitrary()?;
                let _ = t.learn(d, peer, now, timeout);
            }
            5 => {
                let _ = t.forget(d);
            }
            6 => {
                let _ = t.eviction_report(now);
                let _ = t.live();
                let _ = t.protected_max();
            }
            _ => {
                let len = usize::from(u.arbitrary::<u8>()? % 32);
                let sid = u.bytes(len.min(u.len()))?;
                let d = t.digest(sid);
                let _ = t.learn(d, 1, now, timeout);
                let _ = t.lookup(d, now, timeout);
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
