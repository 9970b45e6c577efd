//! Response filters: the route cookie (`cookie=`) is added to the response header, and
//! learning reads the session id of a handshake response and stores it in the zone before the
//! response goes on to the client.
//!
//! Only requests that the balancer marked (`PeerData::learn`, `PeerData::cookie_out`) are
//! looked at; every other response costs one pointer test per filter call. The body filter copies at
//! most `sniff::LOOK_MAX` bytes aside and never changes, holds or reorders the response.

use core::mem::size_of;
use core::ptr;

use ngx::ffi::{
    ngx_buf_t, ngx_cached_time, ngx_chain_t, ngx_conf_t, ngx_http_output_body_filter_pt,
    ngx_http_output_header_filter_pt, ngx_http_request_t, ngx_http_top_body_filter,
    ngx_http_top_header_filter, ngx_int_t, ngx_list_push, ngx_log_t, ngx_pcalloc, ngx_pnalloc,
    ngx_str_t, ngx_table_elt_t, NGX_ERROR, NGX_LOG_WARN, NGX_OK,
};

use crate::balancer::{request_data, request_data_mut, PeerData, Status};
use crate::conf::{KeySource, SrvConf};
use crate::glue::{bytes, guard};
use crate::logic::cookie;
use crate::logic::hash::log_tag;
use crate::logic::sniff::{self, Kind, Sniffed, LOOK_MAX};
use crate::logic::table::{peer_identity, Learned};
use crate::request::list_values;

static mut NEXT_HEADER_FILTER: ngx_http_output_header_filter_pt = None;
static mut NEXT_BODY_FILTER: ngx_http_output_body_filter_pt = None;

/// The look at a handshake body in progress (request pool).
pub struct Look {
    kind: Kind,
    peer: u64,
    len: usize,
    buf: [u8; LOOK_MAX],
}

/// `postconfiguration`: puts the filters at the top of the chains.
pub unsafe extern "C" fn init_filters(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid configuration.
    let log = unsafe { (*cf).log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        // SAFETY: filter chains are set up single-threaded during configuration; the saved
        // pointers are only read by workers afterwards.
        unsafe {
            ptr::addr_of_mut!(NEXT_HEADER_FILTER).write(ngx_http_top_header_filter);
            ngx_http_top_header_filter = Some(header_filter);
            ptr::addr_of_mut!(NEXT_BODY_FILTER).write(ngx_http_top_body_filter);
            ngx_http_top_body_filter = Some(body_filter);
        }
        NGX_OK as ngx_int_t
    })
}

unsafe fn next_header(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: set by `init_filters` before any request; nginx's chain always ends in a filter.
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
        if request_data(r).is_some_and(|pd| pd.learn != 0 || pd.cookie_out) {
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
        issue_cookie(r, log);
        inspect_headers(r, log);
    });
    // SAFETY: passing the response on (with the route cookie added, if it needs one).
    unsafe { next_header(r) }
}

/// With `cookie=`: adds `Set-Cookie: NAME=<peer id>` to the response of a request that came
/// without a valid route cookie, or whose cookie names another peer than the one that
/// answered. Only responses of a primary peer get one (a cookie never names a backup).
unsafe fn issue_cookie(r: *mut ngx_http_request_t, log: *mut ngx_log_t) {
    // SAFETY: our context is the request's `PeerData` (or null); `r` is valid; the header is
    // built in the request pool and pushed onto the response's header list.
    unsafe {
        let Some(pd) = request_data_mut(r) else {
            return;
        };
        if !core::mem::take(&mut pd.cookie_out) || pd.conf.is_null() {
            return;
        }
        let Some(c) = (*pd.conf).cookie.as_ref() else {
            return;
        };
        // Only a response the peer itself sent (nginx closes the connection before it answers
        // an error of its own, e.g. a 502 after the last failed try).
        let u = (*r).upstream;
        let peer = pd.rrp.current;
        if u.is_null() || (*u).peer.connection.is_null() || peer.is_null() {
            return;
        }
        if !ptr::eq(pd.rrp.peers, pd.primary) {
            return;
        }
        let id = c.key.peer_id(bytes(&(*peer).server), bytes(&(*peer).name));
        if pd.has_cookie && pd.cookie == id {
            return;
        }
        let len = c.header_len();
        let p = ngx_pnalloc((*r).pool, len).cast::<u8>();
        if p.is_null() {
            return;
        }
        let buf = core::slice::from_raw_parts_mut(p, len);
        let Some(n) = cookie::write_set_cookie(buf, &c.name, id, &c.attributes) else {
            return;
        };
        let h =
            ngx_list_push(ptr::addr_of_mut!((*r).headers_out.headers)).cast::<ngx_table_elt_t>();
        if h.is_null() {
            return;
        }
        // Zeroed first: nginx 1.23+ has a `next` link that must be null.
        ptr::write_bytes(h, 0, 1);
        (*h).hash = 1;
        (*h).key = ngx_str_t {
            len: SET_COOKIE.len(),
            data: SET_COOKIE.as_ptr().cast_mut(),
        };
        (*h).value = ngx_str_t { len: n, data: p };
        ngx::ngx_log_debug!(log, "socketio_sticky: route cookie issued");
    }
}

static SET_COOKIE: &[u8] = b"Set-Cookie";

unsafe extern "C" fn body_filter(r: *mut ngx_http_request_t, chain: *mut ngx_chain_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid request; the look is set only on requests with a context.
    unsafe {
        if request_data(r).is_some_and(|pd| !pd.look.is_null()) {
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
    // SAFETY: `r` and `chain` are valid; a contained panic only skips learning.
    guard(log, (), || unsafe { inspect_body(r, chain, log) });
    // SAFETY: passing the response on, unchanged.
    unsafe { next_body(r, chain) }
}

/// At the response header: learn from `Set-Cookie`, or prepare to look at the body.
unsafe fn inspect_headers(r: *mut ngx_http_request_t, log: *mut ngx_log_t) {
    // SAFETY: our context is the request's `PeerData` (or null); `r` is valid.
    unsafe {
        let Some(pd) = request_data_mut(r) else {
            return;
        };
        let Some(kind) = pd.take_learn() else {
            return;
        };
        if (*r).headers_out.status != 200 {
            return;
        }
        let peer = pd.rrp.current;
        if peer.is_null() || pd.conf.is_null() {
            return;
        }
        let conf = &*pd.conf;
        let identity = peer_identity(bytes(&(*peer).server), bytes(&(*peer).name));
        let headers = ptr::addr_of!((*r).headers_out.headers);

        for value in list_values(headers, b"set-cookie") {
            for source in &conf.sid {
                if let KeySource::Cookie(name) = source {
                    if let Some(sid) = sniff::set_cookie(value, name.as_slice()) {
                        learn(pd, conf, sid, identity, log);
                        return;
                    }
                }
            }
        }

        if let Some(enc) = list_values(headers, b"content-encoding").next() {
            if !enc.is_empty() && !enc.eq_ignore_ascii_case(b"identity") {
                ngx::ngx_log_debug!(log, "socketio_sticky: encoded handshake not learned");
                return;
            }
        }
        if (*r).header_only() != 0 {
            return;
        }
        let look = ngx_pcalloc((*r).pool, size_of::<Look>()).cast::<Look>();
        if look.is_null() {
            return;
        }
        look.write(Look {
            kind,
            peer: identity,
            len: 0,
            buf: [0; LOOK_MAX],
        });
        pd.look = look;
    }
}

/// A body part: copy what is still missing of the look, and learn once it is conclusive.
unsafe fn inspect_body(r: *mut ngx_http_request_t, chain: *mut ngx_chain_t, log: *mut ngx_log_t) {
    // SAFETY: our context is the request's `PeerData` (or null); `look` is in the request pool.
    unsafe {
        let Some(pd) = request_data_mut(r) else {
            return;
        };
        let Some(look) = pd.look.as_mut() else {
            return;
        };

        let mut complete = false;
        let mut cl = chain;
        while let Some(link) = cl.as_ref() {
            if let Some(b) = link.buf.as_ref() {
                if in_memory(b) {
                    let data = buf_bytes(b);
                    let room = LOOK_MAX - look.len;
                    let n = data.len().min(room);
                    if let (Some(dst), Some(src)) =
                        (look.buf.get_mut(look.len..look.len + n), data.get(..n))
                    {
                        dst.copy_from_slice(src);
                        look.len += n;
                    }
                } else if b.in_file() != 0 && b.file_last > b.file_pos {
                    // Bytes only on disk: not looked at.
                    complete = true;
                }
                if b.last_buf() != 0 || b.last_in_chain() != 0 {
                    complete = true;
                }
            }
            cl = link.next;
        }

        let seen = look.buf.get(..look.len).unwrap_or(&[]);
        match sniff::sniff(look.kind, seen, complete || look.len >= LOOK_MAX) {
            Sniffed::NeedMore => {}
            Sniffed::Sid(sid) => {
                let peer = look.peer;
                pd.look = ptr::null_mut();
                let conf = &*pd.conf;
                learn(pd, conf, &sid, peer, log);
            }
            Sniffed::NotFound => {
                pd.look = ptr::null_mut();
                ngx::ngx_log_debug!(log, "socketio_sticky: no session id in handshake body");
            }
        }
    }
}

fn in_memory(b: &ngx_buf_t) -> bool {
    b.temporary() != 0 || b.memory() != 0 || b.mmap() != 0
}

/// # Safety
/// `b` must be an in-memory buffer whose `pos..last` is readable.
unsafe fn buf_bytes<'a>(b: &ngx_buf_t) -> &'a [u8] {
    if b.pos.is_null() || b.last.is_null() || b.last < b.pos {
        return &[];
    }
    // SAFETY: guaranteed by the caller; `last >= pos` was checked.
    unsafe { core::slice::from_raw_parts(b.pos, b.last.offset_from(b.pos) as usize) }
}

/// Stores `sid -> peer` in the zone.
fn learn(pd: &mut PeerData, conf: &SrvConf, sid: &[u8], peer: u64, log: *mut ngx_log_t) {
    if conf.zone.is_null() {
        return;
    }
    // SAFETY: the time is nginx's cached time; the zone belongs to the running cycle.
    let now = unsafe { (*ngx_cached_time).sec } as u32;
    // SAFETY: see above.
    let learned = unsafe {
        crate::zone::with_table(conf.zone, |t| {
            let d = t.digest(sid);
            t.learn(d, peer, now, conf.timeout)
        })
    };
    pd.status = Status::New;
    ngx::ngx_log_debug!(
        log,
        "socketio_sticky: learned session tag:{:08x} peer:{:016x}",
        log_tag(sid),
        peer
    );
    if let Some(Learned::Replaced { warn: true, total }) = learned {
        // SAFETY: the zone is valid (see above).
        let name = unsafe { crate::zone::zone_name(conf.zone) };
        ngx::ngx_log_error!(
            NGX_LOG_WARN,
            log,
            "socketio_sticky: two backends minted the same session id, the newest wins \
             (zone \"{}\", {} so far)",
            name,
            total
        );
    }
}
