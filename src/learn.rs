//! Learning session ids: the response of a handshake-shaped request is read (its `Set-Cookie`
//! headers, or the first bytes of its body) for the session id the backend minted, which is
//! stored in the zone with the backend's identity before the response goes on to the client.
//! The body is copied aside at most `sniff::LOOK_MAX` bytes and never changed, held or
//! reordered.

use core::mem::size_of;
use core::ptr::{self, NonNull};

use ngx::ffi::{
    ngx_buf_t, ngx_cached_time, ngx_chain_t, ngx_http_request_t, ngx_log_t, ngx_palloc,
    NGX_LOG_WARN,
};

use crate::conf::{KeySource, SrvConf};
use crate::glue::list_values;
use crate::logic::choose::Status;
use crate::logic::hash::log_tag;
use crate::logic::sniff::{self, Look, Sniffed};
use crate::logic::table::Learned;
use crate::peer_data::{Learning, PeerData};

/// At the response header: learn from `Set-Cookie`, or prepare to look at the body.
///
/// # Safety
/// `r` must be a valid request whose context is `pd`.
pub unsafe fn headers(r: *mut ngx_http_request_t, pd: &mut PeerData, log: *mut ngx_log_t) {
    let Some(kind) = pd.learn.take() else {
        return;
    };
    // SAFETY: `r` is valid; its response headers are complete at the header filter.
    unsafe {
        if (*r).headers_out.status != 200 {
            return;
        }
        let peer = pd.rrp.current;
        if peer.is_null() {
            return;
        }
        // The configuration outlives the request (not borrowed from `pd`).
        let conf = pd.conf.as_ref();
        let identity = conf.facts(pd.primary, peer).identity;
        let headers = ptr::addr_of!((*r).headers_out.headers);

        for value in list_values(headers, b"set-cookie") {
            for source in &conf.sid {
                if let KeySource::Cookie(name, _) = source {
                    if let Some(sid) = sniff::set_cookie(value, name.as_slice()) {
                        store(pd, conf, sid, identity, log);
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
        let look = ngx_palloc((*r).pool, size_of::<Look>()).cast::<Look>();
        let Some(look) = NonNull::new(look) else {
            return;
        };
        look.write(Look::new(kind));
        pd.look = Some(Learning {
            look,
            peer: identity,
        });
    }
}

/// A part of the response body: copy what is still missing of the look, and learn once it is
/// conclusive.
///
/// # Safety
/// `pd` must be the context of the request whose output `chain` is.
pub unsafe fn body(pd: &mut PeerData, chain: *mut ngx_chain_t, log: *mut ngx_log_t) {
    let Some(Learning { mut look, peer }) = pd.look else {
        return;
    };
    // SAFETY: the look is in the request pool; the chain's links and buffers are valid.
    let look = unsafe { look.as_mut() };
    let mut ended = false;
    let mut cl = chain;
    // SAFETY: as above.
    while let Some(link) = unsafe { cl.as_ref() } {
        // SAFETY: as above.
        if let Some(b) = unsafe { link.buf.as_ref() } {
            if in_memory(b) {
                // SAFETY: an in-memory buffer's `pos..last` is readable.
                look.feed(unsafe { buf_bytes(b) });
            } else if b.in_file() != 0 && b.file_last > b.file_pos {
                // Bytes only on disk: not looked at.
                ended = true;
            }
            if b.last_buf() != 0 || b.last_in_chain() != 0 {
                ended = true;
            }
        }
        cl = link.next;
    }

    match look.sniff(ended) {
        Sniffed::NeedMore => {}
        Sniffed::Sid(sid) => {
            pd.look = None;
            // SAFETY: the configuration outlives the request.
            let conf = unsafe { pd.conf.as_ref() };
            store(pd, conf, &sid, peer, log);
        }
        Sniffed::NotFound => {
            pd.look = None;
            ngx::ngx_log_debug!(log, "socketio_sticky: no session id in handshake body");
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
fn store(pd: &mut PeerData, conf: &SrvConf, sid: &[u8], peer: u64, log: *mut ngx_log_t) {
    if conf.zone.is_null() {
        return;
    }
    // SAFETY: the time is nginx's cached time; the zone belongs to the running cycle.
    let learned = unsafe {
        let now = (*ngx_cached_time).sec as u32;
        crate::zone::learn(conf.zone, sid, peer, now, conf.timeout)
    };
    pd.status = Some(Status::New);
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
