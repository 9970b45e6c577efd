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
use crate::logic::prefix::{self, TAGGED, TAG_LEN};

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

/// Whether a tag's id names a server of some `sid_prefix` upstream.
fn known(id: u64) -> bool {
    // SAFETY: written only at configuration time, read by the worker.
    let tags = unsafe { &*ptr::addr_of!(TAGS) };
    tags.binary_search(&id).is_ok()
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
/// One allocation holds the new unparsed URI (`/path?args`, when nginx has it: `proxy_pass`
/// without a URI part sends it as it is), whose tail is the new `$args`, and the variable's
/// value (see [`OWNER`]).
///
/// # Safety
/// `r` must be a valid request in its PREACCESS phase.
unsafe fn strip(r: *mut ngx_http_request_t) {
    // SAFETY: `r` is valid; new strings are allocated in its pool, which outlives it.
    unsafe {
        let args = bytes(&(*r).args);
        let Some(found) = prefix::find_tagged(args, b"sid") else {
            return;
        };
        if !known(found.id) {
            return;
        }
        let (Some(before), Some(after)) = (args.get(..found.at), args.get(found.at + TAGGED..))
        else {
            return;
        };
        let path = if (*r).valid_unparsed_uri() != 0 {
            Some(path_of(bytes(&(*r).unparsed_uri), args))
        } else {
            None
        };
        let args_len = before.len() + after.len();
        // `path?` before the arguments, when the unparsed URI is rewritten.
        let lead = path.map_or(0, |p| p.len() + 1);
        let len = VALUE + lead + args_len;
        let base = ngx_pnalloc((*r).pool, len).cast::<u8>();
        if base.is_null() {
            return;
        }
        let (value, uri) = core::slice::from_raw_parts_mut(base, len).split_at_mut(VALUE);
        let (uri_data, uri_len) = (uri.as_mut_ptr(), uri.len());
        let (head, new_args) = uri.split_at_mut(lead);
        if let Some(path) = path {
            let (p, q) = head.split_at_mut(path.len());
            p.copy_from_slice(path);
            q.fill(b'?');
        }
        let (a, b) = new_args.split_at_mut(before.len());
        a.copy_from_slice(before);
        b.copy_from_slice(after);
        if path.is_some() {
            // Without arguments left, no `?` either.
            let n = if args_len == 0 { lead - 1 } else { uri_len };
            (*r).unparsed_uri = ngx_str_t {
                len: n,
                data: uri_data,
            };
        }
        (*r).args = ngx_str_t {
            len: args_len,
            data: new_args.as_mut_ptr(),
        };
        keep(r, value, &found.tag, found.id);
    }
}

/// The path of the unparsed URI (before the arguments `args`, as the client sent them).
fn path_of<'a>(unparsed: &'a [u8], args: &[u8]) -> &'a [u8] {
    match unparsed.len().checked_sub(args.len() + 1) {
        Some(p) if unparsed.ends_with(args) && unparsed.get(p) == Some(&b'?') => {
            unparsed.get(..p).unwrap_or(unparsed)
        }
        _ => match crate::logic::bytes::find_byte(unparsed, b'?') {
            Some(q) => unparsed.get(..q).unwrap_or(unparsed),
            None => unparsed,
        },
    }
}

/// The variable's value: the request it belongs to, the tag (the value nginx shows), the
/// tag's id (what the balancer reads). A subrequest shares its parent's variable slots, so
/// the owner names the request, and another request that sees it takes it for none.
const OWNER: usize = core::mem::size_of::<usize>();
const VALUE: usize = OWNER + TAG_LEN + core::mem::size_of::<u64>();

/// Stores the tag in the request's slot of `$socketio_sticky_prefix`, in `value` (request
/// memory).
///
/// # Safety
/// As for [`strip`]; `value` lives as long as the request.
unsafe fn keep(r: *mut ngx_http_request_t, value: &mut [u8], tag: &[u8; TAG_LEN], id: u64) {
    let (Ok(i), Some(flags)) = (
        // SAFETY: written only at configuration time.
        usize::try_from(unsafe { ptr::addr_of!(INDEX).read() }),
        // SAFETY: as above.
        unsafe { ptr::addr_of!(TAG_FLAGS).read() },
    ) else {
        return;
    };
    let (owner, rest) = value.split_at_mut(OWNER);
    let (t, id_bytes) = rest.split_at_mut(TAG_LEN);
    owner.copy_from_slice(&(r as usize).to_ne_bytes());
    t.copy_from_slice(tag);
    id_bytes.copy_from_slice(&id.to_ne_bytes());
    // SAFETY: `variables` has a slot per indexed variable.
    unsafe {
        if (*r).variables.is_null() {
            return;
        }
        let v = &mut *(*r).variables.add(i);
        v._bitfield_1 = flags;
        v.data = t.as_mut_ptr();
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
        // any), always the tag between its owner and its id; the slots start zeroed. (The
        // data pointer alone is read: bindgen's bitfield getters walk the bits one by one.)
        if v.data.is_null() || v.data.sub(OWNER).cast::<usize>().read_unaligned() != r as usize {
            return None;
        }
        Some(v.data.add(TAG_LEN).cast::<u64>().read_unaligned())
    }
}
