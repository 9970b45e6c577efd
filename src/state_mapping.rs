//! The state file of a zone (`state=PATH`): opened by the master when it sets the zone up,
//! mapped shared, and inherited by its workers. A new master (binary upgrade, restart) maps the
//! same file and so keeps the learned sessions; during a binary upgrade the old and the new
//! workers use the one table. Layout and lock: `logic::state_file`. The table inside is the
//! zone's business: this file maps, checks and makes files, and is told how to check and
//! format a table.

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::AtomicU64;
use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use ngx::ffi::{
    access, getpid, kill, mmap, munmap, sched_yield, MAP_SHARED, PROT_READ, PROT_WRITE, W_OK, X_OK,
};

use crate::logic::state_file::{self as state, FileHeader, Found, PidLock, HEADER_LEN};
use crate::logic::table::Layout;

/// A state file mapped into this process; unmapped and closed on drop (when the cycle that
/// made it goes away).
pub struct Mapping {
    addr: *mut u8,
    len: usize,
    file: File,
    pub layout: Layout,
}

/// How a mapping came to be, for the log.
pub enum Opened {
    /// The file held a table of this size and format; it is used as it is.
    Kept(Mapping),
    /// A new table was made (no file, or one of another size or format).
    Made(Mapping),
}

impl Mapping {
    /// The table block (after the header).
    pub fn block(&self) -> *mut u8 {
        // SAFETY: the mapping is `HEADER_LEN + layout.total` bytes long.
        unsafe { self.addr.add(HEADER_LEN) }
    }

    fn header(&self) -> &FileHeader {
        // SAFETY: the mapping starts with the header (page aligned, 64 bytes).
        unsafe { &*self.addr.cast::<FileHeader>() }
    }

    fn lock_word(&self) -> &AtomicU64 {
        &self.header().lock
    }

    /// Takes the file's lock for this process.
    pub fn lock(&self) -> PidLock<'_> {
        // SAFETY: nginx sets `ngx_pid` in every process it starts (after each fork), before any
        // request runs; reading a plain integer global.
        let pid = unsafe { ngx::ffi::ngx_pid } as u64;
        PidLock::lock(self.lock_word(), pid, alive, || {
            // SAFETY: sched_yield has no preconditions.
            unsafe { sched_yield() };
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` are the mapping made by `map`; nothing uses it after the cycle
        // that owns it is gone.
        unsafe { munmap(self.addr.cast(), self.len) };
    }
}

/// Whether process `pid` exists (one of another user counts: `kill` says EPERM).
fn alive(pid: u64) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    if unsafe { kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().kind() == io::ErrorKind::PermissionDenied
}

/// Maps `len` bytes of `file` shared.
fn map(file: File, len: usize, layout: Layout) -> io::Result<Mapping> {
    // SAFETY: a fresh shared mapping of an open file; the kernel picks the address.
    let addr = unsafe {
        mmap(
            ptr::null_mut(),
            len,
            (PROT_READ | PROT_WRITE) as i32,
            MAP_SHARED as i32,
            file.as_raw_fd(),
            0,
        )
    };
    if addr.is_null() || addr == usize::MAX as *mut c_void {
        return Err(io::Error::last_os_error());
    }
    Ok(Mapping {
        addr: addr.cast(),
        len,
        file,
        layout,
    })
}

/// Opens the state file `path` for a zone of `size` bytes: the table in it when it has this
/// size and format, a new table otherwise. `previous` is the previous cycle's mapping of the
/// same file (reload), whose open file is used again even if the path now names another one.
/// `format` formats a table block; `opens` says whether a block holds a table of the layout
/// (called under the file's lock).
pub fn open(
    path: &CStr,
    size: usize,
    previous: Option<&Mapping>,
    format: impl Fn(*mut u8, Layout) -> bool,
    opens: impl Fn(*mut u8, Layout) -> bool,
) -> Result<Opened, String> {
    let fail = |what: &str, e: io::Error| format!("{what} \"{}\" failed ({})", show(path), os(&e));
    let Some((len, layout)) = state::file_layout(size) else {
        return Err("zone is too small".into());
    };
    let p = Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));

    let existing = match previous {
        Some(m) => Some(m.file.try_clone().map_err(|e| fail("dup of", e))?),
        None => match OpenOptions::new().read(true).write(true).open(p) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(fail("open()", e)),
        },
    };
    if let Some(f) = existing {
        if whose(&f).map_err(|e| format!("\"{}\" {e}", show(path)))? == Found::Foreign {
            return Err(format!("\"{}\" {FOREIGN}", show(path)));
        }
        let file_len = f.metadata().map_err(|e| fail("fstat()", e))?.len();
        // Only a file of exactly this length is mapped: a shorter one would fault.
        if file_len == len as u64 {
            let m = map(f, len, layout).map_err(|e| fail("mmap()", e))?;
            if state::header_matches(m.header(), file_len, len) && table_ok(&m, &opens) {
                return Ok(Opened::Kept(m));
            }
        }
    }

    // A new file, put in place by rename: processes that map the old one (the old nginx of a
    // binary upgrade with another size) keep theirs intact.
    let mut tmp = path.to_bytes().to_vec();
    // SAFETY: getpid never fails.
    tmp.extend_from_slice(format!(".new.{}", unsafe { getpid() }).as_bytes());
    let tmp_path = Path::new(std::ffi::OsStr::from_bytes(&tmp));
    let _ = std::fs::remove_file(tmp_path);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp_path)
        .map_err(|e| fail("open() of a new", e))?;
    let made = (|| {
        f.set_len(len as u64)
            .map_err(|e| fail("ftruncate() of", e))?;
        let m = map(f, len, layout).map_err(|e| fail("mmap()", e))?;
        // SAFETY: the new file is ours alone until the rename; the header is at its start.
        state::write_header(unsafe { &mut *m.addr.cast::<FileHeader>() }, len);
        if !format(m.block(), layout) {
            return Err(format!("formatting \"{}\" failed", show(path)));
        }
        std::fs::rename(tmp_path, p).map_err(|e| fail("rename() to", e))?;
        Ok(m)
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(tmp_path);
    }
    made.map(Opened::Made)
}

/// Whether the table in a mapped file opens with the layout expected for it.
fn table_ok(m: &Mapping, opens: impl Fn(*mut u8, Layout) -> bool) -> bool {
    // The mapping holds `layout.total` bytes of table after the header, and the lock keeps
    // the other processes out while `opens` looks.
    let _lock = m.lock();
    opens(m.block(), m.layout)
}

/// Checks, without touching anything, that the state file can be used: an existing path must
/// be an empty file or a state file of this module, readable and writable; a new one needs a
/// directory this process can write to. (Run when the directive is parsed, so that `nginx -t`
/// finds a typo before a start would.)
pub fn check(path: &CStr) -> Result<(), String> {
    let p = Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
    match std::fs::metadata(p) {
        Ok(m) if !m.is_file() => return Err("is not a regular file".into()),
        Ok(_) => {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .map_err(|e| format!("cannot be opened ({})", os(&e)))?;
            return whose(&f).and_then(|w| match w {
                Found::Foreign => Err(FOREIGN.into()),
                Found::Empty | Found::Ours => Ok(()),
            });
        }
        // Not there, or a file on the way where a directory should be: the directory is
        // what is wrong then, and said below.
        Err(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(format!("cannot be looked at ({})", os(&e)))
        }
        Err(_) => {}
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "is in \"{}\", which is not a directory",
                dir.display()
            ))
        }
        Err(e) => {
            return Err(format!(
                "is in the directory \"{}\", which cannot be used ({})",
                dir.display(),
                os(&e)
            ))
        }
    }
    let c_dir = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| "has a NUL byte".to_string())?;
    // SAFETY: a NUL-terminated path; access(2) only checks permissions.
    if unsafe { access(c_dir.as_ptr(), (W_OK | X_OK) as i32) } != 0 {
        return Err(format!(
            "is in the directory \"{}\", which this process cannot write to ({})",
            dir.display(),
            os(&io::Error::last_os_error())
        ));
    }
    Ok(())
}

/// Why a foreign file is refused.
const FOREIGN: &str = "is a file of something else, not a socketio_sticky state file: it is left \
                       untouched (give state= a path of its own)";

/// What an open file at a `state=` path is.
fn whose(f: &File) -> Result<Found, String> {
    let len = f
        .metadata()
        .map_err(|e| format!("cannot be looked at ({})", os(&e)))?
        .len();
    // At offset 0 whatever the file's offset: on a reload the file is a duplicate of the
    // previous cycle's descriptor, whose offset an earlier read has moved.
    let mut head = [0u8; 8];
    let n = f
        .read_at(&mut head, 0)
        .map_err(|e| format!("cannot be read ({})", os(&e)))?;
    Ok(state::found(len, head.get(..n).unwrap_or_default()))
}

/// An error as nginx writes one: `2: No such file or directory`.
fn os(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = e.to_string();
            let suffix = format!(" (os error {code})");
            format!("{code}: {}", text.strip_suffix(&suffix).unwrap_or(&text))
        }
        None => e.to_string(),
    }
}

fn show(path: &CStr) -> String {
    String::from_utf8_lossy(path.to_bytes()).into_owned()
}
