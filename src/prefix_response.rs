//! `sid_prefix` on the way out: the handshake body the client reads carries `TAG.SID`.
//!
//! Usually the upstream's first read brings the whole handshake body with the response header:
//! then, at the header, the session id is learned, the head rewritten (by `logic::prefix`) and
//! the body's new length announced in `Content-Length`; the body filter only puts the head in
//! front of the rest of the first buffer. Otherwise the first bytes of the body (at most
//! `sniff::LOOK_MAX`) are collected in the look, as learning does; while they do not show the
//! whole session id yet, the buffers that brought them are held back (consumed, so that the
//! upstream reuses them, and kept in the look). Once the look is conclusive, one new buffer
//! with the head (rewritten, or as it was) goes out before the rest of the body; such a body's
//! `Content-Length` is dropped at the header: nginx then sends it chunked to HTTP/1.1 clients
//! and closes the connection after it for HTTP/1.0.

use core::mem::size_of;
use core::ptr::{self, NonNull};
use std::borrow::Cow;

use ngx::ffi::{
    ngx_alloc_chain_link, ngx_buf_t, ngx_chain_t, ngx_http_request_t, ngx_log_t, ngx_palloc,
    ngx_pcalloc, ngx_pnalloc, NGX_LOG_ERR,
};

use crate::learn::{buf_bytes, feed, first_buffer, in_memory, settle, EndFlags};
use crate::logic::handshake::Kind;
use crate::logic::prefix::{self, Head, TAG_LEN};
use crate::logic::sniff::{self, Look, Sniffed};
use crate::peer_data::{Announced, Learning, PeerData, Rewrite};

/// What the body filter passes on.
pub enum Out {
    /// This chain (the input, or the input behind a new head).
    Pass(*mut ngx_chain_t),
    /// Nothing yet: the bytes are held in the look.
    Hold,
    /// The body does not start as the bytes whose rewritten length the header announced.
    Error,
}

/// At the response header of a handshake whose body gets the tag: when the bytes that came
/// with the header (the upstream's buffer) are the whole body, as its `Content-Length` says,
/// the session id is learned now, the head rewritten and the new length announced; when they
/// settle that there is nothing to rewrite, the response goes on untouched. Otherwise the
/// body is looked at as it comes, and `Content-Length` goes.
///
/// # Safety
/// `r` must be a valid request whose context is `pd`, its response header not sent yet.
pub unsafe fn headers(
    r: *mut ngx_http_request_t,
    pd: &mut PeerData,
    learning: Learning,
    tag: [u8; TAG_LEN],
    log: *mut ngx_log_t,
) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if let Some(body) = whole_preread(r) {
            let seen = sniff::sniff(learning.kind, body, true);
            let head = head_of(learning.kind, body, &seen, &tag);
            settle(pd, learning, &seen, body, log);
            pd.look = None;
            pd.rewrite = None;
            let Some(h) = head else {
                return;
            };
            if let Some(a) = announced(r, body, &h) {
                pd.rewrite = Some(Rewrite::Announced(a));
                body_changes(r, Some(body.len() + h.bytes.len() - h.replaced));
            }
            // (Without memory for it, the body goes untouched, as its header says.)
            return;
        }
        pd.look = Some(learning);
        pd.rewrite = Some(Rewrite::Tag(tag));
        body_changes(r, None);
    }
}

/// The response's body when the upstream's first read brought all of it with the header, as
/// its `Content-Length` says (the bytes after the header in the upstream's buffer).
///
/// # Safety
/// `r` must be a valid request at its response header.
unsafe fn whole_preread<'a>(r: *mut ngx_http_request_t) -> Option<&'a [u8]> {
    // SAFETY: the upstream's buffer holds the response as read so far; its `pos` is where the
    // header ended.
    unsafe {
        let len = usize::try_from((*r).headers_out.content_length_n).ok()?;
        let u = (*r).upstream.as_ref()?;
        let b = &u.buffer;
        if b.pos.is_null() || b.last < b.pos {
            return None;
        }
        let got = core::slice::from_raw_parts(b.pos, b.last.offset_from(b.pos) as usize);
        got.get(..len).filter(|body| !body.is_empty())
    }
}

/// The rewritten head of a conclusive look at `data`, if the session id is to be tagged.
fn head_of(kind: Kind, data: &[u8], seen: &Sniffed, tag: &[u8; TAG_LEN]) -> Option<Head> {
    match seen {
        // Read in place: where it sits is known, no second look for it.
        Sniffed::Sid(Cow::Borrowed(sid)) => prefix::insert_tag_found(kind, data, sid, tag),
        Sniffed::Sid(_) => prefix::tag_head(kind, data, tag),
        _ => None,
    }
}

/// The head and the bytes it replaces, copied to the request pool.
///
/// # Safety
/// `r` must be a valid request.
unsafe fn announced(r: *mut ngx_http_request_t, body: &[u8], h: &Head) -> Option<Announced> {
    let original = body.get(..h.replaced)?;
    // SAFETY: both copies in the request pool, written at once.
    unsafe {
        let n = original.len() + h.bytes.len();
        let p = NonNull::new(ngx_pnalloc((*r).pool, n.max(1)).cast::<u8>())?;
        ptr::copy_nonoverlapping(original.as_ptr(), p.as_ptr(), original.len());
        let head = p.add(original.len());
        ptr::copy_nonoverlapping(h.bytes.as_ptr(), head.as_ptr(), h.bytes.len());
        Some(Announced {
            at: body.as_ptr(),
            original: NonNull::slice_from_raw_parts(p, original.len()),
            head: NonNull::slice_from_raw_parts(head, h.bytes.len()),
        })
    }
}

/// The response's body will be another one: its `Content-Length` (the rewritten body is
/// longer) is `len`, or goes when that is not known; `ETag`, `Last-Modified` and
/// `Accept-Ranges` go, as nginx's own body-changing filters drop them.
///
/// # Safety
/// `r` must be a valid request whose response header is not sent yet.
unsafe fn body_changes(r: *mut ngx_http_request_t, len: Option<usize>) {
    // SAFETY: as above (nginx's `ngx_http_clear_content_length`, `_etag`,
    // `_last_modified`, `_accept_ranges`; nginx writes `Content-Length` from
    // `content_length_n` when the header itself is gone).
    unsafe {
        let h = &mut (*r).headers_out;
        h.content_length_n = len.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1);
        h.last_modified_time = -1;
        for header in [
            &mut h.content_length,
            &mut h.etag,
            &mut h.last_modified,
            &mut h.accept_ranges,
        ] {
            if let Some(e) = header.as_mut() {
                e.hash = 0;
            }
            *header = ptr::null_mut();
        }
        (*r).set_allow_ranges(0);
    }
}

/// A part of the handshake body of a request with `pd.rewrite`.
///
/// # Safety
/// `r` must be the request whose output `chain` is, `pd` its context with a look in progress.
pub unsafe fn body(
    r: *mut ngx_http_request_t,
    pd: &mut PeerData,
    chain: *mut ngx_chain_t,
    log: *mut ngx_log_t,
) -> Out {
    let (learning, tag) = match (pd.look, pd.rewrite) {
        (_, Some(Rewrite::Announced(a))) => {
            pd.rewrite = None;
            // SAFETY: as for this function.
            return unsafe { announced_body(r, &a, chain, log) };
        }
        (Some(learning), Some(Rewrite::Tag(tag))) => (learning, tag),
        _ => return Out::Pass(chain),
    };
    // SAFETY: the chain's links and buffers are valid; the look lives in the request pool.
    unsafe {
        // The usual case: the first buffer holds the whole head; it is read and cut in place.
        if learning.look.is_none() {
            if let Some(out) = in_place(r, pd, learning, &tag, chain, log) {
                return out;
            }
        }
        let Some(mut look) = learning.look.or_else(|| new_look(r, learning)) else {
            pd.look = None;
            pd.rewrite = None;
            return Out::Pass(chain);
        };
        pd.look = Some(Learning {
            look: Some(look),
            ..learning
        });
        let look = look.as_mut();
        let held = look.seen().len();
        let (ended, flags) = feed(look, chain);
        let seen = look.sniff(ended);
        if matches!(seen, Sniffed::NeedMore) {
            // Every byte of the chain is in the look now.
            consume(chain, usize::MAX);
            return Out::Hold;
        }
        let head = match &seen {
            Sniffed::Sid(_) => prefix::tag_head(learning.kind, look.seen(), &tag),
            _ => None,
        };
        settle(pd, learning, &seen, look.seen(), log);
        pd.rewrite = None;
        let fed = look.seen().len() - held;
        let bytes: Vec<u8> = match head {
            Some(h) => {
                let mut v = h.bytes;
                v.extend_from_slice(look.seen().get(h.replaced..).unwrap_or_default());
                v
            }
            // Nothing held and nothing to change: the chain goes on as it came.
            None if held == 0 => return Out::Pass(chain),
            None => look.seen().to_vec(),
        };
        let rest = consume(chain, fed);
        match copy(r, &bytes).and_then(|data| prepend(r, data, rest, flags)) {
            Some(out) => Out::Pass(out),
            // No memory for the head: what is left goes on (nginx fails the request later).
            None => Out::Pass(rest),
        }
    }
}

/// The head when the chain's first buffer holds it whole (nothing held before): sniffed in
/// place, and the client gets the rewritten head in a new buffer, then that buffer from where
/// the rewrite stopped. `None` when the first buffer does not settle the look.
///
/// # Safety
/// As for [`body`], with no bytes held yet.
unsafe fn in_place(
    r: *mut ngx_http_request_t,
    pd: &mut PeerData,
    learning: Learning,
    tag: &[u8; prefix::TAG_LEN],
    chain: *mut ngx_chain_t,
    log: *mut ngx_log_t,
) -> Option<Out> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let (data, last) = first_buffer(chain)?;
        let seen = sniff::sniff(learning.kind, data, last);
        if matches!(seen, Sniffed::NeedMore) {
            return None;
        }
        let head = head_of(learning.kind, data, &seen, tag);
        settle(pd, learning, &seen, data, log);
        pd.rewrite = None;
        let Some(h) = head else {
            return Some(Out::Pass(chain));
        };
        // (Without memory for the head, the body goes on untouched: no length was announced.)
        let out = copy(r, &h.bytes).and_then(|head| put_head(r, chain, h.replaced, head));
        Some(out.unwrap_or(Out::Pass(chain)))
    }
}

/// The body of a head rewritten at the header: its first buffer starts with the bytes the head
/// replaces (the very bytes, usually where they were then), which give way to the head.
///
/// # Safety
/// As for [`body`].
unsafe fn announced_body(
    r: *mut ngx_http_request_t,
    a: &Announced,
    chain: *mut ngx_chain_t,
    log: *mut ngx_log_t,
) -> Out {
    // SAFETY: guaranteed by the caller; the copies live in the request pool.
    unsafe {
        let original = a.original.as_ref();
        let starts = first_buffer(chain).is_some_and(|(data, _)| {
            data.len() >= original.len()
                && (ptr::eq(data.as_ptr(), a.at) || data.starts_with(original))
        });
        if starts {
            if let Some(out) = put_head(r, chain, original.len(), a.head.as_ref()) {
                return out;
            }
        }
        ngx::ffi::ngx_log_error_core(
            NGX_LOG_ERR as usize,
            log,
            0,
            c"socketio_sticky: the handshake body does not start as announced with its header; its rewrite is abandoned".as_ptr(),
        );
        Out::Error
    }
}

/// The chain with the first `replaced` bytes of its first buffer (which has them) replaced by
/// `head` (request memory) in a new buffer before it. `None` without memory for it.
///
/// # Safety
/// As for [`body`].
unsafe fn put_head(
    r: *mut ngx_http_request_t,
    chain: *mut ngx_chain_t,
    replaced: usize,
    head: &[u8],
) -> Option<Out> {
    // SAFETY: guaranteed by the caller; `pos` moves within `pos..=last`.
    unsafe {
        let link = chain.as_ref()?;
        let b = link.buf.as_mut()?;
        let n = replaced.min(buf_bytes(b).len());
        b.pos = b.pos.add(n);
        // The buffer ends with the head: its end flags go to the new one.
        let rest = if keeps_something(b) || !link.next.is_null() {
            chain
        } else {
            link.next
        };
        match prepend(r, head, rest, EndFlags::of(b)) {
            Some(out) => Some(Out::Pass(out)),
            None => {
                b.pos = b.pos.sub(n);
                None
            }
        }
    }
}

/// A new look in the request pool.
///
/// # Safety
/// `r` must be a valid request.
unsafe fn new_look(r: *mut ngx_http_request_t, learning: Learning) -> Option<NonNull<Look>> {
    // SAFETY: the pool allocation is sized and aligned for a `Look` and written at once.
    unsafe {
        let look = NonNull::new(ngx_palloc((*r).pool, size_of::<Look>()).cast::<Look>())?;
        look.write(Look::new(learning.kind));
        Some(look)
    }
}

/// Consumes the first `n` in-memory bytes of the chain (its buffers' `pos` move on) and
/// returns the links that still carry something: bytes, a file part, or a special buffer.
///
/// # Safety
/// `chain` must be a valid chain.
unsafe fn consume(chain: *mut ngx_chain_t, mut n: usize) -> *mut ngx_chain_t {
    let mut first: *mut ngx_chain_t = ptr::null_mut();
    let mut tail: *mut *mut ngx_chain_t = &mut first;
    let mut cl = chain;
    // SAFETY: guaranteed by the caller; `pos` moves within `pos..=last`.
    unsafe {
        while let Some(link) = cl.as_mut() {
            let next = link.next;
            if let Some(b) = link.buf.as_mut() {
                if in_memory(b) {
                    let len = buf_bytes(b).len();
                    let take = n.min(len);
                    b.pos = b.pos.add(take);
                    if b.in_file() != 0 {
                        b.file_pos += take as i64;
                    }
                    n -= take;
                }
                if keeps_something(b) {
                    link.next = ptr::null_mut();
                    *tail = link;
                    tail = &mut link.next;
                }
            }
            cl = next;
        }
    }
    first
}

/// Whether a buffer still has something to send.
fn keeps_something(b: &ngx_buf_t) -> bool {
    let memory = in_memory(b) && b.last > b.pos;
    let file = b.in_file() != 0 && b.file_last > b.file_pos && !in_memory(b);
    let special = !in_memory(b) && b.in_file() == 0;
    memory || file || special
}

/// `bytes` copied to the request pool.
///
/// # Safety
/// `r` must be a valid request.
unsafe fn copy<'a>(r: *mut ngx_http_request_t, bytes: &[u8]) -> Option<&'a [u8]> {
    // SAFETY: a pool allocation of that size, written at once; it lives as long as `r`.
    unsafe {
        let data = ngx_pnalloc((*r).pool, bytes.len().max(1)).cast::<u8>();
        if data.is_null() {
            return None;
        }
        ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        Some(core::slice::from_raw_parts(data, bytes.len()))
    }
}

/// A chain of a new buffer over `data` (request memory, not copied), then `rest`; the new
/// buffer ends the body when nothing follows it (it takes over the end flags of the consumed
/// buffers).
///
/// # Safety
/// `r` must be a valid request; `rest` a valid chain; `data` must live as long as `r`.
unsafe fn prepend(
    r: *mut ngx_http_request_t,
    data: &[u8],
    rest: *mut ngx_chain_t,
    flags: EndFlags,
) -> Option<*mut ngx_chain_t> {
    // SAFETY: the buffer and the link in the request pool, written before use; nothing
    // writes to a buffer that is only `memory`.
    unsafe {
        let pool = (*r).pool;
        let b = ngx_pcalloc(pool, size_of::<ngx_buf_t>()).cast::<ngx_buf_t>();
        let link = ngx_alloc_chain_link(pool);
        if b.is_null() || link.is_null() {
            return None;
        }
        let start = data.as_ptr().cast_mut();
        (*b).start = start;
        (*b).pos = start;
        (*b).last = start.add(data.len());
        (*b).end = (*b).last;
        (*b).set_memory(1);
        if rest.is_null() {
            (*b).set_last_buf(u32::from(flags.last_buf));
            (*b).set_last_in_chain(u32::from(flags.last_in_chain));
            (*b).set_flush(u32::from(flags.flush));
        }
        (*link).buf = b;
        (*link).next = rest;
        Some(link)
    }
}
