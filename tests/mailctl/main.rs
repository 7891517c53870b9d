//! End-to-end runs of the `mailctl` binary, which `cargo test --features cli` builds.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod credential_kinds;
mod environment;
mod exit_codes;
mod graph;
mod helpers;
mod outbox;
mod output;
mod prepared;
mod queue;
mod refusals;
mod smtp;
