//! `ngx_http_upstream_socketio_sticky_module`: an nginx upstream balancer that keeps every
//! Socket.IO session and every device on the backend process that owns it.
//!
//! The module's statics live here. A request goes down the layers once and comes back once:
//! `balancer` (nginx's callbacks) asks `request` for the request's keys, `zone` for a learned
//! session and `logic::choose` for the peer, over `peers` (nginx's peer list); its state is
//! `peer_data`. On the way back, `filter` hands the response to `route_cookie` and `learn`
//! (which stores into `zone`). `directive` parses the configuration into `conf`; `variables`
//! exposes `$socketio_sticky_*`; `status_endpoint` answers `socketio_sticky_status`; `logic` is
//! plain Rust without nginx, tested by `cargo test`.

use core::ffi::c_void;
use core::ptr;

use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, ngx_uint_t,
    NGX_CONF_ANY, NGX_CONF_NOARGS, NGX_CONF_TAKE2, NGX_ERROR, NGX_HTTP_LOC_CONF,
    NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MODULE, NGX_HTTP_SRV_CONF_OFFSET, NGX_HTTP_UPS_CONF, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleServerConf};

mod balancer;
mod conf;
mod directive;
mod filter;
mod glue;
mod learn;
mod logic;
mod peer_data;
mod peers;
mod prefix_request;
mod prefix_response;
mod request;
mod route_cookie;
mod state_mapping;
mod status_endpoint;
mod variables;
mod zone;

/// The module, for ngx's configuration accessors.
pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module object is a static that nginx only writes while loading it
        // (its indices), before any configuration or request callback runs.
        unsafe { &*ptr::addr_of!(ngx_http_upstream_socketio_sticky_module) }
    }
}

// SAFETY: the module's srv conf is always the `SrvConf` made by `conf::create_srv_conf`.
unsafe impl HttpModuleServerConf for Module {
    type ServerConf = conf::SrvConf;
}

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

static mut NGX_HTTP_UPSTREAM_SOCKETIO_STICKY_COMMANDS: [ngx_command_t; 4] = [
    ngx_command_t {
        name: ngx::ngx_string!("socketio_sticky"),
        type_: (NGX_HTTP_UPS_CONF | NGX_CONF_ANY) as ngx_uint_t,
        set: Some(directive::set_socketio_sticky),
        conf: NGX_HTTP_SRV_CONF_OFFSET as ngx_uint_t,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("socketio_sticky_route"),
        type_: (NGX_HTTP_UPS_CONF | NGX_CONF_TAKE2) as ngx_uint_t,
        set: Some(directive::set_route_label),
        conf: NGX_HTTP_SRV_CONF_OFFSET as ngx_uint_t,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("socketio_sticky_status"),
        type_: (NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS) as ngx_uint_t,
        set: Some(status_endpoint::set_status),
        conf: NGX_HTTP_LOC_CONF_OFFSET as ngx_uint_t,
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
/// configuration shows, then put the response filters in place. The library stays mapped
/// from now on (`glue::pin_module`).
unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid configuration.
    let log = unsafe { (*cf).log };
    glue::guard(log, NGX_ERROR as ngx_int_t, || {
        glue::pin_module();
        // SAFETY: nginx passes the configuration being finished.
        unsafe {
            let rc = directive::check_upstreams(cf);
            if rc != NGX_OK as ngx_int_t {
                return rc;
            }
            let rc = prefix_request::init(cf);
            if rc != NGX_OK as ngx_int_t {
                return rc;
            }
            filter::init(cf)
        }
    })
}
