//! Where `mailctl` takes its settings from: `--config`, `MAIL_CONNECTOR_CONFIG`, the
//! `MAIL_CONNECTOR_*` variables, or nothing (the `./outbox` folder).

use std::path::PathBuf;

use clap::Args;
use mail_connector::settings::ENV_PREFIX;
use mail_connector::{ConnectorSettings, Error};

#[derive(Args)]
pub(crate) struct ConfigArg {
    /// Settings file (TOML, or JSON when it ends in .json).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// Where the settings came from, said once so the user knows what was used.
pub(crate) fn load_settings(config: &ConfigArg) -> Result<ConnectorSettings, Error> {
    let file = config
        .config
        .clone()
        .or_else(|| std::env::var_os(format!("{ENV_PREFIX}CONFIG")).map(PathBuf::from));
    if let Some(file) = file {
        eprintln!("mailctl: settings from {}", file.display());
        return ConnectorSettings::from_file_with_env(file);
    }
    let has_env = std::env::vars().any(|(k, _)| k.starts_with(ENV_PREFIX));
    if has_env {
        eprintln!("mailctl: settings from {ENV_PREFIX}* environment variables");
        return ConnectorSettings::from_env();
    }
    eprintln!("mailctl: no settings (--config, {ENV_PREFIX}CONFIG) — writing messages to ./outbox");
    let mut settings = ConnectorSettings::default();
    settings.outbox_dir = Some(PathBuf::from("outbox"));
    settings.user_name = Some("mailctl@localhost".to_owned());
    Ok(settings)
}
