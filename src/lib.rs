//! `ngx_http_upstream_socketio_sticky_module`: an nginx upstream balancer that keeps every
//! Socket.IO session and every device on the backend process that owns it.
//!
//! Layout: module statics live here; `conf` parses the directive and owns the configuration;
//! `balancer` is the peer selection glue; `filter` learns session ids from handshake
//! responses; `zone` holds the shared session table; `request` reads raw request bytes;
//! `variables` exposes `$socketio_sticky_*`; `logic` is plain Rust without nginx, tested by
//! `cargo test`.

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::ffi::{
    ngx_command_t, ngx_http_module_t, ngx_module_t, ngx_str_t, ngx_uint_t, NGX_CONF_ANY,
    NGX_CONF_TAKE2, NGX_HTTP_MODULE, NGX_HTTP_SRV_CONF_OFFSET, NGX_HTTP_UPS_CONF,
};

mod balancer;
mod conf;
mod filter;
mod glue;
mod logic;
mod request;
mod state;
mod variables;
mod zone;

static NGX_HTTP_UPSTREAM_SOCKETIO_STICKY_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(variables::add_variables),
    postconfiguration: Some(postconfiguration),
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: Some(conf::create_srv_conf),
    merge_srv_conf: None,
    create_loc_conf: None,
    merge_loc_conf: None,
};

static mut NGX_HTTP_UPSTREAM_SOCKETIO_STICKY_COMMANDS: [ngx_command_t; 3] = [
    ngx_command_t {
        name: ngx_str_t {
            len: 15,
            data: c"socketio_sticky".as_ptr() as *mut u8,
        },
        type_: (NGX_HTTP_UPS_CONF | NGX_CONF_ANY) as ngx_uint_t,
        set: Some(conf::set_socketio_sticky),
        conf: NGX_HTTP_SRV_CONF_OFFSET as ngx_uint_t,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_str_t {
            len: 21,
            data: c"socketio_sticky_route".as_ptr() as *mut u8,
        },
        type_: (NGX_HTTP_UPS_CONF | NGX_CONF_TAKE2) as ngx_uint_t,
        set: Some(conf::set_route_label),
        conf: NGX_HTTP_SRV_CONF_OFFSET as ngx_uint_t,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t::empty(),
];

/// The module object nginx loads (`load_module`): its name is the one nginx prints.
#[no_mangle]
#[used]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_upstream_socketio_sticky_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(NGX_HTTP_UPSTREAM_SOCKETIO_STICKY_MODULE_CTX) as *mut c_void,
    // nginx reads the command table at configuration time; nothing writes it.
    commands: ptr::addr_of_mut!(NGX_HTTP_UPSTREAM_SOCKETIO_STICKY_COMMANDS) as *mut _,
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    ..ngx_module_t::default()
};

ngx::ngx_modules!(ngx_http_upstream_socketio_sticky_module);

/// `postconfiguration`: every upstream is initialised by now; check what only the whole
/// configuration shows, then put the response filters in place.
unsafe extern "C" fn postconfiguration(cf: *mut ngx::ffi::ngx_conf_t) -> ngx::ffi::ngx_int_t {
    // SAFETY: nginx passes the configuration being finished.
    unsafe {
        let rc = conf::check_upstreams(cf);
        if rc != ngx::ffi::NGX_OK as ngx::ffi::ngx_int_t {
            return rc;
        }
        filter::init_filters(cf)
    }
}

/// The module's `ctx_index` (valid once nginx has loaded the module).
#[inline]
pub(crate) fn ctx_index() -> usize {
    // SAFETY: nginx sets `ctx_index` before any configuration or request callback runs and
    // never changes it afterwards; reading a plain integer field of the static is race-free
    // in nginx's single-threaded workers.
    unsafe { (*ptr::addr_of!(ngx_http_upstream_socketio_sticky_module)).ctx_index }
}

/// A NUL-terminated static string for nginx APIs that take `char *`.
pub(crate) fn cstr(s: &'static core::ffi::CStr) -> *mut c_char {
    s.as_ptr() as *mut c_char
}
