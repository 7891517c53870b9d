//! Settings: TOML, JSON and environment; per-mode validation; the disabled connector; errors
//! that never quote a value.

#[path = "../support/mod.rs"]
mod support;

mod building;
mod compose;
mod host_paths;
mod loading;
mod process_env;
mod redacted;
mod secrets;
mod validation;
