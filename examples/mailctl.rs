//! `mailctl` — send a test email or check the mail connector's configuration.
//!
//! ```text
//! mailctl send [--config FILE] --to ADDR... [--cc ADDR]... [--bcc ADDR]... [--reply-to ADDR]
//!              --subject TEXT [--text TEXT] [--html HTML] [--attach PATH]...
//! mailctl check [--config FILE]
//! ```
//!
//! Settings come from the TOML (or `.json`) file given with `--config`, else from the file
//! named by `MAIL_CONNECTOR_CONFIG`; `MAIL_CONNECTOR_<KEY>` environment variables override the
//! file's values. With no file but `MAIL_CONNECTOR_<KEY>` variables set, those are used alone.
//! With nothing configured at all, messages are written to `./outbox` as `.eml` files.
//!
//! Run it with `cargo run --example mailctl -- send --to you@example.org --subject Hello --text Hi`.
//! Exit code 0 on success; otherwise one line with the error and one with its remedy on
//! stderr, and exit code 1. Set `RUST_LOG=mail_connector=debug` for logs (never secrets).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mail_connector::settings::ENV_PREFIX;
use mail_connector::{Attachment, CheckStatus, ConnectorSettings, Email, Error, MailTransport};

#[derive(Parser)]
#[command(
    name = "mailctl",
    version,
    about = "Send a test email or check the mail connector's settings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send one email.
    Send(SendArgs),
    /// Check the settings and the connection without sending mail.
    Check(ConfigArg),
}

#[derive(Args)]
struct ConfigArg {
    /// Settings file (TOML, or JSON when it ends in .json).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct SendArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Recipient, `ann@example.org` or `"Ann Example <ann@example.org>"`; repeat for more.
    #[arg(long, value_name = "ADDR", required = true, num_args = 1..)]
    to: Vec<String>,
    /// Cc recipient; repeat for more.
    #[arg(long, value_name = "ADDR")]
    cc: Vec<String>,
    /// Bcc recipient; repeat for more.
    #[arg(long, value_name = "ADDR")]
    bcc: Vec<String>,
    /// Reply-To address.
    #[arg(long, value_name = "ADDR")]
    reply_to: Option<String>,
    /// Subject line.
    #[arg(long)]
    subject: String,
    /// Plain-text body.
    #[arg(long)]
    text: Option<String>,
    /// HTML body.
    #[arg(long)]
    html: Option<String>,
    /// File to attach; repeat for more.
    #[arg(long, value_name = "PATH")]
    attach: Vec<PathBuf>,
}

/// Where the settings came from, said once so the user knows what was used.
fn load_settings(config: &ConfigArg) -> Result<ConnectorSettings, Error> {
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

fn build_email(args: &SendArgs) -> Result<Email, Error> {
    let mut builder = Email::builder().subject(&args.subject);
    for to in &args.to {
        builder = builder.to(to);
    }
    for cc in &args.cc {
        builder = builder.cc(cc);
    }
    for bcc in &args.bcc {
        builder = builder.bcc(bcc);
    }
    if let Some(reply_to) = &args.reply_to {
        builder = builder.reply_to(reply_to);
    }
    if let Some(text) = &args.text {
        builder = builder.text(text);
    }
    if let Some(html) = &args.html {
        builder = builder.html(html);
    }
    for path in &args.attach {
        builder = builder.attachment(Attachment::from_path(path)?);
    }
    builder.build()
}

async fn send(args: SendArgs) -> Result<(), Error> {
    let settings = load_settings(&args.config)?;
    let email = build_email(&args)?;
    let transport = settings.build()?;
    eprintln!("mailctl: using {}", settings.summary());
    let report = transport.send(&email).await?;
    for message in &report.messages {
        let recipients: Vec<String> = message.recipients.iter().map(ToString::to_string).collect();
        println!(
            "sent to {} [{}]",
            recipients.join(", "),
            message.id.as_deref().unwrap_or("no id returned")
        );
    }
    Ok(())
}

async fn check(config: ConfigArg) -> Result<bool, Error> {
    let settings = load_settings(&config)?;
    let transport = settings.build()?;
    println!("using {}", settings.summary());
    let report = transport.check().await?;
    print!("{report}");
    println!("overall: {}", report.status());
    Ok(report.status() != CheckStatus::Failed)
}

fn fail(error: &Error) -> ExitCode {
    eprintln!("error: {error}");
    if let Some(remedy) = error.remedy() {
        eprintln!("fix: {remedy}");
    }
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Send(args) => match send(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        },
        Command::Check(config) => match check(config).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(error) => fail(&error),
        },
    }
}
