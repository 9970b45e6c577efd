//! `sid_prefix` on the way in: a PREACCESS phase handler takes the server tag off the
//! request's `sid` argument (`$args` and the unparsed URI, which `proxy_pass` sends as it is
//! when it has no URI part), so that the backend only ever sees the session id it minted;
//! the tag is kept in `$socketio_sticky_prefix`, where the balancer finds it. Only tags of
//! the servers of `sid_prefix` upstreams are taken off, in any location. It runs before
//! the request goes upstream, so a retry (`proxy_next_upstream`) sends the stripped request
//! too. The pure part is `logic::prefix`.

use core::ptr;

use ngx::ffi::{
    __BindgenBitfieldUnit, ngx_conf_t, ngx_http_core_main_conf_t, ngx_http_get_variable_index,
    ngx_http_handler_pt, ngx_http_phases_NGX_HTTP_PREACCESS_PHASE as PREACCESS, ngx_http_request_t,
    ngx_http_variable_value_t, ngx_int_t, ngx_pnalloc, ngx_str_t, NGX_DECLINED, NGX_ERROR, NGX_OK,
};
use ngx::http::{HttpModuleMainConf, NgxHttpCoreModule};

use crate::glue::{bytes, guard};
use crate::logic::prefix::{self, TAG_LEN};

/// The variable that holds a request's tag.
pub const VARIABLE: &[u8] = b"socketio_sticky_prefix";

/// Whether an upstream has `sid_prefix` (the phase handler is installed only then).
static mut ENABLED: bool = false;
/// The tag ids of every `sid_prefix` upstream's servers, sorted: only these are taken off
/// (another application's `sid` that merely looks like `TAG.SID` is left alone).
static mut TAGS: Vec<u64> = Vec::new();
/// The index of `$socketio_sticky_prefix` (set at configuration time).
static mut INDEX: ngx_int_t = NGX_ERROR as ngx_int_t;
/// The variable's flags for a tag (length 8, valid), made once at configuration time:
/// bindgen's bitfield constructor sets the bits one by one, some 700 instructions.
static mut TAG_FLAGS: Option<__BindgenBitfieldUnit<[u8; 4]>> = None;

/// A new configuration starts: no upstream has `sid_prefix` yet.
pub fn reset() {
    // SAFETY: configuration is parsed in one thread; workers have their own copies.
    unsafe {
        ptr::addr_of_mut!(ENABLED).write(false);
        (*ptr::addr_of_mut!(TAGS)).clear();
    }
}

/// An upstream has `sid_prefix`: the requests need the handler.
pub fn enable() {
    // SAFETY: configuration is parsed in one thread, before any worker exists.
    unsafe { ptr::addr_of_mut!(ENABLED).write(true) };
}

/// The tag ids of a `sid_prefix` upstream's servers.
pub fn add_tags(tags: &[u64]) {
    // SAFETY: as for `enable`.
    unsafe { (*ptr::addr_of_mut!(TAGS)).extend_from_slice(tags) };
}

/// Whether a tag names a server of some `sid_prefix` upstream.
fn known(tag: &[u8; TAG_LEN]) -> bool {
    // SAFETY: written only at configuration time, read by the worker.
    let tags = unsafe { &*ptr::addr_of!(TAGS) };
    prefix::tag_id(tag).is_some_and(|id| tags.binary_search(&id).is_ok())
}

/// `postconfiguration`: the variable's index, and the phase handler, when any upstream has
/// `sid_prefix`.
///
/// # Safety
/// `cf` must be the configuration being finished.
pub unsafe fn init(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: configuration time, single-threaded; `cf` is valid.
    unsafe {
        if !ptr::addr_of!(ENABLED).read() {
            return NGX_OK as ngx_int_t;
        }
        let tags = &mut *ptr::addr_of_mut!(TAGS);
        tags.sort_unstable();
        tags.dedup();
        let mut name = ngx_str_t {
            len: VARIABLE.len(),
            data: VARIABLE.as_ptr().cast_mut(),
        };
        let index = ngx_http_get_variable_index(cf, &mut name);
        if index == NGX_ERROR as ngx_int_t {
            return index;
        }
        ptr::addr_of_mut!(INDEX).write(index);
        ptr::addr_of_mut!(TAG_FLAGS).write(Some(ngx_http_variable_value_t::new_bitfield_1(
            TAG_LEN as u32,
            1,
            0,
            0,
            0,
        )));
        let Some(cmcf) =
            NgxHttpCoreModule::main_conf_mut(&*cf).map(|c: &mut ngx_http_core_main_conf_t| c)
        else {
            return NGX_ERROR as ngx_int_t;
        };
        let phase = &mut cmcf.phases[PREACCESS as usize].handlers;
        let h = ngx::ffi::ngx_array_push(phase).cast::<ngx_http_handler_pt>();
        if h.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        h.write(Some(handler));
    }
    NGX_OK as ngx_int_t
}

/// The phase handler: never decides the request (always `NGX_DECLINED`).
unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a valid request.
    let log = unsafe { (*(*r).connection).log };
    guard(log, NGX_DECLINED as ngx_int_t, || {
        // SAFETY: as above.
        unsafe { strip(r) };
        NGX_DECLINED as ngx_int_t
    })
}

/// Takes the tag off the `sid` argument, if it has one, and keeps it in the variable.
///
/// # Safety
/// `r` must be a valid request in its PREACCESS phase.
unsafe fn strip(r: *mut ngx_http_request_t) {
    // SAFETY: `r` is valid; new strings are allocated in its pool, which outlives it.
    unsafe {
        let args = bytes(&(*r).args);
        if args.is_empty() {
            return;
        }
        let out = ngx_pnalloc((*r).pool, args.len()).cast::<u8>();
        if out.is_null() {
            return;
        }
        let buf = core::slice::from_raw_parts_mut(out, args.len());
        let Some((tag, n)) = prefix::strip_query_into(args, b"sid", buf) else {
            return;
        };
        if !known(&tag) {
            return;
        }
        let new_args = ngx_str_t { len: n, data: out };
        if (*r).valid_unparsed_uri() != 0 && !rewrite_unparsed(r, new_args) {
            return;
        }
        (*r).args = new_args;
        keep(r, &tag);
    }
}

/// The unparsed URI with the new arguments (`/path?args`, without `?` when none are left).
///
/// # Safety
/// As for [`strip`].
unsafe fn rewrite_unparsed(r: *mut ngx_http_request_t, args: ngx_str_t) -> bool {
    // SAFETY: as above.
    unsafe {
        let old = bytes(&(*r).unparsed_uri);
        let args_old = bytes(&(*r).args);
        // The arguments end the unparsed URI (as the client sent them): the path is before.
        let path = match old.len().checked_sub(args_old.len() + 1) {
            Some(p) if old.ends_with(args_old) && old.get(p) == Some(&b'?') => {
                old.get(..p).unwrap_or(old)
            }
            _ => match crate::logic::bytes::find_byte(old, b'?') {
                Some(q) => old.get(..q).unwrap_or(old),
                None => old,
            },
        };
        let len = path.len() + if args.len > 0 { 1 + args.len } else { 0 };
        let out = ngx_pnalloc((*r).pool, len).cast::<u8>();
        if out.is_null() {
            return false;
        }
        let dst = core::slice::from_raw_parts_mut(out, len);
        let (head, tail) = dst.split_at_mut(path.len());
        head.copy_from_slice(path);
        if let Some((q, rest)) = tail.split_first_mut() {
            *q = b'?';
            rest.copy_from_slice(bytes(&args));
        }
        (*r).unparsed_uri = ngx_str_t { len, data: out };
    }
    true
}

/// Bytes before the tag in the variable's value: the request it belongs to. A subrequest
/// shares its parent's variable slots, so the tag names its request, and another request
/// that sees it takes it for none.
const OWNER: usize = core::mem::size_of::<usize>();

/// Stores the tag in the request's slot of `$socketio_sticky_prefix`.
///
/// # Safety
/// As for [`strip`].
unsafe fn keep(r: *mut ngx_http_request_t, tag: &[u8; TAG_LEN]) {
    // SAFETY: `variables` has a slot per indexed variable; the copy lives in the pool, the
    // owner's address just before the tag (unaligned).
    unsafe {
        let index = ptr::addr_of!(INDEX).read();
        let Ok(i) = usize::try_from(index) else {
            return;
        };
        let base = ngx_pnalloc((*r).pool, OWNER + TAG_LEN).cast::<u8>();
        if base.is_null() || (*r).variables.is_null() {
            return;
        }
        base.cast::<usize>().write_unaligned(r as usize);
        let data = base.add(OWNER);
        ptr::copy_nonoverlapping(tag.as_ptr(), data, TAG_LEN);
        let Some(flags) = ptr::addr_of!(TAG_FLAGS).read() else {
            return;
        };
        let v = &mut *(*r).variables.add(i);
        v._bitfield_1 = flags;
        v.data = data;
    }
}

/// The tag's id of the request, if the handler took one off its session id.
///
/// # Safety
/// `r` must be a valid request.
#[inline]
pub unsafe fn tag_of(r: *mut ngx_http_request_t) -> Option<u64> {
    // SAFETY: as for `keep`.
    unsafe {
        let i = usize::try_from(ptr::addr_of!(INDEX).read()).ok()?;
        if (*r).variables.is_null() {
            return None;
        }
        let v = &*(*r).variables.add(i);
        // Only `keep` sets this variable's data (its handler answers "not found" without
        // any), always a tag with its owner before it; the slots start zeroed. (The data
        // pointer alone is read: bindgen's bitfield getters walk the bits one by one.)
        if v.data.is_null() || v.data.sub(OWNER).cast::<usize>().read_unaligned() != r as usize {
            return None;
        }
        let tag = core::slice::from_raw_parts(v.data, TAG_LEN);
        prefix::tag_id(tag)
    }
}
