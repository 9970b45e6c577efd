//! `balance=least_conn`: where a request without a usable key goes. The peer with the fewest
//! active connections relative to its weight (`conns / weight`, compared by
//! cross-multiplication); among equals, nginx's smooth weighted round robin, so equal peers
//! take turns in proportion to their weights. The same rule as nginx's `least_conn`.
//!
//! The peers are read through [`Candidate`], so the rule runs on nginx's peer list in the
//! module and on plain values in the tests.

/// A peer as the rule sees it.
pub trait Candidate {
    /// Not down, not failed, not at `max_conns`, not tried by this request yet.
    fn usable(&self) -> bool;
    fn conns(&self) -> u64;
    fn weight(&self) -> u64;
    fn effective_weight(&self) -> i64;
    fn current_weight(&self) -> i64;
    fn set_current_weight(&self, w: i64);
}

/// Whether `a` has fewer connections than `b` relative to the weights.
#[inline]
fn fewer(a: (u64, u64), b: (u64, u64)) -> core::cmp::Ordering {
    let lhs = u128::from(a.0) * u128::from(b.1.max(1));
    let rhs = u128::from(b.0) * u128::from(a.1.max(1));
    lhs.cmp(&rhs)
}

/// The position of the chosen peer among `peers()` (called twice: the best ratio, then the
/// turn among equals), or `None` when no peer is usable. Updates the current weights of the
/// equals as smooth weighted round robin does.
pub fn pick<C: Candidate, I: Iterator<Item = C>>(peers: impl Fn() -> I) -> Option<usize> {
    let mut best: Option<(u64, u64)> = None;
    let mut best_at = 0usize;
    let mut equals = 0usize;
    for (i, p) in peers().enumerate() {
        if !p.usable() {
            continue;
        }
        let here = (p.conns(), p.weight());
        match best.map(|b| fewer(here, b)) {
            None | Some(core::cmp::Ordering::Less) => {
                best = Some(here);
                best_at = i;
                equals = 1;
            }
            Some(core::cmp::Ordering::Equal) => equals += 1,
            Some(core::cmp::Ordering::Greater) => {}
        }
    }
    let best = best?;
    if equals == 1 {
        return Some(best_at);
    }
    let mut total: i64 = 0;
    let mut chosen: Option<(usize, i64)> = None;
    for (i, p) in peers().enumerate() {
        if !p.usable() || fewer((p.conns(), p.weight()), best) != core::cmp::Ordering::Equal {
            continue;
        }
        let w = p.current_weight().saturating_add(p.effective_weight());
        p.set_current_weight(w);
        total = total.saturating_add(p.effective_weight());
        if chosen.map_or(true, |(_, cw)| w > cw) {
            chosen = Some((i, w));
        }
    }
    let (at, _) = chosen?;
    if let Some(p) = peers().nth(at) {
        p.set_current_weight(p.current_weight().saturating_sub(total));
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    struct P {
        usable: bool,
        conns: Cell<u64>,
        weight: u64,
        current: Cell<i64>,
    }

    impl Candidate for &P {
        fn usable(&self) -> bool {
            self.usable
        }
        fn conns(&self) -> u64 {
            self.conns.get()
        }
        fn weight(&self) -> u64 {
            self.weight
        }
        fn effective_weight(&self) -> i64 {
            self.weight as i64
        }
        fn current_weight(&self) -> i64 {
            self.current.get()
        }
        fn set_current_weight(&self, w: i64) {
            self.current.set(w)
        }
    }

    fn peers(spec: &[(bool, u64, u64)]) -> Vec<P> {
        spec.iter()
            .map(|&(usable, conns, weight)| P {
                usable,
                conns: Cell::new(conns),
                weight,
                current: Cell::new(0),
            })
            .collect()
    }

    #[test]
    fn fewest_connections_win() {
        let ps = peers(&[(true, 5, 1), (true, 2, 1), (true, 7, 1)]);
        assert_eq!(pick(|| ps.iter()), Some(1));
        // Weighted: 6 connections on weight 3 are fewer than 3 on weight 1.
        let ps = peers(&[(true, 3, 1), (true, 6, 3)]);
        assert_eq!(pick(|| ps.iter()), Some(1));
        // Unusable peers are skipped, however empty.
        let ps = peers(&[(false, 0, 1), (true, 9, 1), (true, 4, 1)]);
        assert_eq!(pick(|| ps.iter()), Some(2));
        let ps = peers(&[(false, 0, 1), (false, 0, 1)]);
        assert_eq!(pick(|| ps.iter()), None);
        let none: Vec<P> = Vec::new();
        assert_eq!(pick(|| none.iter()), None);
    }

    #[test]
    fn equals_take_turns_by_weight() {
        // All idle: weighted round robin among them, 2:1:1.
        let ps = peers(&[(true, 0, 2), (true, 0, 1), (true, 0, 1), (false, 0, 5)]);
        let mut counts = [0usize; 4];
        for _ in 0..400 {
            let i = pick(|| ps.iter()).unwrap();
            counts[i] += 1;
        }
        assert_eq!(counts, [200, 100, 100, 0]);
    }

    #[test]
    fn new_connections_fill_the_emptiest_peers() {
        // Two peers were emptied (20 and 30 connections closed): new long-lived connections go
        // there until the loads meet, then everywhere in turn.
        let ps = peers(&[(true, 100, 1), (true, 80, 1), (true, 70, 1), (true, 100, 1)]);
        for _ in 0..50 {
            let i = pick(|| ps.iter()).unwrap();
            ps[i].conns.set(ps[i].conns.get() + 1);
        }
        let loads: Vec<u64> = ps.iter().map(|p| p.conns.get()).collect();
        assert_eq!(loads, vec![100, 100, 100, 100]);
        for _ in 0..40 {
            let i = pick(|| ps.iter()).unwrap();
            ps[i].conns.set(ps[i].conns.get() + 1);
        }
        let loads: Vec<u64> = ps.iter().map(|p| p.conns.get()).collect();
        assert_eq!(loads, vec![110, 110, 110, 110]);
    }
}
