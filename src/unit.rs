//! Test root for the module's pure logic: `cargo test` builds this file as its own crate, so
//! the tests never link against nginx symbols (the cdylib itself has `test = false`).

pub mod logic;
