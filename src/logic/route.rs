//! Route labels carried in session ids (`route=REGEX`): from a label to a server.
//!
//! Labels name `server` lines either by their 1-based position in the `upstream` block (`1`
//! is the first line, backup lines count too but are never routed to), or, when the upstream
//! has labels of its own (`socketio_sticky_route LABEL SERVER;` lines, or `server ...
//! route=LABEL` since nginx 1.29.6), by those labels only. A target is an index
//! into the upstream's distinct primary server names ([`Routes::servers`]); repeated lines
//! of one server share it.

use std::collections::HashMap;

/// A `server` line of the upstream, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The server as written (`10.0.0.1:3000`, `app.internal:3000`).
    pub name: Vec<u8>,
    pub backup: bool,
    /// Its `route=LABEL` parameter (nginx 1.29.6 and later).
    pub label: Option<Vec<u8>>,
}

/// An explicit label: `socketio_sticky_route LABEL SERVER;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub label: Vec<u8>,
    pub server: Vec<u8>,
}

/// Why explicit labels do not fit the upstream's servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// A `socketio_sticky_route` label's server is not a `server` line of the upstream.
    NoServer { label: String, server: String },
    /// A `socketio_sticky_route` label's server is a `backup` line.
    Backup { label: String, server: String },
    /// A `socketio_sticky_route` label that a `server` line has as its `route=` too.
    BothWays { label: String, server: String },
    /// A `backup` server line with `route=`.
    BackupLine { label: String, server: String },
    /// Two servers with the same `route=`.
    TwoServers {
        label: String,
        first: String,
        second: String,
    },
}

impl RouteError {
    /// The label at fault.
    pub fn label(&self) -> &str {
        match self {
            RouteError::NoServer { label, .. }
            | RouteError::Backup { label, .. }
            | RouteError::BothWays { label, .. }
            | RouteError::BackupLine { label, .. }
            | RouteError::TwoServers { label, .. } => label,
        }
    }

    /// Whether a `socketio_sticky_route` line is at fault (else the `server` lines are).
    pub fn of_route_line(&self) -> bool {
        matches!(
            self,
            RouteError::NoServer { .. } | RouteError::Backup { .. } | RouteError::BothWays { .. }
        )
    }
}

impl core::fmt::Display for RouteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RouteError::NoServer { label, server } => write!(
                f,
                "label \"{label}\" names \"{server}\", which is not a server of this upstream"
            ),
            RouteError::Backup { label, server } => write!(
                f,
                "label \"{label}\" names the backup server \"{server}\" (routes go to primary \
                 servers only)"
            ),
            RouteError::BothWays { label, server } => write!(
                f,
                "label \"{label}\" that server \"{server}\" has as its \"route=\" too"
            ),
            RouteError::BackupLine { label, server } => write!(
                f,
                "route label \"{label}\" on the backup server \"{server}\" (routes go to primary \
                 servers only)"
            ),
            RouteError::TwoServers {
                label,
                first,
                second,
            } => write!(
                f,
                "route label \"{label}\" on two servers, \"{first}\" and \"{second}\""
            ),
        }
    }
}

/// Labels to targets, resolved once per configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// Distinct names of the primary servers; targets index this.
    pub servers: Vec<Vec<u8>>,
    /// Each name's index in `servers`.
    index: HashMap<Vec<u8>, u32>,
    /// Per `server` line, in order: its target (none for backup lines).
    positions: Vec<Option<u32>>,
    /// Explicit labels, sorted by label; when non-empty, positions are not used.
    labels: Vec<(Vec<u8>, u32)>,
}

impl Routes {
    /// Resolves the upstream's lines and explicit labels.
    pub fn build(lines: &[Line], labels: &[Label]) -> Result<Routes, RouteError> {
        let mut servers: Vec<Vec<u8>> = Vec::new();
        let mut index: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut positions = Vec::with_capacity(lines.len());
        for l in lines {
            if l.backup {
                positions.push(None);
                continue;
            }
            let next = u32::try_from(servers.len()).ok();
            let t = match (index.get(&l.name), next) {
                (Some(&i), _) => Some(i),
                (None, Some(i)) => {
                    index.insert(l.name.clone(), i);
                    servers.push(l.name.clone());
                    Some(i)
                }
                (None, None) => None,
            };
            positions.push(t);
        }
        let shown = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut explicit: Vec<(Vec<u8>, u32)> = Vec::with_capacity(labels.len());
        // `server ... route=LABEL`: each label names one server (repeated lines of one server
        // may repeat it).
        let mut by_line: HashMap<&[u8], &[u8]> = HashMap::new();
        for l in lines {
            let Some(label) = l.label.as_deref() else {
                continue;
            };
            if l.backup {
                return Err(RouteError::BackupLine {
                    label: shown(label),
                    server: shown(&l.name),
                });
            }
            match by_line.insert(label, &l.name) {
                Some(other) if other != l.name.as_slice() => {
                    return Err(RouteError::TwoServers {
                        label: shown(label),
                        first: shown(other),
                        second: shown(&l.name),
                    })
                }
                Some(_) => {}
                None => {
                    if let Some(&t) = index.get(&l.name) {
                        explicit.push((label.to_vec(), t));
                    }
                }
            }
        }
        for l in labels {
            if let Some(server) = by_line.get(l.label.as_slice()) {
                return Err(RouteError::BothWays {
                    label: shown(&l.label),
                    server: shown(server),
                });
            }
            match index.get(&l.server) {
                Some(&t) => explicit.push((l.label.clone(), t)),
                None if lines.iter().any(|x| x.name == l.server) => {
                    return Err(RouteError::Backup {
                        label: shown(&l.label),
                        server: shown(&l.server),
                    })
                }
                None => {
                    return Err(RouteError::NoServer {
                        label: shown(&l.label),
                        server: shown(&l.server),
                    })
                }
            }
        }
        explicit.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Routes {
            servers,
            index,
            positions,
            labels: explicit,
        })
    }

    /// The target of a label, if it names a primary server.
    pub fn target(&self, label: &[u8]) -> Option<u32> {
        if !self.labels.is_empty() {
            let i = self
                .labels
                .binary_search_by(|e| e.0.as_slice().cmp(label))
                .ok()?;
            return self.labels.get(i).map(|e| e.1);
        }
        let n = position(label)?;
        self.positions.get(n.checked_sub(1)?).copied().flatten()
    }

    /// The target of a server name (as written in its line), if it is a primary server.
    pub fn server_target(&self, name: &[u8]) -> Option<u32> {
        self.index.get(name).copied()
    }
}

/// A positional label: 1 to 5 decimal digits (leading zeros allowed).
fn position(label: &[u8]) -> Option<usize> {
    if label.is_empty() || label.len() > 5 || !label.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        label
            .iter()
            .fold(0usize, |acc, &d| acc * 10 + usize::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::extract::CaptureRegex;

    fn line(name: &str, backup: bool) -> Line {
        Line {
            label: None,
            name: name.as_bytes().to_vec(),
            backup,
        }
    }

    fn lbl(label: &str, server: &str) -> Label {
        Label {
            label: label.as_bytes().to_vec(),
            server: server.as_bytes().to_vec(),
        }
    }

    #[test]
    fn positional() {
        let lines = [
            line("10.0.0.1:3000", false),
            line("10.0.0.2:3000", false),
            line("10.0.0.9:3000", true),
            line("10.0.0.1:3000", false),
        ];
        let r = Routes::build(&lines, &[]).unwrap();
        assert_eq!(r.servers.len(), 2);
        assert_eq!(r.target(b"1"), Some(0));
        assert_eq!(r.target(b"2"), Some(1));
        assert_eq!(r.target(b"02"), Some(1));
        // A backup line, past the end, zero, not a number: no server.
        assert_eq!(r.target(b"3"), None);
        assert_eq!(r.target(b"5"), None);
        assert_eq!(r.target(b"0"), None);
        assert_eq!(r.target(b"b1"), None);
        assert_eq!(r.target(b""), None);
        assert_eq!(r.target(b"999999999999999999999"), None);
        // A repeated line is the same server.
        assert_eq!(r.target(b"4"), Some(0));
        assert_eq!(r.server_target(b"10.0.0.2:3000"), Some(1));
        assert_eq!(r.server_target(b"10.0.0.9:3000"), None);
    }

    #[test]
    fn explicit_labels_replace_positions() {
        let lines = [line("10.0.0.1:3000", false), line("10.0.0.2:3000", false)];
        let r = Routes::build(
            &lines,
            &[
                lbl("b2", "10.0.0.2:3000"),
                lbl("b1", "10.0.0.1:3000"),
                lbl("old-1", "10.0.0.1:3000"),
            ],
        )
        .unwrap();
        assert_eq!(r.target(b"b1"), Some(0));
        assert_eq!(r.target(b"old-1"), Some(0));
        assert_eq!(r.target(b"b2"), Some(1));
        assert_eq!(r.target(b"1"), None);
        assert_eq!(r.target(b"b3"), None);
        assert_eq!(r.target(b"B1"), None);
    }

    #[test]
    fn explicit_label_errors() {
        let lines = [line("10.0.0.1:3000", false), line("10.0.0.9:3000", true)];
        assert_eq!(
            Routes::build(&lines, &[lbl("b2", "10.0.0.2:3000")]),
            Err(RouteError::NoServer {
                label: "b2".into(),
                server: "10.0.0.2:3000".into()
            })
        );
        let e = Routes::build(&lines, &[lbl("b9", "10.0.0.9:3000")]).unwrap_err();
        assert!(matches!(e, RouteError::Backup { .. }));
        assert!(e.to_string().contains("backup server \"10.0.0.9:3000\""));
    }

    #[test]
    fn labels_from_sids() {
        let label = |re: &str, sid: &[u8]| {
            let re = regex::bytes::RegexBuilder::new(re)
                .unicode(false)
                .build()
                .unwrap();
            CaptureRegex::new(re).first_capture(sid).map(<[u8]>::to_vec)
        };
        assert_eq!(label("^(b[0-9]+)-", b"b2-AbCd"), Some(b"b2".to_vec()));
        assert_eq!(label("^(b[0-9]+)-", b"AbCd"), None);
        assert_eq!(label("^(b[0-9]+)-", b"b13-x"), Some(b"b13".to_vec()));
        // The seed's convention: the last character of the sid.
        assert_eq!(label("([0-9])$", b"Xk2Ut0yX1"), Some(b"1".to_vec()));
        assert_eq!(label("([0-9])$", b"Xk2Ut0yXa"), None);
        // An empty capture is no label.
        assert_eq!(label("^(b*)-", b"-x"), None);
    }

    fn labelled(name: &str, label: &str, backup: bool) -> Line {
        Line {
            label: Some(label.as_bytes().to_vec()),
            ..line(name, backup)
        }
    }

    #[test]
    fn labels_of_server_lines() {
        let lines = [
            labelled("10.0.0.1:3000", "b1", false),
            line("10.0.0.2:3000", false),
            labelled("10.0.0.3:3000", "b3", false),
            labelled("10.0.0.1:3000", "b1", false),
        ];
        let r = Routes::build(&lines, &[]).unwrap();
        assert_eq!(r.target(b"b1"), Some(0));
        assert_eq!(r.target(b"b3"), Some(2));
        // Labels of their own: positions no longer count.
        assert_eq!(r.target(b"2"), None);
        // With socketio_sticky_route lines too: both kinds count.
        let r = Routes::build(&lines, &[lbl("b2", "10.0.0.2:3000")]).unwrap();
        assert_eq!(r.target(b"b2"), Some(1));
        assert_eq!(r.target(b"b1"), Some(0));
    }

    #[test]
    fn labels_of_server_lines_that_do_not_fit() {
        let e = Routes::build(
            &[
                labelled("10.0.0.1:3000", "b1", false),
                labelled("10.0.0.2:3000", "b1", false),
            ],
            &[],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "route label \"b1\" on two servers, \"10.0.0.1:3000\" and \"10.0.0.2:3000\""
        );
        assert!(!e.of_route_line());
        let e = Routes::build(&[labelled("10.0.0.9:3000", "b9", true)], &[]).unwrap_err();
        assert!(matches!(e, RouteError::BackupLine { .. }));
        let e = Routes::build(
            &[
                labelled("10.0.0.1:3000", "b1", false),
                line("10.0.0.2:3000", false),
            ],
            &[lbl("b1", "10.0.0.2:3000")],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "label \"b1\" that server \"10.0.0.1:3000\" has as its \"route=\" too"
        );
        assert!(e.of_route_line());
    }
}
