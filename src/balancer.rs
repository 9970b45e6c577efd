//! The balancer's three nginx callbacks, shaped like nginx's `hash` module: `init_upstream`
//! (round robin's own, then the ring and the route labels), `init_peer` (round robin's data
//! first in the request's data, then the request's keys) and `get` (the precedence list of
//! `logic::choose` over the peer list; round robin or least_conn when it lets them pick).

use core::ffi::c_void;
use core::ptr::{self, NonNull};

use ngx::ffi::{
    ngx_cached_time, ngx_conf_t, ngx_http_request_t, ngx_http_upstream_get_round_robin_peer,
    ngx_http_upstream_init_round_robin, ngx_http_upstream_init_round_robin_peer,
    ngx_http_upstream_rr_peers_t, ngx_http_upstream_server_t, ngx_http_upstream_srv_conf_t,
    ngx_int_t, ngx_peer_connection_t, ngx_str_t, NGX_BUSY, NGX_ERROR, NGX_LOG_EMERG, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleServerConf};

use crate::conf::SrvConf;
use crate::glue::{bytes, guard};
use crate::logic::choose::{Before, Choice, Claims, Progress, Status};
use crate::logic::cookie::CookieKey;
use crate::logic::hash::{key_hash, log_tag};
use crate::logic::least_conn;
use crate::logic::params::Balance;
use crate::logic::prefix;
use crate::logic::route::{Line, Routes};
use crate::logic::servers::{Placement, ServerLine};
use crate::peer_data::PeerData;
use crate::peers::{self, PeersLock};

/// `init_upstream`: round robin's own initialisation, then the ring over the primary servers
/// and the route labels.
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
    // SAFETY: `us` is valid; our slot of its `srv_conf` holds its `SrvConf`.
    let Some(conf) = crate::Module::server_conf_mut(unsafe { &*us }) else {
        return NGX_ERROR as ngx_int_t;
    };
    // SAFETY: `servers` is an array of `ngx_http_upstream_server_t` for an upstream block,
    // with their names and addresses in the configuration pool.
    let lines: Vec<ServerLine> = unsafe {
        let servers: &[ngx_http_upstream_server_t] = match (*us).servers.as_ref() {
            Some(a) => a.as_slice(),
            None => &[],
        };
        servers.iter().map(|s| server_line(s)).collect()
    };
    // SAFETY: the configuration's log and the upstream's name are valid during init.
    let upstream = unsafe { String::from_utf8_lossy(bytes(&(*us).host)) };
    conf.name = upstream.as_bytes().to_vec();
    if let Err(msg) = resolve_routes(conf, &lines, &upstream) {
        // SAFETY: as above.
        ngx::ngx_log_error!(NGX_LOG_EMERG, unsafe { (*cf).log }, "{}", msg);
        return NGX_ERROR as ngx_int_t;
    }
    if let Some(key) = conf.sid_prefix {
        // SAFETY: as above; `addrs` holds `naddrs` addresses of each line.
        let tags = unsafe { server_tags(us, &key) };
        crate::prefix_request::add_tags(&tags);
        conf.set_tags(tags);
    }
    match Placement::build(&lines) {
        Ok(p) => conf.placement = Some(p),
        Err(e) => {
            ngx::ngx_conf_log_error!(NGX_LOG_EMERG, cf, "socketio_sticky: {}", e);
            return NGX_ERROR as ngx_int_t;
        }
    }
    NGX_OK as ngx_int_t
}

/// The tag ids of the primary servers' addresses (as round robin makes its peers: the line's
/// name and each address), for `sid_prefix`.
///
/// # Safety
/// `us` must be an upstream whose servers are parsed.
unsafe fn server_tags(us: *mut ngx_http_upstream_srv_conf_t, key: &CookieKey) -> Vec<u64> {
    // SAFETY: guaranteed by the caller; names and addresses live in the configuration pool.
    unsafe {
        let servers: &[ngx_http_upstream_server_t] = match (*us).servers.as_ref() {
            Some(a) => a.as_slice(),
            None => &[],
        };
        let mut tags = Vec::new();
        for s in servers.iter().filter(|s| s.backup() == 0) {
            if s.addrs.is_null() {
                continue;
            }
            for a in core::slice::from_raw_parts(s.addrs, s.naddrs) {
                tags.push(key.peer_id(bytes(&s.name), bytes(&a.name)) & prefix::TAG_MASK);
            }
        }
        tags
    }
}

/// A `server` line as the ring and the route labels read it.
///
/// # Safety
/// `s` must be a parsed server of an upstream block.
unsafe fn server_line(s: &ngx_http_upstream_server_t) -> ServerLine {
    // SAFETY: names and addresses live in the configuration pool; `addrs` holds `naddrs`.
    unsafe {
        let addrs: &[ngx::ffi::ngx_addr_t] = if s.naddrs > 1 && !s.addrs.is_null() {
            core::slice::from_raw_parts(s.addrs, s.naddrs)
        } else {
            &[]
        };
        #[cfg(ngx_upstream_sid)]
        let route = Some(bytes(&s.sid).to_vec()).filter(|l| !l.is_empty());
        #[cfg(not(ngx_upstream_sid))]
        let route = None;
        ServerLine {
            name: bytes(&s.name).to_vec(),
            weight: u32::try_from(s.weight).unwrap_or(u32::MAX),
            backup: s.backup() != 0,
            addrs: addrs.iter().map(|a| bytes(&a.name).to_vec()).collect(),
            route,
        }
    }
}

/// Resolves the route labels (`route=`, `socketio_sticky_route`) against the `server` lines;
/// an error names the `socketio_sticky_route` line at fault.
fn resolve_routes(conf: &mut SrvConf, lines: &[ServerLine], upstream: &str) -> Result<(), String> {
    if conf.route.is_none() {
        return match conf.labels.first() {
            Some((_, place)) => Err(format!(
                "\"socketio_sticky_route\" directive needs \"route=\" in the \"socketio_sticky\" \
                 directive of upstream \"{upstream}\" in {place}"
            )),
            None => Ok(()),
        };
    }
    let lines: Vec<Line> = lines
        .iter()
        .map(|s| Line {
            name: s.name.clone(),
            backup: s.backup,
            label: s.route.clone(),
        })
        .collect();
    let labels: Vec<_> = conf.labels.iter().map(|(l, _)| l.clone()).collect();
    conf.routes = Routes::build(&lines, &labels).map_err(|e| {
        if !e.of_route_line() {
            // The `server` lines are at fault: the place of the directive that reads them.
            let place = conf
                .place
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            return format!("\"socketio_sticky\" directive has {e} in {place}");
        }
        let place = conf
            .labels
            .iter()
            .find(|(l, _)| String::from_utf8_lossy(&l.label) == e.label())
            .map(|(_, p)| p.to_string())
            .unwrap_or_default();
        format!("\"socketio_sticky_route\" directive {e} in {place}")
    })?;
    Ok(())
}

/// `init_peer`: round robin's per-request data inside ours, then what the request's keys name.
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
    // SAFETY: `us` is valid; our slot holds its `SrvConf`, alive as long as the cycle.
    let Some(conf) = crate::Module::server_conf(unsafe { &*us }) else {
        return NGX_ERROR as ngx_int_t;
    };
    // SAFETY: `r` is valid; the keys borrow from it.
    let keys = unsafe { crate::request::read(r, conf) };
    // SAFETY: as above; the log is used for debug lines.
    let log = unsafe { (*(*r).connection).log };
    let mut claims = Claims::default();
    let mut key = None;
    if let Some(k) = keys.device_id {
        claims.device = Some(key_hash(k));
        // The key is request memory (its query string, headers or pool).
        key = Some(ngx_str_t {
            len: k.len(),
            data: k.as_ptr().cast_mut(),
        });
        ngx::ngx_log_debug!(log, "socketio_sticky: device_id key tag:{:08x}", log_tag(k));
    }
    if conf.sid_prefix.is_some() {
        // SAFETY: `r` is valid; the tag was stored by the PREACCESS handler.
        claims.prefix = unsafe { crate::prefix_request::tag_of(r) };
    }
    if let Some(sid) = keys.sid {
        claims.session = true;
        claims.route = conf.route_target(sid);
        if let Some(t) = claims.route {
            // A routed session skips the table: it would name the same server.
            ngx::ngx_log_debug!(
                log,
                "socketio_sticky: session tag:{:08x} routed to server {}",
                log_tag(sid),
                t
            );
        } else if claims.prefix.is_some_and(|id| conf.knows_tag(id)) {
            // A tag of one of the servers names the same server as the table would.
        } else if !conf.zone.is_null() {
            // SAFETY: nginx's cached time; the zone belongs to the running cycle.
            let now = unsafe { (*ngx_cached_time).sec } as u32;
            // SAFETY: as above.
            claims.learned = unsafe { crate::zone::lookup(conf.zone, sid, now, conf.timeout) };
            ngx::ngx_log_debug!(
                log,
                "socketio_sticky: session tag:{:08x} {}",
                log_tag(sid),
                if claims.learned.is_some() {
                    "learned"
                } else {
                    "unknown"
                }
            );
        }
    }
    claims.cookie = keys.route_cookie;

    // SAFETY: `r` and `us` are valid. Every field but round robin's data is written here;
    // round robin's init writes all of that before anything reads it.
    unsafe {
        let Some(block) = crate::peer_data::block_for(r) else {
            return NGX_ERROR as ngx_int_t;
        };
        let pd = block.as_ptr();
        ptr::addr_of_mut!((*pd).conf).write(NonNull::from(conf));
        ptr::addr_of_mut!((*pd).claims).write(claims);
        ptr::addr_of_mut!((*pd).progress).write(Progress::default());
        ptr::addr_of_mut!((*pd).status).write(None);
        ptr::addr_of_mut!((*pd).key).write(key);
        ptr::addr_of_mut!((*pd).cookie_out).write(conf.cookie.is_some() && ptr::eq((*r).main, r));
        ptr::addr_of_mut!((*pd).learn).write(keys.handshake);
        ptr::addr_of_mut!((*pd).look).write(None);
        ptr::addr_of_mut!((*pd).rewrite).write(None);
        let u = (*r).upstream;
        (*u).peer.data = pd.cast::<c_void>();
        if ngx_http_upstream_init_round_robin_peer(r, us) != NGX_OK as ngx_int_t {
            return NGX_ERROR as ngx_int_t;
        }
        ptr::addr_of_mut!((*pd).primary).write((*pd).rrp.peers);
        (*u).peer.get = Some(get_peer);
        ngx::http::Request::from_ngx_http_request(r)
            .set_module_ctx(pd.cast(), crate::Module::module());
    }
    NGX_OK as ngx_int_t
}

/// `get`: the precedence list over the peer list; round robin or least_conn when it lets
/// them pick.
unsafe extern "C" fn get_peer(pc: *mut ngx_peer_connection_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx passes the peer connection and our peer data.
    let log = unsafe { (*pc).log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        // SAFETY: `data` is the `PeerData` set by `init_peer` (its first field is `rrp`).
        unsafe { get_peer_inner(pc, &mut *data.cast::<PeerData>()) }
    })
}

unsafe fn get_peer_inner(pc: *mut ngx_peer_connection_t, pd: &mut PeerData) -> ngx_int_t {
    // SAFETY: the configuration outlives the request.
    let conf = unsafe { pd.conf.as_ref() };
    let rules = conf.rules();
    match pd.progress.begin(&pd.claims, &rules) {
        Before::Refuse => {
            // SAFETY: the request's peer list.
            return unsafe { refuse(pc, pd, pd.rrp.peers) };
        }
        // SAFETY: round robin on its own data.
        Before::Balance => return unsafe { balance(pc, pd) },
        Before::Look => {}
    }

    let peers = pd.rrp.peers;
    // SAFETY: `peers` is the upstream's live peer list; it is locked as nginx's own balancers
    // lock it while peers are read and their counters updated. The index is the worker's own.
    unsafe {
        let lock = PeersLock::write(peers);
        (*pc).set_cached(0);
        (*pc).connection = ptr::null_mut();
        if (*peers).number == 0 || peers::stale(&pd.rrp, peers) {
            (*pc).name = (*peers).name;
            return NGX_BUSY as ngx_int_t;
        }
        let Some(index) = conf.index(peers) else {
            drop(lock);
            return balance(pc, pd);
        };
        let now = (*ngx_cached_time).sec;
        match pd
            .progress
            .choose(&index.view(pd.rrp.tried, now), &pd.claims, &rules)
        {
            Choice::Take(p, status) => {
                peers::take(pc, &mut pd.rrp, p.at, now);
                pd.status = Some(status);
                if let (Some(r), Some(i)) = (p.record(), status.counter()) {
                    r.add(i);
                }
                NGX_OK as ngx_int_t
            }
            Choice::Refuse => refuse(pc, pd, peers),
            Choice::Balance => {
                drop(lock);
                balance(pc, pd)
            }
        }
    }
}

/// Placement of a request that no step of the list decided: round robin or least_conn.
///
/// # Safety
/// `pd.rrp` must be this request's round-robin data.
unsafe fn balance(pc: *mut ngx_peer_connection_t, pd: &mut PeerData) -> ngx_int_t {
    pd.status = Some(Status::Fallback);
    let rc = match pd.conf().balance {
        // SAFETY: guaranteed by the caller.
        Balance::LeastConn => unsafe { least_conn(pc, pd) },
        Balance::RoundRobin => None,
    };
    // SAFETY: `rrp` is round robin's own data for this request.
    let rc = rc.unwrap_or_else(|| unsafe {
        ngx_http_upstream_get_round_robin_peer(pc, ptr::addr_of_mut!(pd.rrp).cast())
    });
    if rc == NGX_OK as ngx_int_t && !pd.rrp.current.is_null() {
        if let Some(i) = Status::Fallback.counter() {
            // SAFETY: the primary list and the peer just taken are valid; no list is locked.
            unsafe { pd.conf().count_sent(pd.primary, pd.rrp.current, i) };
        }
    }
    rc
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
        if (*peers).number == 0 || peers::stale(&pd.rrp, peers) {
            return None;
        }
        let (tried, now) = (pd.rrp.tried, (*ngx_cached_time).sec);
        let list = || peers::walk(peers, tried, now);
        let chosen = least_conn::pick(list)?;
        let p = list().nth(chosen)?;
        (*pc).set_cached(0);
        (*pc).connection = ptr::null_mut();
        peers::take(pc, &mut pd.rrp, p.at, now);
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
    pd.status = Some(Status::Strict);
    // Refusals reach no server: counted for the upstream.
    if let Some(r) = pd.conf().record(0) {
        r.add(crate::logic::status::REFUSED);
    }
    // SAFETY: the list's name is configuration memory.
    unsafe {
        (*pc).name = (*peers).name;
        // At debug level only: in request context nginx appends the request line, which
        // carries the session id. nginx itself logs "no live upstreams" as an error next.
        ngx::ngx_log_debug!(
            (*pc).log,
            "socketio_sticky: the session's server is out and \"strict\" is set: no other \
             server tried"
        );
    }
    NGX_BUSY as ngx_int_t
}
