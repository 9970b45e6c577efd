//! The state file (`state=PATH`): the session table kept in a file that every nginx process
//! maps, so that it outlives the master process (binary upgrade, restart).
//!
//! A state file is a [`FileHeader`] (64 bytes) followed by the table block of
//! `logic::table`. The header carries its own lock word: nginx's zone mutexes belong to one
//! master's shared memory, while a state file is shared by the old and the new nginx during a
//! binary upgrade. The lock is a spin lock that stores its holder's pid, so that a worker killed
//! while holding it cannot block the others: after a while of spinning, a waiter checks that the
//! holder still exists and takes the lock over if it does not.

use core::sync::atomic::{AtomicU64, Ordering};

use super::table::{self, Layout};

/// First word of a state file.
pub const FILE_MAGIC: u64 = 0x736f_636b_7374_6631;
/// Bytes of the header before the table block (keeps the block 8-byte aligned).
pub const HEADER_LEN: usize = 64;

/// The header of a state file.
#[repr(C)]
pub struct FileHeader {
    pub magic: u64,
    /// The table's format tag (`table::MAGIC`) when the file was made.
    pub table_magic: u64,
    /// Length of the whole file.
    pub len: u64,
    /// Pid of the process holding the lock, 0 when free.
    pub lock: AtomicU64,
    pub reserved: [u64; 4],
}

const _: () = assert!(core::mem::size_of::<FileHeader>() == HEADER_LEN);

/// How a state file of `size` configured bytes is laid out: its length and the table's
/// layout after the header. `None` when not even one session fits.
pub fn file_layout(size: usize) -> Option<(usize, Layout)> {
    let l = table::layout(size.checked_sub(HEADER_LEN)?)?;
    Some((HEADER_LEN + l.total, l))
}

/// What a file at a `state=` path is, from its length and its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Empty: nothing to lose, a table is made in it.
    Empty,
    /// A state file of this module (of any size or table format).
    Ours,
    /// Anything else: never overwritten.
    Foreign,
}

/// What a file of `len` bytes that begins with `head` is.
pub fn found(len: u64, head: &[u8]) -> Found {
    if len == 0 {
        return Found::Empty;
    }
    match head.first_chunk::<8>() {
        Some(m) if u64::from_ne_bytes(*m) == FILE_MAGIC => Found::Ours,
        _ => Found::Foreign,
    }
}

/// Whether a mapped file of `file_len` bytes whose header reads `hdr` is a state file made for
/// `expected_len` bytes by this table format (it can then be used as it is).
pub fn header_matches(hdr: &FileHeader, file_len: u64, expected_len: usize) -> bool {
    hdr.magic == FILE_MAGIC
        && hdr.table_magic == table::MAGIC
        && hdr.len == file_len
        && file_len == expected_len as u64
}

/// Fills the header of a new state file of `len` bytes (lock free).
pub fn write_header(hdr: &mut FileHeader, len: usize) {
    hdr.magic = FILE_MAGIC;
    hdr.table_magic = table::MAGIC;
    hdr.len = len as u64;
    hdr.lock = AtomicU64::new(0);
    hdr.reserved = [0; 4];
}

/// Spins before a waiter looks at whether the holder is alive.
const SPINS_BEFORE_CHECK: u32 = 1 << 12;

/// The lock of a state file, held until the guard is dropped.
pub struct PidLock<'a> {
    word: &'a AtomicU64,
    pid: u64,
}

impl<'a> PidLock<'a> {
    /// Takes the lock for `pid` (not 0). `alive(holder)` says whether a process exists; a
    /// holder that does not is replaced. `pause` runs between rounds of spinning (the caller
    /// yields the CPU there).
    pub fn lock(
        word: &'a AtomicU64,
        pid: u64,
        alive: impl Fn(u64) -> bool,
        pause: impl Fn(),
    ) -> PidLock<'a> {
        let pid = pid.max(1);
        loop {
            let mut spins = 0u32;
            while spins < SPINS_BEFORE_CHECK {
                let holder = word.load(Ordering::Relaxed);
                if holder == 0
                    && word
                        .compare_exchange_weak(0, pid, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return PidLock { word, pid };
                }
                core::hint::spin_loop();
                spins += 1;
            }
            let holder = word.load(Ordering::Relaxed);
            if holder != 0
                && (holder == pid || !alive(holder))
                && word
                    .compare_exchange(holder, pid, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return PidLock { word, pid };
            }
            pause();
        }
    }
}

impl Drop for PidLock<'_> {
    fn drop(&mut self) {
        // Only our own hold is released: if a waiter took the lock over (it believed us dead),
        // it is theirs now.
        let _ = self
            .word
            .compare_exchange(self.pid, 0, Ordering::Release, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn layout_leaves_room_for_the_header() {
        let (len, l) = file_layout(1 << 20).unwrap();
        assert!(len <= 1 << 20);
        assert_eq!(len, HEADER_LEN + l.total);
        assert_eq!(HEADER_LEN % 8, 0);
        assert!(l.capacity > 28_500, "{}", l.capacity);
        assert!(file_layout(HEADER_LEN).is_none());
        assert!(file_layout(10).is_none());
    }

    #[test]
    fn what_a_file_is() {
        assert_eq!(found(0, b""), Found::Empty);
        assert_eq!(found(4096, &FILE_MAGIC.to_ne_bytes()), Found::Ours);
        assert_eq!(found(7, b"\x31\x66\x74\x73"), Found::Foreign);
        assert_eq!(found(100, b"user root;\nworker_processes"), Found::Foreign);
        assert_eq!(found(8, &[0; 8]), Found::Foreign);
    }

    #[test]
    fn header_checks() {
        let mut h = FileHeader {
            magic: 0,
            table_magic: 0,
            len: 0,
            lock: AtomicU64::new(7),
            reserved: [1; 4],
        };
        assert!(!header_matches(&h, 4096, 4096));
        write_header(&mut h, 4096);
        assert_eq!(h.lock.load(Ordering::Relaxed), 0);
        assert!(header_matches(&h, 4096, 4096));
        // A file made for another size, or cut short, or of another table format.
        assert!(!header_matches(&h, 4096, 8192));
        assert!(!header_matches(&h, 4000, 4000));
        h.table_magic ^= 1;
        assert!(!header_matches(&h, 4096, 4096));
    }

    #[test]
    fn lock_excludes_and_releases() {
        let word = Arc::new(AtomicU64::new(0));
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (1..=4u64)
            .map(|pid| {
                let (word, counter) = (word.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let _g = PidLock::lock(&word, pid, |_| true, std::thread::yield_now);
                        // A read-modify-write in two steps: lost updates if two hold the lock.
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 80_000);
        assert_eq!(word.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn lock_of_a_dead_holder_is_taken_over() {
        let word = AtomicU64::new(999);
        {
            let _g = PidLock::lock(&word, 5, |p| p != 999, || {});
            assert_eq!(word.load(Ordering::Relaxed), 5);
        }
        assert_eq!(word.load(Ordering::Relaxed), 0);
        // Our own pid left behind (a worker that died and whose pid came back) is ours.
        word.store(5, Ordering::Relaxed);
        drop(PidLock::lock(&word, 5, |_| true, || {}));
        assert_eq!(word.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_live_holder_is_waited_for() {
        let word = Arc::new(AtomicU64::new(0));
        let g = PidLock::lock(&word, 1, |_| true, || {});
        let w2 = word.clone();
        let waiter = std::thread::spawn(move || {
            let _g = PidLock::lock(&w2, 2, |_| true, std::thread::yield_now);
            w2.load(Ordering::Relaxed)
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished());
        drop(g);
        assert_eq!(waiter.join().unwrap(), 2);
    }

    #[test]
    fn a_release_after_takeover_keeps_the_new_holder() {
        let word = AtomicU64::new(0);
        let g = PidLock::lock(&word, 1, |_| true, || {});
        word.store(2, Ordering::Relaxed); // taken over by pid 2
        drop(g);
        assert_eq!(word.load(Ordering::Relaxed), 2);
    }
}
