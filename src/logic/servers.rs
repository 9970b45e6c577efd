//! An upstream's `server` lines as the device id ring sees them: one ring member per primary
//! server, or per address when a server resolved to several, and the way back from a peer of
//! nginx's list (its `server` string and address) to its member.

use std::collections::HashMap;

use super::ring::{Member, Ring, RingError};

/// A `server` line of the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    /// The server as written (`10.0.0.1:3000`, `app.internal:3000`).
    pub name: Vec<u8>,
    pub weight: u32,
    pub backup: bool,
    /// Its addresses when it resolved to more than one (each is then a member of its own);
    /// empty otherwise.
    pub addrs: Vec<Vec<u8>>,
    /// Its `route=LABEL` (nginx 1.29.6 and later).
    pub route: Option<Vec<u8>>,
}

/// Identity of a ring member: the `server` string as written and, when that server resolved
/// to several addresses, the address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MemberKey {
    server: Vec<u8>,
    addr: Option<Vec<u8>>,
}

/// The ring over the primary servers and the members of each server.
#[derive(Debug)]
pub struct Placement {
    pub ring: Ring,
    /// Member indices per identity (several for repeated `server` lines).
    members: HashMap<MemberKey, Vec<usize>>,
}

impl Placement {
    /// The ring of the primary servers of `lines`.
    pub fn build(lines: &[ServerLine]) -> Result<Placement, RingError> {
        let mut keys: Vec<MemberKey> = Vec::new();
        let mut ring_members: Vec<Member> = Vec::new();
        for s in lines.iter().filter(|s| !s.backup) {
            let weight = s.weight.max(1);
            if s.addrs.is_empty() {
                ring_members.push(Member {
                    identity: s.name.clone(),
                    weight,
                });
                keys.push(MemberKey {
                    server: s.name.clone(),
                    addr: None,
                });
            }
            for addr in &s.addrs {
                let mut identity = s.name.clone();
                identity.push(b'/');
                identity.extend_from_slice(addr);
                ring_members.push(Member { identity, weight });
                keys.push(MemberKey {
                    server: s.name.clone(),
                    addr: Some(addr.clone()),
                });
            }
        }
        let ring = Ring::build(&ring_members)?;
        let mut members: HashMap<MemberKey, Vec<usize>> = HashMap::new();
        for (i, k) in keys.into_iter().enumerate() {
            members.entry(k).or_default().push(i);
        }
        Ok(Placement { ring, members })
    }

    /// The members a peer of nginx's list may be: those of its address when its server has
    /// one member per address, else those of its server.
    pub fn members_of(&self, server: &[u8], addr: &[u8]) -> &[usize] {
        let key = MemberKey {
            server: server.to_vec(),
            addr: Some(addr.to_vec()),
        };
        if let Some(m) = self.members.get(&key) {
            return m;
        }
        let key = MemberKey {
            server: key.server,
            addr: None,
        };
        self.members.get(&key).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, addrs: &[&str]) -> ServerLine {
        ServerLine {
            name: name.as_bytes().to_vec(),
            weight: 1,
            backup: false,
            addrs: addrs.iter().map(|a| a.as_bytes().to_vec()).collect(),
            route: None,
        }
    }

    #[test]
    fn members_per_server_and_per_address() {
        let mut backup = line("10.0.0.9:1", &[]);
        backup.backup = true;
        let p = Placement::build(&[
            line("10.0.0.1:1", &[]),
            line("app:1", &["10.0.1.1:1", "10.0.1.2:1"]),
            backup,
            line("10.0.0.1:1", &[]),
        ])
        .unwrap();
        assert_eq!(p.ring.members(), 4);
        assert_eq!(p.members_of(b"10.0.0.1:1", b"10.0.0.1:1"), &[0, 3]);
        assert_eq!(p.members_of(b"app:1", b"10.0.1.2:1"), &[2]);
        assert_eq!(p.members_of(b"app:1", b"10.0.1.3:1"), &[] as &[usize]);
        assert!(p.members_of(b"10.0.0.9:1", b"10.0.0.9:1").is_empty());
    }

    #[test]
    fn no_primary_server() {
        let mut b = line("10.0.0.9:1", &[]);
        b.backup = true;
        assert!(Placement::build(&[b]).is_err());
    }
}
