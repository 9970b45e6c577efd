//! A request's state in the module, from the balancer's `init` to the end of its response:
//! round robin's per-request data (first, as nginx's balancers keep it), what the request's
//! keys name, how its peer was chosen, and what its response still needs (a route cookie, a
//! handshake to learn from). It is also the module's request context, which the filters and
//! the variables read.

use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

use ngx::ffi::{
    ngx_http_request_t, ngx_http_upstream_rr_peer_data_t, ngx_http_upstream_rr_peers_t,
    ngx_pool_cleanup_add, ngx_str_t,
};
use ngx::http::HttpModule;

use crate::conf::SrvConf;
use crate::logic::choose::{Claims, Progress, Status};
use crate::logic::handshake::Kind;
use crate::logic::sniff::Look;

/// Per-request data: `u->peer.data` and the module's request context.
#[repr(C)]
pub struct PeerData {
    /// Round robin's data, first: `peer.data` points here and round robin uses it as its own.
    pub rrp: ngx_http_upstream_rr_peer_data_t,
    /// The upstream's configuration (lives as long as the cycle).
    pub conf: NonNull<SrvConf>,
    /// The upstream's primary peer list (round robin moves `rrp.peers` to the backups).
    pub primary: *mut ngx_http_upstream_rr_peers_t,
    /// What the request's keys name.
    pub claims: Claims,
    /// The calls of `get` so far.
    pub progress: Progress,
    /// How the peer was chosen, once it was (`$socketio_sticky_status`).
    pub status: Option<Status>,
    /// The device id the request was balanced by (request memory; `$socketio_sticky_key`).
    pub key: Option<ngx_str_t>,
    /// The response may need a route cookie (checked once, by the header filter).
    pub cookie_out: bool,
    /// A handshake whose response may teach its session id (taken by the header filter).
    pub learn: Option<Kind>,
    /// The look at the handshake body while it is in progress.
    pub look: Option<Learning>,
    /// `sid_prefix`: what the handshake body still needs.
    pub rewrite: Option<Rewrite>,
}

/// `sid_prefix`: the handshake body's session id gets the tag of the server that minted it.
#[derive(Clone, Copy)]
pub enum Rewrite {
    /// The tag to put in front of the session id, once the look at the body finds it.
    Tag([u8; crate::logic::prefix::TAG_LEN]),
    /// The bytes that came with the response header held the session id: the head was
    /// rewritten then and the body's new length announced in `Content-Length`.
    Announced(Announced),
}

/// A head rewritten at the response header.
#[derive(Clone, Copy)]
pub struct Announced {
    /// Where the body's first bytes were then (the upstream's buffer).
    pub at: *const u8,
    /// Those bytes, the ones the head replaces (request pool).
    pub original: NonNull<[u8]>,
    /// What the client gets instead (request pool).
    pub head: NonNull<[u8]>,
}

/// A handshake body being looked at.
#[derive(Clone, Copy)]
pub struct Learning {
    pub kind: Kind,
    /// The identity of the peer that answered.
    pub peer: u64,
    /// Its first bytes so far, once they came in more than one buffer (request pool).
    pub look: Option<NonNull<Look>>,
    /// A `Set-Cookie` set the sid cookie to a value too long to be a session id.
    pub cookie_too_long: bool,
}

impl PeerData {
    /// The upstream's configuration.
    #[inline]
    pub fn conf(&self) -> &SrvConf {
        // SAFETY: set by `init_peer` from the upstream's configuration, which outlives every
        // request of the cycle.
        unsafe { self.conf.as_ref() }
    }
}

/// The module's context of `r`, if the request went through the balancer.
///
/// # Safety
/// `r` must be a valid request; no other reference to its context may be alive.
#[inline]
pub unsafe fn of_request<'a>(r: *mut ngx_http_request_t) -> Option<&'a mut PeerData> {
    // SAFETY: the module's context slot is null or points to the `PeerData` set by `init_peer`
    // (request pool, as long-lived as the request).
    unsafe {
        (*(*r).ctx.add(crate::Module::module().ctx_index))
            .cast::<PeerData>()
            .as_mut()
    }
}

/// Blocks for `PeerData` that finished requests of this worker gave back, for the next ones.
/// The data is kept out of the request's pool: there, its bytes often made the pool start a
/// new 4 KiB block, some 600 instructions of malloc and free (measured with callgrind).
static mut SPARE: Vec<NonNull<PeerData>> = Vec::new();
/// Blocks kept at most (the rest are freed): a worker's peak of requests in the balancer.
const SPARE_MAX: usize = 4096;

/// A block for the `PeerData` of `r` (not initialised), given back when the request's pool
/// is destroyed, after its last log line.
///
/// # Safety
/// `r` must be a valid request; the block must be written before it is read.
pub unsafe fn block_for(r: *mut ngx_http_request_t) -> Option<NonNull<PeerData>> {
    // SAFETY: the request's pool is valid; workers are single-threaded, so nothing else uses
    // the spare blocks meanwhile.
    unsafe {
        let cln = ngx_pool_cleanup_add((*r).pool, 0);
        if cln.is_null() {
            return None;
        }
        let spare = &mut *ptr::addr_of_mut!(SPARE);
        let block = match spare.pop() {
            Some(b) => b,
            None => {
                // Room for every block given back, once: `give_back` never grows the list.
                spare.reserve_exact(SPARE_MAX);
                NonNull::from(Box::leak(Box::new(MaybeUninit::<PeerData>::uninit()))).cast()
            }
        };
        (*cln).handler = Some(give_back);
        (*cln).data = block.as_ptr().cast();
        Some(block)
    }
}

/// The pool cleanup of a request: its `PeerData` block goes back to the spare ones.
///
/// Nothing here can panic (the list has room reserved for `SPARE_MAX` blocks, and a push
/// within the capacity neither allocates nor fails), so it runs without a guard.
unsafe extern "C" fn give_back(data: *mut c_void) {
    let Some(block) = NonNull::new(data.cast::<PeerData>()) else {
        return;
    };
    // SAFETY: workers are single-threaded; `block` came from `block_for` and nothing uses it
    // any more (its request's pool is being destroyed).
    unsafe {
        let spare = &mut *ptr::addr_of_mut!(SPARE);
        if spare.len() < spare.capacity().min(SPARE_MAX) {
            spare.push(block);
        } else {
            drop(Box::from_raw(
                block.as_ptr().cast::<MaybeUninit<PeerData>>(),
            ));
        }
    }
}
