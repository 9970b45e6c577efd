//! The shared memory zone that holds the session table (`logic::table`), and the only door to
//! it: a session id looked up, a session id learned. The zone is declared by the directive,
//! formatted when nginx maps it, kept over reloads that keep its name and size, and locked
//! with the slab pool's mutex around every table operation. With `state=`, the table lives in
//! a file instead (`state_mapping`), which a new master maps again.

use core::ffi::c_void;
use core::mem::align_of;
use core::ptr;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use std::ffi::{CStr, CString};

use ngx::core::{Pool, SlabPool};
use ngx::ffi::{
    ngx_conf_t, ngx_cycle_t, ngx_int_t, ngx_list_part_t, ngx_pagesize, ngx_pnalloc,
    ngx_shared_memory_add, ngx_shm_zone_t, ngx_slab_alloc, ngx_slab_pool_t, ngx_str_t,
    ngx_test_config, NGX_ERROR, NGX_LOG_EMERG, NGX_LOG_NOTICE, NGX_OK,
};

use crate::glue::guard;
use crate::logic::table::{layout, Entry, Evictions, Header, Layout, Learned, Parts, Slot, Table};
use crate::logic::tally::{Record, Tally};
use crate::state_mapping::{self, Mapping, Opened};

/// What a worker knows of a zone: where its table is. Lives in the configuration pool (dropped
/// with it); `shm_zone->data` points to it.
pub struct ZoneCtx {
    /// The table in the zone's own memory, once made (kept over reloads with the zone).
    slab: Option<(*mut u8, Layout)>,
    /// `state=`: the file's full path, from the configuration.
    state: Option<CString>,
    /// The state file as this cycle mapped it; when present, the table is there.
    map: Option<Mapping>,
}

/// Why a zone could not be declared.
pub enum ZoneError {
    /// nginx logged it (size conflicts, foreign zones, no memory).
    Logged,
    /// A message for the directive's error line.
    Conf(String),
}

/// Declares (or joins) the zone `name`; `size` 0 joins a zone sized elsewhere. `state` is the
/// full path of the zone's state file, if any; upstreams that share a zone must agree on it.
///
/// # Safety
/// `cf` must be the configuration being parsed.
pub unsafe fn add_zone(
    cf: *mut ngx_conf_t,
    name: &[u8],
    size: usize,
    state: Option<CString>,
) -> Result<*mut ngx_shm_zone_t, ZoneError> {
    // SAFETY: the name is copied into the configuration pool, which outlives the zone's
    // declaration; the tag is the module's own static, the same in every cycle; `data` of our
    // zones is always a `ZoneCtx` made here.
    unsafe {
        let data = ngx_pnalloc((*cf).pool, name.len()).cast::<u8>();
        if data.is_null() {
            return Err(ZoneError::Logged);
        }
        ptr::copy_nonoverlapping(name.as_ptr(), data, name.len());
        let mut s = ngx_str_t {
            len: name.len(),
            data,
        };
        let zone = ngx_shared_memory_add(cf, &mut s, size, tag());
        if zone.is_null() {
            return Err(ZoneError::Logged);
        }
        if let (Some(path), Some(other)) = (&state, state_user((*cf).cycle, state.as_deref())) {
            if other != zone {
                return Err(ZoneError::Conf(format!(
                    "has state file \"{}\" that zone \"{}\" uses too",
                    path.to_string_lossy(),
                    zone_name(other)
                )));
            }
        }
        if let Some(ctx) = (*zone).data.cast::<ZoneCtx>().as_mut() {
            return match (&ctx.state, state) {
                (Some(a), Some(b)) if *a != b => Err(ZoneError::Conf(format!(
                    "has state file \"{}\" but zone \"{}\" has \"{}\"",
                    b.to_string_lossy(),
                    zone_name(zone),
                    a.to_string_lossy()
                ))),
                (None, b @ Some(_)) => {
                    ctx.state = b;
                    Ok(zone)
                }
                _ => Ok(zone),
            };
        }
        let ctx = Pool::from_ngx_pool((*cf).pool).allocate(ZoneCtx {
            slab: None,
            state,
            map: None,
        });
        if ctx.is_null() {
            return Err(ZoneError::Logged);
        }
        (*zone).data = ctx.cast();
        (*zone).init = Some(init_zone);
        Ok(zone)
    }
}

/// The module's tag on its zones.
fn tag() -> *mut c_void {
    ptr::addr_of_mut!(crate::ngx_http_upstream_socketio_sticky_module).cast()
}

/// The zone of this cycle whose state file is `path`, if any.
///
/// # Safety
/// `cycle` must be the cycle being configured.
unsafe fn state_user(cycle: *mut ngx_cycle_t, path: Option<&CStr>) -> Option<*mut ngx_shm_zone_t> {
    let path = path?;
    // SAFETY: nginx's list of shared memory zones: parts of `nelts` zones each; ours carry a
    // `ZoneCtx` in `data` (or null while being declared).
    unsafe {
        let mut part: *const ngx_list_part_t = ptr::addr_of!((*cycle).shared_memory.part);
        while let Some(p) = part.as_ref() {
            let zones = p.elts.cast::<ngx_shm_zone_t>();
            for i in 0..p.nelts {
                let z = zones.add(i);
                if (*z).tag != tag() {
                    continue;
                }
                if let Some(ctx) = (*z).data.cast::<ZoneCtx>().as_ref() {
                    if ctx.state.as_deref() == Some(path) {
                        return Some(z);
                    }
                }
            }
            part = p.next;
        }
    }
    None
}

/// Zone `init`: reuse the previous cycle's table (reload), map the state file, or format a new
/// table.
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
        let old = old.as_ref();
        let log = (*zone).shm.log;
        let name = zone_name(zone);
        let shpool = (*zone).shm.addr.cast::<ngx_slab_pool_t>();
        // A zone kept over a reload keeps the table made in its memory, if any.
        ctx.slab = old.and_then(|o| o.slab);

        if let Some(path) = ctx.state.as_deref() {
            if ngx_test_config != 0 {
                // `nginx -t`: the directive looked at the file already; nothing is touched.
                return NGX_OK as ngx_int_t;
            }
            let previous = old
                .filter(|o| o.state.as_deref() == Some(path))
                .and_then(|o| o.map.as_ref());
            return match state_mapping::open(
                path,
                (*zone).shm.size,
                previous,
                format_block,
                table_opens,
            ) {
                Ok(Opened::Kept(m)) => {
                    if previous.is_none() {
                        let live = {
                            let _lock = m.lock();
                            with_block(m.block(), m.layout, |t| t.live()).unwrap_or(0)
                        };
                        ngx::ngx_log_error!(
                            NGX_LOG_NOTICE,
                            log,
                            "socketio_sticky: zone \"{}\" keeps {} sessions from \"{}\"",
                            name,
                            live,
                            path.to_string_lossy()
                        );
                    }
                    ctx.map = Some(m);
                    NGX_OK as ngx_int_t
                }
                Ok(Opened::Made(m)) => {
                    ngx::ngx_log_error!(
                        NGX_LOG_NOTICE,
                        log,
                        "socketio_sticky: zone \"{}\" starts a new table of {} sessions in \"{}\"",
                        name,
                        m.layout.capacity,
                        path.to_string_lossy()
                    );
                    ctx.map = Some(m);
                    NGX_OK as ngx_int_t
                }
                Err(e) => {
                    ngx::ngx_log_error!(
                        NGX_LOG_EMERG,
                        log,
                        "socketio_sticky: zone \"{}\": {}",
                        name,
                        e
                    );
                    NGX_ERROR as ngx_int_t
                }
            };
        }

        if ctx.slab.is_some() {
            return NGX_OK as ngx_int_t;
        }
        let Some(l) = layout(table_bytes(shpool)) else {
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                log,
                "socketio_sticky: zone \"{}\" is too small",
                name
            );
            return NGX_ERROR as ngx_int_t;
        };
        let base = ngx_slab_alloc(shpool, l.total).cast::<u8>();
        if base.is_null() || (base as usize) % align_of::<Header>() != 0 {
            return NGX_ERROR as ngx_int_t;
        }
        (*shpool).data = base.cast();
        if !format_block(base, l) {
            return NGX_ERROR as ngx_int_t;
        }
        ctx.slab = Some((base, l));
        ngx::ngx_log_debug!(
            log,
            "socketio_sticky: zone \"{}\" holds {} sessions",
            name,
            l.capacity
        );
    }
    NGX_OK as ngx_int_t
}

/// Formats a table block with a new random key.
fn format_block(base: *mut u8, l: Layout) -> bool {
    // SAFETY: callers pass a block of `l.total` bytes that no other process uses yet.
    unsafe {
        let Some((parts, records)) = parts(base, l) else {
            return false;
        };
        // Slab memory comes uninitialised: the records start as zero bytes (empty).
        ptr::write_bytes(records.as_ptr().cast_mut(), 0, records.len());
        Table::format(parts, records.len(), random_key()).is_some()
    }
}

/// Whether the block at `base` holds a table of layout `l` (the caller holds its lock).
fn table_opens(base: *mut u8, l: Layout) -> bool {
    // SAFETY: `state_mapping` passes a mapped block of `l.total` bytes under the file's lock.
    unsafe { with_block(base, l, |_| ()).is_some() }
}

/// Runs `f` on the table in the block at `base`.
///
/// # Safety
/// As for [`parts`].
unsafe fn with_block<R>(base: *mut u8, l: Layout, f: impl FnOnce(&mut Table) -> R) -> Option<R> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let (parts, records) = parts(base, l)?;
        if records.len() != l.nrecords {
            return None;
        }
        let mut table = Table::open(parts)?;
        (table.header().nrecords as usize == l.nrecords).then(|| f(&mut table))
    }
}

/// Bytes the slab pool can give in one piece: all of its free pages.
///
/// # Safety
/// `shpool` must be an initialised slab pool.
unsafe fn table_bytes(shpool: *mut ngx_slab_pool_t) -> usize {
    // SAFETY: reading the pool's free page count and nginx's page size.
    unsafe { (*shpool).pfree.saturating_mul(ngx_pagesize) }
}

/// The parts of a table block: the table's (header, buckets, entries, slots) and the records
/// of the request counters.
///
/// # Safety
/// `base` must point to `l.total` bytes, 8-byte aligned, used only as this table, and the
/// caller must hold the zone's lock (or be formatting it before any worker exists). The
/// records are only ever used through atomics, so they may be read without the lock.
unsafe fn parts<'a>(base: *mut u8, l: Layout) -> Option<(Parts<'a>, &'a [Record])> {
    if base.is_null() {
        return None;
    }
    // SAFETY: `layout` placed the parts inside the block, disjoint and aligned (header,
    // entries, slots and records at multiples of 8, buckets at 4); all-zero or formatted
    // contents are valid values of these plain integer and atomic types.
    unsafe {
        let hdr = &mut *base.cast::<Header>();
        let buckets =
            core::slice::from_raw_parts_mut(base.add(l.buckets_offset).cast::<u32>(), l.capacity);
        let entries =
            core::slice::from_raw_parts_mut(base.add(l.entries_offset).cast::<Entry>(), l.capacity);
        let slots =
            core::slice::from_raw_parts_mut(base.add(l.slots_offset).cast::<Slot>(), l.nslots);
        let records = records_at(base, l);
        Some((
            Parts {
                hdr,
                buckets,
                entries,
                slots,
            },
            records,
        ))
    }
}

/// The records of the block of a zone (without the lock: they are atomics), if it has a table.
///
/// # Safety
/// `zone` must be a zone declared by [`add_zone`] in the running cycle.
unsafe fn records<'a>(zone: *mut ngx_shm_zone_t) -> Option<&'a [Record]> {
    // SAFETY: our zones' `data` is a `ZoneCtx` filled by `init_zone`; the block lives as long
    // as the zone (and its mapping) of this cycle.
    unsafe {
        let ctx = (*zone).data.cast::<ZoneCtx>().as_ref()?;
        let (base, l) = match &ctx.map {
            Some(m) => (m.block(), m.layout),
            None => ctx.slab?,
        };
        if base.is_null() {
            return None;
        }
        Some(records_at(base, l))
    }
}

/// The records of the block at `base` (used only through atomics, with or without the lock).
///
/// # Safety
/// `base` must point to a block of layout `l`, 8-byte aligned, that outlives the slice.
unsafe fn records_at<'a>(base: *mut u8, l: Layout) -> &'a [Record] {
    // SAFETY: `layout` placed `nrecords` records at `records_offset`, 8-byte aligned, inside
    // the block; all-zero or claimed records are valid atomics.
    unsafe { core::slice::from_raw_parts(base.add(l.records_offset).cast::<Record>(), l.nrecords) }
}

/// The record of `key` (`tally::key`) in the zone, claimed now (under the zone's lock) if
/// it was not; `None` without a table or when the records are all taken. The record lives as
/// long as the zone in this cycle.
///
/// # Safety
/// `zone` must be null or a zone declared by [`add_zone`] in the running cycle.
pub unsafe fn record<'a>(zone: *mut ngx_shm_zone_t, key: u64) -> Option<&'a Record> {
    if zone.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    unsafe {
        let rs = records(zone)?;
        if let Some(r) = Tally::new(rs).find(key) {
            return Some(r);
        }
        with_table(zone, |_| Tally::new(rs).claim(key)).flatten()
    }
}

/// The counters of the record of `key`, if it was claimed (all 0 otherwise).
///
/// # Safety
/// As for [`record`].
pub unsafe fn counts(zone: *mut ngx_shm_zone_t, key: u64) -> [u64; 8] {
    if zone.is_null() {
        return [0; 8];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { records(zone) }
        .and_then(|rs| Tally::new(rs).find(key))
        .map_or([0; 8], Record::values)
}

/// What a status request shows of a zone's table.
#[derive(Default)]
pub struct Figures {
    pub capacity: u64,
    pub sessions: u64,
    pub learned: u64,
    pub evicted: u64,
    pub evicted_in_use: u64,
    pub expired: u64,
    pub duplicate_ids: u64,
    /// Sessions held for each of the identities asked for, in their order.
    pub per_server: Vec<u64>,
}

/// Expired entries a status request drops at most (so that it costs O(servers) whatever
/// the table holds; lookups and learning drop the others).
const SWEEP_MAX: usize = 256;

/// The zone's figures and the sessions it holds for each of `identities`, read under its lock
/// after expired sessions at the old ends were dropped; `None` without a table.
///
/// # Safety
/// As for [`record`].
pub unsafe fn figures(
    zone: *mut ngx_shm_zone_t,
    identities: &[u64],
    now: u32,
    timeout: u32,
) -> Option<Figures> {
    if zone.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    unsafe {
        with_table(zone, |t| {
            t.reclaim_expired(now, timeout, SWEEP_MAX);
            let h = t.header();
            Figures {
                capacity: u64::from(h.capacity),
                sessions: t.live() as u64,
                learned: h.learned,
                evicted: h.evictions,
                evicted_in_use: h.evicted_used,
                expired: h.expired,
                duplicate_ids: h.collisions,
                per_server: identities.iter().map(|&i| t.sessions_of(i)).collect(),
            }
        })
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

/// The server learned for `sid`, refreshing its idle timer; `None` when it is unknown,
/// expired, or the zone has no table.
///
/// # Safety
/// `zone` must be a zone declared by [`add_zone`] in the running cycle.
#[inline]
pub unsafe fn lookup(zone: *mut ngx_shm_zone_t, sid: &[u8], now: u32, timeout: u32) -> Option<u64> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        with_table(zone, |t| {
            let d = t.digest(sid);
            t.lookup(d, now, timeout)
        })
    }
    .flatten()
}

/// Stores `sid -> peer` as a new session, and says what the table evicted since its last
/// report, if it is time to report it; `None` when the zone has no table.
///
/// # Safety
/// As for [`lookup`].
pub unsafe fn learn(
    zone: *mut ngx_shm_zone_t,
    sid: &[u8],
    peer: u64,
    now: u32,
    timeout: u32,
) -> Option<(Learned, Option<Evictions>, usize)> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        with_table(zone, |t| {
            let d = t.digest(sid);
            let learned = t.learn(d, peer, now, timeout);
            (
                learned,
                t.eviction_report(now),
                t.header().capacity as usize,
            )
        })
    }
}

/// The sessions the zone's table has evicted so far (it was full); `None` without a table.
///
/// # Safety
/// As for [`lookup`].
pub unsafe fn evicted(zone: *mut ngx_shm_zone_t) -> Option<u64> {
    // SAFETY: guaranteed by the caller.
    unsafe { with_table(zone, |t| t.header().evictions) }
}

/// Runs `f` on the zone's table under its lock (the state file's, or the zone's mutex);
/// `None` when the zone has no table.
///
/// # Safety
/// `zone` must be a zone declared by [`add_zone`] in the running cycle.
#[inline(always)]
unsafe fn with_table<R>(zone: *mut ngx_shm_zone_t, f: impl FnOnce(&mut Table) -> R) -> Option<R> {
    // SAFETY: our zones' `data` is a `ZoneCtx` filled by `init_zone`; the lock serialises
    // every access to the table between processes.
    unsafe {
        let ctx = (*zone).data.cast::<ZoneCtx>().as_ref()?;
        if let Some(m) = &ctx.map {
            let _lock = m.lock();
            return with_block(m.block(), m.layout, f);
        }
        let (base, l) = ctx.slab?;
        let _lock = SlabPool::from_shm_zone(&*zone)?.lock();
        with_block(base, l, f)
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

/// The zone's name when no `zone=NAME:SIZE` anywhere gave it a size (nginx would only say
/// "zero size shared memory zone" later, without the directive's place).
///
/// # Safety
/// `zone` must be null or valid.
pub unsafe fn without_size(zone: *mut ngx_shm_zone_t) -> Option<String> {
    // SAFETY: a valid zone, or null.
    let z = unsafe { zone.as_ref() }?;
    // SAFETY: as above.
    (z.shm.size == 0).then(|| unsafe { zone_name(zone) })
}
