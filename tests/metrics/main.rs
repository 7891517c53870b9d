//! Issue 13: the metrics (feature `metrics`) and the span fields of a send, asserted with a
//! recorder of their own per test against real loopback sends: Graph through httpmock,
//! SMTP through the fixture server, the outbox into a temporary folder, and a token endpoint
//! that refuses.
//!
//! Each test installs a `DebuggingRecorder` for its own thread only and runs its sends on a
//! current-thread runtime there, so tests running in parallel never see each other's counts.

#[path = "../support/mod.rs"]
mod support;

mod record;
mod spans;
