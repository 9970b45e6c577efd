//! A request's keys, read in one pass over its parts: the query string is scanned once for
//! every argument the configuration names, the `Cookie` headers once (when a key needs them)
//! for every cookie, and the values come back together. The pure extractors are in
//! `logic::extract`.

use ngx::ffi::{ngx_http_get_indexed_variable, ngx_http_request_t, ngx_pnalloc};

use crate::conf::{KeySource, SrvConf};
use crate::glue::{bytes, list_values, multi_header};
use crate::logic::cookie;
use crate::logic::extract::{self, CookieScan, QueryScan};
use crate::logic::handshake::{handshake_shape, Kind};

/// What a request carries.
pub struct Keys<'r> {
    /// The device id (percent-decoded; request memory).
    pub device_id: Option<&'r [u8]>,
    /// The Socket.IO session id.
    pub sid: Option<&'r [u8]>,
    /// The peer id of a well-formed route cookie.
    pub route_cookie: Option<u64>,
    /// The request is a handshake (its response mints a session id).
    pub handshake: Option<Kind>,
}

/// Reads the keys of `r` that `conf` asks for.
///
/// # Safety
/// `r` must be a valid request in the upstream phase; the keys borrow from it (its query
/// string, headers or pool) and must not outlive it.
#[inline]
pub unsafe fn read<'r>(r: *mut ngx_http_request_t, conf: &SrvConf) -> Keys<'r> {
    // SAFETY: guaranteed by the caller.
    let (args, uri) = unsafe { (bytes(&(*r).args), bytes(&(*r).uri)) };
    let mut parts = Parts {
        r,
        query: QueryScan::default(),
        cookies: None,
        cookie_names: &conf.cookie_names,
    };
    extract::scan_query(args, &conf.arg_names, &mut parts.query);

    let device_id = parts.first(&conf.device_id);
    let sid = if conf.wants_sid() {
        parts.first(&conf.sid)
    } else {
        None
    };
    let route_cookie = conf
        .cookie
        .as_ref()
        .and_then(|c| parts.cookie(&c.name, c.slot))
        .and_then(cookie::decode);
    Keys {
        device_id,
        sid,
        route_cookie,
        handshake: handshake_shape(parts.query.eio, parts.query.sid, uri),
    }
}

/// The parts of a request, each read at most once.
struct Parts<'r, 'c> {
    r: *mut ngx_http_request_t,
    query: QueryScan<'r>,
    /// The cookies the configuration names, once a key needed them.
    cookies: Option<CookieScan<'r>>,
    cookie_names: &'c [Vec<u8>],
}

impl<'r> Parts<'r, '_> {
    /// The first of `sources` that has a value that fits, percent-decoded where the source is
    /// raw (a copy only when there is something to decode).
    #[inline(always)]
    fn first(&mut self, sources: &[KeySource]) -> Option<&'r [u8]> {
        for source in sources {
            let found = match source {
                KeySource::Arg(name, slot) => match slot {
                    // The scan saw no `%`: nothing to decode.
                    Some(i) if !self.query.percent => self
                        .query
                        .values
                        .get(*i)
                        .copied()
                        .flatten()
                        .map(extract::within_limit),
                    Some(i) => self
                        .query
                        .values
                        .get(*i)
                        .copied()
                        .flatten()
                        .map(|v| self.decoded(v)),
                    // SAFETY: `r` is valid (see `read`).
                    None => extract::query_arg(unsafe { bytes(&(*self.r).args) }, name)
                        .map(|v| self.decoded(v)),
                },
                KeySource::Cookie(name, slot) => self.cookie(name, *slot).map(|v| self.decoded(v)),
                // SAFETY: as above.
                KeySource::Header(name) => unsafe { header_values(self.r, name) }
                    .find_map(extract::header_value)
                    .map(|v| self.decoded(v)),
                KeySource::Path => {
                    // SAFETY: as above.
                    extract::socketio09_sid(unsafe { bytes(&(*self.r).uri) })
                        .map(extract::within_limit)
                }
                KeySource::Uri(re) => {
                    // SAFETY: as above.
                    re.first_capture(unsafe { bytes(&(*self.r).uri) })
                        .map(extract::within_limit)
                }
                // SAFETY: as above; the index was obtained at configuration time.
                KeySource::Variable(index) => {
                    unsafe { variable(self.r, *index) }.map(|v| self.decoded(v))
                }
            };
            match found {
                Some(Ok(key)) => return Some(key),
                Some(Err(e)) => {
                    // SAFETY: `r` is valid; its connection log is used for a debug line only.
                    let log = unsafe { (*(*self.r).connection).log };
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

    /// `raw` percent-decoded into the request's pool when it needs it.
    fn decoded(&self, raw: &'r [u8]) -> Result<&'r [u8], extract::Rejected> {
        let r = self.r;
        extract::decode_key(raw, |n| {
            // SAFETY: fresh memory of the request's pool, `n` bytes, as long-lived as the
            // request.
            unsafe {
                let p = ngx_pnalloc((*r).pool, n).cast::<u8>();
                (!p.is_null()).then(|| core::slice::from_raw_parts_mut(p, n))
            }
        })
    }

    /// The raw value of cookie `name`: from the one pass over the `Cookie` headers, or, for a
    /// name past the pass's slots, from a pass of its own.
    fn cookie(&mut self, name: &[u8], slot: Option<usize>) -> Option<&'r [u8]> {
        let r = self.r;
        let Some(i) = slot else {
            // SAFETY: `r` is valid (see `read`).
            return unsafe { cookie_headers(r) }.find_map(|h| extract::cookie(h, name));
        };
        // SAFETY: `r` is valid (see `read`).
        if self.cookies.is_none() && unsafe { cookie_headers(r) }.next().is_none() {
            return None;
        }
        let names = self.cookie_names;
        let scan = self.cookies.get_or_insert_with(|| {
            let mut scan = CookieScan::default();
            // SAFETY: as above.
            for h in unsafe { cookie_headers(r) } {
                scan.feed(h, names);
                if scan.complete(names.len()) {
                    break;
                }
            }
            scan
        });
        scan.values.get(i).copied().flatten()
    }
}

/// The values of the request's `Cookie` headers, in order (nginx keeps them apart from the
/// other headers).
///
/// # Safety
/// `r` must be a valid request whose headers are not modified while iterating.
unsafe fn cookie_headers<'r>(r: *mut ngx_http_request_t) -> impl Iterator<Item = &'r [u8]> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        #[cfg(nginx1_23_0)]
        let headers = multi_header((*r).headers_in.cookie);
        #[cfg(not(nginx1_23_0))]
        let headers = multi_header(&(*r).headers_in.cookies);
        headers
    }
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
