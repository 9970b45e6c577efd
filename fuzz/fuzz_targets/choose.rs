//! The precedence list (`choose::Progress::begin` and `choose`) over a fake peer list built
//! from the input: peer states (tried, down, draining, failed, full), route targets,
//! identities of learned sessions, route cookie ids, a ring of up to 6 members (some without
//! a peer, several on one peer), claims and `strict`.
//!
//! Calls of `get` are repeated as nginx repeats them after errors (the taken peer is marked
//! tried, sometimes failed too) until the answer is not a peer. Checked:
//! - never a panic; a taken peer is `usable_bound` when a route label, a learned session or a
//!   cookie named it and `usable` when the ring did; it is the peer that step names;
//! - at most 1 + (number of peers) calls end in `Balance` or `Refuse`;
//! - retries are `rebound`; with `strict`, a retry after the session's own server was taken
//!   is refused;
//! - the first call follows the documented order (route, learned, cookie, device id on the
//!   ring within `MAX_TRIES` unusable servers, balance), with `strict` refusing a session
//!   whose server is out, against a reference written from the module documentation.
#![no_main]

use std::cell::Cell;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use socketio_sticky_fuzz::logic::choose::fake::P;
use socketio_sticky_fuzz::logic::choose::{
    usable, usable_bound, Before, Choice, Claims, Peers, Progress, Rules, Status, MAX_TRIES,
    MAX_WALK_SLOTS,
};
use socketio_sticky_fuzz::logic::ring::{Member, Ring};

struct List {
    peers: Vec<Cell<P>>,
    /// Route target of each peer.
    target: Vec<u32>,
    /// Peer of each learned identity 0..8.
    identity: Vec<Option<usize>>,
    /// Peer of each cookie id 0..8.
    cookie: Vec<Option<usize>>,
    /// Peer of each tag id 0..8 (`sid_prefix`).
    tag: Vec<Option<usize>>,
    /// Peer of each ring member.
    member: Vec<Option<usize>>,
}

impl List {
    fn get(&self, i: usize) -> P {
        self.peers[i].get()
    }
}

impl Peers for List {
    type Peer = P;
    fn of_route(&self, target: u32) -> impl Iterator<Item = P> {
        self.peers
            .iter()
            .map(Cell::get)
            .filter(move |p| self.target[p.at] == target)
    }
    fn of_identity(&self, identity: u64) -> Option<P> {
        let i = (*self.identity.get(usize::try_from(identity).ok()?)?)?;
        Some(self.get(i))
    }
    fn of_cookie(&self, id: u64) -> Option<P> {
        let i = (*self.cookie.get(usize::try_from(id).ok()?)?)?;
        Some(self.get(i))
    }
    fn of_tag(&self, id: u64) -> Option<P> {
        let i = (*self.tag.get(usize::try_from(id).ok()?)?)?;
        Some(self.get(i))
    }
    fn of_member(&self, member: usize) -> Option<P> {
        let i = (*self.member.get(member)?)?;
        Some(self.get(i))
    }
}

/// Rings of 1 to 6 members, built once (a ring has 65537 slots).
fn rings() -> &'static [Ring] {
    static RINGS: OnceLock<Vec<Ring>> = OnceLock::new();
    RINGS.get_or_init(|| {
        (1..=6usize)
            .map(|n| {
                let members: Vec<Member> = (0..n)
                    .map(|i| Member {
                        identity: format!("10.0.0.{i}:3000").into_bytes(),
                        weight: 1 + (i as u32 % 3),
                    })
                    .collect();
                Ring::build(&members).expect("ring")
            })
            .collect()
    })
}

/// The first call, from the documentation of `logic::choose`.
fn reference(list: &List, c: &Claims, strict: bool, ring: Option<&Ring>) -> Choice<P> {
    let mut session_out = false;
    let mut rebound = false;
    if let Some(t) = c.route {
        match list.of_route(t).find(usable_bound) {
            Some(p) => return Choice::Take(p, Status::Route),
            None => session_out = true,
        }
    }
    if let Some(id) = c.prefix {
        match list.of_tag(id) {
            Some(p) if usable_bound(&p) => return Choice::Take(p, Status::Prefix),
            Some(_) => session_out = true,
            None => {}
        }
    }
    if let Some(id) = c.learned {
        match list.of_identity(id) {
            Some(p) if usable_bound(&p) => return Choice::Take(p, Status::Learned),
            Some(_) => session_out = true,
            None => {}
        }
    }
    if let Some(id) = c.cookie {
        match list.of_cookie(id) {
            Some(p) if usable_bound(&p) => return Choice::Take(p, Status::Cookie),
            Some(_) => {
                session_out |= c.session;
                rebound = true;
            }
            None => {}
        }
    }
    if session_out {
        if strict {
            return Choice::Refuse;
        }
        rebound = true;
    }
    let (Some(ring), Some(hash)) = (ring, c.device) else {
        return Choice::Balance;
    };
    let mut unusable = 0;
    for m in ring.walk(hash, MAX_WALK_SLOTS) {
        match list.of_member(m) {
            Some(p) if usable(&p) => {
                let s = if rebound {
                    Status::Rebound
                } else {
                    Status::DeviceId
                };
                return Choice::Take(p, s);
            }
            _ => {
                rebound = true;
                unusable += 1;
                if unusable > MAX_TRIES {
                    break;
                }
            }
        }
    }
    Choice::Balance
}

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    let n = 1 + usize::from(u.arbitrary::<u8>()? % 8);
    let mut peers = Vec::new();
    let mut target = Vec::new();
    for at in 0..n {
        let s: u8 = u.arbitrary()?;
        // Mostly usable: each flag on in one case of four.
        let flag = |bit: u8| (s >> bit) & 3 == 0;
        peers.push(Cell::new(P {
            at,
            tried: flag(0) && flag(2),
            down: flag(2),
            draining: flag(4),
            failed: flag(6),
            full: flag(1) && flag(5),
        }));
        target.push(u32::from(u.arbitrary::<u8>()? % 4));
    }
    let some_peer = |u: &mut Unstructured| -> arbitrary::Result<Option<usize>> {
        let b: u8 = u.arbitrary()?;
        Ok((b >= 32).then_some(usize::from(b) % n))
    };
    let identity = (0..8)
        .map(|_| some_peer(u))
        .collect::<arbitrary::Result<_>>()?;
    let cookie = (0..8)
        .map(|_| some_peer(u))
        .collect::<arbitrary::Result<_>>()?;
    let tag = (0..8)
        .map(|_| some_peer(u))
        .collect::<arbitrary::Result<_>>()?;
    let members = 1 + usize::from(u.arbitrary::<u8>()? % 6);
    let member = (0..members)
        .map(|_| some_peer(u))
        .collect::<arbitrary::Result<_>>()?;
    let list = List {
        peers,
        target,
        identity,
        cookie,
        tag,
        member,
    };
    let ring = (u.arbitrary::<u8>()? % 8 != 0).then(|| &rings()[members - 1]);
    let opt = |u: &mut Unstructured, of: u8| -> arbitrary::Result<Option<u8>> {
        let b: u8 = u.arbitrary()?;
        Ok((b & 1 == 0).then_some((b >> 1) % of))
    };
    let claims = Claims {
        route: opt(u, 6)?.map(u32::from),
        prefix: opt(u, 10)?.map(u64::from),
        learned: opt(u, 10)?.map(u64::from),
        cookie: opt(u, 10)?.map(u64::from),
        session: u.arbitrary()?,
        device: if u.arbitrary::<u8>()? % 4 != 0 {
            Some(u.arbitrary()?)
        } else {
            None
        },
    };
    let strict: bool = u.arbitrary()?;
    let rules = Rules { strict, ring };

    let mut pr = Progress::default();
    let mut bound = false;
    let mut takes = 0usize;
    for call in 1..=n + 2 {
        assert!(
            call <= n + 1,
            "{} calls and still taking peers ({claims:?})",
            n + 1
        );
        let choice = match pr.begin(&claims, &rules) {
            Before::Refuse => Choice::Refuse,
            Before::Balance => Choice::Balance,
            Before::Look => pr.choose(&list, &claims, &rules),
        };
        if call == 1 {
            assert_eq!(
                choice,
                reference(&list, &claims, strict, ring),
                "first call: {claims:?} strict={strict}"
            );
        }
        if strict && bound {
            assert_eq!(
                choice,
                Choice::Refuse,
                "strict retry after the session's server"
            );
        }
        let Choice::Take(p, status) = choice else {
            break;
        };
        takes += 1;
        let now = list.get(p.at);
        assert_eq!(p, now, "a stale copy of the peer");
        match status {
            Status::Route => {
                assert!(usable_bound(&p));
                assert_eq!(Some(list.target[p.at]), claims.route);
            }
            Status::Prefix => {
                assert!(usable_bound(&p));
                assert_eq!(claims.prefix.and_then(|id| list.of_tag(id)), Some(p));
            }
            Status::Learned => {
                assert!(usable_bound(&p));
                assert_eq!(claims.learned.and_then(|id| list.of_identity(id)), Some(p));
            }
            Status::Cookie => {
                assert!(usable_bound(&p));
                assert_eq!(claims.cookie.and_then(|id| list.of_cookie(id)), Some(p));
            }
            Status::DeviceId | Status::Rebound => {
                assert!(usable(&p), "the ring chose an unusable peer {p:?}");
                assert!(
                    list.member.contains(&Some(p.at)),
                    "not a ring member's peer"
                );
                assert!(claims.device.is_some() && ring.is_some());
            }
            other => panic!("choose returned status {other:?}"),
        }
        if call > 1 {
            assert!(
                matches!(status, Status::Rebound),
                "retry {call} with status {status:?}"
            );
        }
        bound |= matches!(status, Status::Route | Status::Prefix | Status::Learned)
            || (status == Status::Cookie && claims.session);
        // nginx marks the peer tried; a retry follows an error, which may also fail it.
        let fail = u.arbitrary::<bool>().unwrap_or(false);
        let mut q = now;
        q.tried = true;
        q.failed |= fail;
        list.peers[p.at].set(q);
    }
    assert!(takes <= n);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
