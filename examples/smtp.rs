//! Send one email by SMTP with basic authentication, configured the way the admin screen is.
//!
//! Copy this into your application and adapt the settings. To try it against Exchange Online
//! (SMTP AUTH must be enabled for the mailbox: `Set-CASMailbox -Identity <mailbox>
//! -SmtpClientAuthenticationDisabled $false`):
//!
//! ```text
//! MAIL_CONNECTOR_USER_NAME=no-reply@contoso.com \
//! MAIL_CONNECTOR_PASSWORD='the mailbox password' \
//! cargo run --example smtp -- ann@example.org
//! ```
//!
//! Optional: `MAIL_CONNECTOR_SMTP_HOST` (default `smtp.office365.com`),
//! `MAIL_CONNECTOR_SMTP_PORT` (default 587, STARTTLS), `MAIL_CONNECTOR_TLS_CA_FILE`, and
//! `RUST_LOG=mail_connector=debug` for the send's tracing span.
//!
//! Copied into a service, it needs, beside `mail-connector` and `tokio`, the log output's
//! crate: `tracing-subscriber = { version = "0.3", features = ["env-filter"] }` (or drop the
//! first lines of `main` and log as the service does).

use std::process::ExitCode;

use mail_connector::{ConnectorSettings, Email, Error, MailTransport, SmtpTransport};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let Some(to) = std::env::args().nth(1) else {
        eprintln!("usage: cargo run --example smtp -- RECIPIENT");
        return ExitCode::from(2);
    };
    match run(&to).await {
        Ok(code) => code,
        Err(error) => {
            // Every error of the crate says what went wrong and, mostly, what to do about it:
            // show both to the admin (neither ever holds the password).
            eprintln!("error: {error}");
            if let Some(remedy) = error.remedy() {
                eprintln!("fix: {remedy}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Builds the transport from the environment's settings, then checks and sends.
async fn run(to: &str) -> Result<ExitCode, Error> {
    // The admin screen: Authentication Mode = Basic, Use SSL on (STARTTLS on 587).
    let mut settings = ConnectorSettings::from_env()?;
    settings.auth_mode = Some(mail_connector::AuthMode::Basic);
    settings.validate()?;
    println!("{}", settings.summary());

    // `settings.build()` gives the same transport behind `Arc<dyn MailTransport>`, split by
    // `recipient_limit` and queued with `queue_url` (the builder does neither); the builder
    // lets you set limits first, and the concrete type counts connections. Disabled
    // (`MAIL_CONNECTOR_ENABLED=false`) or with `outbox_dir` set, the settings make no
    // SMTP transport: `smtp_builder` says so.
    let transport = settings.smtp_builder()?.max_concurrency(3).build()?;
    let outcome = check_and_send(&transport, to).await;
    // A service closes its transport when it shuts down, whatever the last send did: sends
    // in flight end first, and the server is told goodbye rather than left with dropped
    // connections.
    transport.close().await;
    outcome
}

/// Checks the SMTP set-up, then sends; a failed check is reported by the check itself.
async fn check_and_send(transport: &SmtpTransport, to: &str) -> Result<ExitCode, Error> {
    let report = transport.check().await?;
    print!("{report}");
    if !report.is_ok() {
        eprintln!("the SMTP check failed; see the remedies above");
        return Ok(ExitCode::FAILURE);
    }

    let email = Email::builder()
        .to(to)
        .subject("Test from mail-connector")
        .text("If you can read this, SMTP submission works.")
        .html("<p>If you can read this, <b>SMTP submission</b> works.</p>")
        .build()?;
    let report = transport.send(&email).await?;
    println!("sent: {:?}", report.messages[0].id);
    Ok(ExitCode::SUCCESS)
}
