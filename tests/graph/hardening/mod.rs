//! The Graph transport under attack and under faults (issue 8): redirects, oversized bodies,
//! echoed tokens, absurd builder values, throttling, cancellation, revoked tokens, refused
//! TLS certificates and a login host that never answers.

mod faults;
mod helpers;
mod hostile_servers;
