//! The outbox transport: real files, parsed back as RFC 5322 messages, and sends cancelled
//! at any point.

#[path = "../support/mod.rs"]
mod support;

mod cancel;
mod files;
