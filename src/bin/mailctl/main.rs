//! `mailctl` — send a test email or check the mail connector's configuration.
//!
//! ```text
//! mailctl send [--config FILE] --to ADDR... [--cc ADDR]... [--bcc ADDR]... [--reply-to ADDR]
//!              --subject TEXT [--text TEXT] [--html HTML] [--attach PATH]...
//! mailctl check [--config FILE]
//! mailctl worker [--config FILE] [--once]
//! mailctl queue [--config FILE] status|list|retry|cancel|purge …
//! ```
//!
//! With `queue_url` set, `send` enqueues and prints the message id (`--idempotency-key KEY`
//! passes a key), `worker` delivers, and `queue` inspects and operates the queue.
//!
//! Settings come from the TOML (or `.json`) file given with `--config`, else from the file
//! named by `MAIL_CONNECTOR_CONFIG`; `MAIL_CONNECTOR_<KEY>` environment variables override the
//! file's values. With no file but `MAIL_CONNECTOR_<KEY>` variables set, those are used alone.
//! With nothing configured at all, messages are written to `./outbox` as `.eml` files.
//!
//! Install it with `cargo install mail-connector --features cli` (or `cargo install --path .
//! --features cli` in a checkout), or run it from a checkout with
//! `cargo run --features cli --bin mailctl -- send --to you@example.org --subject Hello --text Hi`.
//! Exit code 0 on success; otherwise one line with the error and one with its remedy on
//! stderr, and exit code 1. Set `RUST_LOG=mail_connector=debug` for logs (never secrets).

mod check;
mod config;
mod queue;
mod send;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mail_connector::Error;

use crate::check::check;
use crate::config::ConfigArg;
use crate::send::{SendArgs, send};

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
    /// Deliver queued messages (needs `queue_url`).
    Worker(queue::WorkerArgs),
    /// Inspect and operate the queue (needs `queue_url`).
    Queue(queue::QueueArgs),
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
        Command::Worker(args) => match queue::worker(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        },
        Command::Queue(args) => match queue::queue(args).await {
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
