//! The Credentials provider against a mock Entra ID token endpoint on loopback: the token
//! flows, the cache and its refresh, Entra ID errors, `check`, secrets and cancellation.

#[path = "../support/mod.rs"]
mod support;

mod app_service_identity;
mod cache;
mod cancellation;
mod certificate_expiry;
mod check;
mod clouds;
mod entra_errors;
mod federated;
mod hardening;
mod helpers;
mod identity_outage;
mod identity_refusals;
mod kinds;
mod managed_identity;
mod process_env;
mod refresh;
mod requests;
mod secret_file;
mod secrets;
