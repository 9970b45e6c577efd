//! `$socketio_sticky_key`, `$socketio_sticky_status`, `$socketio_sticky_evicted` and
//! `$socketio_sticky_prefix` (whose value `prefix_request` sets).

use ngx::ffi::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_get_variable_pt, ngx_http_request_t,
    ngx_http_variable_value_t, ngx_int_t, ngx_pnalloc, ngx_str_t, ngx_uint_t, NGX_ERROR,
    NGX_HTTP_VAR_NOCACHEABLE, NGX_OK,
};

use crate::glue::guard;
use crate::peer_data;

/// `preconfiguration`: registers the variables.
pub unsafe extern "C" fn add_variables(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid configuration.
    let log = unsafe { (*cf).log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        // A new configuration: `sid_prefix` state of the previous one goes.
        crate::prefix_request::reset();
        let vars: [(&'static [u8], ngx_http_get_variable_pt); 3] = [
            (b"socketio_sticky_key", Some(key_variable)),
            (b"socketio_sticky_status", Some(status_variable)),
            (b"socketio_sticky_evicted", Some(evicted_variable)),
        ];
        for (name, handler) in vars {
            let mut name = ngx_str_t {
                len: name.len(),
                data: name.as_ptr().cast_mut(),
            };
            // SAFETY: nginx copies the name; the configuration is valid.
            let v = unsafe {
                ngx_http_add_variable(cf, &mut name, NGX_HTTP_VAR_NOCACHEABLE as ngx_uint_t)
            };
            // SAFETY: a non-null result is nginx's variable entry for this name.
            match unsafe { v.as_mut() } {
                Some(v) => {
                    v.get_handler = handler;
                    v.data = 0;
                }
                None => return NGX_ERROR as ngx_int_t,
            }
        }
        // `$socketio_sticky_prefix`: set by `prefix_request` (cacheable, so that the value it
        // stores is the one read); not found otherwise.
        let mut name = ngx_str_t {
            len: crate::prefix_request::VARIABLE.len(),
            data: crate::prefix_request::VARIABLE.as_ptr().cast_mut(),
        };
        // SAFETY: as above.
        match unsafe { ngx_http_add_variable(cf, &mut name, 0).as_mut() } {
            Some(v) => {
                v.get_handler = Some(not_found_variable);
                v.data = 0;
            }
            None => return NGX_ERROR as ngx_int_t,
        }
        NGX_OK as ngx_int_t
    })
}

/// A variable that nothing set for the request.
unsafe extern "C" fn not_found_variable(
    _r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the value slot to fill.
    unsafe { set_value(v, None) }
}

unsafe fn set_value(v: *mut ngx_http_variable_value_t, value: Option<&[u8]>) -> ngx_int_t {
    // SAFETY: nginx passes the value slot to fill; `value` lives in the request pool or is
    // static.
    unsafe {
        match value {
            Some(b) if !b.is_empty() => {
                (*v).set_len(b.len() as u32);
                (*v).set_valid(1);
                (*v).set_no_cacheable(0);
                (*v).set_not_found(0);
                (*v).data = b.as_ptr().cast_mut();
            }
            _ => (*v).set_not_found(1),
        }
    }
    NGX_OK as ngx_int_t
}

unsafe extern "C" fn key_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes a valid request with a connection.
    let log = unsafe { (*(*r).connection).log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        // SAFETY: `r` is valid; the key was copied into its pool.
        unsafe {
            let key = peer_data::of_request(r)
                .and_then(|pd| pd.key.as_ref().map(|k| crate::glue::bytes(k)));
            set_value(v, key)
        }
    })
}

unsafe extern "C" fn status_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes a valid request with a connection.
    let log = unsafe { (*(*r).connection).log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        // SAFETY: `r` is valid.
        unsafe {
            let status = peer_data::of_request(r).and_then(|pd| pd.status);
            set_value(v, status.map(|s| s.as_bytes()))
        }
    })
}

/// The sessions the zone of the request's upstream has evicted so far because it was full.
unsafe extern "C" fn evicted_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes a valid request with a connection.
    let log = unsafe { (*(*r).connection).log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        // SAFETY: `r` is valid; the zone belongs to the running cycle; the number is written
        // into the request's pool.
        unsafe {
            let zone = peer_data::of_request(r).map(|pd| pd.conf().zone);
            let Some(n) = zone
                .filter(|z| !z.is_null())
                .and_then(|z| crate::zone::evicted(z))
            else {
                return set_value(v, None);
            };
            let text = n.to_string();
            let p = ngx_pnalloc((*r).pool, text.len()).cast::<u8>();
            if p.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            core::ptr::copy_nonoverlapping(text.as_ptr(), p, text.len());
            set_value(v, Some(core::slice::from_raw_parts(p, text.len())))
        }
    })
}
