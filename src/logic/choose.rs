//! The precedence list: which server takes a request.
//!
//! One list, in this order; each step that names a usable server decides, otherwise the next
//! step does:
//!
//! 1. `route`: the session id's route label names a server;
//! 2. `learned`: the session id was learned from the server that minted it;
//! 3. `cookie`: the route cookie names a server;
//! 4. `device_id`: the device's server on the consistent-hash ring, or the next usable one
//!    on the ring (at most [`MAX_TRIES`] unusable servers);
//! 5. the balance method (round robin or least_conn) picks: [`Choice::Balance`].
//!
//! A step that names a server that is out makes what follows a substitute (`rebound`), and
//! so is every retry after an error. With `strict`, a request of a session whose server is out
//! is refused instead (nginx answers `502`), and so is a retry after the session's own server
//! failed. The steps 1 to 3 are looked at once per request (its first call of `get`).
//!
//! A server that is draining (`server ... drain`) keeps what is bound to it (steps 1 to 3) and
//! takes nothing new: the device id step and the balance method pass it by.
//!
//! The peers are read through [`Peers`] and [`PeerState`], so the rule runs on nginx's peer
//! list in the module and on plain values in the tests.

use super::ring::Ring;

/// nginx's `hash` module gives up on the ring after this many unusable servers and uses round
/// robin; so does the device id step.
pub const MAX_TRIES: u32 = 20;
/// A bound on the ring slots one walk looks at (reached only with a single server).
pub const MAX_WALK_SLOTS: usize = 1024;

/// How the server of a request was chosen (`$socketio_sticky_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The route label in the session id (`route=`).
    Route,
    /// The server's tag that nginx put in front of the session id (`sid_prefix`).
    Prefix,
    /// The server that minted the request's session id, learned from its handshake.
    Learned,
    /// The route cookie (`cookie=`).
    Cookie,
    /// The device's own server on the ring.
    DeviceId,
    /// The balance method (round robin or least_conn).
    Fallback,
    /// A substitute: the server a step named was out, or a retry after an error.
    Rebound,
    /// `strict`: the session's server was out and the request failed.
    Strict,
    /// The response taught a session id (set by learning, after the choice).
    New,
}

impl Status {
    /// The request counter this route counts in (its index in `status::ROUTES`); `None` for
    /// `new`, which is no route.
    #[inline]
    pub fn counter(self) -> Option<usize> {
        match self {
            Status::Learned => Some(0),
            Status::DeviceId => Some(1),
            Status::Route => Some(2),
            Status::Cookie => Some(3),
            Status::Fallback => Some(4),
            Status::Rebound => Some(5),
            Status::Strict => Some(6),
            Status::Prefix => Some(super::status::PREFIX),
            Status::New => None,
        }
    }

    /// The value of `$socketio_sticky_status`.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Status::Route => b"route",
            Status::Prefix => b"prefix",
            Status::Learned => b"learned",
            Status::Cookie => b"cookie",
            Status::DeviceId => b"device_id",
            Status::Fallback => b"fallback",
            Status::Rebound => b"rebound",
            Status::Strict => b"strict",
            Status::New => b"new",
        }
    }
}

/// A peer as nginx sees it now, for this request.
pub trait PeerState {
    /// Tried by this request already (a retry after an error never goes back).
    fn tried(&self) -> bool;
    /// Marked `down`.
    fn down(&self) -> bool;
    /// Marked `drain`: it keeps its sessions and gets no new ones.
    fn draining(&self) -> bool;
    /// Failed `max_fails` times within `fail_timeout`.
    fn failed(&self) -> bool;
    /// At its `max_conns`.
    fn full(&self) -> bool;
}

/// Whether a peer may take a request bound to it (its session's, its route cookie's): not
/// tried by it yet, not down, not failed, not full. A draining peer may.
#[inline]
pub fn usable_bound(p: &impl PeerState) -> bool {
    !p.tried() && !p.down() && !p.failed() && !p.full()
}

/// Whether a peer may take a request that nothing binds to it: as [`usable_bound`], and not
/// draining.
#[inline]
pub fn usable(p: &impl PeerState) -> bool {
    usable_bound(p) && !p.draining()
}

/// The upstream's primary peers, found by what names them. `backup` peers are in none of
/// these: they serve only through the balance method.
pub trait Peers {
    type Peer: PeerState;
    /// The peers of a route target (a `server` line may resolve to several), in list order.
    fn of_route(&self, target: u32) -> impl Iterator<Item = Self::Peer>;
    /// The peer whose identity a learned session stores.
    fn of_identity(&self, identity: u64) -> Option<Self::Peer>;
    /// The peer a session id's tag names (`sid_prefix`: the tag's id).
    fn of_tag(&self, id: u64) -> Option<Self::Peer>;
    /// The peer a route cookie id names.
    fn of_cookie(&self, id: u64) -> Option<Self::Peer>;
    /// The peer of a ring member (none while the member has no address).
    fn of_member(&self, member: usize) -> Option<Self::Peer>;
}

/// What the request's keys name, found once when the request starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// The route target of the session id's label.
    pub route: Option<u32>,
    /// The id of the server tag in front of the session id (`sid_prefix`).
    pub prefix: Option<u64>,
    /// The identity of the server that minted the session id (a learned session).
    pub learned: Option<u64>,
    /// The peer id of a valid route cookie.
    pub cookie: Option<u64>,
    /// The request carries a session id.
    pub session: bool,
    /// The hash of the device id.
    pub device: Option<u64>,
}

/// What the configuration says.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    pub strict: bool,
    /// The device id ring (every upstream with the directive has one).
    pub ring: Option<&'a Ring>,
}

/// The decision of one call of `get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice<P> {
    /// Take this peer; how it was chosen.
    Take(P, Status),
    /// `strict`: no server answers (nginx's `502`).
    Refuse,
    /// The balance method picks (status `fallback`).
    Balance,
}

/// What a call must do before the peers are looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Before {
    /// Refuse (`strict`, a retry after the session's own server failed).
    Refuse,
    /// Let the balance method pick: nothing names a server.
    Balance,
    /// Look at the peers ([`Progress::choose`]).
    Look,
}

/// What the calls of `get` for one request have done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    calls: u32,
    /// Unusable servers met on the ring.
    tries: u32,
    /// A step chose the session's own server.
    bound: bool,
}

impl Progress {
    /// Starts a call of `get` (the first, or a retry after an error).
    #[inline]
    pub fn begin(&mut self, claims: &Claims, rules: &Rules) -> Before {
        self.calls = self.calls.saturating_add(1);
        if rules.strict && self.bound {
            return Before::Refuse;
        }
        let steps = self.calls == 1
            && (claims.route.is_some()
                || claims.prefix.is_some()
                || claims.learned.is_some()
                || claims.cookie.is_some());
        if steps || self.ring_left(claims, rules).is_some() {
            Before::Look
        } else {
            Before::Balance
        }
    }

    /// The ring and the device's hash, while the walk may go on.
    #[inline]
    fn ring_left<'a>(&self, claims: &Claims, rules: &Rules<'a>) -> Option<(&'a Ring, u64)> {
        match (rules.ring, claims.device) {
            (Some(ring), Some(hash)) if self.tries <= MAX_TRIES => Some((ring, hash)),
            _ => None,
        }
    }

    /// The precedence list over the peers, after [`Progress::begin`] said [`Before::Look`].
    #[inline]
    pub fn choose<V: Peers>(
        &mut self,
        peers: &V,
        claims: &Claims,
        rules: &Rules,
    ) -> Choice<V::Peer> {
        // A retry after an error: whatever it gets is a substitute.
        let mut rebound = self.calls > 1;
        let status = |s: Status, rebound: bool| if rebound { Status::Rebound } else { s };

        if self.calls == 1 {
            // The session's server is named by a step but out.
            let mut session_out = false;
            if let Some(target) = claims.route {
                match peers.of_route(target).find(usable_bound) {
                    Some(p) => {
                        self.bound = true;
                        return Choice::Take(p, status(Status::Route, rebound));
                    }
                    None => session_out = true,
                }
            }
            if let Some(id) = claims.prefix {
                match peers.of_tag(id) {
                    Some(p) if usable_bound(&p) => {
                        self.bound = true;
                        return Choice::Take(p, status(Status::Prefix, rebound));
                    }
                    Some(_) => session_out = true,
                    // No server of this upstream has that tag: as if there were none.
                    None => {}
                }
            }
            if let Some(identity) = claims.learned {
                match peers.of_identity(identity) {
                    Some(p) if usable_bound(&p) => {
                        self.bound = true;
                        return Choice::Take(p, status(Status::Learned, rebound));
                    }
                    Some(_) => session_out = true,
                    // Its server was removed from the configuration.
                    None => {}
                }
            }
            if let Some(id) = claims.cookie {
                match peers.of_cookie(id) {
                    Some(p) if usable_bound(&p) => {
                        // With a session id, the cookie names the session's server.
                        self.bound = claims.session;
                        return Choice::Take(p, status(Status::Cookie, rebound));
                    }
                    Some(_) => {
                        session_out |= claims.session;
                        rebound = true;
                    }
                    None => {}
                }
            }
            if session_out {
                if rules.strict {
                    return Choice::Refuse;
                }
                rebound = true;
            }
        }

        let Some((ring, hash)) = self.ring_left(claims, rules) else {
            return Choice::Balance;
        };
        for member in ring.walk(hash, MAX_WALK_SLOTS) {
            if let Some(p) = peers.of_member(member) {
                if usable(&p) {
                    return Choice::Take(p, status(Status::DeviceId, rebound));
                }
            }
            rebound = true;
            self.tries += 1;
            if self.tries > MAX_TRIES {
                break;
            }
        }
        Choice::Balance
    }

    /// Whether a step chose the session's own server (a retry then fails with `strict`).
    #[cfg(test)]
    pub fn bound(&self) -> bool {
        self.bound
    }
}

/// A peer of a fake list, as plain flags, for the unit tests and the fuzz targets.
#[cfg(any(test, fuzzing))]
pub mod fake {
    use super::PeerState;

    /// A peer of the fake list: its index and its state.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct P {
        pub at: usize,
        pub tried: bool,
        pub down: bool,
        pub draining: bool,
        pub failed: bool,
        pub full: bool,
    }

    impl PeerState for P {
        fn tried(&self) -> bool {
            self.tried
        }
        fn down(&self) -> bool {
            self.down
        }
        fn draining(&self) -> bool {
            self.draining
        }
        fn failed(&self) -> bool {
            self.failed
        }
        fn full(&self) -> bool {
            self.full
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::ring::Member;
    use std::cell::Cell;

    use super::fake::P;

    /// A list of `n` primary peers: peer `i` has identity `100 + i`, cookie id `200 + i`,
    /// route target `i / per_target`, ring member `i`.
    struct List {
        peers: Vec<Cell<P>>,
        per_target: usize,
        /// Ring members without a peer (an unresolved name).
        missing: Vec<usize>,
    }

    impl List {
        fn new(n: usize) -> List {
            List {
                peers: (0..n)
                    .map(|at| {
                        Cell::new(P {
                            at,
                            tried: false,
                            down: false,
                            draining: false,
                            failed: false,
                            full: false,
                        })
                    })
                    .collect(),
                per_target: 1,
                missing: Vec::new(),
            }
        }

        fn set(&self, i: usize, f: impl FnOnce(&mut P)) {
            let mut p = self.peers[i].get();
            f(&mut p);
            self.peers[i].set(p);
        }

        /// What round robin's `tried` bitmap gets when a peer is taken.
        fn take(&self, c: &Choice<P>) {
            if let Choice::Take(p, _) = c {
                self.set(p.at, |p| p.tried = true);
            }
        }
    }

    impl Peers for List {
        type Peer = P;
        fn of_route(&self, target: u32) -> impl Iterator<Item = P> {
            let per = self.per_target;
            self.peers
                .iter()
                .map(Cell::get)
                .filter(move |p| p.at / per == target as usize)
        }
        fn of_identity(&self, identity: u64) -> Option<P> {
            let i = usize::try_from(identity.checked_sub(100)?).ok()?;
            self.peers.get(i).map(Cell::get)
        }
        fn of_cookie(&self, id: u64) -> Option<P> {
            let i = usize::try_from(id.checked_sub(200)?).ok()?;
            self.peers.get(i).map(Cell::get)
        }
        fn of_tag(&self, id: u64) -> Option<P> {
            let i = usize::try_from(id.checked_sub(300)?).ok()?;
            self.peers.get(i).map(Cell::get)
        }
        fn of_member(&self, member: usize) -> Option<P> {
            if self.missing.contains(&member) {
                return None;
            }
            self.peers.get(member).map(Cell::get)
        }
    }

    fn ring(n: usize) -> Ring {
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                identity: format!("10.0.0.{i}:3000").into_bytes(),
                weight: 1,
            })
            .collect();
        Ring::build(&members).unwrap()
    }

    /// A device hash whose home member is `m`, and the distinct members in the order its walk
    /// meets them.
    fn device_of(ring: &Ring, m: usize) -> (u64, Vec<usize>) {
        for k in 0u64.. {
            let h = crate::logic::hash::key_hash(format!("device-{k}").as_bytes());
            let mut walk: Vec<usize> = Vec::new();
            for member in ring.walk(h, MAX_WALK_SLOTS) {
                if !walk.contains(&member) {
                    walk.push(member);
                }
            }
            if walk.first() == Some(&m) {
                return (h, walk);
            }
        }
        unreachable!()
    }

    /// One call of `get`: what `begin` says, then `choose` when it says to look.
    fn call(list: &List, pr: &mut Progress, claims: &Claims, rules: &Rules) -> Choice<P> {
        let c = match pr.begin(claims, rules) {
            Before::Refuse => Choice::Refuse,
            Before::Balance => Choice::Balance,
            Before::Look => pr.choose(list, claims, rules),
        };
        list.take(&c);
        c
    }

    /// The first call of a request, on a list left as it is.
    fn first(list: &List, claims: Claims, strict: bool, ring: Option<&Ring>) -> Choice<P> {
        let rules = Rules { strict, ring };
        let mut pr = Progress::default();
        match pr.begin(&claims, &rules) {
            Before::Refuse => Choice::Refuse,
            Before::Balance => Choice::Balance,
            Before::Look => pr.choose(list, &claims, &rules),
        }
    }

    fn at(c: Choice<P>) -> (usize, Status) {
        match c {
            Choice::Take(p, s) => (p.at, s),
            other => panic!("not a peer: {other:?}"),
        }
    }

    #[test]
    fn status_names() {
        let all = [
            (Status::Route, "route"),
            (Status::Prefix, "prefix"),
            (Status::Learned, "learned"),
            (Status::Cookie, "cookie"),
            (Status::DeviceId, "device_id"),
            (Status::Fallback, "fallback"),
            (Status::Rebound, "rebound"),
            (Status::Strict, "strict"),
            (Status::New, "new"),
        ];
        for (s, name) in all {
            assert_eq!(s.as_bytes(), name.as_bytes());
            // Each route counts in the status counter of its own name.
            match s.counter() {
                Some(i) => assert_eq!(super::super::status::ROUTES[i], name),
                None => assert_eq!(name, "new"),
            }
        }
        assert_eq!(Status::Strict.counter(), Some(super::super::status::STRICT));
        assert_eq!(Status::Prefix.counter(), Some(super::super::status::PREFIX));
    }

    #[test]
    fn usable_means_none_of_the_four() {
        let list = List::new(1);
        assert!(usable(&list.peers[0].get()));
        for f in [
            |p: &mut P| p.tried = true,
            |p: &mut P| p.down = true,
            |p: &mut P| p.failed = true,
            |p: &mut P| p.full = true,
        ] {
            let l = List::new(1);
            l.set(0, f);
            assert!(!usable(&l.peers[0].get()));
        }
    }

    // ---- each row of the list decides when its server is usable ----

    #[test]
    fn row1_route_label() {
        let list = List::new(4);
        let c = Claims {
            route: Some(2),
            session: true,
            cookie: Some(201),
            device: Some(7),
            ..Claims::default()
        };
        assert_eq!(at(first(&list, c, false, None)), (2, Status::Route));
        // A target with several addresses: the first usable one.
        let mut list = List::new(4);
        list.per_target = 2;
        list.set(2, |p| p.down = true);
        let c = Claims {
            route: Some(1),
            ..c
        };
        assert_eq!(at(first(&list, c, false, None)), (3, Status::Route));
    }

    #[test]
    fn row_prefix_after_route_before_learned() {
        let list = List::new(4);
        let c = Claims {
            prefix: Some(302),
            learned: Some(103),
            session: true,
            ..Claims::default()
        };
        assert_eq!(at(first(&list, c, false, None)), (2, Status::Prefix));
        let c = Claims {
            route: Some(1),
            ..c
        };
        assert_eq!(at(first(&list, c, false, None)), (1, Status::Route));
        // A tag no server has counts as no tag: the next step decides, no substitute.
        let c = Claims {
            route: None,
            prefix: Some(399),
            ..c
        };
        assert_eq!(at(first(&list, c, false, None)), (3, Status::Learned));
        // Its server out: a substitute, or strict's refusal; draining keeps it.
        type Case = (fn(&mut P), bool, Choice<P>);
        let cases: [Case; 3] = [
            (|p| p.down = true, false, Choice::Balance),
            (|p| p.full = true, true, Choice::Refuse),
            (|p| p.draining = true, true, Choice::Balance),
        ];
        for (out, strict, want) in cases {
            let list = List::new(4);
            list.set(2, out);
            let c = Claims {
                prefix: Some(302),
                session: true,
                ..Claims::default()
            };
            match first(&list, c, strict, None) {
                Choice::Take(p, s) => assert_eq!((p.at, s), (2, Status::Prefix)),
                other => assert_eq!(other, want),
            }
        }
    }

    #[test]
    fn row2_learned() {
        let list = List::new(4);
        let c = Claims {
            learned: Some(103),
            session: true,
            cookie: Some(201),
            ..Claims::default()
        };
        assert_eq!(at(first(&list, c, false, None)), (3, Status::Learned));
        // The learned server was removed from the configuration: the next step decides, and
        // it is no substitute.
        let c = Claims {
            learned: Some(150),
            ..c
        };
        assert_eq!(at(first(&list, c, false, None)), (1, Status::Cookie));
    }

    #[test]
    fn row3_cookie() {
        let list = List::new(4);
        let c = Claims {
            cookie: Some(202),
            device: Some(1),
            ..Claims::default()
        };
        let r = ring(4);
        assert_eq!(at(first(&list, c, false, Some(&r))), (2, Status::Cookie));
        // An id of no peer (another upstream's, a removed server's) counts as no cookie.
        let c = Claims {
            cookie: Some(999),
            ..c
        };
        assert_eq!(at(first(&list, c, false, Some(&r))).1, Status::DeviceId);
    }

    #[test]
    fn row4_device_id() {
        let r = ring(4);
        let list = List::new(4);
        for m in 0..4 {
            let (h, _) = device_of(&r, m);
            let c = Claims {
                device: Some(h),
                ..Claims::default()
            };
            assert_eq!(at(first(&list, c, false, Some(&r))), (m, Status::DeviceId));
        }
    }

    #[test]
    fn row5_balance() {
        let list = List::new(4);
        // Nothing names a server: no look at the peers at all.
        let mut pr = Progress::default();
        let rules = Rules {
            strict: false,
            ring: Some(&ring(4)),
        };
        assert_eq!(pr.begin(&Claims::default(), &rules), Before::Balance);
        // A session id alone (unknown, no label) names nothing either.
        let c = Claims {
            session: true,
            ..Claims::default()
        };
        assert_eq!(first(&list, c, true, rules.ring), Choice::Balance);
    }

    // ---- the order of the steps ----

    #[test]
    fn earlier_steps_win() {
        let r = ring(4);
        let list = List::new(4);
        let (h, _) = device_of(&r, 3);
        let all = Claims {
            route: Some(0),
            prefix: None,
            learned: Some(101),
            cookie: Some(202),
            session: true,
            device: Some(h),
        };
        assert_eq!(at(first(&list, all, false, Some(&r))), (0, Status::Route));
        let c = Claims { route: None, ..all };
        assert_eq!(at(first(&list, c, false, Some(&r))), (1, Status::Learned));
        let c = Claims { learned: None, ..c };
        assert_eq!(at(first(&list, c, false, Some(&r))), (2, Status::Cookie));
        let c = Claims { cookie: None, ..c };
        assert_eq!(at(first(&list, c, false, Some(&r))), (3, Status::DeviceId));
    }

    // ---- a named server that is out: a substitute, or strict's refusal ----

    #[test]
    fn each_kind_of_out_makes_a_substitute() {
        let r = ring(4);
        let (h, walk) = device_of(&r, 0);
        for out in [
            |p: &mut P| p.down = true,
            |p: &mut P| p.failed = true,
            |p: &mut P| p.full = true,
            |p: &mut P| p.tried = true,
        ] {
            let list = List::new(4);
            list.set(0, out);
            let c = Claims {
                learned: Some(100),
                session: true,
                device: Some(h),
                ..Claims::default()
            };
            // The device's walk goes on to its next member.
            assert_eq!(
                at(first(&list, c, false, Some(&r))),
                (walk[1], Status::Rebound)
            );
            // Without a device id: the balance method.
            let c = Claims { device: None, ..c };
            assert_eq!(first(&list, c, false, Some(&r)), Choice::Balance);
            // strict: refused, device id or not.
            assert_eq!(first(&list, c, true, Some(&r)), Choice::Refuse);
            let c = Claims {
                device: Some(h),
                ..c
            };
            assert_eq!(first(&list, c, true, Some(&r)), Choice::Refuse);
            // A route cookie that names another usable server still decides (a later step
            // of the list), strict or not.
            let c = Claims {
                cookie: Some(201),
                ..c
            };
            assert_eq!(at(first(&list, c, true, Some(&r))), (1, Status::Cookie));
        }
    }

    #[test]
    fn route_target_out() {
        let list = List::new(4);
        list.set(1, |p| p.down = true);
        let c = Claims {
            route: Some(1),
            session: true,
            ..Claims::default()
        };
        assert_eq!(first(&list, c, false, None), Choice::Balance);
        assert_eq!(first(&list, c, true, None), Choice::Refuse);
        // The route cookie names another usable server: it decides, strict or not.
        let c = Claims {
            cookie: Some(203),
            ..c
        };
        assert_eq!(at(first(&list, c, false, None)), (3, Status::Cookie));
        assert_eq!(at(first(&list, c, true, None)), (3, Status::Cookie));
    }

    #[test]
    fn cookie_server_out() {
        let r = ring(4);
        let (h, walk) = device_of(&r, 3);
        let list = List::new(4);
        list.set(2, |p| p.failed = true);
        // Without a session id the cookie names no session: a substitute, even with strict.
        let c = Claims {
            cookie: Some(202),
            device: Some(h),
            ..Claims::default()
        };
        assert_eq!(
            at(first(&list, c, true, Some(&r))),
            (walk[0], Status::Rebound)
        );
        let c = Claims { device: None, ..c };
        assert_eq!(first(&list, c, true, Some(&r)), Choice::Balance);
        // With a session id it does: strict refuses.
        let c = Claims {
            session: true,
            device: Some(h),
            ..c
        };
        assert_eq!(first(&list, c, true, Some(&r)), Choice::Refuse);
        assert_eq!(
            at(first(&list, c, false, Some(&r))),
            (walk[0], Status::Rebound)
        );
    }

    #[test]
    fn learned_server_out_then_cookie() {
        let list = List::new(4);
        list.set(1, |p| p.down = true);
        let c = Claims {
            learned: Some(101),
            cookie: Some(202),
            session: true,
            ..Claims::default()
        };
        // The cookie still decides (as the route case), and strict does not refuse it.
        assert_eq!(at(first(&list, c, false, None)), (2, Status::Cookie));
        assert_eq!(at(first(&list, c, true, None)), (2, Status::Cookie));
    }

    // ---- retries after an error (proxy_next_upstream) ----

    #[test]
    fn retry_of_a_bound_session() {
        let r = ring(4);
        let (h, walk) = device_of(&r, 1);
        for strict in [false, true] {
            let list = List::new(4);
            let c = Claims {
                learned: Some(102),
                session: true,
                device: Some(h),
                ..Claims::default()
            };
            let rules = Rules {
                strict,
                ring: Some(&r),
            };
            let mut pr = Progress::default();
            assert_eq!(at(call(&list, &mut pr, &c, &rules)), (2, Status::Learned));
            assert!(pr.bound());
            let again = call(&list, &mut pr, &c, &rules);
            if strict {
                assert_eq!(again, Choice::Refuse);
            } else {
                // The steps are not looked at again; the device decides, as a substitute.
                assert_eq!(at(again), (walk[0], Status::Rebound));
            }
        }
    }

    #[test]
    fn retry_of_a_cookie_without_session() {
        let list = List::new(4);
        let c = Claims {
            cookie: Some(202),
            ..Claims::default()
        };
        let rules = Rules {
            strict: true,
            ring: None,
        };
        let mut pr = Progress::default();
        assert_eq!(at(call(&list, &mut pr, &c, &rules)), (2, Status::Cookie));
        assert!(!pr.bound());
        assert_eq!(call(&list, &mut pr, &c, &rules), Choice::Balance);
    }

    #[test]
    fn retries_walk_the_ring_without_going_back() {
        let r = ring(5);
        let (h, walk) = device_of(&r, 4);
        let list = List::new(5);
        let c = Claims {
            device: Some(h),
            ..Claims::default()
        };
        let rules = Rules {
            strict: true,
            ring: Some(&r),
        };
        let mut pr = Progress::default();
        assert_eq!(at(call(&list, &mut pr, &c, &rules)), (4, Status::DeviceId));
        // A device is no session: strict does not refuse its retries.
        for next in &walk[1..5] {
            assert_eq!(
                at(call(&list, &mut pr, &c, &rules)),
                (*next, Status::Rebound)
            );
        }
        assert_eq!(call(&list, &mut pr, &c, &rules), Choice::Balance);
    }

    #[test]
    fn ring_gives_up_after_max_tries() {
        let n = 30;
        let r = ring(n);
        let (h, walk) = device_of(&r, 0);
        let list = List::new(n);
        let c = Claims {
            device: Some(h),
            ..Claims::default()
        };
        // The first 21 servers the walk meets are out: round robin decides.
        for &m in walk.iter().take(MAX_TRIES as usize + 1) {
            list.set(m, |p| p.down = true);
        }
        let rules = Rules {
            strict: false,
            ring: Some(&r),
        };
        let mut pr = Progress::default();
        assert_eq!(call(&list, &mut pr, &c, &rules), Choice::Balance);
        // And so do its retries, without walking again.
        assert_eq!(pr.begin(&c, &rules), Before::Balance);
        // Every slot of an unusable server met counts, as in nginx's `hash`: the walk takes
        // the first usable server met after at most 20 of them.
        for out in [3usize, 10, 19] {
            let list = List::new(n);
            for &m in walk.iter().take(out) {
                list.set(m, |p| p.down = true);
            }
            let mut met = 0;
            let mut expected = None;
            for m in r.walk(h, MAX_WALK_SLOTS) {
                if !walk[..out].contains(&m) {
                    expected = Some(m);
                    break;
                }
                met += 1;
                if met > MAX_TRIES {
                    break;
                }
            }
            let got = first(&list, c, false, Some(&r));
            match expected {
                Some(m) => assert_eq!(at(got), (m, Status::Rebound)),
                None => assert_eq!(got, Choice::Balance),
            }
        }
    }

    #[test]
    fn members_without_a_peer_are_walked_past() {
        let r = ring(4);
        let (h, walk) = device_of(&r, 2);
        let mut list = List::new(4);
        list.missing = vec![2];
        let c = Claims {
            device: Some(h),
            ..Claims::default()
        };
        assert_eq!(
            at(first(&list, c, false, Some(&r))),
            (walk[1], Status::Rebound)
        );
    }

    #[test]
    fn every_peer_out() {
        let r = ring(3);
        let (h, _) = device_of(&r, 0);
        let list = List::new(3);
        for i in 0..3 {
            list.set(i, |p| p.down = true);
        }
        let c = Claims {
            device: Some(h),
            learned: Some(100),
            session: true,
            ..Claims::default()
        };
        assert_eq!(first(&list, c, false, Some(&r)), Choice::Balance);
        assert_eq!(first(&list, c, true, Some(&r)), Choice::Refuse);
    }

    // ---- drain: a draining server keeps what is bound to it, and takes nothing new ----

    #[test]
    fn draining_keeps_bound_requests() {
        let r = ring(4);
        let list = List::new(4);
        list.set(1, |p| p.draining = true);
        for c in [
            Claims {
                route: Some(1),
                session: true,
                ..Claims::default()
            },
            Claims {
                learned: Some(101),
                session: true,
                ..Claims::default()
            },
            Claims {
                cookie: Some(201),
                session: true,
                ..Claims::default()
            },
            // A handshake with a route cookie is bound by the cookie, as with nginx's sticky.
            Claims {
                cookie: Some(201),
                ..Claims::default()
            },
        ] {
            let got = at(first(&list, c, false, Some(&r)));
            assert_eq!(got.0, 1, "{c:?}");
            assert_ne!(got.1, Status::Rebound);
            // strict: a draining server is not out.
            assert_eq!(at(first(&list, c, true, Some(&r))).0, 1);
        }
    }

    #[test]
    fn draining_takes_no_new_device() {
        let r = ring(4);
        let (h, walk) = device_of(&r, 2);
        let list = List::new(4);
        list.set(2, |p| p.draining = true);
        let c = Claims {
            device: Some(h),
            ..Claims::default()
        };
        // The device's next server on the ring, as a substitute, strict or not.
        assert_eq!(
            at(first(&list, c, false, Some(&r))),
            (walk[1], Status::Rebound)
        );
        assert_eq!(
            at(first(&list, c, true, Some(&r))),
            (walk[1], Status::Rebound)
        );
        // The device's open session stays: its learned sid binds it.
        let c = Claims {
            learned: Some(102),
            session: true,
            ..c
        };
        assert_eq!(at(first(&list, c, false, Some(&r))), (2, Status::Learned));
    }

    #[test]
    fn draining_and_down_is_down() {
        let list = List::new(2);
        list.set(0, |p| {
            p.draining = true;
            p.failed = true;
        });
        let c = Claims {
            learned: Some(100),
            session: true,
            ..Claims::default()
        };
        assert_eq!(first(&list, c, false, None), Choice::Balance);
        assert_eq!(first(&list, c, true, None), Choice::Refuse);
    }
}
