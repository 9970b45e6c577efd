//! The balancer, shaped like nginx's `hash` module: round-robin data first in the per-request
//! peer data (so round robin's `free` and SSL session hooks keep working on it), only `get`
//! replaced, at most 20 tries before round robin, and down, failed and `max_conns`-full peers
//! skipped.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;
use std::collections::HashMap;

use ngx::ffi::{
    ngx_cached_time, ngx_conf_t, ngx_http_request_t, ngx_http_upstream_get_round_robin_peer,
    ngx_http_upstream_init_round_robin, ngx_http_upstream_init_round_robin_peer,
    ngx_http_upstream_rr_peer_data_t, ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t,
    ngx_http_upstream_server_t, ngx_http_upstream_srv_conf_t, ngx_int_t, ngx_palloc,
    ngx_peer_connection_t, ngx_rwlock_unlock, ngx_rwlock_wlock, ngx_str_t, NGX_BUSY, NGX_ERROR,
    NGX_LOG_EMERG, NGX_LOG_INFO, NGX_OK,
};

use crate::conf::{srv_conf, MemberKey, SrvConf};
use crate::glue::{bytes, guard};
use crate::logic::cookie;
use crate::logic::extract::{scan_query, QueryScan};
use crate::logic::hash::{key_hash, log_tag};
use crate::logic::least_conn::{self, Candidate};
use crate::logic::params::Balance;
use crate::logic::ring::{Member, Ring};
use crate::logic::route::{self, Line, Routes};
use crate::logic::sniff::{handshake_shape, Kind};
use crate::logic::table::peer_identity;
use crate::request::{cookie_value, find_key};

/// nginx's `hash` module gives up on the ring after this many tries and uses round robin.
const MAX_TRIES: u32 = 20;
/// A bound on the table slots one walk looks at (reached only with a single member).
const MAX_WALK_SLOTS: usize = 1024;

/// Steps of the precedence list still to try for a request (`PeerData::pending`).
const ROUTE: u8 = 1;
const LEARNED: u8 = 2;
const COOKIE: u8 = 4;

/// How the peer of a request was chosen (`$socketio_sticky_status`).
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not decided yet.
    None = 0,
    /// Routed by the label in the session id (`route=`).
    Route,
    /// Routed by the route cookie (`cookie=`).
    Cookie,
    /// `strict`: the session's server was out, the request failed.
    Strict,
    DeviceId,
    Fallback,
    Rebound,
    /// Routed by a session id learned from a handshake.
    Learned,
    /// This response taught a session id.
    New,
}

impl Status {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Status::None => b"",
            Status::Route => b"route",
            Status::Cookie => b"cookie",
            Status::Strict => b"strict",
            Status::DeviceId => b"device_id",
            Status::Fallback => b"fallback",
            Status::Rebound => b"rebound",
            Status::Learned => b"learned",
            Status::New => b"new",
        }
    }
}

/// Per-request data; also the module's request context (for the variables).
#[repr(C)]
pub struct PeerData {
    /// Round robin's data, first: `peer.data` points here and round robin uses it as its own.
    pub rrp: ngx_http_upstream_rr_peer_data_t,
    pub conf: *const SrvConf,
    hash: u64,
    /// The key used (request memory).
    pub key: ngx_str_t,
    pub status: Status,
    has_key: bool,
    tries: u32,
    /// Calls of `get` so far (more than one: a retry after an error).
    calls: u32,
    /// The steps of the precedence list still to try: `ROUTE`, `LEARNED`, `COOKIE`.
    pending: u8,
    /// The request carries a session id.
    has_sid: bool,
    /// The peer was chosen as the session's own server (for `strict` on a retry).
    bound: bool,
    /// The route target of the session id's label (`ROUTE`).
    route: u32,
    /// The peer identity learned for the request's session id (`LEARNED`).
    learned: u64,
    /// The peer id of the request's valid route cookie, when `has_cookie`.
    pub cookie: u64,
    pub has_cookie: bool,
    /// The response may need a route cookie (checked once, by the header filter).
    pub cookie_out: bool,
    /// The upstream's primary peer list (round robin moves `rrp.peers` to the backups).
    pub primary: *mut ngx_http_upstream_rr_peers_t,
    /// A handshake to learn from: 0 no, else `1 + Kind as u8`.
    pub learn: u8,
    /// The look at the handshake body, while it is in progress (request pool).
    pub look: *mut crate::filter::Look,
}

impl PeerData {
    /// The handshake kind to learn from, once.
    pub fn take_learn(&mut self) -> Option<Kind> {
        let k = core::mem::replace(&mut self.learn, 0);
        match k {
            1 => Some(Kind::EngineIo),
            2 => Some(Kind::Legacy09),
            _ => None,
        }
    }
}

/// Worker-local mapping from ring members to the peers of the (possibly shared) peer list.
pub struct PeerCache {
    peers: *const ngx_http_upstream_rr_peers_t,
    number: usize,
    #[cfg(nginx1_27_3)]
    config: usize,
    /// Per member: its peer (null when the member has none now) and the peer's list index.
    slots: Vec<(*mut ngx_http_upstream_rr_peer_t, usize)>,
    /// Every peer of the list by identity (as learned sessions name them), sorted.
    identities: Vec<(u64, *mut ngx_http_upstream_rr_peer_t, usize)>,
    /// With `route=`: the peers of each route target, sorted by target.
    targets: Vec<(u32, *mut ngx_http_upstream_rr_peer_t, usize)>,
    /// With `cookie=`: every peer by its cookie id, sorted.
    cookies: Vec<(u64, *mut ngx_http_upstream_rr_peer_t, usize)>,
}

type PeerAt = (*mut ngx_http_upstream_rr_peer_t, usize);

/// The peer of `key` in a list sorted by key.
fn find_sorted<K: Ord + Copy>(
    list: &[(K, *mut ngx_http_upstream_rr_peer_t, usize)],
    key: K,
) -> Option<PeerAt> {
    let i = list.binary_search_by_key(&key, |e| e.0).ok()?;
    list.get(i).map(|e| (e.1, e.2))
}

impl PeerCache {
    fn by_identity(&self, id: u64) -> Option<PeerAt> {
        find_sorted(&self.identities, id)
    }

    fn by_cookie(&self, id: u64) -> Option<PeerAt> {
        find_sorted(&self.cookies, id)
    }

    /// The peers of a route target (a server line can resolve to several addresses).
    fn of_target(&self, target: u32) -> impl Iterator<Item = PeerAt> + '_ {
        let start = self.targets.partition_point(|e| e.0 < target);
        self.targets
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(move |e| e.0 == target)
            .map(|e| (e.1, e.2))
    }
}

impl Default for PeerCache {
    fn default() -> Self {
        PeerCache {
            peers: ptr::null(),
            number: 0,
            #[cfg(nginx1_27_3)]
            config: 0,
            slots: Vec::new(),
            identities: Vec::new(),
            targets: Vec::new(),
            cookies: Vec::new(),
        }
    }
}

/// `init_upstream`: round robin's own initialisation, then the ring over the primary servers.
pub unsafe extern "C" fn init_upstream(
    cf: *mut ngx_conf_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    // SAFETY: nginx passes a valid configuration.
    let log = unsafe { (*cf).log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        // SAFETY: `us` is the upstream being initialised, with its servers parsed.
        unsafe { init_upstream_inner(cf, us) }
    })
}

unsafe fn init_upstream_inner(
    cf: *mut ngx_conf_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    // SAFETY: see the caller; round robin initialisation is nginx's own.
    unsafe {
        if ngx_http_upstream_init_round_robin(cf, us) != NGX_OK as ngx_int_t {
            return NGX_ERROR as ngx_int_t;
        }
        (*us).peer.init = Some(init_peer);
    }

    // SAFETY: our slot of `srv_conf` holds the `SrvConf` created for this upstream.
    let conf = unsafe {
        match (*(*us).srv_conf.add(crate::ctx_index()))
            .cast::<SrvConf>()
            .as_mut()
        {
            Some(c) => c,
            None => return NGX_ERROR as ngx_int_t,
        }
    };

    // SAFETY: `servers` is an array of `ngx_http_upstream_server_t` for an upstream block.
    let servers: &[ngx_http_upstream_server_t] = unsafe {
        match (*us).servers.as_ref() {
            Some(a) => a.as_slice(),
            None => &[],
        }
    };

    if let Err(rc) = resolve_routes(cf, us, conf, servers) {
        return rc;
    }

    let mut keys: Vec<MemberKey> = Vec::new();
    let mut ring_members: Vec<Member> = Vec::new();
    for s in servers.iter().filter(|s| s.backup() == 0) {
        // SAFETY: names live in the configuration pool.
        let server = unsafe { bytes(&s.name) }.to_vec();
        let weight = u32::try_from(s.weight).unwrap_or(u32::MAX).max(1);
        let addrs: &[ngx::ffi::ngx_addr_t] = if s.naddrs > 1 && !s.addrs.is_null() {
            // SAFETY: `addrs` holds `naddrs` resolved addresses.
            unsafe { core::slice::from_raw_parts(s.addrs, s.naddrs) }
        } else {
            &[]
        };
        if addrs.is_empty() {
            ring_members.push(Member {
                identity: server.clone(),
                weight,
            });
            keys.push(MemberKey { server, addr: None });
        } else {
            for a in addrs {
                // SAFETY: address names live in the configuration pool.
                let addr = unsafe { bytes(&a.name) }.to_vec();
                let mut identity = server.clone();
                identity.push(b'/');
                identity.extend_from_slice(&addr);
                ring_members.push(Member { identity, weight });
                keys.push(MemberKey {
                    server: server.clone(),
                    addr: Some(addr),
                });
            }
        }
    }

    let ring = match Ring::build(&ring_members) {
        Ok(r) => r,
        Err(e) => {
            ngx::ngx_conf_log_error!(NGX_LOG_EMERG, cf, "socketio_sticky: {}", e);
            return NGX_ERROR as ngx_int_t;
        }
    };

    let mut members: HashMap<MemberKey, Vec<usize>> = HashMap::new();
    for (i, k) in keys.into_iter().enumerate() {
        members.entry(k).or_default().push(i);
    }
    conf.members = members;
    conf.ring = Some(ring);
    NGX_OK as ngx_int_t
}

/// Resolves the route labels (`route=`, `socketio_sticky_route`) against the `server` lines;
/// errors name the `socketio_sticky_route` line at fault.
fn resolve_routes(
    cf: *mut ngx_conf_t,
    us: *mut ngx_http_upstream_srv_conf_t,
    conf: &mut SrvConf,
    servers: &[ngx_http_upstream_server_t],
) -> Result<(), ngx_int_t> {
    // SAFETY: the configuration's log and the upstream's name are valid during init.
    let (log, upstream) = unsafe { ((*cf).log, String::from_utf8_lossy(bytes(&(*us).host))) };
    if conf.route.is_none() {
        if let Some((_, place)) = conf.labels.first() {
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                log,
                "\"socketio_sticky_route\" directive needs \"route=\" in the \"socketio_sticky\" \
                 directive of upstream \"{}\" in {}",
                upstream,
                place
            );
            return Err(NGX_ERROR as ngx_int_t);
        }
        return Ok(());
    }
    let lines: Vec<Line> = servers
        .iter()
        .map(|s| Line {
            // SAFETY: names live in the configuration pool.
            name: unsafe { bytes(&s.name) }.to_vec(),
            backup: s.backup() != 0,
        })
        .collect();
    let labels: Vec<_> = conf.labels.iter().map(|(l, _)| l.clone()).collect();
    conf.routes = match Routes::build(&lines, &labels) {
        Ok(r) => r,
        Err(e) => {
            // The line of the label at fault.
            let place = conf
                .labels
                .iter()
                .find(|(l, _)| String::from_utf8_lossy(&l.label) == e.label())
                .map(|(_, p)| p.to_string())
                .unwrap_or_default();
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                log,
                "\"socketio_sticky_route\" directive {} in {}",
                e,
                place
            );
            return Err(NGX_ERROR as ngx_int_t);
        }
    };
    Ok(())
}

/// `init_peer`: round robin's per-request data inside ours, then the request's key.
pub unsafe extern "C" fn init_peer(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    // SAFETY: nginx passes a valid request with a connection.
    let log = unsafe { (*(*r).connection).log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        // SAFETY: `r` is a request with an upstream; `us` the upstream it uses.
        unsafe { init_peer_inner(r, us) }
    })
}

unsafe fn init_peer_inner(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    // SAFETY: see the caller. The pool memory is written whole before use; round robin's
    // data is valid zeroed (plain integers and pointers) until round robin fills it.
    unsafe {
        let conf = match srv_conf(us) {
            Some(c) => c,
            None => return NGX_ERROR as ngx_int_t,
        };
        let pd = ngx_palloc((*r).pool, size_of::<PeerData>()).cast::<PeerData>();
        if pd.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        // Every field written here (cheaper than zeroing the block and writing them again);
        // round robin fills `rrp` next.
        ptr::write(
            pd,
            PeerData {
                rrp: core::mem::zeroed(),
                conf,
                hash: 0,
                key: ngx_str_t {
                    len: 0,
                    data: ptr::null_mut(),
                },
                status: Status::None,
                has_key: false,
                tries: 0,
                calls: 0,
                pending: 0,
                has_sid: false,
                bound: false,
                route: 0,
                learned: 0,
                cookie: 0,
                has_cookie: false,
                cookie_out: false,
                primary: ptr::null_mut(),
                learn: 0,
                look: ptr::null_mut(),
            },
        );
        let u = (*r).upstream;
        (*u).peer.data = pd.cast::<c_void>();
        if ngx_http_upstream_init_round_robin_peer(r, us) != NGX_OK as ngx_int_t {
            return NGX_ERROR as ngx_int_t;
        }
        (*u).peer.get = Some(get_peer);
        (*pd).primary = (*pd).rrp.peers;

        let mut query = QueryScan::default();
        scan_query(bytes(&(*r).args), &conf.arg_names, &mut query);
        if let Some(k) = find_key(r, &conf.device_id, &query) {
            (*pd).hash = key_hash(k);
            (*pd).has_key = true;
            // The key is request memory (its query string, headers or pool).
            (*pd).key = ngx_str_t {
                len: k.len(),
                data: k.as_ptr().cast_mut(),
            };
            ngx::ngx_log_debug!(
                (*(*r).connection).log,
                "socketio_sticky: device_id key tag:{:08x}",
                log_tag(k)
            );
        }

        if conf.wants_sid() {
            if let Some(sid) = find_key(r, &conf.sid, &query) {
                (*pd).has_sid = true;
                find_route(r, conf, sid, &mut *pd);
                // A routed session skips the table: it would name the same server.
                if (*pd).pending & ROUTE == 0 {
                    find_learned(r, conf, sid, &mut *pd);
                }
            }
        }
        if let Some(c) = &conf.cookie {
            (*pd).cookie_out = ptr::eq((*r).main, r);
            if let Some(id) = cookie_value(r, &c.name).and_then(cookie::decode) {
                (*pd).cookie = id;
                (*pd).has_cookie = true;
                (*pd).pending |= COOKIE;
            }
        }
        if let Some(kind) = handshake_shape(query.eio, query.sid, bytes(&(*r).uri)) {
            (*pd).learn = 1 + kind as u8;
        }

        *(*r).ctx.add(crate::ctx_index()) = pd.cast::<c_void>();
    }
    NGX_OK as ngx_int_t
}

/// The route target of the session id's label (`route=`), if it names a server.
///
/// # Safety
/// `r` must be a valid request in the upstream phase.
unsafe fn find_route(r: *mut ngx_http_request_t, conf: &SrvConf, sid: &[u8], pd: &mut PeerData) {
    let Some(re) = &conf.route else {
        return;
    };
    // SAFETY: workers are single-threaded and this is the only user of the scratch space.
    let Some(locs) = (unsafe { &mut *conf.route_locs.get() }).as_mut() else {
        return;
    };
    let target = route::label(re, locs, sid).and_then(|l| conf.routes.target(l));
    // SAFETY: `r` is valid; the log is used for a debug line.
    let log = unsafe { (*(*r).connection).log };
    match target {
        Some(t) => {
            pd.route = t;
            pd.pending |= ROUTE;
            ngx::ngx_log_debug!(
                log,
                "socketio_sticky: session tag:{:08x} routed to server {}",
                log_tag(sid),
                t
            );
        }
        None => {
            ngx::ngx_log_debug!(
                log,
                "socketio_sticky: session tag:{:08x} has no route label of a server",
                log_tag(sid)
            );
        }
    }
}

/// Looks the request's session id up in the zone.
///
/// # Safety
/// `r` must be a valid request in the upstream phase.
unsafe fn find_learned(r: *mut ngx_http_request_t, conf: &SrvConf, sid: &[u8], pd: &mut PeerData) {
    if conf.zone.is_null() {
        return;
    }
    // SAFETY: nginx's cached time; the zone belongs to the running cycle.
    let now = unsafe { (*ngx_cached_time).sec } as u32;
    // SAFETY: see above.
    let peer = unsafe {
        crate::zone::with_table(conf.zone, |t| {
            let d = t.digest(sid);
            t.lookup(d, now, conf.timeout)
        })
    };
    // SAFETY: `r` is valid; the log is used for a debug line.
    let log = unsafe { (*(*r).connection).log };
    match peer.flatten() {
        Some(id) => {
            pd.learned = id;
            pd.pending |= LEARNED;
            ngx::ngx_log_debug!(
                log,
                "socketio_sticky: session tag:{:08x} learned",
                log_tag(sid)
            );
        }
        None => {
            ngx::ngx_log_debug!(
                log,
                "socketio_sticky: session tag:{:08x} unknown",
                log_tag(sid)
            );
        }
    }
}

/// The request context, mutable (for the response filters).
///
/// # Safety
/// `r` must be a valid request; no other reference to its context may be alive.
pub unsafe fn request_data_mut<'a>(r: *mut ngx_http_request_t) -> Option<&'a mut PeerData> {
    // SAFETY: the module's ctx slot is null or points to the `PeerData` set by `init_peer`.
    unsafe {
        (*(*r).ctx.add(crate::ctx_index()))
            .cast::<PeerData>()
            .as_mut()
    }
}

/// The request context (the peer data), if this request went through the balancer.
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn request_data<'a>(r: *mut ngx_http_request_t) -> Option<&'a PeerData> {
    // SAFETY: the module's ctx slot is null or points to the `PeerData` set by `init_peer`.
    unsafe {
        (*(*r).ctx.add(crate::ctx_index()))
            .cast::<PeerData>()
            .as_ref()
    }
}

/// `get`: the key's peer on the ring, the next usable one when it is out, else round robin.
unsafe extern "C" fn get_peer(pc: *mut ngx_peer_connection_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx passes the peer connection and our peer data.
    let log = unsafe { (*pc).log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        // SAFETY: `data` is the `PeerData` set by `init_peer` (its first field is `rrp`).
        unsafe { get_peer_inner(pc, &mut *data.cast::<PeerData>()) }
    })
}

/// Placement of a request that no step of the list decided: round robin or least_conn.
unsafe fn round_robin(pc: *mut ngx_peer_connection_t, pd: &mut PeerData) -> ngx_int_t {
    pd.status = Status::Fallback;
    // SAFETY: `conf` was set by `init_peer`.
    if unsafe { (*pd.conf).balance } == Balance::LeastConn {
        // SAFETY: `rrp` is this request's round-robin data.
        if let Some(rc) = unsafe { least_conn(pc, pd) } {
            return rc;
        }
    }
    // SAFETY: `rrp` is round robin's own data for this request.
    unsafe { ngx_http_upstream_get_round_robin_peer(pc, ptr::addr_of_mut!(pd.rrp).cast()) }
}

/// A peer of the list as `least_conn::pick` reads it.
struct LcPeer {
    peer: *mut ngx_http_upstream_rr_peer_t,
    index: usize,
    tried: *mut usize,
    now: i64,
}

impl Candidate for LcPeer {
    fn usable(&self) -> bool {
        // SAFETY: the list is locked while `pick` runs; `tried` covers it.
        unsafe { usable(&*self.peer, self.index, self.tried, self.now) }
    }
    fn conns(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (*self.peer).conns as u64 }
    }
    fn weight(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (*self.peer).weight.max(0) as u64 }
    }
    fn effective_weight(&self) -> i64 {
        // SAFETY: as above.
        unsafe { (*self.peer).effective_weight as i64 }
    }
    fn current_weight(&self) -> i64 {
        // SAFETY: as above.
        unsafe { (*self.peer).current_weight as i64 }
    }
    fn set_current_weight(&self, w: i64) {
        // SAFETY: as above; the write lock is held.
        unsafe { (*self.peer).current_weight = w as ngx_int_t }
    }
}

/// `balance=least_conn` over the request's current peer list; `None` when no peer is usable
/// (round robin then goes on, to the backup servers if there are any).
///
/// # Safety
/// `pd.rrp` must be this request's round-robin data.
unsafe fn least_conn(pc: *mut ngx_peer_connection_t, pd: &mut PeerData) -> Option<ngx_int_t> {
    let peers = pd.rrp.peers;
    // SAFETY: the live peer list, locked as nginx's own least_conn locks it.
    unsafe {
        let _lock = PeersLock::write(peers);
        if (*peers).number == 0 {
            return None;
        }
        #[cfg(nginx1_27_3)]
        if !(*peers).config.is_null() && pd.rrp.config != *(*peers).config {
            return None;
        }
        let (tried, now) = (pd.rrp.tried, (*ngx_cached_time).sec);
        let first = (*peers).peer;
        let list = || {
            core::iter::successors((!first.is_null()).then_some((first, 0usize)), |&(p, i)| {
                // `p` is an element of the locked list.
                let next = (*p).next;
                (!next.is_null()).then_some((next, i + 1))
            })
            .map(|(peer, index)| LcPeer {
                peer,
                index,
                tried,
                now,
            })
        };
        let chosen = least_conn::pick(list)?;
        let p = list().nth(chosen)?;
        (*pc).set_cached(0);
        (*pc).connection = ptr::null_mut();
        take_peer(pc, pd, p.peer, p.index, now);
        Some(NGX_OK as ngx_int_t)
    }
}

/// `strict`: the session's server is out, and no other server may answer for it.
///
/// # Safety
/// `peers` must be the request's peer list.
unsafe fn refuse(
    pc: *mut ngx_peer_connection_t,
    pd: &mut PeerData,
    peers: *mut ngx_http_upstream_rr_peers_t,
) -> ngx_int_t {
    pd.status = Status::Strict;
    // SAFETY: the list's name is configuration memory.
    unsafe {
        (*pc).name = (*peers).name;
        ngx::ngx_log_error!(
            NGX_LOG_INFO,
            (*pc).log,
            "socketio_sticky: the session's server is out and \"strict\" is set: no other \
             server tried"
        );
    }
    NGX_BUSY as ngx_int_t
}

unsafe fn get_peer_inner(pc: *mut ngx_peer_connection_t, pd: &mut PeerData) -> ngx_int_t {
    // SAFETY: `conf` was set by `init_peer` and lives as long as the configuration.
    let conf = unsafe { &*pd.conf };
    pd.calls += 1;
    if conf.strict && pd.bound {
        // A retry after the session's own server failed.
        // SAFETY: the request's peer list.
        return unsafe { refuse(pc, pd, pd.rrp.peers) };
    }
    let ring = match (&conf.ring, pd.has_key) {
        (Some(ring), true) if pd.tries <= MAX_TRIES => Some(ring),
        _ => None,
    };
    if ring.is_none() && pd.pending == 0 {
        // SAFETY: round robin on its own data.
        return unsafe { round_robin(pc, pd) };
    }

    let peers = pd.rrp.peers;
    // SAFETY: `peers` is the upstream's live peer list; it is locked as nginx's own balancers
    // lock it while peers are read and their counters updated.
    unsafe {
        let _lock = PeersLock::write(peers);

        (*pc).set_cached(0);
        (*pc).connection = ptr::null_mut();

        if (*peers).number == 0 {
            (*pc).name = (*peers).name;
            return NGX_BUSY as ngx_int_t;
        }
        #[cfg(nginx1_27_3)]
        if !(*peers).config.is_null() && pd.rrp.config != *(*peers).config {
            (*pc).name = (*peers).name;
            return NGX_BUSY as ngx_int_t;
        }

        let cache = peer_cache(conf, peers);
        let now = (*ngx_cached_time).sec;
        // A retry after an error, or a step whose server was out: what follows is a substitute.
        let mut rebound = pd.calls > 1;

        // The precedence list, each step once: the session id's route label, the learned
        // session, the route cookie (then the device id, then round robin).
        // Steps that name the server of the request's session (its id's label, the learned
        // id, and the cookie when the request carries an id): with `strict`, only that
        // server may answer.
        let steps = core::mem::take(&mut pd.pending);
        let tried = pd.rrp.tried;
        let mut session_out = false;
        let pick = |found: Option<PeerAt>, out: &mut bool| match found {
            Some((peer, index)) if usable(&*peer, index, tried, now) => Some((peer, index)),
            Some(_) => {
                *out = true;
                None
            }
            None => None,
        };
        if steps & ROUTE != 0 {
            let found = cache
                .of_target(pd.route)
                .find(|&(peer, index)| usable(&*peer, index, tried, now));
            match found {
                Some((peer, index)) => {
                    pd.bound = true;
                    return chosen(pc, pd, peer, index, now, Status::Route, rebound);
                }
                None => session_out = true,
            }
        }
        if steps & LEARNED != 0 {
            if let Some((peer, index)) = pick(cache.by_identity(pd.learned), &mut session_out) {
                pd.bound = true;
                return chosen(pc, pd, peer, index, now, Status::Learned, rebound);
            }
        }
        if steps & COOKIE != 0 {
            let mut out = false;
            if let Some((peer, index)) = pick(cache.by_cookie(pd.cookie), &mut out) {
                pd.bound = pd.has_sid;
                return chosen(pc, pd, peer, index, now, Status::Cookie, rebound);
            }
            session_out |= out && pd.has_sid;
            rebound |= out;
        }
        if session_out {
            if conf.strict {
                return refuse(pc, pd, peers);
            }
            rebound = true;
        }

        let Some(ring) = ring else {
            drop(_lock);
            return round_robin(pc, pd);
        };
        let mut found = None;
        for member in ring.walk(pd.hash, MAX_WALK_SLOTS) {
            if let Some(&(peer, index)) = cache.slots.get(member) {
                if !peer.is_null() && usable(&*peer, index, pd.rrp.tried, now) {
                    found = Some((peer, index));
                    break;
                }
            }
            rebound = true;
            pd.tries += 1;
            if pd.tries > MAX_TRIES {
                break;
            }
        }

        let Some((peer, index)) = found else {
            drop(_lock);
            return round_robin(pc, pd);
        };
        chosen(pc, pd, peer, index, now, Status::DeviceId, rebound)
    }
}

/// Takes the chosen peer; the status is `rebound` when it is a substitute.
///
/// # Safety
/// As for [`take_peer`].
unsafe fn chosen(
    pc: *mut ngx_peer_connection_t,
    pd: &mut PeerData,
    peer: *mut ngx_http_upstream_rr_peer_t,
    index: usize,
    now: i64,
    status: Status,
    rebound: bool,
) -> ngx_int_t {
    // SAFETY: guaranteed by the caller.
    unsafe { take_peer(pc, pd, peer, index, now) };
    pd.status = if rebound { Status::Rebound } else { status };
    NGX_OK as ngx_int_t
}

/// Hands `peer` to the connection, as round robin does for the peer it picks.
///
/// # Safety
/// The peer list must be locked; `peer` is its element number `index`.
unsafe fn take_peer(
    pc: *mut ngx_peer_connection_t,
    pd: &mut PeerData,
    peer: *mut ngx_http_upstream_rr_peer_t,
    index: usize,
    now: i64,
) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        pd.rrp.current = peer;
        #[cfg(nginx1_27_3)]
        {
            (*peer).refs += 1;
        }
        (*pc).sockaddr = (*peer).sockaddr;
        (*pc).socklen = (*peer).socklen;
        (*pc).name = ptr::addr_of_mut!((*peer).name);
        (*peer).conns += 1;
        if now - (*peer).checked > (*peer).fail_timeout {
            (*peer).checked = now;
        }
        set_tried(pd.rrp.tried, index);
    }
}

/// Whether a peer may take this request: not tried by it yet, not down, not failed within
/// `fail_timeout`, not at `max_conns`.
///
/// # Safety
/// `tried` must be round robin's bitmap for the request's peer list.
#[inline]
unsafe fn usable(
    peer: &ngx_http_upstream_rr_peer_t,
    index: usize,
    tried: *mut usize,
    now: i64,
) -> bool {
    let bits = usize::BITS as usize;
    // SAFETY: the bitmap covers every index of the peer list.
    let was_tried = unsafe { *tried.add(index / bits) & (1usize << (index % bits)) != 0 };
    !was_tried
        && peer.down == 0
        && !(peer.max_fails != 0
            && peer.fails >= peer.max_fails
            && now - peer.checked <= peer.fail_timeout)
        && !(peer.max_conns != 0 && peer.conns >= peer.max_conns)
}

/// # Safety
/// As for [`usable`].
#[inline]
unsafe fn set_tried(tried: *mut usize, index: usize) {
    let bits = usize::BITS as usize;
    // SAFETY: the bitmap covers every index of the peer list.
    unsafe { *tried.add(index / bits) |= 1usize << (index % bits) };
}

/// The worker's member-to-peer map for `peers`, rebuilt when the list is another one or has
/// changed (re-resolved servers).
///
/// # Safety
/// `peers` must be locked and valid.
unsafe fn peer_cache(conf: &SrvConf, peers: *mut ngx_http_upstream_rr_peers_t) -> &PeerCache {
    // SAFETY: workers are single-threaded and the balancer is not re-entered, so nothing else
    // holds a reference into the cache while it is checked or rebuilt.
    let cache = unsafe { &mut *conf.cache.get() };
    // SAFETY: `peers` is valid and locked.
    let (number, _config) = unsafe { ((*peers).number, peers_config(peers)) };
    let stale = cache.peers != peers.cast_const() || cache.number != number;
    #[cfg(nginx1_27_3)]
    let stale = stale || cache.config != _config;
    if stale {
        let members = conf.ring.as_ref().map_or(0, Ring::members);
        let mut slots: Vec<(*mut ngx_http_upstream_rr_peer_t, usize)> =
            vec![(ptr::null_mut(), 0usize); members];
        let mut identities = Vec::with_capacity(number);
        let mut targets = Vec::new();
        let mut cookies = Vec::new();
        // SAFETY: the list is valid and locked while it is walked.
        let mut peer = unsafe { (*peers).peer };
        let mut index = 0usize;
        while !peer.is_null() {
            // SAFETY: `peer` is an element of the locked list.
            let (server, name, next) =
                unsafe { (bytes(&(*peer).server), bytes(&(*peer).name), (*peer).next) };
            identities.push((peer_identity(server, name), peer, index));
            if conf.route.is_some() {
                if let Some(t) = conf.routes.server_target(server) {
                    targets.push((t, peer, index));
                }
            }
            if let Some(c) = &conf.cookie {
                cookies.push((c.key.peer_id(server, name), peer, index));
            }
            let key = MemberKey {
                server: server.to_vec(),
                addr: Some(name.to_vec()),
            };
            let candidates = conf.members.get(&key).or_else(|| {
                conf.members.get(&MemberKey {
                    server: server.to_vec(),
                    addr: None,
                })
            });
            if let Some(free) = candidates
                .into_iter()
                .flatten()
                .find(|&&m| slots.get(m).is_some_and(|s| s.0.is_null()))
            {
                if let Some(slot) = slots.get_mut(*free) {
                    *slot = (peer, index);
                }
            }
            peer = next;
            index += 1;
        }
        *cache = PeerCache {
            peers,
            number,
            #[cfg(nginx1_27_3)]
            config: _config,
            slots,
            identities,
            targets,
            cookies,
        };
        cache.identities.sort_unstable_by_key(|e| e.0);
        // Stable: a target's peers keep the list's order (the first usable one is taken).
        cache.targets.sort_by_key(|e| e.0);
        cache.cookies.sort_unstable_by_key(|e| e.0);
    }
    cache
}

/// The shared list's change counter (re-resolvable servers), 0 where there is none.
#[inline]
unsafe fn peers_config(_peers: *mut ngx_http_upstream_rr_peers_t) -> usize {
    #[cfg(nginx1_27_3)]
    // SAFETY: `config` is null or points into the upstream zone.
    unsafe {
        if !(*_peers).config.is_null() {
            return *(*_peers).config;
        }
    }
    0
}

/// The peers write lock of a shared (`zone`) upstream, released on drop; a no-op otherwise.
struct PeersLock(*mut ngx_http_upstream_rr_peers_t);

impl PeersLock {
    /// # Safety
    /// `peers` must be valid for the lifetime of the guard.
    unsafe fn write(peers: *mut ngx_http_upstream_rr_peers_t) -> PeersLock {
        // SAFETY: a shared list has a valid rwlock (nginx's `ngx_http_upstream_rr_peers_wlock`).
        unsafe {
            if !(*peers).shpool.is_null() {
                ngx_rwlock_wlock(ptr::addr_of_mut!((*peers).rwlock));
            }
        }
        PeersLock(peers)
    }
}

impl Drop for PeersLock {
    fn drop(&mut self) {
        // SAFETY: the lock was taken in `write` on the same list, which is still valid.
        unsafe {
            if !(*self.0).shpool.is_null() {
                ngx_rwlock_unlock(ptr::addr_of_mut!((*self.0).rwlock));
            }
        }
    }
}
