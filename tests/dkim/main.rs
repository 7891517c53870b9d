//! Issue 12: DKIM. Messages signed by the SMTP and outbox transports verify against the
//! public key with an independent verifier — Python's dkimpy (`pip install dkimpy pynacl`;
//! `.ci/run` installs it), given the key record directly instead of DNS.

#[path = "../support/mod.rs"]
mod support;

mod helpers;
mod keys;
mod limits;
mod signing;
