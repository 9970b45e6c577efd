//! The directives: `socketio_sticky` (parsed by `logic::params`) and `socketio_sticky_route`,
//! written into the upstream's configuration (`conf`), and the checks that need the whole
//! configuration.

use core::ffi::{c_char, c_void};
use core::ptr;
use std::ffi::CString;

use ngx::ffi::{
    ngx_command_t, ngx_conf_full_name, ngx_conf_t, ngx_http_get_variable_index,
    ngx_http_upstream_srv_conf_t, ngx_int_t, ngx_module_t, ngx_pnalloc, ngx_str_t, ngx_uint_t,
    NGX_ERROR, NGX_HTTP_UPSTREAM_BACKUP, NGX_HTTP_UPSTREAM_CREATE, NGX_HTTP_UPSTREAM_DOWN,
    NGX_HTTP_UPSTREAM_FAIL_TIMEOUT, NGX_HTTP_UPSTREAM_MAX_CONNS, NGX_HTTP_UPSTREAM_MAX_FAILS,
    NGX_HTTP_UPSTREAM_WEIGHT, NGX_LOG_EMERG, NGX_LOG_WARN, NGX_OK,
};
use ngx::http::{HttpModuleMainConf, HttpModuleServerConf, NgxHttpUpstreamModule};

use crate::conf::{KeySource, Place, RouteCookie, SrvConf};
use crate::glue::{bytes, guard};
use crate::logic::cookie::{self, CookieKey};
use crate::logic::extract::{ArgNames, CaptureRegex, MAX_ARGS, MAX_COOKIES, MAX_KEY_LEN};
use crate::logic::params::{self, Source};
use crate::logic::route::Label;

/// The `socketio_sticky` directive handler.
pub unsafe extern "C" fn set_socketio_sticky(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the configuration being parsed and our srv conf.
    unsafe { handle(cf, conf, socketio_sticky) }
}

/// Runs a directive's handler on this module's srv conf, with panics contained.
///
/// # Safety
/// `cf` is the configuration being parsed; `conf` is this module's srv conf for the current
/// upstream block, created by `create_srv_conf`.
unsafe fn handle(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
    handler: unsafe fn(*mut ngx_conf_t, &mut SrvConf) -> *mut c_char,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    let log = unsafe { (*cf).log };
    guard(log, ngx::core::NGX_CONF_ERROR, || {
        // SAFETY: guaranteed by the caller.
        unsafe { handler(cf, &mut *conf.cast::<SrvConf>()) }
    })
}

unsafe fn socketio_sticky(cf: *mut ngx_conf_t, conf: &mut SrvConf) -> *mut c_char {
    if conf.enabled {
        return c"is duplicate".as_ptr().cast_mut();
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
    let mut cookie_names = Vec::new();
    conf.sid = match resolve_sources(cf, parsed.sid, &mut arg_names, &mut cookie_names) {
        Some(v) => v,
        None => return ngx::core::NGX_CONF_ERROR,
    };
    conf.sid_cookies = conf.sid.iter().any(|s| matches!(s, KeySource::Cookie(..)));
    conf.device_id = match resolve_sources(cf, parsed.device_id, &mut arg_names, &mut cookie_names)
    {
        Some(v) => v,
        None => return ngx::core::NGX_CONF_ERROR,
    };
    conf.arg_names = ArgNames::new(&arg_names);
    conf.timeout = parsed.timeout;
    conf.strict = parsed.strict;
    conf.balance = parsed.balance;
    if let Some(p) = parsed.route {
        conf.set_route(p.0);
    }

    // SAFETY: inside `upstream {}` the context's srv_conf slot of the upstream module holds
    // the upstream being configured.
    let Some(uscf) = NgxHttpUpstreamModule::server_conf_mut(unsafe { &*cf }) else {
        return ngx::core::NGX_CONF_ERROR;
    };

    // SAFETY: the upstream's name lives in the configuration pool.
    let upstream_name = unsafe { bytes(&uscf.host) };
    // The tags of `sid_prefix` follow the route cookie's ids: the same key (`cookie_key=`, else
    // the upstream's name), so every node with the same `server` lines agrees.
    if parsed.sid_prefix {
        crate::prefix_request::enable();
    }
    conf.sid_prefix = parsed.sid_prefix.then(|| {
        let secret = parsed.cookie.as_ref().and_then(|c| c.key.as_deref());
        CookieKey::derive(secret, upstream_name)
    });
    conf.cookie = parsed.cookie.map(|c| RouteCookie {
        slot: slot_of(&mut cookie_names, &c.name, MAX_COOKIES),
        attributes: cookie::attributes(&c),
        key: CookieKey::derive(c.key.as_deref(), upstream_name),
        name: c.name,
    });
    conf.cookie_names = cookie_names;

    // Without `zone=`, the upstream's own zone, named after it.
    let (zone_name, zone_size) = match parsed.zone {
        Some(z) => (z.name, z.size.unwrap_or(0)),
        None => {
            let mut name = b"socketio_sticky_".to_vec();
            name.extend_from_slice(upstream_name);
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
    // A typo must not cost a file: what is at the path is looked at now, by `nginx -t` too.
    if let Some(path) = &state {
        if let Err(why) = crate::state_mapping::check(path) {
            return conf_error(
                cf,
                &format!("has state file \"{}\" that {why}", path.to_string_lossy()),
            );
        }
    }
    // SAFETY: `cf` is the configuration being parsed.
    conf.zone = match unsafe { crate::zone::add_zone(cf, &zone_name, zone_size, state) } {
        Ok(z) => z,
        Err(crate::zone::ZoneError::Logged) => return ngx::core::NGX_CONF_ERROR,
        Err(crate::zone::ZoneError::Conf(e)) => return conf_error(cf, &e),
    };
    conf.enabled = true;
    // SAFETY: `cf` is the configuration being parsed.
    conf.place = Some(unsafe { place(cf) });
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
    // SAFETY: nginx passes the configuration being parsed and our srv conf.
    unsafe { handle(cf, conf, route_label) }
}

unsafe fn route_label(cf: *mut ngx_conf_t, conf: &mut SrvConf) -> *mut c_char {
    // SAFETY: the directive's words (NGX_CONF_TAKE2), in the configuration pool.
    let words: &[ngx_str_t] = unsafe { (*(*cf).args).as_slice() };
    let (Some(label), Some(server)) = (words.get(1), words.get(2)) else {
        return ngx::core::NGX_CONF_ERROR;
    };
    // SAFETY: as above.
    let (label, server) = unsafe { (bytes(label), bytes(server)) };
    if label.is_empty() || label.len() > MAX_KEY_LEN || !label.iter().all(u8::is_ascii_graphic) {
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
    conf.labels.push((
        Label {
            label: label.to_vec(),
            server: server.to_vec(),
        },
        // SAFETY: `cf` is the configuration being parsed.
        unsafe { place(cf) },
    ));
    ngx::core::NGX_CONF_OK
}

/// The file and line nginx is parsing.
///
/// # Safety
/// `cf` must be the configuration being parsed.
unsafe fn place(cf: *mut ngx_conf_t) -> Place {
    // SAFETY: the file being parsed, if any, and its name in the configuration pool.
    unsafe {
        let file = (*cf).conf_file.as_ref();
        Place {
            file: file
                .map(|f| bytes(&f.file.name).to_vec())
                .unwrap_or_default(),
            line: file.map_or(0, |f| f.line),
        }
    }
}

/// The slot of `name` among the names one pass looks for (`names` grows), or none when more
/// than `max` distinct names are wanted.
fn slot_of(names: &mut Vec<Vec<u8>>, name: &[u8], max: usize) -> Option<usize> {
    match names.iter().position(|a| a.eq_ignore_ascii_case(name)) {
        Some(i) => Some(i),
        None if names.len() < max => {
            names.push(name.to_vec());
            Some(names.len() - 1)
        }
        None => None,
    }
}

/// Turns parsed sources into run-time sources; variables get their index now, and nginx
/// reports unknown variables itself ("unknown "x" variable") when it checks them.
fn resolve_sources(
    cf: *mut ngx_conf_t,
    sources: Vec<Source>,
    arg_names: &mut Vec<Vec<u8>>,
    cookie_names: &mut Vec<Vec<u8>>,
) -> Option<Vec<KeySource>> {
    sources
        .into_iter()
        .map(|s| {
            Some(match s {
                Source::Arg(n) => {
                    let slot = slot_of(arg_names, &n, MAX_ARGS);
                    KeySource::Arg(n, slot)
                }
                Source::Cookie(n) => {
                    let slot = slot_of(cookie_names, &n, MAX_COOKIES);
                    KeySource::Cookie(n, slot)
                }
                Source::Header(n) => KeySource::Header(n),
                Source::Path => KeySource::Path,
                Source::Uri(re) => KeySource::Uri(Box::new(CaptureRegex::new(re))),
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

extern "C" {
    /// The C library's symbol lookup (`<dlfcn.h>`).
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// nginx's own `sticky` module (nginx 1.29.6 and later), when this nginx has it.
fn sticky_module() -> Option<&'static ngx_module_t> {
    // SAFETY: a lookup in the process's global symbols (RTLD_DEFAULT, a null handle); nginx
    // exports its modules' symbols for dynamic modules. The symbol, if found, is nginx's
    // static module object, which lives as long as the process.
    unsafe {
        dlsym(ptr::null_mut(), c"ngx_http_upstream_sticky_module".as_ptr())
            .cast::<ngx_module_t>()
            .as_ref()
    }
}

/// Whether nginx's `sticky` directive is in the upstream: its module's configuration of the
/// upstream begins with the balancer it wraps, set by the directive only.
///
/// # Safety
/// `us` must be a valid upstream configuration.
unsafe fn has_sticky(us: &ngx_http_upstream_srv_conf_t, sticky: &ngx_module_t) -> bool {
    if us.srv_conf.is_null() {
        return false;
    }
    // SAFETY: `srv_conf` has a slot per HTTP module; the sticky module's is null or its
    // configuration, whose first field is a function pointer (`original_init_upstream`).
    unsafe {
        let stcf = *us.srv_conf.add(sticky.ctx_index);
        !stcf.is_null() && !(*stcf.cast::<*const c_void>()).is_null()
    }
}

/// After every upstream is initialised: `socketio_sticky_route` lines in an upstream without
/// `socketio_sticky` are an error (they would do nothing), and so is nginx's own `sticky` in
/// an upstream with `socketio_sticky` (either it wraps this balancer, which cannot give it
/// what it needs, or this balancer replaced it silently).
pub unsafe fn check_upstreams(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid configuration.
    let log = unsafe { (*cf).log };
    // SAFETY: at postconfiguration `cf->ctx` is the http block's context, whose main conf of
    // the upstream module lists every upstream.
    let upstreams: &[*mut ngx_http_upstream_srv_conf_t] =
        match NgxHttpUpstreamModule::main_conf(unsafe { &*cf }) {
            // SAFETY: `upstreams` is an array of `ngx_http_upstream_srv_conf_t *`.
            Some(m) => unsafe { m.upstreams.as_slice() },
            None => &[],
        };
    let sticky = sticky_module();
    for &us in upstreams {
        // SAFETY: every element is a valid upstream configuration.
        let Some(conf) = crate::Module::server_conf(unsafe { &*us }) else {
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
        let no_size = match conf.enabled {
            // SAFETY: the upstream's zone, declared by the directive (or null).
            true => unsafe { crate::zone::without_size(conf.zone) },
            false => None,
        };
        if let Some(name) = no_size {
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                log,
                "\"socketio_sticky\" directive has zone \"{name}\" without a size, and no \
                 \"zone={name}:SIZE\" gives it one in {}",
                conf.place
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            );
            return NGX_ERROR as ngx_int_t;
        }
        // Another balancer given after the directive replaced it: its init never ran.
        if conf.enabled && conf.placement.is_none() {
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                log,
                "\"socketio_sticky\" directive is replaced by a load balancing method given \
                 after it in the same upstream (one method per upstream) in {}",
                conf.place
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            );
            return NGX_ERROR as ngx_int_t;
        }
        // SAFETY: as above.
        if let (true, Some(sticky)) = (conf.enabled, sticky) {
            if unsafe { has_sticky(&*us, sticky) } {
                ngx::ngx_log_error!(
                    NGX_LOG_EMERG,
                    log,
                    "\"socketio_sticky\" directive cannot be used with nginx's \"sticky\" in \
                     the same upstream (socketio_sticky keeps sessions itself) in {}",
                    conf.place
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_default()
                );
                return NGX_ERROR as ngx_int_t;
            }
        }
    }
    NGX_OK as ngx_int_t
}
