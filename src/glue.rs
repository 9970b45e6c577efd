//! Small FFI helpers shared by the glue: panic containment and byte views of nginx strings.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ngx::ffi::{ngx_log_t, ngx_str_t, NGX_LOG_ALERT};

/// Runs `f`, turning a panic into `fallback` and an `[alert]` line, so that no panic ever
/// unwinds into nginx (which would abort the worker).
#[inline]
pub fn guard<R>(log: *mut ngx_log_t, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
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

/// The bytes of an nginx string (empty for a null or empty string).
///
/// # Safety
/// `s.data` must point to `s.len` readable bytes that outlive the returned slice.
#[inline]
pub unsafe fn bytes<'a>(s: &ngx_str_t) -> &'a [u8] {
    if s.len == 0 || s.data.is_null() {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { core::slice::from_raw_parts(s.data, s.len) }
    }
}
