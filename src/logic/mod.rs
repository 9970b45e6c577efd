//! Pure logic of the module: no nginx types, no FFI. Everything here is tested by `cargo test`.
//!
//! - `bytes`: small byte-string helpers (trim, unquote, split, find).
//! - `extract`: key values in request bytes (query scan, cookies, headers, paths, regexes) and
//!   percent-decoding.
//! - `handshake`: which requests are Socket.IO handshakes.
//! - `sniff`: the session id in a handshake response (body forms, `Set-Cookie`).
//! - `prefix`: tagged session ids (`sid_prefix`): tags, query strings, handshake bodies.
//! - `choose`: the precedence list that picks a request's server.
//! - `least_conn`: the `balance=least_conn` rule.
//! - `ring`: the weighted consistent-hash table of device ids.
//! - `servers`: the `server` lines as ring members.
//! - `route`: route labels to servers.
//! - `cookie`: route cookie ids and the `Set-Cookie` value.
//! - `hash`: ring hashes, peer identities, the session digest.
//! - `table`: the session table's layout and operations.
//! - `state_file`: the state file's header and its lock.
//! - `tally`: the request counters per upstream and server, shared by the workers.
//! - `status`: what `socketio_sticky_status` shows, and its formats (JSON, Prometheus, HTML).
//! - `params`: the directive's parameters.
//! - `test_rng`: the tests' deterministic random numbers.

pub mod bytes;
pub mod choose;
pub mod cookie;
pub mod extract;
pub mod handshake;
pub mod hash;
pub mod least_conn;
pub mod params;
pub mod prefix;
pub mod ring;
pub mod route;
pub mod servers;
pub mod sniff;
pub mod state_file;
pub mod status;
pub mod table;
pub mod tally;
#[cfg(test)]
pub mod test_rng;
