//! Where `mailctl` takes its settings from: `--config`, `MAIL_CONNECTOR_CONFIG`, the
//! `MAIL_CONNECTOR_*` variables, or nothing (the `./outbox` folder).

use std::path::PathBuf;

use clap::Args;
use mail_connector::settings::ENV_PREFIX;
use mail_connector::{ConnectorSettings, Error};

#[derive(Args)]
pub(crate) struct ConfigArg {
    /// Settings file (TOML, or JSON when it ends in .json).
    // Global: `mailctl queue status --config FILE` as well as `mailctl queue --config FILE
    // status`, where `send` and `check` take it after the command too.
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) config: Option<PathBuf>,
}

/// Where the settings came from, said once so the user knows what was used. With nothing
/// configured, `send` writes to `./outbox` (and `check` says so before it gets here).
pub(crate) fn load_settings(config: &ConfigArg) -> Result<ConnectorSettings, Error> {
    load(config).map(|found| {
        found.unwrap_or_else(|| {
            eprintln!(
                "mailctl: no settings (--config, {ENV_PREFIX}CONFIG) — writing messages to \
                 ./outbox"
            );
            let mut settings = ConnectorSettings::default();
            settings.outbox_dir = Some(PathBuf::from("outbox"));
            settings.user_name = Some("mailctl@localhost".to_owned());
            settings
        })
    })
}

/// As [`load_settings`] for `worker` and `queue`, which have no outbox to fall back on: with
/// nothing configured, the default settings, which name no `queue_url` (the error then
/// says so).
pub(crate) fn load_queue_settings(config: &ConfigArg) -> Result<ConnectorSettings, Error> {
    load(config).map(|found| {
        found.unwrap_or_else(|| {
            eprintln!("mailctl: no settings (--config, {ENV_PREFIX}CONFIG, {ENV_PREFIX}QUEUE_URL)");
            ConnectorSettings::default()
        })
    })
}

/// The settings from the first source given; `None` when none is.
fn load(config: &ConfigArg) -> Result<Option<ConnectorSettings>, Error> {
    let file = config.config.clone().or_else(|| {
        // Empty is unset, as for the settings' own variables.
        std::env::var_os(format!("{ENV_PREFIX}CONFIG"))
            .filter(|path| !path.to_string_lossy().trim().is_empty())
            .map(PathBuf::from)
    });
    if let Some(file) = file {
        eprintln!("mailctl: settings from {}", file.display());
        return ConnectorSettings::from_file_with_env(file).map(Some);
    }
    if has_settings_variables() {
        eprintln!("mailctl: settings from {ENV_PREFIX}* environment variables");
        return ConnectorSettings::from_env().map(Some);
    }
    Ok(None)
}

/// Whether any `MAIL_CONNECTOR_*` variable is set (names that are not Unicode are not ours).
fn has_settings_variables() -> bool {
    std::env::vars_os().any(|(name, value)| {
        name.to_str().is_some_and(|n| n.starts_with(ENV_PREFIX))
            && !value.to_string_lossy().trim().is_empty()
    })
}

/// Whether any settings source is given: `--config`, `MAIL_CONNECTOR_CONFIG` or another
/// `MAIL_CONNECTOR_*` variable. Without one, `send` writes to `./outbox`.
pub(crate) fn is_configured(config: &ConfigArg) -> bool {
    config.config.is_some() || has_settings_variables()
}

/// The settings that `texts` (a failure's message and remedy) name as `` `key` `` and that a
/// `MAIL_CONNECTOR_<KEY>` variable sets, each as (key, variable), once. The variable
/// overrides the settings file, so a fix made in the file alone would not take: the admin
/// is told where the value comes from. Names only, never a value.
pub(crate) fn set_by_environment<'a>(
    texts: impl IntoIterator<Item = &'a str>,
) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    for text in texts {
        for (i, quoted) in text.split('`').enumerate() {
            // Every other piece is inside backticks; a key is lower-case letters and `_`.
            let is_key = i % 2 == 1
                && !quoted.is_empty()
                && quoted.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if !is_key || found.iter().any(|(key, _)| key == quoted) {
                continue;
            }
            let variable = format!("{ENV_PREFIX}{}", quoted.to_ascii_uppercase());
            // Empty or blank is unset, as for the settings themselves.
            if std::env::var_os(&variable).is_some_and(|v| !v.to_string_lossy().trim().is_empty()) {
                found.push((quoted.to_owned(), variable));
            }
        }
    }
    found
}
