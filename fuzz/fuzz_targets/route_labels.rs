//! `route::Routes::build` with arbitrary `server` lines (names, `backup`, `route=` labels)
//! and `socketio_sticky_route` labels, then `Routes::target` and `Routes::server_target`
//! with arbitrary labels, against a reference written from the documentation:
//!
//! - build never panics; it fails exactly when a documented `RouteError` applies (the first
//!   one met: `server` lines in order, then the route lines in order), with a non-empty
//!   message;
//! - on success, `servers` are the distinct primary names in order; the target of every label
//!   (of a `server` line or a `socketio_sticky_route` line) is the index of its server, a
//!   primary server; without any label, `1`..`99999` name lines by position (backup lines
//!   and positions past the end name nothing); any other label names nothing.
//!
//! Route lines with one label twice are refused by the directive (`directive.rs`); the input
//! makes them unique unless its flag says otherwise, and then a repeated label's target only
//! has to be one of its servers.
#![no_main]

use std::collections::HashMap;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use socketio_sticky_fuzz::logic::route::{Label, Line, RouteError, Routes};

const SERVERS: [&[u8]; 5] = [
    b"10.0.0.1:3000",
    b"10.0.0.2:3000",
    b"app.internal:3000",
    b"unix:/tmp/s.sock",
    b"\xff\xfe",
];
const LABELS: [&[u8]; 8] = [b"b1", b"b2", b"1", b"2", b"01", b"x", b"", b"B1"];

fn pick(u: &mut Unstructured, pool: &[&[u8]]) -> arbitrary::Result<Vec<u8>> {
    let sel: u8 = u.arbitrary()?;
    if sel < 224 {
        return Ok(pool[usize::from(sel) % pool.len()].to_vec());
    }
    let len = usize::from(u.arbitrary::<u8>()? % 8);
    Ok(u.bytes(len.min(u.len()))?.to_vec())
}

fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What `build` must do, from the documentation of `RouteError` and `Routes`.
fn reference(lines: &[Line], labels: &[Label]) -> Result<(), RouteError> {
    // The first `server` line, in order, whose label is on a backup server or was given to
    // another server by an earlier line (the earlier line's server is the first one).
    let line_error = lines.iter().enumerate().find_map(|(i, l)| {
        let label = l.label.as_deref()?;
        if l.backup {
            return Some(RouteError::BackupLine {
                label: shown(label),
                server: shown(&l.name),
            });
        }
        let earlier = lines[..i]
            .iter()
            .find(|e| e.label.as_deref() == Some(label))?;
        (earlier.name != l.name).then(|| RouteError::TwoServers {
            label: shown(label),
            first: shown(&earlier.name),
            second: shown(&l.name),
        })
    });
    // Then the first route line whose label a server line has too, or whose server is no
    // primary server.
    let label_error = || {
        labels.iter().find_map(|l| {
            if let Some(line) = lines
                .iter()
                .find(|x| x.label.as_deref() == Some(l.label.as_slice()))
            {
                return Some(RouteError::BothWays {
                    label: shown(&l.label),
                    server: shown(&line.name),
                });
            }
            let named = lines.iter().filter(|x| x.name == l.server);
            match named.clone().any(|x| !x.backup) {
                true => None,
                false if named.count() > 0 => Some(RouteError::Backup {
                    label: shown(&l.label),
                    server: shown(&l.server),
                }),
                false => Some(RouteError::NoServer {
                    label: shown(&l.label),
                    server: shown(&l.server),
                }),
            }
        })
    };
    match line_error.or_else(label_error) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    let mut lines = Vec::new();
    for _ in 0..u.arbitrary::<u8>()? % 11 {
        let name = pick(u, &SERVERS)?;
        let backup = u.arbitrary::<u8>()? % 4 == 0;
        let label = if u.arbitrary::<u8>()? % 3 == 0 {
            Some(pick(u, &LABELS)?)
        } else {
            None
        };
        lines.push(Line {
            name,
            backup,
            label,
        });
    }
    let unique = u.arbitrary::<u8>()? < 224;
    let mut labels: Vec<Label> = Vec::new();
    for _ in 0..u.arbitrary::<u8>()? % 7 {
        let label = pick(u, &LABELS)?;
        let server = pick(u, &SERVERS)?;
        if unique && labels.iter().any(|l| l.label == label) {
            continue;
        }
        labels.push(Label { label, server });
    }
    let mut probes: Vec<Vec<u8>> = LABELS.iter().map(|l| l.to_vec()).collect();
    for n in 0..13 {
        probes.push(format!("{n}").into_bytes());
    }
    probes.extend([b"00001".to_vec(), b"000001".to_vec(), b"99999".to_vec()]);
    for _ in 0..u.arbitrary::<u8>()? % 4 {
        let len = usize::from(u.arbitrary::<u8>()? % 8);
        probes.push(u.bytes(len.min(u.len()))?.to_vec());
    }

    let built = Routes::build(&lines, &labels);
    let expected = reference(&lines, &labels);
    let r = match (built, expected) {
        (Err(e), Err(want)) => {
            assert!(!e.to_string().is_empty());
            assert_eq!(e, want, "{lines:?} {labels:?}");
            assert_eq!(
                e.of_route_line(),
                matches!(
                    e,
                    RouteError::NoServer { .. }
                        | RouteError::Backup { .. }
                        | RouteError::BothWays { .. }
                )
            );
            return Ok(());
        }
        (Ok(r), Ok(())) => r,
        (got, want) => panic!("build gave {got:?}, expected {want:?} for {lines:?} {labels:?}"),
    };

    // Distinct primary names, in order.
    let mut servers: Vec<Vec<u8>> = Vec::new();
    for l in lines.iter().filter(|l| !l.backup) {
        if !servers.contains(&l.name) {
            servers.push(l.name.clone());
        }
    }
    assert_eq!(r.servers, servers);
    let index = |name: &[u8]| servers.iter().position(|s| s == name).map(|i| i as u32);
    for l in &lines {
        assert_eq!(r.server_target(&l.name), index(&l.name));
    }
    for p in &probes {
        assert_eq!(r.server_target(p), index(p));
    }

    // Every label and the servers it may name.
    let mut named: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
    for l in &lines {
        if let Some(label) = &l.label {
            let t = index(&l.name).expect("a labelled line is primary");
            named.entry(label.clone()).or_default().push(t);
        }
    }
    for l in &labels {
        let t = index(&l.server).expect("a route line names a primary server");
        named.entry(l.label.clone()).or_default().push(t);
    }
    for l in &labels {
        let t = r.target(&l.label);
        let t = t.unwrap_or_else(|| panic!("label {:?} names nothing", l.label));
        assert!((t as usize) < servers.len());
        let primary = &servers[t as usize];
        assert!(lines.iter().any(|x| !x.backup && &x.name == primary));
        if unique {
            assert_eq!(Some(t), index(&l.server), "label {:?}", l.label);
        }
    }
    for p in probes.iter().chain(named.keys()) {
        let got = r.target(p);
        if let Some(t) = got {
            assert!(
                (t as usize) < servers.len(),
                "target {t} of {p:?} is no server"
            );
        }
        if named.is_empty() {
            // Positions: 1 to 5 digits, 1-based, primary lines only.
            let pos = (!p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
                .then(|| core::str::from_utf8(p).unwrap().parse::<usize>().unwrap());
            let want = pos
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| lines.get(i))
                .filter(|l| !l.backup)
                .and_then(|l| index(&l.name));
            assert_eq!(got, want, "positional label {p:?}");
        } else {
            match named.get(p) {
                Some(ts) => assert!(
                    got.is_some_and(|t| ts.contains(&t)),
                    "label {p:?}: {got:?} not in {ts:?}"
                ),
                None => assert_eq!(got, None, "label {p:?} names a server though unknown"),
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
