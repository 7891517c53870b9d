//! `mailctl check`: check the settings and the connection without sending mail.

use mail_connector::{CheckStatus, Error, MailTransport};

use crate::config::{ConfigArg, load_settings};

pub(crate) async fn check(config: ConfigArg) -> Result<bool, Error> {
    let settings = load_settings(&config)?;
    let transport = settings.build()?;
    println!("using {}", settings.summary());
    let report = transport.check().await?;
    print!("{report}");
    println!("overall: {}", report.status());
    Ok(report.status() != CheckStatus::Failed)
}
