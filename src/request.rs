//! Reading key values from a request: raw bytes from nginx's request structure, handed to the
//! pure extractors in `logic::extract`.

use ngx::ffi::{ngx_http_get_indexed_variable, ngx_http_request_t, ngx_list_t, ngx_table_elt_t};

use crate::conf::KeySource;
use crate::glue::bytes;
use crate::logic::extract::{self, KeyBuf, QueryScan};
use crate::logic::params::uri_capture;

/// What the sources gave.
pub enum Found {
    /// A usable key, stored in the buffer.
    Key,
    /// Nothing (or only values over the length limit).
    Nothing,
}

/// Tries `sources` in order; the first non-empty value that fits is decoded into `out`.
/// `query` is the request's one-pass scan of its query string for the configuration's
/// `arg_names`.
///
/// # Safety
/// `r` must be a valid request in the upstream phase.
pub unsafe fn find_key(
    r: *mut ngx_http_request_t,
    sources: &[KeySource],
    query: &QueryScan,
    out: &mut KeyBuf,
) -> Found {
    for source in sources {
        // SAFETY: the caller guarantees `r` is valid; every slice below is read while the
        // request (and its pool) is alive, and not kept.
        let stored = unsafe {
            match source {
                KeySource::Arg(name, slot) => match slot {
                    Some(i) => query.values.get(*i).copied().flatten(),
                    None => extract::query_arg(bytes(&(*r).args), name),
                }
                .map(|v| out.set_decoded(v)),
                KeySource::Cookie(name) => header_values(r, b"cookie")
                    .find_map(|h| extract::cookie(h, name))
                    .map(|v| out.set_decoded(v)),
                KeySource::Header(name) => header_values(r, name)
                    .find_map(extract::header_value)
                    .map(|v| out.set_decoded(v)),
                KeySource::Path => {
                    extract::socketio09_sid(bytes(&(*r).uri)).map(|v| out.set_raw(v))
                }
                KeySource::Uri(re) => uri_capture(re, bytes(&(*r).uri)).map(|v| out.set_raw(v)),
                KeySource::Variable(index) => variable(r, *index).map(|v| out.set_decoded(v)),
            }
        };
        match stored {
            Some(Ok(())) => return Found::Key,
            Some(Err(extract::Rejected::TooLong)) => {
                // SAFETY: `r` is valid; its connection log is used for the debug line only.
                let log = unsafe { (*(*r).connection).log };
                ngx::ngx_log_debug!(
                    log,
                    "socketio_sticky: key value over {} bytes ignored",
                    extract::MAX_KEY_LEN
                );
            }
            None => {}
        }
    }
    Found::Nothing
}

/// Values of the request headers named `name` (case-insensitive), in order.
///
/// # Safety
/// `r` must be a valid request whose header list is not modified while iterating.
unsafe fn header_values<'a>(
    r: *mut ngx_http_request_t,
    name: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    // SAFETY: the request's header list is valid.
    unsafe { list_values(core::ptr::addr_of!((*r).headers_in.headers), name) }
}

/// Values of the headers named `name` (case-insensitive) of an nginx header list, in order
/// (the list of `ngx_table_elt_t` that requests and responses keep; deleted ones skipped).
///
/// # Safety
/// `list` must be a valid header list that is not modified while iterating.
pub unsafe fn list_values<'a>(
    list: *const ngx_list_t,
    name: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
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

/// The value of an indexed nginx variable, if found.
///
/// # Safety
/// `r` must be a valid request and `index` a variable index obtained at configuration time.
unsafe fn variable<'a>(r: *mut ngx_http_request_t, index: usize) -> Option<&'a [u8]> {
    // SAFETY: nginx evaluates the variable into request-pool memory.
    unsafe {
        let v = ngx_http_get_indexed_variable(r, index);
        if v.is_null() || (*v).not_found() != 0 || (*v).valid() == 0 {
            return None;
        }
        let b = (*v).as_bytes();
        (!b.is_empty()).then(|| core::slice::from_raw_parts(b.as_ptr(), b.len()))
    }
}
