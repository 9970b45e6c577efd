//! `extract::scan_query` (one pass over a query string, 16 bytes per step) against
//! `extract::query_arg` per name and a plain byte loop for the `eio`/`sid`/`percent` flags;
//! `handshake::handshake_shape` and `extract::socketio09_sid` against naive references.
//!
//! Input: a count of names (0..=10, so more than `MAX_ARGS` sometimes), each name as a length
//! byte and its bytes (lengths up to 20, around the 16-byte fast path), a path, then the query
//! string (the rest).
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use socketio_sticky_fuzz::logic::extract::{
    query_arg, scan_query, socketio09_sid, ArgNames, QueryScan, MAX_ARGS,
};
use socketio_sticky_fuzz::logic::handshake::{handshake_shape, Kind};
use socketio_sticky_fuzz::naive;

/// Names that appear in real configurations, so that the fuzzer meets them without guessing.
const NAMES: [&[u8]; 8] = [
    b"sid",
    b"device_id",
    b"EIO",
    b"t",
    b"transport",
    b"a_sixteen_bytes_",
    b"fifteen_bytes__",
    b"S",
];

fn name<'a>(u: &mut Unstructured<'a>) -> arbitrary::Result<&'a [u8]> {
    let sel: u8 = u.arbitrary()?;
    if sel < 96 {
        return Ok(NAMES[usize::from(sel) % NAMES.len()]);
    }
    let len = usize::from(u.arbitrary::<u8>()? % 21);
    u.bytes(len)
}

/// The handshake rule as documented (`handshake::handshake_kind`).
fn naive_shape(eio: bool, sid: bool, uri: &[u8]) -> Option<Kind> {
    if eio {
        return if sid { None } else { Some(Kind::EngineIo) };
    }
    let path = match uri.iter().position(|&c| c == b'?') {
        Some(i) => &uri[..i],
        None => uri,
    };
    if !path.ends_with(b"/1/") {
        return None;
    }
    let resource = &path[..path.len() - 3];
    resource
        .split(|&c| c == b'/')
        .any(|s| !s.is_empty())
        .then_some(Kind::Legacy09)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(count) = u.arbitrary::<u8>() else {
        return;
    };
    let mut names: Vec<&[u8]> = Vec::new();
    for _ in 0..count % 11 {
        match name(&mut u) {
            Ok(n) => names.push(n),
            Err(_) => return,
        }
    }
    let Ok(uri_len) = u.arbitrary::<u8>() else {
        return;
    };
    let Ok(uri) = u.bytes(usize::from(uri_len % 48).min(u.len())) else {
        return;
    };
    let args = u.take_rest();

    let prepared = ArgNames::new(&names);
    let mut scan = QueryScan::default();
    scan_query(args, &prepared, &mut scan);

    // Every wanted name (up to MAX_ARGS) gets what query_arg gives, at the same place.
    for (i, slot) in scan.values.iter().enumerate() {
        match names.get(i) {
            Some(n) if i < MAX_ARGS => {
                let want = query_arg(args, n);
                assert_eq!(
                    naive::span(args, *slot),
                    naive::span(args, want),
                    "scan_query and query_arg differ for name {n:?} in {args:?}"
                );
                // And query_arg is what its documentation says.
                assert_eq!(
                    want,
                    naive::query_arg(args, n),
                    "query_arg({args:?}, {n:?})"
                );
            }
            _ => assert_eq!(*slot, None, "slot {i} has no name but a value"),
        }
    }

    // The flags against a plain byte loop over the `&`-separated pairs.
    let pairs = || args.split(|&c| c == b'&');
    let eio = pairs().any(|p| p.starts_with(b"EIO="));
    let sid = pairs().any(|p| p.starts_with(b"sid=") && p.len() > 4);
    let percent = args.contains(&b'%');
    assert_eq!(scan.eio, eio, "eio flag of {args:?}");
    assert_eq!(scan.sid, sid, "sid flag of {args:?}");
    assert_eq!(scan.percent, percent, "percent flag of {args:?}");

    // The flags do not depend on the names looked for.
    let mut plain = QueryScan::default();
    scan_query(args, &ArgNames::default(), &mut plain);
    assert_eq!((plain.eio, plain.sid, plain.percent), (eio, sid, percent));
    assert!(plain.values.iter().all(Option::is_none));

    // Handshake shape from those flags.
    assert_eq!(
        handshake_shape(scan.eio, scan.sid, uri),
        naive_shape(eio, sid, uri),
        "handshake_shape for {args:?} {uri:?}"
    );

    // The Socket.IO 0.9 path sid, in place.
    for path in [uri, args] {
        assert_eq!(
            naive::span(path, socketio09_sid(path)),
            naive::span(path, naive::socketio09_sid(path)),
            "socketio09_sid({path:?})"
        );
    }
});
