//! The Graph transport against a mock Graph and a mock Entra ID: exact requests, large
//! attachments, throttling, token refresh, at-most-once, errors, `check`, and the transport
//! under attack and under faults.

#[path = "../support/mod.rs"]
mod support;

mod accepted;
mod answer_sizes;
mod check;
mod connections;
mod consent;
mod draft_failures;
mod dropped_sends;
mod dropped_waits;
mod errors;
mod gate;
mod hardening;
mod helpers;
mod large_attachments;
mod mime_draft;
mod mime_form;
mod never_connected;
mod provider_permissions;
mod random_emails;
mod refused_stream;
mod secrets;
mod sending;
mod settings_client;
mod shared_provider;
mod throttling;
mod tokens;
mod upload_answers;
mod upload_resume;
