//! Learning session ids: the response of a handshake-shaped request is read (its `Set-Cookie`
//! headers, or the first bytes of its body) for the session id the backend minted, which is
//! stored in the zone with the backend's identity before the response goes on to the client.
//! The body is copied aside at most `sniff::LOOK_MAX` bytes and never changed, held or
//! reordered.

use core::mem::size_of;
use core::ptr::NonNull;

use ngx::ffi::{
    ngx_buf_t, ngx_cached_time, ngx_chain_t, ngx_http_request_t, ngx_log_t, ngx_palloc,
    NGX_LOG_WARN,
};

use crate::conf::{KeySource, SrvConf};
use crate::glue::{bytes, cycle_log, multi_header};
use crate::logic::choose::Status;
use crate::logic::handshake::Kind;
use crate::logic::hash::log_tag;
use crate::logic::prefix::TAG_LEN;
use crate::logic::sniff::{self, Look, Sniffed};
use crate::logic::status::{COMPRESSED, NOT_200, TOO_LONG, UNRECOGNISED};
use crate::logic::table::Learned;
use crate::peer_data::{Learning, PeerData};

/// At the response header: learn from `Set-Cookie`, or prepare to look at the body. With
/// `sid_prefix`, a body to rewrite is not looked at here: its look and the tag are returned.
///
/// # Safety
/// `r` must be a valid request whose context is `pd`.
pub unsafe fn headers(
    r: *mut ngx_http_request_t,
    pd: &mut PeerData,
    log: *mut ngx_log_t,
) -> Option<(Learning, [u8; TAG_LEN])> {
    let kind = pd.learn.take()?;
    // SAFETY: `r` is valid; its response headers are complete at the header filter. The
    // configuration outlives the request (not borrowed from `pd`).
    let (conf, peer) = unsafe {
        if pd.rrp.current.is_null() {
            return None;
        }
        match (*r).headers_out.status {
            200 => {}
            // A websocket-only client's handshake: the open packet comes in a websocket
            // frame, which nobody learns from; nothing went wrong.
            101 => return None,
            _ => {
                skipped(pd.conf.as_ref(), NOT_200);
                return None;
            }
        }
        (pd.conf.as_ref(), pd.rrp.current)
    };
    // SAFETY: the primary list and the peer that answered are valid.
    let facts = unsafe { conf.facts(pd.primary, peer) };
    let identity = facts.identity;

    // `sid_prefix`: the tag to put into an Engine.IO handshake body (Socket.IO 0.9 carries the
    // id in later requests' paths, which are not rewritten).
    let tag = match (conf.sid_prefix.is_some(), facts.tag, kind) {
        (true, Some(tag), Kind::EngineIo) => Some(crate::logic::prefix::tag(tag)),
        _ => None,
    };
    let mut cookie_too_long = false;
    if conf.sid_cookies {
        // SAFETY: `r` is valid and its upstream's parsed response headers with it.
        'cookies: for value in unsafe { set_cookies(r) } {
            for source in &conf.sid {
                if let KeySource::Cookie(name, _) = source {
                    if let Some(sid) = sniff::set_cookie(value, name.as_slice()) {
                        store(pd, conf, sid, identity, log);
                        // The body still gets its tag (Engine.IO 3 sets `io` and sends the
                        // open packet too).
                        tag?;
                        break 'cookies;
                    }
                    cookie_too_long |= sniff::set_cookie_too_long(value, name.as_slice());
                }
            }
        }
    }
    // SAFETY: `r` is valid; `content_encoding` is null or the response's header.
    let (encoded, header_only) = unsafe {
        let enc = (*r).headers_out.content_encoding.as_ref();
        let enc = enc.filter(|h| h.hash != 0).map(|h| bytes(&h.value));
        (
            enc.is_some_and(|e| !e.is_empty() && !e.eq_ignore_ascii_case(b"identity")),
            (*r).header_only() != 0,
        )
    };
    if encoded {
        ngx::ngx_log_debug!(log, "socketio_sticky: encoded handshake not learned");
        skipped(conf, COMPRESSED);
        return None;
    }
    if header_only {
        if cookie_too_long {
            skipped(conf, TOO_LONG);
        }
        return None;
    }
    let learning = Learning {
        kind,
        peer: identity,
        look: None,
        cookie_too_long,
    };
    match tag {
        // The body will carry the tagged id: `prefix_response` looks at it.
        Some(tag) => return Some((learning, tag)),
        None => pd.look = Some(learning),
    }
    None
}

/// A part of the response body: the session id is read from the first buffer in place when
/// it holds it; otherwise what is still missing of the look is copied aside, and the id is
/// learned once the look is conclusive.
///
/// # Safety
/// `pd` must be the context of the request whose output `chain` is; `r` that request.
pub unsafe fn body(
    r: *mut ngx_http_request_t,
    pd: &mut PeerData,
    chain: *mut ngx_chain_t,
    log: *mut ngx_log_t,
) {
    let Some(learning) = pd.look else {
        return;
    };
    // SAFETY: the chain's links and buffers are valid; a look is in the request pool.
    unsafe {
        // The bytes looked at, for the reason of a skip.
        let mut looked: &[u8] = &[];
        let seen = match learning.look {
            Some(mut look) => {
                let look = look.as_mut();
                let (ended, _) = feed(look, chain);
                looked = look.seen();
                look.sniff(ended)
            }
            None => match first_buffer(chain) {
                // The first bytes are all in the first buffer: read them in place.
                Some((data, last)) => {
                    looked = data;
                    sniff::sniff(learning.kind, data, last)
                }
                None => Sniffed::NeedMore,
            },
        };
        let seen = match (seen, learning.look) {
            // Split across buffers: collect the first bytes aside.
            (Sniffed::NeedMore, None) => {
                let look = ngx_palloc((*r).pool, size_of::<Look>()).cast::<Look>();
                let Some(mut look) = NonNull::new(look) else {
                    pd.look = None;
                    return;
                };
                look.write(Look::new(learning.kind));
                pd.look = Some(Learning {
                    look: Some(look),
                    ..learning
                });
                let look = look.as_mut();
                let (ended, _) = feed(look, chain);
                looked = look.seen();
                look.sniff(ended)
            }
            (seen, _) => seen,
        };
        settle(pd, learning, &seen, looked, log);
    }
}

/// What a conclusive look means: the session id learned, or the reason it was not. The look
/// ends either way.
pub fn settle(
    pd: &mut PeerData,
    learning: Learning,
    seen: &Sniffed,
    looked: &[u8],
    log: *mut ngx_log_t,
) {
    // SAFETY: the configuration outlives the request (not borrowed from `pd`).
    let conf = unsafe { pd.conf.as_ref() };
    match seen {
        Sniffed::NeedMore => {}
        Sniffed::Sid(sid) => {
            pd.look = None;
            store(pd, conf, sid, learning.peer, log);
        }
        Sniffed::NotFound => {
            pd.look = None;
            ngx::ngx_log_debug!(log, "socketio_sticky: no session id in handshake body");
            let long = learning.cookie_too_long || sniff::too_long(learning.kind, looked);
            skipped(conf, if long { TOO_LONG } else { UNRECOGNISED });
        }
    }
}

/// The bytes of the chain's first buffer when it is in memory and not empty, and whether the
/// body ends with it.
///
/// # Safety
/// `chain` must be a valid chain.
pub unsafe fn first_buffer<'a>(chain: *mut ngx_chain_t) -> Option<(&'a [u8], bool)> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let link = chain.as_ref()?;
        let b = link.buf.as_ref()?;
        if !in_memory(b) {
            return None;
        }
        let data = buf_bytes(b);
        (!data.is_empty()).then_some((data, EndFlags::of(b).ends()))
    }
}

/// The end flags of a chain's buffers (one of them set in any buffer is set here).
#[derive(Clone, Copy, Default)]
pub struct EndFlags {
    pub last_buf: bool,
    pub last_in_chain: bool,
    pub flush: bool,
}

impl EndFlags {
    /// A buffer's end flags.
    pub fn of(b: &ngx_buf_t) -> Self {
        EndFlags {
            last_buf: b.last_buf() != 0,
            last_in_chain: b.last_in_chain() != 0,
            flush: b.flush() != 0,
        }
    }

    /// Whether they end the body.
    pub fn ends(self) -> bool {
        self.last_buf || self.last_in_chain
    }
}

/// Copies what the look still misses from the chain; whether the body ended (or has bytes
/// only on disk, which are not looked at), and the chain's end flags.
///
/// # Safety
/// `chain` must be a valid chain.
pub unsafe fn feed(look: &mut Look, chain: *mut ngx_chain_t) -> (bool, EndFlags) {
    let mut ended = false;
    let mut flags = EndFlags::default();
    let mut cl = chain;
    // SAFETY: guaranteed by the caller.
    unsafe {
        while let Some(link) = cl.as_ref() {
            if let Some(b) = link.buf.as_ref() {
                if in_memory(b) {
                    look.feed(buf_bytes(b));
                } else if b.in_file() != 0 && b.file_last > b.file_pos {
                    ended = true;
                }
                let f = EndFlags::of(b);
                ended |= f.ends();
                flags.last_buf |= f.last_buf;
                flags.last_in_chain |= f.last_in_chain;
                flags.flush |= f.flush;
            }
            cl = link.next;
        }
    }
    (ended, flags)
}

/// The values of the `Set-Cookie` headers of the upstream's response, in order.
///
/// # Safety
/// `r` must be a valid request; its upstream's headers are not modified while iterating.
unsafe fn set_cookies<'r>(r: *mut ngx_http_request_t) -> impl Iterator<Item = &'r [u8]> {
    // SAFETY: guaranteed by the caller; without an upstream, none.
    let u = unsafe { (*r).upstream.as_ref() };
    u.into_iter().flat_map(|u| {
        // SAFETY: the upstream's parsed headers (a list, or an array before nginx 1.23).
        unsafe {
            #[cfg(nginx1_23_0)]
            let headers = multi_header(u.headers_in.set_cookie);
            #[cfg(not(nginx1_23_0))]
            let headers = multi_header(&u.headers_in.cookies);
            headers
        }
    })
}

pub fn in_memory(b: &ngx_buf_t) -> bool {
    b.temporary() != 0 || b.memory() != 0 || b.mmap() != 0
}

/// # Safety
/// `b` must be an in-memory buffer whose `pos..last` is readable.
pub unsafe fn buf_bytes<'a>(b: &ngx_buf_t) -> &'a [u8] {
    if b.pos.is_null() || b.last.is_null() || b.last < b.pos {
        return &[];
    }
    // SAFETY: guaranteed by the caller; `last >= pos` was checked.
    unsafe { core::slice::from_raw_parts(b.pos, b.last.offset_from(b.pos) as usize) }
}

/// Counts a handshake whose session id was not learned, by reason.
fn skipped(conf: &SrvConf, reason: usize) {
    if let Some(r) = conf.record(0) {
        r.add(reason);
    }
}

/// Stores `sid -> peer` in the zone. What it logs names no session and is logged without the
/// request's context (nginx would append the request line).
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
    let Some((learned, evictions, capacity)) = learned else {
        return;
    };
    let cycle = cycle_log().unwrap_or(log);
    // SAFETY: the zone is valid (see above).
    let name = || unsafe { crate::zone::zone_name(conf.zone) };
    if let Learned::Replaced { warn: true, total } = learned {
        ngx::ngx_log_error!(
            NGX_LOG_WARN,
            cycle,
            "socketio_sticky: two backends minted the same session id, the newest wins \
             (zone \"{}\", {} so far)",
            name(),
            total
        );
    }
    if let Some(e) = evictions {
        ngx::ngx_log_error!(
            NGX_LOG_WARN,
            cycle,
            "socketio_sticky: zone \"{}\" is full and evicts sessions: {} {}, {} of them in use \
             (it holds {} sessions; a larger zone keeps more)",
            name(),
            e.evicted,
            if e.seconds > 0 {
                format!("in the last {} s", e.seconds)
            } else {
                "so far".to_string()
            },
            e.used,
            capacity
        );
    }
}
