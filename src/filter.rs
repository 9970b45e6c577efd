//! The response filters' place in nginx's chains: a header filter and a body filter at the top.
//! Only responses of requests that the balancer marked are looked at (a route cookie to issue,
//! a handshake to learn from); every other response costs one test per filter call.

use core::ptr;

use ngx::ffi::{
    ngx_chain_t, ngx_conf_t, ngx_http_output_body_filter_pt, ngx_http_output_header_filter_pt,
    ngx_http_request_t, ngx_http_top_body_filter, ngx_http_top_header_filter, ngx_int_t, NGX_ERROR,
    NGX_OK,
};

use crate::glue::guard;
use crate::peer_data;
use crate::prefix_response::Out;

static mut NEXT_HEADER_FILTER: ngx_http_output_header_filter_pt = None;
static mut NEXT_BODY_FILTER: ngx_http_output_body_filter_pt = None;

/// `postconfiguration`: puts the filters at the top of the chains.
///
/// # Safety
/// Called by nginx at configuration time, single-threaded.
pub unsafe fn init(_cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: filter chains are set up single-threaded during configuration; the saved
    // pointers are only read by workers afterwards.
    unsafe {
        ptr::addr_of_mut!(NEXT_HEADER_FILTER).write(ngx_http_top_header_filter);
        ngx_http_top_header_filter = Some(header_filter);
        ptr::addr_of_mut!(NEXT_BODY_FILTER).write(ngx_http_top_body_filter);
        ngx_http_top_body_filter = Some(body_filter);
    }
    NGX_OK as ngx_int_t
}

unsafe fn next_header(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: set by `init` before any request; nginx's chain always ends in a filter.
    unsafe {
        match ptr::addr_of!(NEXT_HEADER_FILTER).read() {
            Some(f) => f(r),
            None => NGX_ERROR as ngx_int_t,
        }
    }
}

unsafe fn next_body(r: *mut ngx_http_request_t, chain: *mut ngx_chain_t) -> ngx_int_t {
    // SAFETY: as for `next_header`.
    unsafe {
        match ptr::addr_of!(NEXT_BODY_FILTER).read() {
            Some(f) => f(r, chain),
            None => NGX_ERROR as ngx_int_t,
        }
    }
}

unsafe extern "C" fn header_filter(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid request. Requests that are not handshakes to learn from
    // and need no route cookie only pay this test and the jump to the next filter.
    unsafe {
        if peer_data::of_request(r).is_some_and(|pd| pd.learn.is_some() || pd.cookie_out) {
            header_filter_inspect(r)
        } else {
            next_header(r)
        }
    }
}

/// # Safety
/// `r` must be a valid request with the module's context.
#[inline(never)]
unsafe fn header_filter_inspect(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid request with a connection.
    let log = unsafe { (*(*r).connection).log };
    // SAFETY: `r` is valid; a contained panic only skips the cookie or learning.
    guard(log, (), || unsafe {
        if let Some(pd) = peer_data::of_request(r) {
            crate::route_cookie::issue(r, pd, log);
            if let Some((learning, tag)) = crate::learn::headers(r, pd, log) {
                crate::prefix_response::headers(r, pd, learning, tag, log);
            }
        }
    });
    // SAFETY: passing the response on (with the route cookie added, if it needs one).
    unsafe { next_header(r) }
}

unsafe extern "C" fn body_filter(r: *mut ngx_http_request_t, chain: *mut ngx_chain_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid request; the look is set only on requests with a context.
    unsafe {
        if peer_data::of_request(r).is_some_and(|pd| pd.look.is_some() || pd.rewrite.is_some()) {
            body_filter_inspect(r, chain)
        } else {
            next_body(r, chain)
        }
    }
}

/// # Safety
/// `r` must be a valid request whose look at the body is in progress; `chain` its output.
#[inline(never)]
unsafe fn body_filter_inspect(r: *mut ngx_http_request_t, chain: *mut ngx_chain_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid request with a connection.
    let log = unsafe { (*(*r).connection).log };
    // SAFETY: `r` and `chain` are valid; a contained panic only skips learning (and the
    // rewrite: the chain goes on as it came).
    let out = guard(log, Out::Pass(chain), || unsafe {
        match peer_data::of_request(r) {
            Some(pd) if pd.rewrite.is_some() => crate::prefix_response::body(r, pd, chain, log),
            Some(pd) => {
                crate::learn::body(r, pd, chain, log);
                Out::Pass(chain)
            }
            None => Out::Pass(chain),
        }
    });
    match out {
        // SAFETY: passing the response on.
        Out::Pass(c) => unsafe { next_body(r, c) },
        // The bytes wait in the look for the rest of the head.
        Out::Hold => NGX_OK as ngx_int_t,
        // The body cannot have the length its header announced.
        Out::Error => NGX_ERROR as ngx_int_t,
    }
}
