//! Settings from environment variables: `MAIL_CONNECTOR_<KEY>` for each key, typed by the
//! key (text, secret, boolean, number); an empty variable is unset.
//!
//! `mailctl` shows this module's warnings (an unknown variable) without `-v`, by its path:
//! moving them elsewhere means changing its log filter too (`tests/mailctl/cli.rs` checks).

use super::suggest::closest_key;
use super::validate::problem;
use crate::error::{Error, Result};

/// The prefix of the environment variables read by
/// [`ConnectorSettings::from_env`](super::ConnectorSettings::from_env).
pub const ENV_PREFIX: &str = "MAIL_CONNECTOR_";

/// The kind of value a settings key holds, for reading it from an environment variable.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Text,
    Bool,
    /// A whole number up to this maximum.
    Number(u64),
    /// Text that is a secret: kept as given but for a line break at its end (from a mounted
    /// secret file), and never quoted in an error.
    Secret,
}

/// Every settings key, in the order of the settings table.
pub(super) const KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("auth_mode", Kind::Text),
    ("transport", Kind::Text),
    ("user_name", Kind::Text),
    ("oauth_client_id", Kind::Text),
    ("client_secret", Kind::Secret),
    ("tenant_id", Kind::Text),
    ("client_certificate_file", Kind::Text),
    ("client_private_key_file", Kind::Text),
    ("oauth_credential", Kind::Text),
    ("client_secret_file", Kind::Text),
    ("managed_identity_client_id", Kind::Text),
    ("managed_identity_endpoint", Kind::Text),
    ("federated_token_file", Kind::Text),
    ("oauth_scope", Kind::Text),
    ("client_secret_expires", Kind::Text),
    ("password", Kind::Secret),
    ("use_ssl", Kind::Bool),
    ("smtp_host", Kind::Text),
    ("smtp_port", Kind::Number(u16::MAX as u64)),
    ("smtp_tls", Kind::Text),
    ("smtp_allow_plaintext_credentials_dangerous", Kind::Bool),
    ("recipient_limit", Kind::Number(u32::MAX as u64)),
    ("cloud", Kind::Text),
    ("authority_host", Kind::Text),
    ("graph_endpoint", Kind::Text),
    ("tls_ca_file", Kind::Text),
    ("outbox_dir", Kind::Text),
    ("save_to_sent_items", Kind::Bool),
    ("allow_send_as", Kind::Bool),
    ("dkim_domain", Kind::Text),
    ("dkim_selector", Kind::Text),
    ("dkim_private_key_file", Kind::Text),
    ("queue_url", Kind::Secret),
    ("queue_max_attempts", Kind::Number(u32::MAX as u64)),
    ("queue_max_in_flight", Kind::Number(u32::MAX as u64)),
    ("queue_rate_per_minute", Kind::Number(u32::MAX as u64)),
    ("queue_retention_days", Kind::Number(u32::MAX as u64)),
];

/// Environment variables with the prefix that are not settings keys but are allowed.
const OTHER_ENV: &[&str] = &["CONFIG"];

/// This process's `MAIL_CONNECTOR_*` variables. `std::env::vars` would panic on any variable
/// that is not Unicode, even one that is none of ours; those are skipped, and one of ours
/// that is not Unicode is an error naming it.
pub(super) fn process_env() -> Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    let mut problems = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else {
            continue;
        };
        match value.into_string() {
            Ok(value) => vars.push((name.to_owned(), value)),
            Err(_) => problem(
                &mut problems,
                name,
                format!("`{name}` is not valid Unicode; set it to UTF-8 text"),
            ),
        }
    }
    if problems.is_empty() {
        Ok(vars)
    } else {
        Err(Error::InvalidSettings { problems })
    }
}

/// Adds the value of each `MAIL_CONNECTOR_<KEY>` variable to `map`, typed by its key;
/// unknown keys are warned about and skipped, empty ones are unset.
pub(super) fn env_overlay<K: AsRef<str>, V: AsRef<str>>(
    map: &mut serde_json::Map<String, serde_json::Value>,
    vars: impl IntoIterator<Item = (K, V)>,
) -> Result<()> {
    let mut problems = Vec::new();
    for (name, value) in vars {
        let (name, value) = (name.as_ref(), value.as_ref());
        let Some(suffix) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if OTHER_ENV.contains(&suffix) {
            continue;
        }
        let key = suffix.to_ascii_lowercase();
        let Some(&(key, kind)) = KEYS.iter().find(|(k, _)| *k == key) else {
            // Not fatal: a variable of another version, or meant for another tool, must not
            // stop a service at start-up. The name only: its value may be a secret.
            match closest_key(&key) {
                Some(near) => tracing::warn!(
                    variable = name,
                    "`{name}` is not a mail connector setting and is ignored; did you mean \
                     `{ENV_PREFIX}{}`?",
                    near.to_ascii_uppercase()
                ),
                None => tracing::warn!(
                    variable = name,
                    "`{name}` is not a mail connector setting and is ignored"
                ),
            }
            continue;
        };
        let trimmed = value.trim();
        // Empty or blank is unset: what `KEY=${UNSET}` in a compose file or a manifest
        // leaves behind must neither fail a number nor wipe the file's value.
        if trimmed.is_empty() {
            continue;
        }
        let parsed = match kind {
            Kind::Text => Some(serde_json::Value::String(trimmed.to_owned())),
            Kind::Secret => Some(serde_json::Value::String(
                value.trim_end_matches(['\r', '\n']).to_owned(),
            )),
            Kind::Bool => parse_bool(trimmed).map(serde_json::Value::Bool),
            Kind::Number(max) => trimmed
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .map(serde_json::Value::from),
        };
        match parsed {
            Some(parsed) => {
                map.insert(key.to_owned(), parsed);
            }
            // The value is not quoted: a secret set in the wrong variable would be shown.
            None => problem(
                &mut problems,
                key,
                format!(
                    "`{name}` must be {}; its value ({} characters, not shown in case it is a \
                     secret set in the wrong variable) is not",
                    match kind {
                        Kind::Bool => "true or false (also yes/no, on/off, 1/0)".to_owned(),
                        Kind::Number(max) => format!("a whole number from 0 to {max}"),
                        Kind::Text | Kind::Secret => "text".to_owned(),
                    },
                    trimmed.chars().count()
                ),
            ),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidSettings { problems })
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
