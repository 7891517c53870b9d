//! End-to-end runs of the `mailctl` example binary, which `cargo test` builds.

#[path = "../support/mod.rs"]
mod support;

mod cli;
#[cfg(feature = "graph")]
mod credential_kinds;
#[cfg(feature = "graph")]
mod graph;
mod helpers;
#[cfg(feature = "smtp")]
mod smtp;
