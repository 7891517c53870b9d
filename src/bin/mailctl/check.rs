//! `mailctl check`: check the settings and the connection without sending mail.

use std::process::ExitCode;

use clap::Args;
use mail_connector::MailTransport;

use crate::config::{ConfigArg, is_configured, load_settings};
use crate::output::{Output, OutputArgs};

#[derive(Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) async fn check(args: CheckArgs) -> ExitCode {
    let out = Output::new(args.output);
    // With nothing configured, `send` writes to ./outbox, so a check would pass while no
    // mail is ever delivered: say so, and fail.
    if !is_configured(&args.config) {
        return out.not_configured(
            "nothing is configured (no --config, no MAIL_CONNECTOR_CONFIG, no \
             MAIL_CONNECTOR_* variable): `mailctl send` would only write messages to ./outbox \
             as .eml files, and deliver none",
            "pass --config FILE, set MAIL_CONNECTOR_CONFIG to a settings file, or set \
             MAIL_CONNECTOR_<KEY> variables (see `mailctl --help`)",
        );
    }
    let settings = match load_settings(&args.config) {
        Ok(settings) => settings,
        Err(error) => return out.failed(None, &error, None),
    };
    let transport = match settings.build() {
        Ok(transport) => transport,
        Err(error) => return out.failed(None, &error, None),
    };
    match transport.check().await {
        Ok(report) => out.check(&settings.summary(), &report),
        Err(error) => out.failed(None, &error, None),
    }
}
