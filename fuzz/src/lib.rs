//! Shared code of the fuzz targets: the module's pure logic (`src/logic`, compiled once here
//! for every target, exactly as the module compiles it) and small, deliberately naive
//! reference implementations that the targets compare the optimised code with.

#[path = "../../src/logic/mod.rs"]
pub mod logic;

/// Naive references: written for obviousness, never for speed.
pub mod naive {
    /// The value of an ASCII hex digit (either case).
    pub fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }

    /// Percent-decoding as documented for `extract::percent_decode`: `%XY` with two hex digits
    /// is one byte, every other byte (also a lone `%`, and `+`) is kept.
    pub fn percent_decode(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'%' && i + 2 < raw.len() {
                if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
            }
            out.push(raw[i]);
            i += 1;
        }
        out
    }

    /// Every byte as `%XY` (upper or lower case digits, chosen by `upper`).
    pub fn percent_encode_all(raw: &[u8], upper: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(raw.len() * 3);
        for &b in raw {
            let s = if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            };
            out.extend_from_slice(s.as_bytes());
        }
        out
    }

    fn is_ws(c: u8) -> bool {
        c == b' ' || c == b'\t'
    }

    /// `s` without leading and trailing spaces and tabs.
    pub fn trim(mut s: &[u8]) -> &[u8] {
        while let [first, rest @ ..] = s {
            if !is_ws(*first) {
                break;
            }
            s = rest;
        }
        while let [rest @ .., last] = s {
            if !is_ws(*last) {
                break;
            }
            s = rest;
        }
        s
    }

    /// `s` without one pair of surrounding double quotes (needs two bytes at least).
    pub fn unquote(s: &[u8]) -> &[u8] {
        if s.len() >= 2 && s[0] == b'"' && s[s.len() - 1] == b'"' {
            &s[1..s.len() - 1]
        } else {
            s
        }
    }

    pub fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
        let i = s.iter().position(|&c| c == sep)?;
        Some((&s[..i], &s[i + 1..]))
    }

    pub fn eq_ci(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.to_ascii_lowercase() == y.to_ascii_lowercase())
    }

    /// `Cookie` header lookup as documented for `extract::cookie`.
    pub fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        if name.is_empty() {
            return None;
        }
        for pair in header.split(|&c| c == b';') {
            let Some((k, v)) = split_once(pair, b'=') else {
                continue;
            };
            if !eq_ci(trim(k), name) {
                continue;
            }
            let v = unquote(trim(v));
            if !v.is_empty() {
                return Some(v);
            }
        }
        None
    }

    /// `Set-Cookie` lookup as documented for `sniff::set_cookie`.
    pub fn set_cookie<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        if name.is_empty() {
            return None;
        }
        let pair = match value.iter().position(|&c| c == b';') {
            Some(i) => &value[..i],
            None => value,
        };
        let (k, v) = split_once(pair, b'=')?;
        if trim(k) != name {
            return None;
        }
        let v = unquote(trim(v));
        // Longer values are no session id (`extract::MAX_KEY_LEN`).
        (!v.is_empty() && v.len() <= 256).then_some(v)
    }

    /// The first non-empty value of query argument `name` (case-insensitive), pairs split on
    /// `&`, as documented for `extract::query_arg`.
    pub fn query_arg<'a>(args: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        if name.is_empty() {
            return None;
        }
        for pair in args.split(|&c| c == b'&') {
            if let Some((k, v)) = split_once(pair, b'=') {
                if !v.is_empty() && eq_ci(k, name) {
                    return Some(v);
                }
            }
        }
        None
    }

    /// The 0.9 path sid as documented for `extract::socketio09_sid`.
    pub fn socketio09_sid(uri: &[u8]) -> Option<&[u8]> {
        let segs: Vec<&[u8]> = uri.split(|&c| c == b'/').collect();
        for i in 0..segs.len() {
            if segs[i] != b"1" || i + 2 >= segs.len() {
                continue;
            }
            let (transport, sid) = (segs[i + 1], segs[i + 2]);
            let is_transport = !transport.is_empty()
                && transport
                    .iter()
                    .all(|c| c.is_ascii_lowercase() || *c == b'-');
            if is_transport && !sid.is_empty() {
                return Some(sid);
            }
        }
        None
    }

    /// Whether `sub` is a sub-slice of `whole` (same memory), for "returned in place" checks.
    pub fn within(whole: &[u8], sub: &[u8]) -> bool {
        let (w, s) = (whole.as_ptr() as usize, sub.as_ptr() as usize);
        s >= w && s + sub.len() <= w + whole.len()
    }

    /// Where a sub-slice starts in `whole` and how long it is.
    pub fn span(whole: &[u8], sub: Option<&[u8]>) -> Option<(usize, usize)> {
        sub.map(|s| {
            assert!(within(whole, s), "not a sub-slice of its input");
            (s.as_ptr() as usize - whole.as_ptr() as usize, s.len())
        })
    }
}

/// A table block laid out as the module lays it out in shared memory (`zone.rs`): one 8-byte
/// aligned allocation of `Layout::total` bytes, carved into the header, the bucket heads, the
/// entries, the slots and the tally records at the offsets of `table::layout`.
pub mod block {
    use crate::logic::table::{Entry, Header, Layout, Parts, Slot};
    use crate::logic::tally::Record;

    pub struct Block {
        mem: Vec<u64>,
        pub layout: Layout,
    }

    impl Block {
        /// A zeroed block of the layout.
        pub fn new(layout: Layout) -> Block {
            Block {
                mem: vec![0u64; layout.total.div_ceil(8)],
                layout,
            }
        }

        /// The block's bytes (to fill with fuzz bytes).
        pub fn bytes_mut(&mut self) -> &mut [u8] {
            let total = self.layout.total;
            // SAFETY: `mem` holds at least `total` bytes; u8 has no alignment or validity
            // requirements.
            unsafe { core::slice::from_raw_parts_mut(self.mem.as_mut_ptr().cast::<u8>(), total) }
        }

        /// The table's parts and the records, as `zone.rs::parts` makes them.
        pub fn parts(&mut self) -> (Parts<'_>, &[Record]) {
            use core::mem::size_of;
            let l = self.layout;
            assert!(l.buckets_offset >= size_of::<Header>());
            assert!(l.buckets_offset + 4 * l.capacity <= l.entries_offset);
            assert!(l.entries_offset % 8 == 0);
            assert!(l.entries_offset + size_of::<Entry>() * l.capacity <= l.slots_offset);
            assert!(l.slots_offset % 8 == 0);
            assert!(l.slots_offset + size_of::<Slot>() * l.nslots <= l.records_offset);
            assert!(l.records_offset % 8 == 0);
            assert!(l.records_offset + size_of::<Record>() * l.nrecords <= l.total);
            assert!(l.total <= 8 * self.mem.len());
            let base = self.mem.as_mut_ptr().cast::<u8>();
            // SAFETY: checked just above: the parts are disjoint, inside the allocation and
            // aligned (the allocation is 8-byte aligned); any bytes are valid values of these
            // plain integer and atomic types.
            unsafe {
                let hdr = &mut *base.cast::<Header>();
                let buckets = core::slice::from_raw_parts_mut(
                    base.add(l.buckets_offset).cast::<u32>(),
                    l.capacity,
                );
                let entries = core::slice::from_raw_parts_mut(
                    base.add(l.entries_offset).cast::<Entry>(),
                    l.capacity,
                );
                let slots = core::slice::from_raw_parts_mut(
                    base.add(l.slots_offset).cast::<Slot>(),
                    l.nslots,
                );
                let records = core::slice::from_raw_parts(
                    base.add(l.records_offset).cast::<Record>(),
                    l.nrecords,
                );
                (
                    Parts {
                        hdr,
                        buckets,
                        entries,
                        slots,
                    },
                    records,
                )
            }
        }
    }
}
