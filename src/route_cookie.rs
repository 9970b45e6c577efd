//! The route cookie (`cookie=`) on the way out: `Set-Cookie: NAME=<peer id>` on the response
//! of a request that came without a valid route cookie, or with one that names another peer
//! than the one that answered. Only responses of a primary peer get one (a cookie never names
//! a backup), and never an error nginx makes itself.

use core::ptr;

use ngx::ffi::{
    ngx_http_request_t, ngx_list_push, ngx_log_t, ngx_pnalloc, ngx_str_t, ngx_table_elt_t,
};

use crate::peer_data::PeerData;

static SET_COOKIE: &[u8] = b"Set-Cookie";

/// At the response header: adds the route cookie if the response needs one (asked once).
///
/// # Safety
/// `r` must be a valid request whose context is `pd`.
pub unsafe fn issue(r: *mut ngx_http_request_t, pd: &mut PeerData, log: *mut ngx_log_t) {
    if !core::mem::take(&mut pd.cookie_out) {
        return;
    }
    let conf = pd.conf();
    // SAFETY: `r` is valid; the header is built in the request pool and pushed onto the
    // response's header list.
    unsafe {
        // Only a response the peer itself sent (nginx closes the connection before it answers
        // an error of its own, e.g. a 502 after the last failed try).
        let u = (*r).upstream;
        let peer = pd.rrp.current;
        if u.is_null() || (*u).peer.connection.is_null() || peer.is_null() {
            return;
        }
        if !ptr::eq(pd.rrp.peers, pd.primary) {
            return;
        }
        let Some((id, value)) = conf.route_cookie(pd.primary, peer) else {
            return;
        };
        if pd.claims.cookie == Some(id) {
            return;
        }
        // A copy in the request's pool: the header outlives the index (a log line may read it).
        let p = ngx_pnalloc((*r).pool, value.len()).cast::<u8>();
        if p.is_null() {
            return;
        }
        ptr::copy_nonoverlapping(value.as_ptr(), p, value.len());
        let n = value.len();
        let h =
            ngx_list_push(ptr::addr_of_mut!((*r).headers_out.headers)).cast::<ngx_table_elt_t>();
        if h.is_null() {
            return;
        }
        // Zeroed first: nginx 1.23+ has a `next` link that must be null.
        ptr::write_bytes(h, 0, 1);
        (*h).hash = 1;
        (*h).key = ngx_str_t {
            len: SET_COOKIE.len(),
            data: SET_COOKIE.as_ptr().cast_mut(),
        };
        (*h).value = ngx_str_t { len: n, data: p };
    }
    ngx::ngx_log_debug!(log, "socketio_sticky: route cookie issued");
}
