//! Build a transport from settings and send one email — the pattern a service uses.
//!
//! Run: `cargo run --example send_with_settings [SETTINGS.toml]`
//!
//! Without an argument the settings below write to `./outbox`; pass a settings file (for
//! example one with `auth_mode = "oauth"` and your app registration) to send for real.
//! `MAIL_CONNECTOR_<KEY>` environment variables override the file, which is a good place for
//! the client secret.

use std::process::ExitCode;

use mail_connector::{ConnectorSettings, Delivery, Email, Error, MailTransport};

const DEVELOPMENT_SETTINGS: &str = r#"
    # Staging/development: write .eml files instead of sending.
    outbox_dir = "outbox"
    user_name = "no-reply@example.org"
    recipient_limit = 50
"#;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Ask the error what to do rather than matching on it — except for a partial
            // send, whose recipient lists say exactly whom to retry.
            if let Error::PartialDelivery {
                delivered,
                not_sent,
                refused_permanently,
                uncertain,
                ..
            } = &error
            {
                eprintln!(
                    "sent in part: {} recipient(s) got it, {} did not ({} refused for good: \
                     do not resend to them), {} uncertain",
                    delivered.recipients().count(),
                    not_sent.len(),
                    refused_permanently.len(),
                    uncertain.len()
                );
            }
            eprintln!("error: {error}");
            if let Some(remedy) = error.remedy() {
                eprintln!("fix: {remedy}");
            }
            if error.delivery() == Delivery::Uncertain {
                // The server may have accepted it: resending may deliver it twice.
                eprintln!("(delivery uncertain: check before sending it again)");
            } else if error.is_transient() {
                eprintln!("(nothing was sent; retrying later may work)");
            }
            ExitCode::FAILURE
        }
    }
}

/// Loads the settings (a bad file is an error with its fix, like any other), builds the
/// transport and sends.
async fn run() -> Result<(), Error> {
    let settings = match std::env::args_os().nth(1) {
        Some(path) => ConnectorSettings::from_file_with_env(path)?,
        None => ConnectorSettings::from_toml_str(DEVELOPMENT_SETTINGS)?,
    };
    // Build once at start-up and share it: a transport keeps its token cache and connections.
    let transport = settings.build()?;
    println!("using {}", settings.summary());

    let email = Email::builder()
        .to("Ann Example <ann@example.org>")
        .subject("Your export is ready")
        .text("Your export is ready to download.")
        .html("<p>Your export is <b>ready</b> to download.</p>")
        .build()?;

    let report = transport.send(&email).await?;
    // With `outbox_dir` set, nothing was sent: the message is a file to look at.
    let done = match &settings.outbox_dir {
        Some(dir) => format!("written to {}", dir.display()),
        None => "sent".to_owned(),
    };
    for message in report.messages {
        println!(
            "{done} for {} recipient(s): {:?}",
            message.recipients.len(),
            message.id
        );
    }
    Ok(())
}
