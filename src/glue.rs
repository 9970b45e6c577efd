//! Small FFI helpers shared by the glue: panic containment, byte views of nginx strings and
//! of nginx's header lists.

use core::ptr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ngx::ffi::{ngx_list_t, ngx_log_t, ngx_str_t, ngx_table_elt_t, NGX_LOG_ALERT};

/// Runs `f`, turning a panic into `fallback` and an `[alert]` line, so that no panic ever
/// unwinds into nginx (which would abort the worker).
#[inline]
pub fn guard<R>(log: *mut ngx_log_t, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            // The cycle's log, not a request's: nginx would append the request line (and its
            // session id) to a line logged in request context.
            let log = cycle_log().unwrap_or(log);
            if !log.is_null() {
                ngx::ngx_log_error!(
                    NGX_LOG_ALERT,
                    log,
                    "socketio_sticky: internal error contained, request handled by fallback"
                );
            }
            fallback
        }
    }
}

/// The running cycle's log: for lines that must not carry a request's context (nginx appends
/// the client, the server and the request line to those).
pub fn cycle_log() -> Option<*mut ngx_log_t> {
    // SAFETY: `ngx_cycle` is nginx's pointer to the running cycle, set before any module code
    // runs; its log lives as long as the cycle.
    unsafe {
        let cycle = ptr::addr_of!(ngx::ffi::ngx_cycle).read();
        cycle.as_ref().map(|c| c.log).filter(|l| !l.is_null())
    }
}

/// The bytes of an nginx string (empty for a null or empty string).
///
/// # Safety
/// `s.data` must point to `s.len` readable bytes that outlive the returned slice.
#[inline]
pub unsafe fn bytes<'a>(s: &ngx_str_t) -> &'a [u8] {
    if s.data.is_null() {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { core::slice::from_raw_parts(s.data, s.len) }
    }
}

/// Values of the headers named `name` (case-insensitive) of an nginx header list, in order
/// (the list of `ngx_table_elt_t` that requests and responses keep; deleted ones skipped).
///
/// # Safety
/// `list` must be a valid header list that is not modified while iterating.
pub unsafe fn list_values<'r, 'n>(
    list: *const ngx_list_t,
    name: &'n [u8],
) -> impl Iterator<Item = &'r [u8]> + 'n {
    // SAFETY: a header list is a chain of parts of `ngx_table_elt_t`.
    let mut part = unsafe { core::ptr::addr_of!((*list).part) };
    let mut i = 0usize;
    core::iter::from_fn(move || loop {
        // SAFETY: `part` is null or a valid list part; `i < nelts` indexes within it.
        unsafe {
            if part.is_null() {
                return None;
            }
            if i >= (*part).nelts {
                part = (*part).next;
                i = 0;
                continue;
            }
            let h = &*(*part).elts.cast::<ngx_table_elt_t>().add(i);
            i += 1;
            if h.hash != 0 && bytes(&h.key).eq_ignore_ascii_case(name) {
                return Some(bytes(&h.value));
            }
        }
    })
}

/// The values of a multi-header of nginx's parsed headers (`Cookie` of a request,
/// `Set-Cookie` of an upstream's response), in order: a linked list since nginx 1.23, an
/// array of pointers before.
///
/// # Safety
/// `first` must be null or the first of a list of valid headers that is not modified while
/// iterating.
#[cfg(nginx1_23_0)]
pub unsafe fn multi_header<'r>(first: *mut ngx_table_elt_t) -> impl Iterator<Item = &'r [u8]> {
    let mut h = first;
    core::iter::from_fn(move || {
        // SAFETY: guaranteed by the caller.
        let e = unsafe { h.as_ref() }?;
        h = e.next;
        // SAFETY: the header's value lives as long as the request.
        Some(unsafe { bytes(&e.value) })
    })
}

/// The values of a multi-header of nginx's parsed headers (`Cookie` of a request,
/// `Set-Cookie` of an upstream's response), in order: an array of pointers before nginx 1.23.
///
/// # Safety
/// `all` must be a valid array of pointers to valid headers, not modified while iterating.
#[cfg(not(nginx1_23_0))]
pub unsafe fn multi_header<'r>(all: &ngx::ffi::ngx_array_t) -> impl Iterator<Item = &'r [u8]> {
    // SAFETY: guaranteed by the caller.
    let all: &[*mut ngx_table_elt_t] = unsafe {
        if all.elts.is_null() || all.nelts == 0 {
            &[]
        } else {
            core::slice::from_raw_parts(all.elts.cast(), all.nelts)
        }
    };
    // SAFETY: as above.
    all.iter()
        .filter_map(|&h| unsafe { h.as_ref() })
        .map(|h| unsafe { bytes(&h.value) })
}

/// Keeps this library mapped until the process exits, once per process.
///
/// The module's statics hold heap blocks for the process's lifetime (the spare list of
/// request states, the regex crate's caches). nginx unloads its modules when a process exits;
/// once the library is unmapped those blocks look lost to a leak checker, and code a Rust
/// library registered (thread-local destructors) must not be unmapped early. Pinning changes
/// nothing else: a reload loads the new cycle's modules while the old cycle still holds them,
/// so nginx reuses the library that is loaded either way.
pub fn pin_module() {
    static PINNED: std::sync::Once = std::sync::Once::new();
    PINNED.call_once(|| {
        let mut info = core::mem::MaybeUninit::<ngx::ffi::Dl_info>::zeroed();
        // SAFETY: `dladdr` fills `info` for an address inside a loaded object (this
        // function's own code); `dli_fname` is then that object's path, NUL-terminated and
        // owned by the loader. `dlopen` with RTLD_NOLOAD only takes another reference to the
        // object already loaded (never loads one) and RTLD_NODELETE keeps it mapped; the
        // handle is deliberately never closed.
        unsafe {
            let here = pin_module as *const core::ffi::c_void;
            if ngx::ffi::dladdr(here, info.as_mut_ptr()) == 0 {
                return;
            }
            let name = info.assume_init().dli_fname;
            if !name.is_null() {
                let flags = ngx::ffi::RTLD_NOW | ngx::ffi::RTLD_NOLOAD | ngx::ffi::RTLD_NODELETE;
                ngx::ffi::dlopen(name, flags as core::ffi::c_int);
            }
        }
    });
}
