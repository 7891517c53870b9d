//! `mailctl worker` and `mailctl queue status|list|retry|cancel|purge`: the durable queue
//! that `queue_url` names. `mailctl send` enqueues through [`enqueue`] when it is set.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use mail_connector::queue::{
    EnqueueOptions, MessageSummary, OpenWait, QueueStats, State, Worker, rfc3339,
};
use mail_connector::{ConnectorSettings, Email, Error};

use crate::config::{ConfigArg, load_queue_settings};
use crate::exit::Exit;
use crate::output::{Output, OutputArgs, clean};

#[derive(Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Deliver everything due now (waiting for retries that fall due within the run), then
    /// exit; without it, run until SIGINT or SIGTERM (then finish deliveries in flight).
    #[arg(long)]
    once: bool,
}

#[derive(Args)]
pub(crate) struct QueueArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Counts per state and per sender mailbox, and the oldest due message.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Messages, one a line, tab-separated: id, state, sender, recipients, attempts, last
    /// error, due at (UTC), fix (`-` when there is none).
    ///
    /// An `uncertain` message may still be in flight for up to one lease (5 minutes by
    /// default) after it became uncertain, when its worker lost the lease mid-send: wait
    /// that long before retrying it.
    List {
        /// Only messages in this state (queued, sending, sent, failed, uncertain, cancelled).
        #[arg(long, value_parser = parse_state)]
        state: Option<State>,
        /// At most this many, oldest first.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Queue uncertain or failed messages again (check first that an uncertain one did not
    /// arrive: it may be delivered twice). An uncertain message is refused for one lease
    /// after its lease ran out, its worker possibly still sending it: the error says how
    /// long to wait.
    Retry {
        /// Message ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Cancel queued messages.
    Cancel {
        /// Message ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Delete messages in a state whose state last changed before a while ago.
    Purge {
        /// The state to purge.
        #[arg(long, value_parser = parse_state)]
        state: State,
        /// How long ago, e.g. `30d`, `12h`, `1.5h`, `90m`, `45s`, `2w`.
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        older_than: Duration,
    },
}

fn parse_state(text: &str) -> Result<State, String> {
    text.parse()
        .map_err(|e: Error| e.remedy().unwrap_or_else(|| e.to_string()))
}

/// A duration as a number (`1.5` too) and one unit: `30d`, `12h`, `1.5h`, `90m`, `45s`, `2w`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    const FORMS: &str = "use a number and one unit of s, m, h, d or w, e.g. 30d, 12h, 1.5h, \
                         90m, 45s, 2w";
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: {FORMS}"))?;
    let seconds: f64 = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        "" => return Err(format!("`{text}` has no unit: {FORMS}")),
        _ => return Err(format!("`{text}` has the unknown unit `{unit}`: {FORMS}")),
    };
    Duration::try_from_secs_f64(number * seconds)
        .map_err(|_| format!("`{text}` is too long a duration: {FORMS}"))
}

/// The settings; the queue commands fail naming `queue_url` when it is not set.
fn queue_settings(config: &ConfigArg) -> Result<ConnectorSettings, Error> {
    load_queue_settings(config)
}

/// `mailctl send` with `queue_url` set: enqueue; the message id.
pub(crate) async fn enqueue(
    settings: &ConnectorSettings,
    email: &Email,
    idempotency_key: Option<String>,
) -> Result<String, Error> {
    // As the library's enqueueing transport: nothing is queued for a connector that is
    // disabled (no worker would deliver it) or whose settings cannot send.
    if !settings.enabled {
        return Err(Error::Disabled);
    }
    settings.validate()?;
    let queue = settings.queue().await?;
    let mut options = EnqueueOptions::new();
    if let Some(key) = idempotency_key {
        options = options.idempotency_key(key);
    }
    let id = queue.enqueue(email, options).await?;
    Ok(id.to_string())
}

/// Completes at SIGINT or SIGTERM. The handlers are installed at the call, not at the
/// first poll, so that a signal while the queue is being opened is not the default one
/// (which would end the process at once).
fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    let mut signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = recv(signals.0.as_mut()) => {}
                () = recv(signals.1.as_mut()) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        eprintln!("mailctl: stopping: finishing deliveries in flight");
    }
}

pub(crate) async fn worker(args: WorkerArgs) -> Result<(), Error> {
    let settings = queue_settings(&args.config)?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // Refused first when disabled or invalid: the summary describes only settings in use.
    let worker = if args.once {
        settings.queue_worker().await?
    } else {
        match open_worker(&settings, shutdown.as_mut()).await? {
            Some(worker) => worker,
            None => return Ok(()),
        }
    };
    eprintln!("mailctl: delivering with {}", settings.summary());
    let report = if args.once {
        worker.run_once().await?
    } else {
        worker.run(shutdown).await?
    };
    eprintln!(
        "mailctl: worker done: {} sent, {} queued again, {} failed, {} uncertain, {} partly sent",
        report.sent, report.retried, report.failed, report.uncertain, report.partial
    );
    if report.held > 0 {
        eprintln!(
            "mailctl: {} held until an admin fixes their error (`mailctl queue list --state \
             queued` shows it and the fix); their sender mailbox waits with them",
            report.held
        );
    }
    Ok(())
}

/// The worker, once its queue opens. A service's workers often start with the database or
/// before it (a fleet restarting, a failover): while the database cannot be reached (a
/// transient error) this says so on stderr and tries again, as [`OpenWait::forever`] waits,
/// rather than exit and leave the mail to whatever restarts it; a mistake in the settings
/// (a `queue_url` that is not PostgreSQL, a wrong password) ends it at once. `None` when
/// told to stop meanwhile. (`--once` does not wait: its caller runs it again later.)
async fn open_worker(
    settings: &ConnectorSettings,
    shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<Option<Worker>, Error> {
    let wait = OpenWait::forever().on_wait(|error, wait| {
        eprintln!(
            "mailctl: the queue cannot be opened yet; trying again in {:.1} s: {error}",
            wait.as_secs_f64()
        );
        if let Some(remedy) = error.remedy() {
            eprintln!("mailctl: fix: {remedy}");
        }
    });
    tokio::select! {
        opened = settings.queue_worker_waiting(&wait) => opened.map(Some),
        () = shutdown => Ok(None),
    }
}

/// Runs a `queue` command. `retry` and `cancel` print their own errors (one per id that
/// failed) and give the exit code; any other error is returned for the caller to print.
pub(crate) async fn queue(args: QueueArgs) -> Result<ExitCode, Error> {
    let mut settings = queue_settings(&args.config)?;
    // An operator lists, retries, cancels and purges while the connector is disabled too:
    // none of that sends. (`settings.queue()`, the handle an app enqueues with, refuses while
    // disabled, so that nothing is queued then.)
    settings.enabled = true;
    let queue = settings.queue().await?;
    match args.command {
        QueueCommand::Status { json } => print_status(&queue.stats().await?, json),
        QueueCommand::List { state, limit, json } => {
            print_list(&queue.list(state, limit).await?, json);
        }
        QueueCommand::Retry { ids } => {
            return Ok(each(&ids, "queued again", |id| {
                let queue = queue.clone();
                async move { queue.retry(&id).await }
            })
            .await);
        }
        QueueCommand::Cancel { ids } => {
            return Ok(each(&ids, "cancelled", |id| {
                let queue = queue.clone();
                async move { queue.cancel(&id).await }
            })
            .await);
        }
        QueueCommand::Purge { state, older_than } => {
            let purged = queue.purge(state, older_than).await?;
            out!("purged {purged} {state} message(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies `action` to every id, reporting each as it ends, in the order the ids were given:
/// an error with its fix, as `mailctl` prints every error. The exit code is the first
/// error's (0 when none failed).
async fn each<F, Fut>(ids: &[String], done: &str, action: F) -> ExitCode
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let out = Output::new(OutputArgs { json: false });
    let mut first = None;
    for id in ids {
        match action(id.clone()).await {
            Ok(()) => out!("{id} {done}"),
            Err(error) => {
                out.error(&error);
                first.get_or_insert(Exit::of(&error));
            }
        }
    }
    first.map_or(ExitCode::SUCCESS, ExitCode::from)
}

fn print_status(stats: &QueueStats, json: bool) {
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(stats).unwrap_or_default()
        );
        return;
    }
    for (state, count) in &stats.states {
        out!("{state:<10} {count}");
    }
    for mailbox in &stats.mailboxes {
        let counts: Vec<String> = mailbox
            .states
            .iter()
            .map(|(state, count)| format!("{state} {count}"))
            .collect();
        let paused = mailbox
            .paused_until
            .map(|until| format!(" (paused until {})", rfc3339(until)))
            .unwrap_or_default();
        out!("mailbox {}: {}{paused}", mailbox.mailbox, counts.join(", "));
    }
    match &stats.oldest_due {
        Some(oldest) => out!("oldest due: {} since {}", oldest.id, rfc3339(oldest.due_at)),
        None => out!("oldest due: none"),
    }
}

fn print_list(messages: &[MessageSummary], json: bool) {
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(messages).unwrap_or_default()
        );
        return;
    }
    // One line per message, its fields apart by tabs: a tab or line break in a field (a
    // server's multi-line reply in the error) is a space.
    let field = |text: Option<&str>| text.map_or_else(|| "-".to_owned(), clean);
    for m in messages {
        out!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            m.id,
            m.state,
            field(Some(&m.mailbox)),
            field(Some(&m.recipients)),
            m.attempts,
            field(m.last_error.as_deref()),
            rfc3339(m.due_at),
            field(m.remedy.as_deref()),
        );
    }
}
