//! SmtpTransport against a real SMTP server on loopback (tests/support/smtp_server.rs) and
//! against hostile and faulty servers (tests/support/hostile_smtp.rs).

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod check;
mod close;
mod data_cut;
mod duplicates;
mod faults;
mod hardening;
mod helpers;
mod idle_reaper;
mod idn;
mod ipv6;
mod mixed_refusals;
mod pool;
mod prepared;
mod random_emails;
mod recipients;
mod refusal_kinds;
mod refusal_replies;
mod replies;
mod sasl_challenges;
mod secrets;
mod sender;
mod tls;
mod tls_mismatch;
mod token_claims;
