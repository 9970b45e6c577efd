//! The `socketio_sticky` directive: parsing (via `logic::params`) and the per-upstream
//! configuration that the balancer reads at run time.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_void};
use core::ptr;
use std::collections::HashMap;
use std::ffi::CString;

use ngx::core::Pool;
use ngx::ffi::{
    ngx_command_t, ngx_conf_full_name, ngx_conf_t, ngx_http_conf_ctx_t,
    ngx_http_get_variable_index, ngx_http_upstream_main_conf_t, ngx_http_upstream_module,
    ngx_http_upstream_srv_conf_t, ngx_int_t, ngx_pnalloc, ngx_shm_zone_t, ngx_str_t, ngx_uint_t,
    NGX_ERROR, NGX_HTTP_UPSTREAM_BACKUP, NGX_HTTP_UPSTREAM_CREATE, NGX_HTTP_UPSTREAM_DOWN,
    NGX_HTTP_UPSTREAM_FAIL_TIMEOUT, NGX_HTTP_UPSTREAM_MAX_CONNS, NGX_HTTP_UPSTREAM_MAX_FAILS,
    NGX_HTTP_UPSTREAM_WEIGHT, NGX_LOG_EMERG, NGX_LOG_WARN, NGX_OK,
};
use regex::bytes::{CaptureLocations, Regex};

use crate::balancer::PeerCache;
use crate::glue::{bytes, guard};
use crate::logic::cookie::{self, CookieKey};
use crate::logic::extract::{ArgNames, MAX_ARGS, MAX_KEY_LEN};
use crate::logic::params::{self, Balance, Source};
use crate::logic::ring::Ring;
use crate::logic::route::{Label, Routes};

/// A key source ready for run time (variables resolved to their index).
pub enum KeySource {
    /// A query argument: its name and its slot in the request's one-pass query scan (none when
    /// the directive names more than `extract::MAX_ARGS` arguments).
    Arg(Vec<u8>, Option<usize>),
    Cookie(Vec<u8>),
    Header(Vec<u8>),
    Path,
    Uri(Regex),
    Variable(ngx_uint_t),
}

/// Identity of a ring member: the `server` string as written and, when that server resolved
/// to several addresses, the address (each address is then its own member).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberKey {
    pub server: Vec<u8>,
    pub addr: Option<Vec<u8>>,
}

/// Per-`upstream{}` configuration (nginx creates one for every server and upstream block).
pub struct SrvConf {
    /// The directive was given in this upstream.
    pub enabled: bool,
    pub sid: Vec<KeySource>,
    pub device_id: Vec<KeySource>,
    /// Distinct names of the `arg:` sources, looked for in one pass over the query string.
    pub arg_names: ArgNames,
    /// Built by `init_upstream`; `members` maps identities to ring member indices (several
    /// for repeated `server` lines).
    pub ring: Option<Ring>,
    pub members: HashMap<MemberKey, Vec<usize>>,
    /// Worker-local map from ring members to peers, rebuilt when the peer list changes.
    pub cache: UnsafeCell<PeerCache>,
    /// The zone of the learned sessions (null until the directive is given).
    pub zone: *mut ngx_shm_zone_t,
    /// Idle expiry of learned sessions, seconds.
    pub timeout: u32,
    /// `route=REGEX`: its first capture group, applied to the session id, is a route label.
    pub route: Option<Regex>,
    /// Scratch space for the route regex's captures (workers are single-threaded).
    pub route_locs: UnsafeCell<Option<CaptureLocations>>,
    /// `socketio_sticky_route LABEL SERVER;` lines, in order, with their place in the files.
    pub labels: Vec<(Label, Place)>,
    /// Labels resolved to servers by `init_upstream`.
    pub routes: Routes,
    /// `cookie=NAME`: the route cookie.
    pub cookie: Option<RouteCookie>,
    /// `strict`: no other server answers for a session whose server is out.
    pub strict: bool,
    /// `balance=`: placement of requests that no key decides.
    pub balance: Balance,
}

/// Where a directive was written (for errors found after parsing).
pub struct Place {
    pub file: Vec<u8>,
    pub line: usize,
}

impl core::fmt::Display for Place {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}", String::from_utf8_lossy(&self.file), self.line)
    }
}

/// The route cookie ready for run time.
pub struct RouteCookie {
    pub name: Vec<u8>,
    /// `; Path=/...` and the other attributes, after the value.
    pub attributes: Vec<u8>,
    pub key: CookieKey,
}

impl RouteCookie {
    /// Length of the whole `Set-Cookie` value.
    pub fn header_len(&self) -> usize {
        self.name.len() + 1 + cookie::ID_LEN + self.attributes.len()
    }
}

impl Default for SrvConf {
    fn default() -> Self {
        SrvConf {
            enabled: false,
            sid: Vec::new(),
            device_id: Vec::new(),
            arg_names: ArgNames::default(),
            ring: None,
            members: HashMap::new(),
            cache: UnsafeCell::default(),
            zone: ptr::null_mut(),
            timeout: params::DEFAULT_TIMEOUT,
            route: None,
            route_locs: UnsafeCell::new(None),
            labels: Vec::new(),
            routes: Routes::default(),
            cookie: None,
            strict: false,
            balance: Balance::RoundRobin,
        }
    }
}

impl SrvConf {
    /// Whether requests need their session id (to look it up, or to read its route label).
    pub fn wants_sid(&self) -> bool {
        !self.sid.is_empty() && (!self.zone.is_null() || self.route.is_some())
    }
}

/// `create_srv_conf`: an empty configuration, dropped with the configuration pool.
pub unsafe extern "C" fn create_srv_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: nginx passes a valid configuration with a live pool.
    let log = unsafe { (*cf).log };
    guard(log, ptr::null_mut(), || {
        // SAFETY: the pool outlives the configuration; `allocate` registers the drop.
        let pool = unsafe { Pool::from_ngx_pool((*cf).pool) };
        pool.allocate(SrvConf::default()) as *mut c_void
    })
}

/// The module's configuration of an upstream, if it has one.
///
/// # Safety
/// `us` must be a valid upstream configuration whose `srv_conf` array was built by nginx.
pub unsafe fn srv_conf<'a>(us: *const ngx_http_upstream_srv_conf_t) -> Option<&'a SrvConf> {
    // SAFETY: `srv_conf` has one slot per HTTP module; ours holds a `SrvConf` or is null.
    unsafe {
        let confs = (*us).srv_conf;
        if confs.is_null() {
            return None;
        }
        (*confs.add(crate::ctx_index())).cast::<SrvConf>().as_ref()
    }
}

/// The `socketio_sticky` directive handler.
pub unsafe extern "C" fn set_socketio_sticky(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the configuration being parsed.
    let log = unsafe { (*cf).log };
    guard(log, ngx::core::NGX_CONF_ERROR, || {
        // SAFETY: `conf` is this module's srv conf for the current upstream block, created by
        // `create_srv_conf`; `cf` is valid during the call.
        unsafe { set_socketio_sticky_inner(cf, &mut *conf.cast::<SrvConf>()) }
    })
}

unsafe fn set_socketio_sticky_inner(cf: *mut ngx_conf_t, conf: &mut SrvConf) -> *mut c_char {
    if conf.enabled {
        return crate::cstr(c"is duplicate");
    }

    // SAFETY: `cf->args` holds the directive's words as `ngx_str_t`, the name first.
    let words: &[ngx_str_t] = unsafe { (*(*cf).args).as_slice() };
    // SAFETY: the words live in the configuration pool for the whole parse.
    let args: Vec<&[u8]> = words.iter().skip(1).map(|w| unsafe { bytes(w) }).collect();

    let parsed = match params::parse(&args) {
        Ok(p) => p,
        Err(e) => return conf_error(cf, &e.to_string()),
    };
    let mut arg_names = Vec::new();
    conf.sid = match resolve_sources(cf, parsed.sid, &mut arg_names) {
        Some(v) => v,
        None => return ngx::core::NGX_CONF_ERROR,
    };
    conf.device_id = match resolve_sources(cf, parsed.device_id, &mut arg_names) {
        Some(v) => v,
        None => return ngx::core::NGX_CONF_ERROR,
    };
    conf.arg_names = ArgNames::new(&arg_names);
    conf.timeout = parsed.timeout;
    conf.strict = parsed.strict;
    conf.balance = parsed.balance;
    if let Some(p) = parsed.route {
        conf.route_locs = UnsafeCell::new(Some(p.0.capture_locations()));
        conf.route = Some(p.0);
    }

    // SAFETY: inside `upstream {}` the context is an HTTP conf context whose srv_conf slot of
    // the upstream module holds the upstream being configured.
    let uscf = unsafe {
        let ctx = (*cf).ctx.cast::<ngx_http_conf_ctx_t>();
        &mut *(*(*ctx)
            .srv_conf
            .add((*ptr::addr_of!(ngx_http_upstream_module)).ctx_index))
        .cast::<ngx_http_upstream_srv_conf_t>()
    };

    // SAFETY: the upstream's name lives in the configuration pool.
    let upstream_name = unsafe { bytes(&uscf.host) };
    conf.cookie = parsed.cookie.map(|c| RouteCookie {
        attributes: cookie::attributes(&c),
        key: CookieKey::derive(c.key.as_deref(), upstream_name),
        name: c.name,
    });

    // Without `zone=`, the upstream's own zone, named after it.
    let (zone_name, zone_size) = match parsed.zone {
        Some(z) => (z.name, z.size.unwrap_or(0)),
        None => {
            let mut name = b"socketio_sticky_".to_vec();
            // SAFETY: the upstream's name lives in the configuration pool.
            name.extend_from_slice(unsafe { bytes(&uscf.host) });
            (name, params::DEFAULT_ZONE_SIZE)
        }
    };
    let state = match parsed.state {
        // SAFETY: `cf` is the configuration being parsed.
        Some(path) => match unsafe { full_name(cf, &path) } {
            Some(p) => Some(p),
            None => {
                return conf_error(
                    cf,
                    &format!(
                        "has invalid state file \"{}\"",
                        String::from_utf8_lossy(&path)
                    ),
                )
            }
        },
        None => None,
    };
    // SAFETY: `cf` is the configuration being parsed.
    conf.zone = match unsafe { crate::zone::add_zone(cf, &zone_name, zone_size, state) } {
        Ok(z) => z,
        Err(crate::zone::ZoneError::Logged) => return ngx::core::NGX_CONF_ERROR,
        Err(crate::zone::ZoneError::Conf(e)) => return conf_error(cf, &e),
    };
    conf.enabled = true;
    if uscf.peer.init_upstream.is_some() {
        ngx::ngx_conf_log_error!(NGX_LOG_WARN, cf, "load balancing method redefined");
    }
    uscf.peer.init_upstream = Some(crate::balancer::init_upstream);
    uscf.flags = (NGX_HTTP_UPSTREAM_CREATE
        | NGX_HTTP_UPSTREAM_WEIGHT
        | NGX_HTTP_UPSTREAM_MAX_CONNS
        | NGX_HTTP_UPSTREAM_MAX_FAILS
        | NGX_HTTP_UPSTREAM_FAIL_TIMEOUT
        | NGX_HTTP_UPSTREAM_DOWN
        | NGX_HTTP_UPSTREAM_BACKUP) as ngx_uint_t;

    ngx::core::NGX_CONF_OK
}

/// `path` made absolute against nginx's prefix, as nginx does for its own files; `None` when
/// it holds a NUL byte or nginx cannot allocate.
///
/// # Safety
/// `cf` must be the configuration being parsed.
unsafe fn full_name(cf: *mut ngx_conf_t, path: &[u8]) -> Option<CString> {
    if path.contains(&0) {
        return None;
    }
    // SAFETY: the copy lives in the configuration pool; `ngx_conf_full_name` replaces it with
    // the full name, allocated in the cycle's pool.
    unsafe {
        let data = ngx_pnalloc((*cf).pool, path.len()).cast::<u8>();
        if data.is_null() {
            return None;
        }
        ptr::copy_nonoverlapping(path.as_ptr(), data, path.len());
        let mut s = ngx_str_t {
            len: path.len(),
            data,
        };
        if ngx_conf_full_name((*cf).cycle, &mut s, 0) != NGX_OK as ngx_int_t {
            return None;
        }
        CString::new(bytes(&s)).ok()
    }
}

/// The `socketio_sticky_route LABEL SERVER;` directive handler: an explicit route label.
pub unsafe extern "C" fn set_route_label(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the configuration being parsed.
    let log = unsafe { (*cf).log };
    guard(log, ngx::core::NGX_CONF_ERROR, || {
        // SAFETY: `conf` is this module's srv conf for the current upstream block; `cf` is
        // valid during the call and its args hold the directive's words (NGX_CONF_TAKE2).
        unsafe {
            let conf = &mut *conf.cast::<SrvConf>();
            let words: &[ngx_str_t] = (*(*cf).args).as_slice();
            let (Some(label), Some(server)) = (words.get(1), words.get(2)) else {
                return ngx::core::NGX_CONF_ERROR;
            };
            let (label, server) = (bytes(label), bytes(server));
            if label.is_empty()
                || label.len() > MAX_KEY_LEN
                || !label.iter().all(u8::is_ascii_graphic)
            {
                return conf_error(
                    cf,
                    &format!("has invalid label \"{}\"", String::from_utf8_lossy(label)),
                );
            }
            if conf.labels.iter().any(|(l, _)| l.label == label) {
                return conf_error(
                    cf,
                    &format!(
                        "has label \"{}\" more than once in the upstream",
                        String::from_utf8_lossy(label)
                    ),
                );
            }
            let file = (*cf).conf_file;
            let place = Place {
                file: file
                    .as_ref()
                    .map(|f| bytes(&f.file.name).to_vec())
                    .unwrap_or_default(),
                line: file.as_ref().map_or(0, |f| f.line),
            };
            conf.labels.push((
                Label {
                    label: label.to_vec(),
                    server: server.to_vec(),
                },
                place,
            ));
            ngx::core::NGX_CONF_OK
        }
    })
}

/// Turns parsed sources into run-time sources; variables get their index now, and nginx
/// reports unknown variables itself ("unknown "x" variable") when it checks them.
fn resolve_sources(
    cf: *mut ngx_conf_t,
    sources: Vec<Source>,
    arg_names: &mut Vec<Vec<u8>>,
) -> Option<Vec<KeySource>> {
    sources
        .into_iter()
        .map(|s| {
            Some(match s {
                Source::Arg(n) => {
                    let slot = match arg_names.iter().position(|a| a.eq_ignore_ascii_case(&n)) {
                        Some(i) => Some(i),
                        None if arg_names.len() < MAX_ARGS => {
                            arg_names.push(n.clone());
                            Some(arg_names.len() - 1)
                        }
                        None => None,
                    };
                    KeySource::Arg(n, slot)
                }
                Source::Cookie(n) => KeySource::Cookie(n),
                Source::Header(n) => KeySource::Header(n),
                Source::Path => KeySource::Path,
                Source::Uri(re) => KeySource::Uri(re),
                Source::Variable(mut name) => {
                    let mut s = ngx_str_t {
                        len: name.len(),
                        data: name.as_mut_ptr(),
                    };
                    // SAFETY: nginx copies the name into its own variables table.
                    let index = unsafe { ngx_http_get_variable_index(cf, &mut s) };
                    if index == NGX_ERROR as isize {
                        return None;
                    }
                    KeySource::Variable(index as ngx_uint_t)
                }
            })
        })
        .collect()
}

/// Returns a pool-allocated, NUL-terminated message; nginx prints it after
/// `"socketio_sticky" directive ` and adds ` in FILE:LINE`.
fn conf_error(cf: *mut ngx_conf_t, msg: &str) -> *mut c_char {
    let len = msg.len() + 1;
    // SAFETY: the configuration pool is valid during parsing; the copy stays in bounds.
    unsafe {
        let p = ngx_pnalloc((*cf).pool, len).cast::<u8>();
        if p.is_null() {
            return ngx::core::NGX_CONF_ERROR;
        }
        ptr::copy_nonoverlapping(msg.as_ptr(), p, msg.len());
        *p.add(msg.len()) = 0;
        p.cast::<c_char>()
    }
}

/// After every upstream is initialised: `socketio_sticky_route` lines in an upstream without
/// `socketio_sticky` are an error (they would do nothing).
pub unsafe extern "C" fn check_upstreams(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid configuration.
    let log = unsafe { (*cf).log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        // SAFETY: at postconfiguration `cf->ctx` is the http block's context, whose main conf
        // of the upstream module lists every upstream (`ngx_http_upstream_srv_conf_t *`).
        let upstreams: &[*mut ngx_http_upstream_srv_conf_t] = unsafe {
            let ctx = (*cf).ctx.cast::<ngx_http_conf_ctx_t>();
            let umcf = (*(*ctx)
                .main_conf
                .add((*ptr::addr_of!(ngx_http_upstream_module)).ctx_index))
            .cast::<ngx_http_upstream_main_conf_t>();
            match umcf.as_ref() {
                Some(m) => m.upstreams.as_slice(),
                None => &[],
            }
        };
        for &us in upstreams {
            // SAFETY: every element is a valid upstream configuration.
            let Some(conf) = (unsafe { srv_conf(us) }) else {
                continue;
            };
            if let (false, Some((_, place))) = (conf.enabled, conf.labels.first()) {
                ngx::ngx_log_error!(
                    NGX_LOG_EMERG,
                    log,
                    "\"socketio_sticky_route\" directive needs \"socketio_sticky\" in the same \
                     upstream in {}",
                    place
                );
                return NGX_ERROR as ngx_int_t;
            }
        }
        NGX_OK as ngx_int_t
    })
}
