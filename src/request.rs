//! Reading key values from a request: raw bytes from nginx's request structure, handed to the
//! pure extractors in `logic::extract`.

use ngx::ffi::{
    ngx_http_get_indexed_variable, ngx_http_request_t, ngx_list_t, ngx_pnalloc, ngx_table_elt_t,
};

use crate::conf::KeySource;
use crate::glue::bytes;
use crate::logic::extract::{self, QueryScan};
use crate::logic::params::first_capture;

/// Tries `sources` in order; the first non-empty value that fits, percent-decoded where the
/// source is raw (a copy only when there is something to decode). `query` is the request's
/// one-pass scan of its query string for the configuration's argument names.
///
/// # Safety
/// `r` must be a valid request in the upstream phase; the key borrows from it (its query
/// string, headers or pool) and must not outlive it.
#[inline(always)]
pub unsafe fn find_key<'a>(
    r: *mut ngx_http_request_t,
    sources: &[KeySource],
    query: &QueryScan<'a>,
) -> Option<&'a [u8]> {
    let decoded = |raw: &'a [u8]| {
        extract::decode_key(raw, |n| {
            // SAFETY: fresh memory of the request's pool, `n` bytes, as long-lived as the
            // request.
            unsafe {
                let p = ngx_pnalloc((*r).pool, n).cast::<u8>();
                (!p.is_null()).then(|| core::slice::from_raw_parts_mut(p, n))
            }
        })
    };
    for source in sources {
        // SAFETY: the caller guarantees `r` is valid; every slice below is request memory.
        let found = unsafe {
            match source {
                KeySource::Arg(name, slot) => match slot {
                    // The scan saw no `%`: nothing to decode.
                    Some(i) if !query.percent => query
                        .values
                        .get(*i)
                        .copied()
                        .flatten()
                        .map(extract::within_limit),
                    Some(i) => query.values.get(*i).copied().flatten().map(decoded),
                    None => extract::query_arg(bytes(&(*r).args), name).map(decoded),
                },
                KeySource::Cookie(name) => header_values(r, b"cookie")
                    .find_map(|h| extract::cookie(h, name))
                    .map(decoded),
                KeySource::Header(name) => header_values(r, name)
                    .find_map(extract::header_value)
                    .map(decoded),
                KeySource::Path => {
                    extract::socketio09_sid(bytes(&(*r).uri)).map(extract::within_limit)
                }
                KeySource::Uri(re) => {
                    first_capture(re, bytes(&(*r).uri)).map(extract::within_limit)
                }
                KeySource::Variable(index) => variable(r, *index).map(decoded),
            }
        };
        match found {
            Some(Ok(key)) => return Some(key),
            Some(Err(e)) => {
                // SAFETY: `r` is valid; its connection log is used for the debug line only.
                let log = unsafe { (*(*r).connection).log };
                ngx::ngx_log_debug!(
                    log,
                    "socketio_sticky: key value ignored ({})",
                    match e {
                        extract::Rejected::TooLong => "longer than the limit",
                        extract::Rejected::NoMemory => "no memory to decode it",
                    }
                );
            }
            None => {}
        }
    }
    None
}

/// The value of the request's cookie `name` (the first one that is not empty), raw.
///
/// # Safety
/// `r` must be a valid request; the value borrows from its headers.
pub unsafe fn cookie_value<'a>(r: *mut ngx_http_request_t, name: &[u8]) -> Option<&'a [u8]> {
    // SAFETY: guaranteed by the caller.
    unsafe { header_values(r, b"cookie").find_map(|h| extract::cookie(h, name)) }
}

/// Values of the request headers named `name` (case-insensitive), in order.
///
/// # Safety
/// `r` must be a valid request whose header list is not modified while iterating.
unsafe fn header_values<'r, 'n>(
    r: *mut ngx_http_request_t,
    name: &'n [u8],
) -> impl Iterator<Item = &'r [u8]> + 'n {
    // SAFETY: the request's header list is valid.
    unsafe { list_values(core::ptr::addr_of!((*r).headers_in.headers), name) }
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
