//! Pure logic of the module: no nginx types, no FFI. Everything here is tested by `cargo test`.

pub mod cookie;
pub mod extract;
pub mod hash;
pub mod least_conn;
pub mod params;
pub mod ring;
pub mod route;
pub mod sniff;
pub mod state;
pub mod table;
