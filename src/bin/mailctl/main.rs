//! `mailctl` — send a test email or check the mail connector's configuration.
//!
//! ```text
//! mailctl send [--config FILE] [--json] --to ADDR... [--cc ADDR]... [--bcc ADDR]...
//!              [--reply-to ADDR] --subject TEXT [--text TEXT] [--html HTML] [--attach PATH]...
//!              [--header "Name: value"]...
//! mailctl send [--config FILE] [--json] --eml FILE [--to ADDR]... [--cc ADDR]... [--bcc ADDR]...
//! mailctl check [--config FILE] [--json]
//! mailctl worker [--config FILE] [--once]
//! mailctl queue [--config FILE] status|list|retry|cancel|purge …
//! mailctl [-v|-vv|-vvv] ...
//! ```
//!
//! With `queue_url` set, `send` enqueues and prints the message id (`--idempotency-key KEY`
//! passes a key), `worker` delivers, and `queue` inspects and operates the queue.
//!
//! Settings come from the TOML (or `.json`) file given with `--config`, else from the file
//! named by `MAIL_CONNECTOR_CONFIG`; `MAIL_CONNECTOR_<KEY>` environment variables override the
//! file's values. With no file but `MAIL_CONNECTOR_<KEY>` variables set, those are used alone.
//! With nothing configured at all, `send` writes messages to `./outbox` as `.eml` files and
//! delivers none, and `check` says so and exits 3.
//!
//! Install it with `cargo install mail-connector --features cli` (or `cargo install --path .
//! --features cli` in a checkout), or run it from a checkout with
//! `cargo run --features cli --bin mailctl -- send --to you@example.org --subject Hello --text Hi`.
//!
//! Output is text for people — coloured only on a terminal and never with `NO_COLOR`, one
//! `error:` line (and a `fix:` line with the remedy) on stderr per failure, and a `mailctl:`
//! note for each setting it names that a `MAIL_CONNECTOR_<KEY>` variable sets — or, with
//! `--json`, one JSON document on stdout: `send` names the transport (`outbox` when the
//! messages were only written to the outbox folder) and lists the messages with their ids and
//! every recipient as delivered, not sent or uncertain; `check` lists its steps, each failed
//! one with its `kind`. Logs go to stderr
//! only with `-v` (info), `-vv` (debug), `-vvv` (trace) or `RUST_LOG`, and never hold secrets;
//! `worker` shows the queue's warnings without them.
//!
//! Exit codes, for scripts (mapped from the library's `Error`, and from a `check` step's
//! `FailureKind`, in `exit.rs` alone): 0 ok; 1 any other failure; 2 usage; 3 invalid or
//! missing settings, a file they name unreadable, the outbox folder unwritable, or the
//! connector disabled; 4
//! authentication or permission refused (the admin must act); 5 temporary: unreachable,
//! timed out or throttled (retry later); 6 partial or uncertain delivery. `check` exits with the code of its worst failed step.

/// `println!` for mailctl's output. A reader that went away (`mailctl queue list | head -1`)
/// no longer panics mailctl: what is left to print is dropped and it ends with the exit code
/// of what it did, as other tools in a pipe do. Any other failure to write (a full disk
/// under `> file`) is said once on stderr, and the exit code still says what was done: an
/// email sent or queued before its output failed must not look failed to a script, which
/// would send it again.
macro_rules! out {
    ($($arg:tt)*) => {
        crate::write_out(format_args!($($arg)*))
    };
}

mod check;
mod config;
mod exit;
mod output;
mod queue;
mod send;

use std::process::ExitCode;

use clap::{ArgAction, ColorChoice, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::check::{CheckArgs, check};
use crate::send::{SendArgs, send};

/// Where settings come from, the outbox fallback, output and logs: shown by `--help`.
const SETTINGS_HELP: &str = "\
Settings (the first source given is used):
  --config FILE           a TOML file, or JSON when its name ends in .json
  MAIL_CONNECTOR_CONFIG   the path of such a file
  MAIL_CONNECTOR_<KEY>    a settings key in capitals: MAIL_CONNECTOR_AUTH_MODE,
                          MAIL_CONNECTOR_USER_NAME, MAIL_CONNECTOR_CLIENT_SECRET,
                          MAIL_CONNECTOR_SMTP_HOST, ... (the keys of the README's settings
                          table); they override the file's values, or stand alone
  (nothing)               send writes each message to ./outbox as an .eml file and
                          delivers none; check says so and exits 3

Output: text, coloured only on a terminal (NO_COLOR turns colour off); --json prints one
JSON document on stdout instead. Logs go to stderr only with -v, -vv, -vvv or RUST_LOG
(e.g. RUST_LOG=mail_connector=debug), and never hold secrets; worker shows the queue's
warnings without them (a database it cannot reach, a lease it lost).";

#[derive(Parser)]
#[command(
    name = "mailctl",
    version,
    about = "Send a test email or check the mail connector's settings"
)]
struct Cli {
    /// Log what the connector does to stderr: -v info, -vv debug, -vvv trace (RUST_LOG, when
    /// set, decides instead).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send one email.
    Send(Box<SendArgs>),
    /// Check the settings and the connection without sending mail.
    Check(CheckArgs),
    /// Deliver queued messages (needs `queue_url`).
    Worker(queue::WorkerArgs),
    /// Inspect and operate the queue (needs `queue_url`).
    Queue(queue::QueueArgs),
}

/// Parses the command line; `--help` and usage errors end the process here (usage: exit 2).
fn parse() -> Cli {
    let help = format!("{SETTINGS_HELP}\n\n{}", exit::EXIT_CODES_HELP);
    let colour = if output::no_color() {
        ColorChoice::Never
    } else {
        ColorChoice::Auto
    };
    let mut command = Cli::command().color(colour).after_help(help.clone());
    for name in ["send", "check", "worker", "queue"] {
        command = command.mut_subcommand(name, |sub| sub.after_help(help.clone()));
    }
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// Logs only when asked for: a failure is reported once, as `error:`, not also as a log line.
/// Without `-v` or `RUST_LOG` only the warnings about what the user asked for are shown,
/// once each on stderr: the settings' own — an unknown `MAIL_CONNECTOR_*` variable, which is
/// ignored and so never becomes an error — and the rendering's, that a prepared message
/// (`send --eml`) goes unsigned although DKIM is configured. `worker`, which runs unattended,
/// shows the queue's warnings too: a database it cannot reach, a lease it lost.
fn init_logs(verbose: u8, worker: bool) {
    use tracing_subscriber::EnvFilter;
    let ansi = output::colour_for(&std::io::stderr());
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::builder().parse_lossy(directives)
        }
        _ => match verbose {
            0 => {
                let mut directives =
                    "mail_connector::settings::env=warn,mail_connector::mime=warn".to_owned();
                if worker {
                    directives.push_str(",mail_connector::queue=warn");
                }
                tracing_subscriber::fmt()
                    .with_env_filter(EnvFilter::new(directives))
                    .without_time()
                    .with_target(false)
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr)
                    .init();
                return;
            }
            1 => EnvFilter::new("mail_connector=info"),
            2 => EnvFilter::new("mail_connector=debug"),
            _ => EnvFilter::new("mail_connector=trace"),
        },
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

/// The exit code of a `worker` or `queue` command, its error printed once with its remedy.
fn finish(result: Result<ExitCode, mail_connector::Error>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            output::Output::new(output::OutputArgs { json: false }).failed(None, &error, None)
        }
    }
}

/// Writes one line of output for [`out!`].
fn write_out(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(error) => {
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                eprintln!(
                    "mailctl: cannot write to standard output ({error}); the output is \
                     incomplete, the exit code still says what was done"
                );
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = parse();
    init_logs(cli.verbose, matches!(cli.command, Command::Worker(_)));
    match cli.command {
        Command::Send(args) => send(*args).await,
        Command::Check(args) => check(args).await,
        Command::Worker(args) => finish(queue::worker(args).await.map(|()| ExitCode::SUCCESS)),
        Command::Queue(args) => finish(queue::queue(args).await),
    }
}
