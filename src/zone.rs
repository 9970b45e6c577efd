//! The shared memory zone that holds the session table (`logic::table`): created by the
//! directive, formatted when nginx maps it, kept over reloads that keep its name and size,
//! and locked with the slab pool's mutex around every table operation.

use core::ffi::c_void;
use core::mem::{align_of, size_of};
use core::ptr;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use ngx::ffi::{
    ngx_conf_t, ngx_int_t, ngx_pagesize, ngx_pcalloc, ngx_pnalloc, ngx_shared_memory_add,
    ngx_shm_zone_t, ngx_shmtx_lock, ngx_shmtx_unlock, ngx_slab_alloc, ngx_slab_pool_t, ngx_str_t,
    NGX_ERROR, NGX_LOG_EMERG, NGX_OK,
};

use crate::glue::guard;
use crate::logic::table::{layout, Entry, Header, Layout, Table};

/// What a worker knows of a zone: where the table is in the mapping. Lives in the
/// configuration pool; `shm_zone->data` points to it.
pub struct ZoneCtx {
    shpool: *mut ngx_slab_pool_t,
    base: *mut u8,
    layout: Option<Layout>,
}

/// Declares (or joins) the zone `name`; `size` 0 joins a zone sized elsewhere. Returns null
/// after logging when nginx refuses (nginx logs size conflicts and foreign zones itself).
///
/// # Safety
/// `cf` must be the configuration being parsed.
pub unsafe fn add_zone(cf: *mut ngx_conf_t, name: &[u8], size: usize) -> *mut ngx_shm_zone_t {
    // SAFETY: the name is copied into the configuration pool, which outlives the zone's
    // declaration; the tag is the module's own static, the same in every cycle.
    unsafe {
        let data = ngx_pnalloc((*cf).pool, name.len()).cast::<u8>();
        if data.is_null() {
            return ptr::null_mut();
        }
        ptr::copy_nonoverlapping(name.as_ptr(), data, name.len());
        let mut s = ngx_str_t {
            len: name.len(),
            data,
        };
        let tag = ptr::addr_of_mut!(crate::ngx_http_upstream_socketio_sticky_module).cast();
        let zone = ngx_shared_memory_add(cf, &mut s, size, tag);
        if zone.is_null() {
            return zone;
        }
        if (*zone).data.is_null() {
            let ctx = ngx_pcalloc((*cf).pool, size_of::<ZoneCtx>()).cast::<ZoneCtx>();
            if ctx.is_null() {
                return ptr::null_mut();
            }
            ctx.write(ZoneCtx {
                shpool: ptr::null_mut(),
                base: ptr::null_mut(),
                layout: None,
            });
            (*zone).data = ctx.cast();
            (*zone).init = Some(init_zone);
        }
        zone
    }
}

/// Zone `init`: reuse the previous cycle's table (reload) or format a new one.
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx passes the zone being initialised, with its mapping.
    let log = unsafe { (*zone).shm.log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        // SAFETY: as above; `data` is null or the previous cycle's `ZoneCtx` of this zone.
        unsafe { init_zone_inner(zone, data.cast::<ZoneCtx>()) }
    })
}

unsafe fn init_zone_inner(zone: *mut ngx_shm_zone_t, old: *mut ZoneCtx) -> ngx_int_t {
    // SAFETY: `data` was set to our `ZoneCtx` by `add_zone`; `old` (if any) belongs to the
    // previous cycle, which is alive until this cycle is up; the mapping starts with nginx's
    // slab pool.
    unsafe {
        let ctx = &mut *(*zone).data.cast::<ZoneCtx>();
        if let Some(old) = old.as_ref() {
            ctx.shpool = old.shpool;
            ctx.base = old.base;
            ctx.layout = old.layout;
            return NGX_OK as ngx_int_t;
        }
        let shpool = (*zone).shm.addr.cast::<ngx_slab_pool_t>();
        ctx.shpool = shpool;
        if (*zone).shm.exists != 0 {
            // A mapping inherited as is (Windows): the table is where the pool says.
            ctx.base = (*shpool).data.cast();
            ctx.layout = layout(table_bytes(shpool));
            return NGX_OK as ngx_int_t;
        }

        let bytes = table_bytes(shpool);
        let Some(l) = layout(bytes) else {
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                (*zone).shm.log,
                "socketio_sticky: zone \"{}\" is too small",
                String::from_utf8_lossy(crate::glue::bytes(&(*zone).shm.name))
            );
            return NGX_ERROR as ngx_int_t;
        };
        let base = ngx_slab_alloc(shpool, l.total).cast::<u8>();
        if base.is_null() || (base as usize) % align_of::<Header>() != 0 {
            return NGX_ERROR as ngx_int_t;
        }
        ctx.base = base;
        ctx.layout = Some(l);
        (*shpool).data = base.cast();

        let Some((hdr, buckets, entries)) = parts(base, l) else {
            return NGX_ERROR as ngx_int_t;
        };
        if Table::format(hdr, buckets, entries, random_key()).is_none() {
            return NGX_ERROR as ngx_int_t;
        }
        ngx::ngx_log_debug!(
            (*zone).shm.log,
            "socketio_sticky: zone \"{}\" holds {} sessions",
            String::from_utf8_lossy(crate::glue::bytes(&(*zone).shm.name)),
            l.capacity
        );
    }
    NGX_OK as ngx_int_t
}

/// Bytes the slab pool can give in one piece: all of its free pages.
///
/// # Safety
/// `shpool` must be an initialised slab pool.
unsafe fn table_bytes(shpool: *mut ngx_slab_pool_t) -> usize {
    // SAFETY: reading the pool's free page count and nginx's page size.
    unsafe { (*shpool).pfree.saturating_mul(ngx_pagesize) }
}

/// The header, bucket and entry slices of a table block.
///
/// # Safety
/// `base` must point to `l.total` bytes, 8-byte aligned, used only as this table, and the
/// caller must hold the zone's lock (or be formatting it before any worker exists).
unsafe fn parts<'a>(
    base: *mut u8,
    l: Layout,
) -> Option<(&'a mut Header, &'a mut [u32], &'a mut [Entry])> {
    if base.is_null() {
        return None;
    }
    // SAFETY: `layout` placed the three parts inside the block, disjoint and aligned
    // (header and entries at multiples of 8, buckets at 4); all-zero or formatted contents
    // are valid values of these plain integer types.
    unsafe {
        let hdr = &mut *base.cast::<Header>();
        let buckets =
            core::slice::from_raw_parts_mut(base.add(l.buckets_offset).cast::<u32>(), l.capacity);
        let entries =
            core::slice::from_raw_parts_mut(base.add(l.entries_offset).cast::<Entry>(), l.capacity);
        Some((hdr, buckets, entries))
    }
}

/// A random digest key for a new zone (the standard library's OS-seeded hasher keys).
fn random_key() -> [u64; 2] {
    let mut k = [0u64; 2];
    for (i, slot) in k.iter_mut().enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_usize(i);
        *slot = h.finish();
    }
    k
}

/// Runs `f` on the zone's table under the zone's lock; `None` when the zone has no table.
///
/// # Safety
/// `zone` must be a zone declared by [`add_zone`] in the running cycle.
#[inline(always)]
pub unsafe fn with_table<R>(
    zone: *mut ngx_shm_zone_t,
    f: impl FnOnce(&mut Table) -> R,
) -> Option<R> {
    // SAFETY: our zones' `data` is a `ZoneCtx` filled by `init_zone`; the lock serialises
    // every access to the block between workers.
    unsafe {
        let ctx = (*zone).data.cast::<ZoneCtx>().as_ref()?;
        let l = ctx.layout?;
        if ctx.shpool.is_null() {
            return None;
        }
        let _lock = ZoneLock::new(ctx.shpool);
        let (hdr, buckets, entries) = parts(ctx.base, l)?;
        let mut table = Table::open(hdr, buckets, entries)?;
        Some(f(&mut table))
    }
}

/// The zone's name, for log lines.
///
/// # Safety
/// `zone` must be valid.
pub unsafe fn zone_name(zone: *mut ngx_shm_zone_t) -> String {
    // SAFETY: the name lives in the configuration pool.
    unsafe { String::from_utf8_lossy(crate::glue::bytes(&(*zone).shm.name)).into_owned() }
}

/// The slab pool's mutex, released on drop (also when a panic unwinds through it).
struct ZoneLock(*mut ngx_slab_pool_t);

impl ZoneLock {
    /// # Safety
    /// `shpool` must be the zone's initialised slab pool.
    unsafe fn new(shpool: *mut ngx_slab_pool_t) -> ZoneLock {
        // SAFETY: the pool's mutex was created by nginx with the zone.
        unsafe { ngx_shmtx_lock(ptr::addr_of_mut!((*shpool).mutex)) };
        ZoneLock(shpool)
    }
}

impl Drop for ZoneLock {
    fn drop(&mut self) {
        // SAFETY: taken in `new` on the same pool.
        unsafe { ngx_shmtx_unlock(ptr::addr_of_mut!((*self.0).mutex)) };
    }
}
