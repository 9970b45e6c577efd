//! nginx's peer list as the balancer reads it: the worker's index of the list (ring members,
//! learned identities, route targets and route cookie ids to peers), the list's lock, the
//! state of a peer for this request, and handing a chosen peer to the connection as round
//! robin does.

use core::ptr;

use ngx::ffi::{
    ngx_http_upstream_rr_peer_data_t, ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t,
    ngx_peer_connection_t, ngx_rwlock_rlock, ngx_rwlock_unlock, ngx_rwlock_wlock,
};

use crate::glue::bytes;
use crate::logic::choose::{PeerState, Peers};
use crate::logic::cookie::{self, CookieKey};
use crate::logic::hash::peer_identity;
use crate::logic::least_conn::Candidate;
use crate::logic::route::Routes;
use crate::logic::servers::Placement;
use crate::logic::tally::Record;

/// `down` of a peer marked `drain` (nginx 1.29.6 and later: `NGX_HTTP_UPSTREAM_DRAINING`);
/// `down` is 1 for `down` or a peer found failed by a health check.
const DRAINING: usize = 8;

/// A peer of the list and its position in it (round robin's `tried` bitmap is by position).
#[derive(Clone, Copy)]
pub struct PeerAt {
    pub peer: *mut ngx_http_upstream_rr_peer_t,
    pub index: usize,
}

/// What the responses need of a peer, computed once per peer list.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Facts {
    /// Its identity in learned sessions.
    pub identity: u64,
    /// Its route cookie id (`cookie=`).
    pub cookie: Option<u64>,
    /// The id of its session id tag (`sid_prefix`).
    pub tag: Option<u64>,
}

/// One peer of the indexed list.
struct Entry {
    at: PeerAt,
    facts: Facts,
    /// With `cookie=`: the whole `Set-Cookie` value that names it.
    set_cookie: Box<[u8]>,
    /// Its request counters in the zone (null without a zone, or when they are all taken).
    record: *const Record,
}

/// The worker's index of one peer list (shared by the upstream's requests), rebuilt when the
/// list is another one or has changed (re-resolved servers).
#[derive(Default)]
pub struct PeerIndex {
    peers: usize,
    number: usize,
    config: usize,
    /// The list's peers in list order.
    entries: Vec<Entry>,
    /// Per ring member: its entry, if it has a peer now.
    members: Vec<Option<u32>>,
    /// Sorted lookups: key, entry.
    by_identity: Vec<(u64, u32)>,
    by_cookie: Vec<(u64, u32)>,
    by_tag: Vec<(u64, u32)>,
    /// With `route=`: route target, entry; stable, so a target's peers keep the list order.
    by_target: Vec<(u32, u32)>,
    /// By the peer's address in memory (for the responses).
    by_pointer: Vec<(usize, u32)>,
}

/// What an index is built from: the upstream's configuration.
pub struct IndexSpec<'a> {
    pub placement: &'a Placement,
    pub routes: Option<&'a Routes>,
    pub cookie: Option<CookieSpec<'a>>,
    /// With `sid_prefix`: the key of the servers' tags.
    pub tags: Option<&'a CookieKey>,
    /// The request counters of a server identity, if it can have some.
    pub record: &'a dyn Fn(u64) -> Option<&'static Record>,
}

/// The route cookie as the index prepares it for each peer.
pub struct CookieSpec<'a> {
    pub key: &'a CookieKey,
    pub name: &'a [u8],
    /// What follows `NAME=ID` (`; Path=/` and the other attributes).
    pub attributes: &'a [u8],
}

impl PeerIndex {
    /// The index of `peers`, rebuilt first if it indexes another or an older list.
    ///
    /// # Safety
    /// `peers` must be valid and locked (or not shared).
    #[inline]
    pub unsafe fn of<'s>(
        &mut self,
        peers: *mut ngx_http_upstream_rr_peers_t,
        spec: impl FnOnce() -> Option<IndexSpec<'s>>,
    ) -> Option<&PeerIndex> {
        // SAFETY: guaranteed by the caller.
        let (number, config) = unsafe { ((*peers).number, peers_config(peers)) };
        if self.peers != peers as usize || self.number != number || self.config != config {
            // SAFETY: as above.
            unsafe { self.rebuild(peers, &spec()?) };
            self.peers = peers as usize;
            self.number = number;
            self.config = config;
        }
        Some(self)
    }

    /// # Safety
    /// As for [`PeerIndex::of`].
    #[cold]
    #[inline(never)]
    unsafe fn rebuild(&mut self, peers: *mut ngx_http_upstream_rr_peers_t, spec: &IndexSpec) {
        self.entries.clear();
        self.members.clear();
        self.members.resize(spec.placement.ring.members(), None);
        // SAFETY: the list is valid and locked while it is walked.
        let mut peer = unsafe { (*peers).peer };
        let mut index = 0usize;
        while !peer.is_null() {
            // SAFETY: `peer` is an element of the locked list; its strings live as long as it.
            let (server, name, next) =
                unsafe { (bytes(&(*peer).server), bytes(&(*peer).name), (*peer).next) };
            let entry = self.entries.len() as u32;
            if let Some(free) = spec
                .placement
                .members_of(server, name)
                .iter()
                .find(|&&m| self.members.get(m) == Some(&None))
            {
                if let Some(slot) = self.members.get_mut(*free) {
                    *slot = Some(entry);
                }
            }
            let cookie = spec.cookie.as_ref().map(|c| c.key.peer_id(server, name));
            let set_cookie = match (&spec.cookie, cookie) {
                (Some(c), Some(id)) => {
                    let mut v = vec![0u8; c.name.len() + 1 + cookie::ID_LEN + c.attributes.len()];
                    let n = cookie::write_set_cookie(&mut v, c.name, id, c.attributes).unwrap_or(0);
                    v.truncate(n);
                    v.into_boxed_slice()
                }
                _ => Box::default(),
            };
            let identity = peer_identity(server, name);
            let tag = spec
                .tags
                .map(|k| k.peer_id(server, name) & crate::logic::prefix::TAG_MASK);
            self.entries.push(Entry {
                at: PeerAt { peer, index },
                facts: Facts {
                    identity,
                    cookie,
                    tag,
                },
                set_cookie,
                record: (spec.record)(identity).map_or(ptr::null(), ptr::from_ref),
            });
            peer = next;
            index += 1;
        }
        let entries = || self.entries.iter().zip(0u32..);
        self.by_identity = entries().map(|(e, i)| (e.facts.identity, i)).collect();
        self.by_identity.sort_unstable();
        self.by_cookie = entries()
            .filter_map(|(e, i)| Some((e.facts.cookie?, i)))
            .collect();
        self.by_cookie.sort_unstable();
        self.by_tag = entries()
            .filter_map(|(e, i)| Some((e.facts.tag?, i)))
            .collect();
        self.by_tag.sort_unstable();
        self.by_pointer = entries().map(|(e, i)| (e.at.peer as usize, i)).collect();
        self.by_pointer.sort_unstable();
        self.by_target = match spec.routes {
            Some(routes) => entries()
                .filter_map(|(e, i)| {
                    // SAFETY: as above.
                    let server = unsafe { bytes(&(*e.at.peer).server) };
                    Some((routes.server_target(server)?, i))
                })
                .collect(),
            None => Vec::new(),
        };
        self.by_target.sort_by_key(|e| e.0);
    }

    #[inline]
    fn entry(&self, i: u32) -> Option<&Entry> {
        self.entries.get(i as usize)
    }

    #[inline]
    fn find<K: Ord + Copy>(&self, list: &[(K, u32)], key: K) -> Option<&Entry> {
        // A few peers are found faster one by one.
        let i = if list.len() <= 8 {
            list.iter().position(|e| e.0 == key)?
        } else {
            list.binary_search_by_key(&key, |e| e.0).ok()?
        };
        self.entry(list.get(i)?.1)
    }

    /// What the responses need of `peer`, if it is a peer of this list.
    #[inline]
    pub fn facts(&self, peer: *const ngx_http_upstream_rr_peer_t) -> Option<Facts> {
        // A few peers are found faster one by one.
        if self.entries.len() <= 8 {
            return self
                .entries
                .iter()
                .find(|e| ptr::eq(e.at.peer, peer))
                .map(|e| e.facts);
        }
        self.find(&self.by_pointer, peer as usize).map(|e| e.facts)
    }

    /// The request counters of `peer`, if it is a peer of this list that has some.
    #[inline]
    pub fn record(&self, peer: *const ngx_http_upstream_rr_peer_t) -> Option<&Record> {
        let e = if self.entries.len() <= 8 {
            self.entries.iter().find(|e| ptr::eq(e.at.peer, peer))
        } else {
            self.find(&self.by_pointer, peer as usize)
        }?;
        // SAFETY: a record lives as long as the zone of this cycle, and so as this index.
        unsafe { e.record.as_ref() }
    }

    /// The route cookie of `peer` (its id and its whole `Set-Cookie` value), if it is a peer
    /// of this list and the upstream has `cookie=`.
    #[inline]
    pub fn route_cookie(&self, peer: *const ngx_http_upstream_rr_peer_t) -> Option<(u64, &[u8])> {
        let e = self.entries.iter().find(|e| ptr::eq(e.at.peer, peer))?;
        Some((e.facts.cookie?, &e.set_cookie))
    }

    /// The list as the precedence list reads it, for one request.
    pub fn view(&self, tried: *mut usize, now: i64) -> ListView<'_> {
        ListView {
            index: self,
            tried,
            now,
        }
    }
}

/// What learning needs of `peer` without an index (a backup peer): computed. (A backup peer
/// has no route cookie.)
///
/// # Safety
/// `peer` must be a valid peer.
pub unsafe fn facts_of(peer: *const ngx_http_upstream_rr_peer_t) -> Facts {
    // SAFETY: guaranteed by the caller.
    let (server, name) = unsafe { (bytes(&(*peer).server), bytes(&(*peer).name)) };
    Facts {
        identity: peer_identity(server, name),
        cookie: None,
        tag: None,
    }
}

/// The indexed list with one request's `tried` bitmap and the time.
pub struct ListView<'a> {
    index: &'a PeerIndex,
    tried: *mut usize,
    now: i64,
}

impl ListView<'_> {
    fn peer(&self, e: &Entry) -> NginxPeer {
        NginxPeer {
            at: e.at,
            record: e.record,
            tried: self.tried,
            now: self.now,
        }
    }
}

impl Peers for ListView<'_> {
    type Peer = NginxPeer;

    fn of_route(&self, target: u32) -> impl Iterator<Item = NginxPeer> {
        let list = &self.index.by_target;
        let start = list.partition_point(|e| e.0 < target);
        list.get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(move |e| e.0 == target)
            .filter_map(|e| self.index.entry(e.1))
            .map(|e| self.peer(e))
    }

    fn of_identity(&self, identity: u64) -> Option<NginxPeer> {
        let e = self.index.find(&self.index.by_identity, identity)?;
        Some(self.peer(e))
    }

    fn of_cookie(&self, id: u64) -> Option<NginxPeer> {
        let e = self.index.find(&self.index.by_cookie, id)?;
        Some(self.peer(e))
    }

    fn of_tag(&self, id: u64) -> Option<NginxPeer> {
        let e = self.index.find(&self.index.by_tag, id)?;
        Some(self.peer(e))
    }

    fn of_member(&self, member: usize) -> Option<NginxPeer> {
        let i = (*self.index.members.get(member)?)?;
        Some(self.peer(self.index.entry(i)?))
    }
}

/// A peer of the locked list as the rules read it, for one request.
pub struct NginxPeer {
    pub at: PeerAt,
    /// Its request counters (null if it has none).
    record: *const Record,
    tried: *mut usize,
    now: i64,
}

impl NginxPeer {
    /// Its request counters, if it has some.
    #[inline]
    pub fn record(&self) -> Option<&Record> {
        // SAFETY: a record lives as long as the zone of this cycle (see `PeerIndex::record`).
        unsafe { self.record.as_ref() }
    }

    fn peer(&self) -> &ngx_http_upstream_rr_peer_t {
        // SAFETY: the list is locked and the peer is its element while the rules read it.
        unsafe { &*self.at.peer }
    }
}

impl PeerState for NginxPeer {
    #[inline]
    fn tried(&self) -> bool {
        let bits = usize::BITS as usize;
        // SAFETY: the bitmap covers every index of the peer list.
        unsafe { *self.tried.add(self.at.index / bits) & (1usize << (self.at.index % bits)) != 0 }
    }
    #[inline]
    fn down(&self) -> bool {
        marked_down(self.peer())
    }
    #[inline]
    fn draining(&self) -> bool {
        draining(self.peer())
    }
    #[inline]
    fn failed(&self) -> bool {
        failed(self.peer(), self.now)
    }
    #[inline]
    fn full(&self) -> bool {
        let p = self.peer();
        p.max_conns != 0 && p.conns >= p.max_conns
    }
}

impl Candidate for NginxPeer {
    fn usable(&self) -> bool {
        crate::logic::choose::usable(self)
    }
    fn conns(&self) -> u64 {
        self.peer().conns as u64
    }
    fn weight(&self) -> u64 {
        self.peer().weight.max(0) as u64
    }
    fn effective_weight(&self) -> i64 {
        self.peer().effective_weight as i64
    }
    fn current_weight(&self) -> i64 {
        self.peer().current_weight as i64
    }
    fn set_current_weight(&self, w: i64) {
        // SAFETY: the list is write-locked while least_conn runs.
        unsafe { (*self.at.peer).current_weight = w as _ }
    }
}

/// Marked `down` (or found failed by a health check), not merely draining.
#[inline]
pub fn marked_down(p: &ngx_http_upstream_rr_peer_t) -> bool {
    p.down & !DRAINING != 0
}

/// Marked `drain` (nginx 1.29.6 and later).
#[inline]
pub fn draining(p: &ngx_http_upstream_rr_peer_t) -> bool {
    p.down & DRAINING != 0
}

/// Failed `max_fails` times within `fail_timeout`, at time `now`.
#[inline]
pub fn failed(p: &ngx_http_upstream_rr_peer_t, now: i64) -> bool {
    p.max_fails != 0 && p.fails >= p.max_fails && now - p.checked <= p.fail_timeout
}

/// The peers of a list in order, as [`NginxPeer`]s for one request.
///
/// # Safety
/// The list must be valid and locked while the iterator is used.
pub unsafe fn walk(
    peers: *mut ngx_http_upstream_rr_peers_t,
    tried: *mut usize,
    now: i64,
) -> impl Iterator<Item = NginxPeer> + Clone {
    // SAFETY: guaranteed by the caller.
    let first = unsafe { (*peers).peer };
    core::iter::successors((!first.is_null()).then_some((first, 0usize)), |&(p, i)| {
        // SAFETY: `p` is an element of the locked list.
        let next = unsafe { (*p).next };
        (!next.is_null()).then_some((next, i + 1))
    })
    .map(move |(peer, index)| NginxPeer {
        at: PeerAt { peer, index },
        record: ptr::null(),
        tried,
        now,
    })
}

/// Hands `at` to the connection, as round robin does for the peer it picks.
///
/// # Safety
/// The peer list must be locked; `at` is its element; `rrp` is the request's round-robin data.
pub unsafe fn take(
    pc: *mut ngx_peer_connection_t,
    rrp: &mut ngx_http_upstream_rr_peer_data_t,
    at: PeerAt,
    now: i64,
) {
    let peer = at.peer;
    // SAFETY: guaranteed by the caller.
    unsafe {
        rrp.current = peer;
        #[cfg(nginx1_27_3)]
        {
            (*peer).refs += 1;
        }
        (*pc).sockaddr = (*peer).sockaddr;
        (*pc).socklen = (*peer).socklen;
        (*pc).name = ptr::addr_of_mut!((*peer).name);
        (*peer).conns += 1;
        if now - (*peer).checked > (*peer).fail_timeout {
            (*peer).checked = now;
        }
        let bits = usize::BITS as usize;
        *rrp.tried.add(at.index / bits) |= 1usize << (at.index % bits);
    }
}

/// Whether the request's round-robin data belongs to an older version of a re-resolvable
/// list (nginx then answers `NGX_BUSY`, as round robin does).
///
/// # Safety
/// `peers` must be valid.
pub unsafe fn stale(
    _rrp: &ngx_http_upstream_rr_peer_data_t,
    _peers: *mut ngx_http_upstream_rr_peers_t,
) -> bool {
    #[cfg(nginx1_27_3)]
    // SAFETY: `config` is null or points into the upstream zone.
    unsafe {
        if !(*_peers).config.is_null() && _rrp.config != *(*_peers).config {
            return true;
        }
    }
    false
}

/// The shared list's change counter (re-resolvable servers), 0 where there is none.
#[inline]
unsafe fn peers_config(_peers: *mut ngx_http_upstream_rr_peers_t) -> usize {
    #[cfg(nginx1_27_3)]
    // SAFETY: `config` is null or points into the upstream zone.
    unsafe {
        if !(*_peers).config.is_null() {
            return *(*_peers).config;
        }
    }
    0
}

/// The peers lock of a shared (`zone`) upstream, released on drop; a no-op otherwise.
pub struct PeersLock(*mut ngx_http_upstream_rr_peers_t);

impl PeersLock {
    /// For reading the list and writing its peers' counters, as nginx's balancers lock it.
    ///
    /// # Safety
    /// `peers` must be valid for the lifetime of the guard.
    pub unsafe fn write(peers: *mut ngx_http_upstream_rr_peers_t) -> PeersLock {
        // SAFETY: a shared list has a valid rwlock (nginx's `ngx_http_upstream_rr_peers_wlock`).
        unsafe {
            if !(*peers).shpool.is_null() {
                ngx_rwlock_wlock(ptr::addr_of_mut!((*peers).rwlock));
            }
        }
        PeersLock(peers)
    }

    /// For reading the list only.
    ///
    /// # Safety
    /// As for [`PeersLock::write`].
    pub unsafe fn read(peers: *mut ngx_http_upstream_rr_peers_t) -> PeersLock {
        // SAFETY: as for `write` (nginx's `ngx_http_upstream_rr_peers_rlock`).
        unsafe {
            if !(*peers).shpool.is_null() {
                ngx_rwlock_rlock(ptr::addr_of_mut!((*peers).rwlock));
            }
        }
        PeersLock(peers)
    }
}

impl Drop for PeersLock {
    fn drop(&mut self) {
        // SAFETY: the lock was taken in `write` on the same list, which is still valid.
        unsafe {
            if !(*self.0).shpool.is_null() {
                ngx_rwlock_unlock(ptr::addr_of_mut!((*self.0).rwlock));
            }
        }
    }
}
