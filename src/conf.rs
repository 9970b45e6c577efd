//! The configuration of an upstream with `socketio_sticky`: what its directives say
//! (`directive` parses them) and what `init_upstream` builds from its `server` lines. The
//! balancer and the filters read it; the worker keeps its own index of the peer list in it.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr;

use ngx::core::Pool;
use ngx::ffi::{
    ngx_conf_t, ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_shm_zone_t,
    ngx_uint_t,
};
use regex::bytes::Regex;

use crate::glue::guard;
use crate::logic::choose::Rules;
use crate::logic::cookie::CookieKey;
use crate::logic::extract::{ArgNames, CaptureRegex};
use crate::logic::params::{self, Balance};
use crate::logic::route::{Label, Routes};
use crate::logic::servers::Placement;
use crate::logic::tally::{self, Record};
use crate::peers::{facts_of, CookieSpec, Facts, IndexSpec, PeerIndex, PeersLock};

/// A key source ready for run time (variables resolved to their index).
pub enum KeySource {
    /// A query argument: its name and its slot in the request's one-pass query scan (none when
    /// the directive names more than `extract::MAX_ARGS` arguments).
    Arg(Vec<u8>, Option<usize>),
    /// A cookie: its name and its slot in the request's one-pass cookie scan (none past
    /// `extract::MAX_COOKIES` names).
    Cookie(Vec<u8>, Option<usize>),
    Header(Vec<u8>),
    Path,
    Uri(Box<CaptureRegex>),
    Variable(ngx_uint_t),
}

/// Where a directive was written (for errors found after parsing).
pub struct Place {
    pub file: Vec<u8>,
    pub line: usize,
}

impl core::fmt::Display for Place {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}", String::from_utf8_lossy(&self.file), self.line)
    }
}

/// The route cookie ready for run time.
pub struct RouteCookie {
    pub name: Vec<u8>,
    /// The cookie's slot in the request's one-pass cookie scan.
    pub slot: Option<usize>,
    /// `; Path=/...` and the other attributes, after the value.
    pub attributes: Vec<u8>,
    pub key: CookieKey,
}

/// Per-`upstream{}` configuration (nginx creates one for every server and upstream block).
pub struct SrvConf {
    /// The directive was given in this upstream.
    pub enabled: bool,
    /// Where the `socketio_sticky` directive is (for errors found after parsing).
    pub place: Option<Place>,
    pub sid: Vec<KeySource>,
    /// `sid=` has `cookie:` sources (learned from `Set-Cookie` too).
    pub sid_cookies: bool,
    pub device_id: Vec<KeySource>,
    /// Distinct names of the `arg:` sources, looked for in one pass over the query string.
    pub arg_names: ArgNames,
    /// Distinct names of the `cookie:` sources and of the route cookie, looked for in one pass
    /// over the `Cookie` headers.
    pub cookie_names: Vec<Vec<u8>>,
    /// The zone of the learned sessions (null until the directive is given).
    pub zone: *mut ngx_shm_zone_t,
    /// Idle expiry of learned sessions, seconds.
    pub timeout: u32,
    /// `route=REGEX`: its first capture group, applied to the session id, is a route label.
    pub route: Option<CaptureRegex>,
    /// `socketio_sticky_route LABEL SERVER;` lines, in order, with their place in the files.
    pub labels: Vec<(Label, Place)>,
    /// `cookie=NAME`: the route cookie.
    pub cookie: Option<RouteCookie>,
    /// `strict`: no other server answers for a session whose server is out.
    pub strict: bool,
    /// `sid_prefix`: the key of the servers' session id tags.
    pub sid_prefix: Option<CookieKey>,
    /// Built by `init_upstream`: the tag ids of the primary servers, sorted.
    tags: Vec<u64>,
    /// `balance=`: placement of requests that no key decides.
    pub balance: Balance,

    /// Built by `init_upstream`: the device id ring over the primary servers.
    pub placement: Option<Placement>,
    /// Built by `init_upstream`: route labels resolved to servers.
    pub routes: Routes,
    /// Built by `init_upstream`: the upstream's name (`upstream NAME`), which keys its request
    /// counters in the zone.
    pub name: Vec<u8>,
    /// The worker's index of the peer list.
    index: UnsafeCell<PeerIndex>,
}

impl Default for SrvConf {
    fn default() -> Self {
        SrvConf {
            enabled: false,
            place: None,
            sid: Vec::new(),
            sid_cookies: false,
            device_id: Vec::new(),
            arg_names: ArgNames::default(),
            cookie_names: Vec::new(),
            zone: ptr::null_mut(),
            timeout: params::DEFAULT_TIMEOUT,
            route: None,
            labels: Vec::new(),
            cookie: None,
            strict: false,
            sid_prefix: None,
            tags: Vec::new(),
            balance: Balance::RoundRobin,
            placement: None,
            routes: Routes::default(),
            name: Vec::new(),
            index: UnsafeCell::default(),
        }
    }
}

impl SrvConf {
    /// Sets `route=`.
    pub fn set_route(&mut self, re: Regex) {
        self.route = Some(CaptureRegex::new(re));
    }

    /// Whether requests need their session id (to look it up, or to read its route label).
    pub fn wants_sid(&self) -> bool {
        !self.sid.is_empty() && (!self.zone.is_null() || self.route.is_some())
    }

    /// What the precedence list needs of the configuration.
    #[inline]
    pub fn rules(&self) -> Rules<'_> {
        Rules {
            strict: self.strict,
            ring: self.placement.as_ref().map(|p| &p.ring),
        }
    }

    /// Sets the primary servers' tag ids.
    pub fn set_tags(&mut self, mut tags: Vec<u64>) {
        tags.sort_unstable();
        self.tags = tags;
    }

    /// Whether a tag id names one of the primary servers as configured.
    #[inline]
    pub fn knows_tag(&self, id: u64) -> bool {
        self.tags.binary_search(&id).is_ok()
    }

    /// The route target of a session id's label (`route=`), if it names a primary server.
    #[inline]
    pub fn route_target(&self, sid: &[u8]) -> Option<u32> {
        let label = self.route.as_ref()?.first_capture(sid)?;
        self.routes.target(label)
    }

    /// The worker's index of `peers`, brought up to date.
    ///
    /// # Safety
    /// `peers` must be one of this upstream's peer lists, locked for reading; no reference
    /// returned by an earlier call may be alive (workers are single-threaded and neither the
    /// balancer nor the filters are re-entered while they hold one).
    #[inline]
    pub unsafe fn index(&self, peers: *mut ngx_http_upstream_rr_peers_t) -> Option<&PeerIndex> {
        let record = |identity| self.record(identity);
        let spec = || {
            Some(IndexSpec {
                record: &record,
                tags: self.sid_prefix.as_ref(),
                placement: self.placement.as_ref()?,
                routes: self.route.as_ref().map(|_| &self.routes),
                cookie: self.cookie.as_ref().map(|c| CookieSpec {
                    key: &c.key,
                    name: &c.name,
                    attributes: &c.attributes,
                }),
            })
        };
        // SAFETY: guaranteed by the caller.
        unsafe { (*self.index.get()).of(peers, spec) }
    }

    /// The request counters of server `identity` in this upstream (0: the upstream's own),
    /// claimed in the zone if need be.
    pub fn record(&self, identity: u64) -> Option<&'static Record> {
        // SAFETY: `zone` is null or this cycle's zone of the upstream.
        unsafe { crate::zone::record(self.zone, tally::key(&self.name, identity)) }
    }

    /// Counts a request sent to `peer` by the route at `route` (`status::ROUTES`): the
    /// counters of a primary peer are in the index, those of a backup peer are found.
    ///
    /// # Safety
    /// As for [`SrvConf::facts`].
    pub unsafe fn count_sent(
        &self,
        primary: *mut ngx_http_upstream_rr_peers_t,
        peer: *const ngx_http_upstream_rr_peer_t,
        route: usize,
    ) {
        // SAFETY: guaranteed by the caller; the list is read under its lock.
        unsafe {
            {
                let _lock = PeersLock::read(primary);
                if let Some(r) = self.index(primary).and_then(|i| i.record(peer)) {
                    r.add(route);
                    return;
                }
            }
            if let Some(r) = self.record(facts_of(peer).identity) {
                r.add(route);
            }
        }
    }

    /// What the responses need of the peer that answered: from the index of the primary
    /// list, or computed (a backup peer).
    ///
    /// # Safety
    /// `primary` must be the upstream's primary peer list and `peer` a valid peer; as for
    /// [`SrvConf::index`].
    #[inline]
    pub unsafe fn facts(
        &self,
        primary: *mut ngx_http_upstream_rr_peers_t,
        peer: *const ngx_http_upstream_rr_peer_t,
    ) -> Facts {
        // SAFETY: guaranteed by the caller; the list is read under its lock.
        unsafe {
            let found = {
                let _lock = PeersLock::read(primary);
                self.index(primary).and_then(|i| i.facts(peer))
            };
            found.unwrap_or_else(|| facts_of(peer))
        }
    }

    /// The route cookie of the peer that answered (its id and its whole `Set-Cookie` value),
    /// when it is a primary peer and the upstream has `cookie=`.
    ///
    /// # Safety
    /// As for [`SrvConf::facts`].
    #[inline]
    pub unsafe fn route_cookie(
        &self,
        primary: *mut ngx_http_upstream_rr_peers_t,
        peer: *const ngx_http_upstream_rr_peer_t,
    ) -> Option<(u64, &[u8])> {
        // SAFETY: guaranteed by the caller; the list is read under its lock.
        unsafe {
            let _lock = PeersLock::read(primary);
            self.index(primary)?.route_cookie(peer)
        }
    }
}

/// `create_srv_conf`: an empty configuration, dropped with the configuration pool.
pub unsafe extern "C" fn create_srv_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: nginx passes a valid configuration with a live pool.
    let log = unsafe { (*cf).log };
    guard(log, ptr::null_mut(), || {
        // SAFETY: the pool outlives the configuration; `allocate` registers the drop.
        let pool = unsafe { Pool::from_ngx_pool((*cf).pool) };
        pool.allocate(SrvConf::default()) as *mut c_void
    })
}
