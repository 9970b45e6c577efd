//! `socketio_sticky_status;` in a `location`: its content handler answers `GET` and `HEAD`
//! with what every upstream with `socketio_sticky` holds and how its requests were routed, as
//! JSON, the Prometheus text format or an HTML page (`logic::status` writes them). The figures
//! come from the zones (sessions per server, table counters, request counters), shared by all
//! workers; a request reads O(servers) of them, whatever the tables hold.

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::core::Status as NgxStatus;
use ngx::ffi::{
    ngx_buf_t, ngx_cached_time, ngx_chain_t, ngx_command_t, ngx_conf_t, ngx_cycle, ngx_http_arg,
    ngx_http_request_t, ngx_http_upstream_main_conf_t, ngx_http_upstream_rr_peer_t,
    ngx_http_upstream_rr_peers_t, ngx_http_upstream_srv_conf_t, ngx_int_t, ngx_str_t,
    NGINX_VERSION, NGX_ERROR, NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_INTERNAL_SERVER_ERROR,
    NGX_HTTP_NOT_ALLOWED, NGX_OK,
};
use ngx::http::{
    HTTPStatus, HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf,
    NgxHttpCoreModule, NgxHttpUpstreamModule, Request,
};

use crate::conf::SrvConf;
use crate::glue::{bytes, guard, list_values};
use crate::logic::hash::peer_identity;
use crate::logic::status::{self, Server, Snapshot, Upstream, REFUSED};
use crate::logic::tally;
use crate::peers::{self, PeersLock};

/// The directive: the location's content handler becomes the status handler.
pub unsafe extern "C" fn set_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the configuration being parsed.
    let log = unsafe { (*cf).log };
    guard(log, ngx::core::NGX_CONF_ERROR, || {
        // SAFETY: in a `location`, the configuration's context has the core module's location
        // configuration.
        match unsafe { NgxHttpCoreModule::location_conf_mut(&*cf) } {
            Some(clcf) => {
                clcf.handler = Some(handler);
                ngx::core::NGX_CONF_OK
            }
            None => ngx::core::NGX_CONF_ERROR,
        }
    })
}

/// The content handler.
unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid request.
    let log = unsafe { (*(*r).connection).log };
    guard(log, NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t, || {
        // SAFETY: as above.
        unsafe { handle(r) }
    })
}

unsafe fn handle(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: `r` is the request being handled; its headers are parsed.
    unsafe {
        let req = Request::from_ngx_http_request(r);
        if (*r).method & (NGX_HTTP_GET | NGX_HTTP_HEAD) as usize == 0 {
            // RFC 9110: a 405 names the methods the resource has.
            let _ = req.add_header_out("Allow", "GET, HEAD");
            return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
        }
        let rc = req.discard_request_body();
        if rc != NgxStatus::NGX_OK {
            return rc.0;
        }
        let mut arg = ngx_str_t::default();
        let format_arg = (ngx_http_arg(r, c"format".as_ptr().cast_mut().cast(), 6, &mut arg)
            == NGX_OK as ngx_int_t)
            .then(|| bytes(&arg));
        let accept = list_values(ptr::addr_of!((*r).headers_in.headers), b"accept").next();
        let Some(format) = status::negotiate(format_arg, accept) else {
            return send(
                r,
                HTTPStatus::BAD_REQUEST,
                "text/plain; charset=utf-8",
                "unknown format: use format=json, format=prometheus or format=html\n",
            );
        };
        let body = status::render(&snapshot(), format);
        send(r, HTTPStatus::OK, status::content_type(format), &body)
    }
}

/// Sends a whole response: the header, and the body unless the request is `HEAD`.
///
/// # Safety
/// `r` must be the request being handled.
unsafe fn send(r: *mut ngx_http_request_t, code: HTTPStatus, ctype: &str, body: &str) -> ngx_int_t {
    // SAFETY: `r` is valid; the buffer and the chain are in its pool.
    unsafe {
        let req = Request::from_ngx_http_request(r);
        req.set_status(code);
        req.set_content_length_n(body.len());
        if !set_content_type(r, ctype) || req.add_header_out("Cache-Control", "no-store").is_none()
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
        let rc = req.send_header();
        if rc == NgxStatus::NGX_ERROR || rc.0 > NGX_OK as ngx_int_t || req.header_only() {
            return rc.0;
        }
        let pool = req.pool();
        let Some(mut buf) = pool.create_buffer_from_str(body) else {
            return NGX_ERROR as ngx_int_t;
        };
        let b: *mut ngx_buf_t = ngx::core::Buffer::as_ngx_buf_mut(&mut buf);
        (*b).set_last_buf(if ptr::eq(r, (*r).main) { 1 } else { 0 });
        (*b).set_last_in_chain(1);
        let mut out = ngx_chain_t {
            buf: b,
            next: ptr::null_mut(),
        };
        req.output_filter(&mut out).0
    }
}

/// Sets the response's `Content-Type` (copied into the request's pool).
///
/// # Safety
/// `r` must be the request being handled.
unsafe fn set_content_type(r: *mut ngx_http_request_t, ctype: &str) -> bool {
    // SAFETY: `r` is valid; the copy lives in its pool.
    unsafe {
        let s = ngx_str_t::from_str((*r).pool, ctype);
        if s.data.is_null() {
            return false;
        }
        (*r).headers_out.content_type = s;
        (*r).headers_out.content_type_len = s.len;
        true
    }
}

/// What every upstream with the module shows now.
fn snapshot() -> Snapshot {
    Snapshot {
        module_version: env!("CARGO_PKG_VERSION").to_string(),
        nginx_version: NGINX_VERSION.to_string_lossy().into_owned(),
        // SAFETY: the running cycle and its configuration outlive the request.
        upstreams: unsafe { upstreams() },
    }
}

/// The upstreams with `socketio_sticky` of the running cycle, in configuration order.
///
/// # Safety
/// Must run in a worker serving a request (the cycle's configuration is complete).
unsafe fn upstreams() -> Vec<Upstream> {
    // SAFETY: `ngx_cycle` is the running cycle; the upstream module's main configuration
    // holds the array of every upstream's configuration.
    unsafe {
        let cycle = ptr::addr_of!(ngx_cycle).read();
        let Some(cycle) = cycle.as_ref() else {
            return Vec::new();
        };
        let Some(umcf) =
            NgxHttpUpstreamModule::main_conf(cycle).map(|c: &ngx_http_upstream_main_conf_t| c)
        else {
            return Vec::new();
        };
        let list: &[*mut ngx_http_upstream_srv_conf_t] = umcf.upstreams.as_slice();
        let now = (*ngx_cached_time).sec;
        list.iter()
            .filter_map(|&us| us.as_ref())
            .filter_map(|us| {
                let conf = crate::Module::server_conf(us)?;
                conf.enabled.then(|| upstream(us, conf, now))
            })
            .collect()
    }
}

/// One upstream: its servers (primary, then backup) and its zone's figures.
///
/// # Safety
/// `us` must be a configured upstream and `conf` its configuration.
unsafe fn upstream(us: &ngx_http_upstream_srv_conf_t, conf: &SrvConf, now: i64) -> Upstream {
    let primary = us.peer.data.cast::<ngx_http_upstream_rr_peers_t>();
    // SAFETY: `peer.data` of an upstream that round robin initialised is its peer list,
    // with the backup list in `next`; both are read under their lock.
    let mut servers = unsafe {
        let mut out = Vec::new();
        if !primary.is_null() {
            read_peers(primary, false, now, &mut out);
            let backup = (*primary).next;
            if !backup.is_null() {
                read_peers(backup, true, now, &mut out);
            }
        }
        out
    };
    let identities: Vec<u64> = servers.iter().map(|(_, id)| *id).collect();
    // SAFETY: the upstream's zone is null or a zone of the running cycle.
    let figures = unsafe { crate::zone::figures(conf.zone, &identities, now as u32, conf.timeout) };
    let upstream_counts = unsafe { crate::zone::counts(conf.zone, tally::key(&conf.name, 0)) };
    let mut out = Upstream {
        name: String::from_utf8_lossy(&conf.name).into_owned(),
        // SAFETY: as above.
        zone: figures
            .as_ref()
            .map(|_| unsafe { crate::zone::zone_name(conf.zone) }),
        learn_skipped: [
            upstream_counts[0],
            upstream_counts[1],
            upstream_counts[2],
            upstream_counts[3],
        ],
        refused: upstream_counts.get(REFUSED).copied().unwrap_or(0),
        ..Upstream::default()
    };
    if let Some(f) = &figures {
        out.capacity = f.capacity;
        out.sessions = f.sessions;
        out.learned = f.learned;
        out.evicted = f.evicted;
        out.evicted_in_use = f.evicted_in_use;
        out.expired = f.expired;
        out.duplicate_ids = f.duplicate_ids;
    }
    for (i, (server, identity)) in servers.iter_mut().enumerate() {
        server.sessions = figures
            .as_ref()
            .and_then(|f| f.per_server.get(i).copied())
            .unwrap_or(0);
        // SAFETY: as above.
        server.requests =
            unsafe { crate::zone::counts(conf.zone, tally::key(&conf.name, *identity)) };
    }
    out.servers = servers.into_iter().map(|(s, _)| s).collect();
    out
}

/// Appends the peers of `peers` with their identities.
///
/// # Safety
/// `peers` must be a valid peer list.
unsafe fn read_peers(
    peers: *mut ngx_http_upstream_rr_peers_t,
    backup: bool,
    now: i64,
    out: &mut Vec<(Server, u64)>,
) {
    // SAFETY: guaranteed by the caller; the list is read under its lock.
    unsafe {
        let _lock = PeersLock::read(peers);
        let mut peer: *mut ngx_http_upstream_rr_peer_t = (*peers).peer;
        while let Some(p) = peer.as_ref() {
            let (server, name) = (bytes(&p.server), bytes(&p.name));
            let state = if peers::draining(p) {
                "drain"
            } else if peers::marked_down(p) || peers::failed(p, now) {
                "down"
            } else {
                "up"
            };
            out.push((
                Server {
                    name: String::from_utf8_lossy(if server.is_empty() { name } else { server })
                        .into_owned(),
                    address: String::from_utf8_lossy(name).into_owned(),
                    backup,
                    state,
                    sessions: 0,
                    requests: [0; 8],
                },
                peer_identity(server, name),
            ));
            peer = p.next;
        }
    }
}
