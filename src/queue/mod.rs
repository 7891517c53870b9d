//! The durable mail queue: enqueue with the caller's data, deliver by workers within each
//! mailbox's limits. SQLite embedded (feature `queue-sqlite`), PostgreSQL for fleets
//! (feature `queue-postgres`).
//!
//! A request handler cannot wait half an hour for Exchange Online to accept a burst of
//! notifications, a restart must not lose what was waiting, and several replicas of one
//! service must share one mailbox's limits rather than each respect them alone. So the app
//! [enqueues](Queue::enqueue) — the whole email, attachments included, is stored at once and
//! an id returned — and [`Worker`]s deliver it through any
//! [`MailTransport`](crate::MailTransport), recording what happened.
//!
//! ```
//! # #[cfg(feature = "queue-sqlite")]
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use mail_connector::queue::{EnqueueOptions, Queue, State, Worker};
//! use mail_connector::{Email, StubTransport};
//!
//! let dir = tempfile::tempdir()?;
//! let queue = Queue::open(&format!("sqlite://{}", dir.path().join("mail.db").display())).await?;
//! let email = Email::builder().to("ann@example.org").subject("Your export is ready").build()?;
//! let id = queue.enqueue(&email, EnqueueOptions::new().idempotency_key("export-42")).await?;
//! // The same key again stores nothing and returns the first id.
//! assert_eq!(queue.enqueue(&email, EnqueueOptions::new().idempotency_key("export-42")).await?, id);
//!
//! let stub = StubTransport::new();
//! Worker::new(&queue, stub.clone()).run_once().await?;
//! assert_eq!(stub.sent().len(), 1);
//! assert_eq!(queue.stats().await?.states[&State::Sent], 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## States and transitions
//!
//! ```text
//!            enqueue
//!               │
//!               ▼        not due yet / transient failure (backoff, Retry-After)
//!   ┌───────► queued ◄─────────────────────────────────┐
//!   │           │  │ cancel                             │
//!   │    claim  │  └────────► cancelled                 │
//!   │ (lease)   ▼                                       │
//!   │        sending ───────────────────────────────────┘
//!   │           │
//!   │           ├──► sent       (the transport's report kept; body purged after retention)
//!   │           ├──► failed     (permanent, or out of attempts/age: error and remedy kept)
//!   │           └──► uncertain  (may have been delivered: the transport said so, or the
//!   │                            worker died or lost its lease while sending)
//!   │                  │
//!   └──────────────────┘ retry (an operator: uncertain or failed → queued)
//! ```
//!
//! - **queued**: due now or at its not-before time. **sending**: leased by one worker; the
//!   lease is extended while the send runs. A lease that runs out while `sending` makes the
//!   message `uncertain` — never `queued`. A lease lost while the send still runs (the
//!   worker was stalled past its lease, or could not reach the database) leaves that send
//!   in flight until it ends, within the transport's send deadline (2 minutes by default
//!   for Graph and SMTP: keep the lease, 5 minutes by default, longer than that); the worker
//!   logs an error when it finds its lease gone, and records the send's real outcome over
//!   `uncertain` when it ends. Meanwhile the message keeps its place under the mailbox's
//!   in-flight limit, until that outcome is recorded or for one more lease — the lease of the
//!   worker claiming next, so give every worker the same lease. Before deciding to retry an
//!   `uncertain` message, wait that long: one lease after it became uncertain.
//! - **Recording an outcome**: when the database fails for a moment just after a send (a
//!   failover, a full pool, a busy SQLite file), the worker writes the outcome again, waiting
//!   0.1 s and doubling up to 5 s, for as long as a lease lasts — a delivery known to be sent,
//!   or sent to some recipients only, keeps that record rather than turning `uncertain` when
//!   its lease runs out. Writing again is safe: the lease lets one write through. A worker
//!   stopped meanwhile records the outcome its delivery had decided.
//! - A transient failure that certainly did not deliver ([`Error::is_transient`](crate::Error::is_transient)) goes back
//!   to `queued` with exponential backoff and jitter, never sooner than the error's
//!   [`Retry-After`](crate::Error::retry_after) — and when the server gave one (a 429), the
//!   whole sender mailbox is paused until then, so that its other messages do not burn
//!   their attempts meanwhile; after `max_attempts` attempts, or when the
//!   next attempt would come later than the age limit, it is `failed`.
//! - **Partial delivery** ([`Error::PartialDelivery`](crate::Error::PartialDelivery): an SMTP
//!   server refused some recipients at `RCPT TO` and took the rest, or refused all of
//!   several, or the [recipient limit](crate::RecipientLimit) split the email and a part
//!   failed): the recipients who got it are done (the report is kept, and merged with later
//!   attempts'); those the server refused permanently (a 5xx such as `550 5.1.1` unknown
//!   mailbox) are `failed`, never attempted again, with the server's replies in their error
//!   (`gone@example.org: 550 5.1.1 User unknown; …`, the first three, then how many more);
//!   those not sent otherwise — refused temporarily (a 4xx), or never tried — are retried
//!   as above, when the failure was temporary, left delivery
//!   uncertain, or was only the permanent refusals; those whose delivery is uncertain are
//!   `uncertain`. The message keeps the first of these groups that has recipients (to
//!   retry, uncertain, refused permanently); each other group becomes a message of its own
//!   whose `parent_id` names it, with its own state, error and remedy, and the due time the
//!   message had. When nothing was delivered or left uncertain and every recipient failed
//!   the same way (all refused for now, or all for good, or a first recipient-limit part
//!   that failed as a whole and refused nobody), nothing is split: the message is retried
//!   or failed as a whole, as any other failure, and counted so by the worker.
//!
//! ## Guarantees
//!
//! - **Durable**: [`Queue::enqueue`] returns after the database committed the email; a crash
//!   or restart loses nothing. With PostgreSQL, [`enqueue_in`] commits the email together
//!   with the application's own data, in the application's transaction (the transactional
//!   outbox: see `examples/queue_outbox.rs`).
//! - **A message that was not sent is retried; one that may have been sent is never resent
//!   without an operator** (`mailctl queue retry ID`). Two workers never lease one message.
//! - **Idempotent enqueue**: a second enqueue with the same idempotency key stores nothing
//!   and returns the first id, however many run at once.
//! - **An enqueue whose answer was lost** (the connection broke after the email went to the
//!   database) may have stored it: its error's [`delivery`](crate::Error::delivery) is
//!   [`Uncertain`](crate::Delivery::Uncertain) and it is not transient — unless the email has
//!   an idempotency key, with which enqueueing again is safe (the error is then transient).
//!   [`QueueTransport`]'s `send` enqueues under a key of its own and tries twice more itself.
//! - **Limits across the fleet**: at most [`MailboxLimits::max_in_flight`] deliveries in flight
//!   per sender mailbox and at most [`MailboxLimits::per_window`] started per minute, counted
//!   by the database across every worker and process.
//! - The stored email is limited to [`MAX_STORED_BYTES`] (150 MiB) with its attachments, which
//!   are read at enqueue time: a larger email is refused with [`Error::InvalidMessage`](crate::Error::InvalidMessage).
//!
//! ## Exchange Online's limits and the defaults
//!
//! Exchange Online allows a mailbox **30 messages a minute** and 10,000 recipients a day;
//! Graph allows **4 concurrent requests** per app and mailbox (more get 429
//! `MailboxConcurrency`), and SMTP submission **3 concurrent connections** per mailbox (more
//! get `432 4.3.2`). [`MailboxLimits::graph`] (4 in flight, 30 a minute) and
//! [`MailboxLimits::smtp`] (3, 30) follow them, per sender mailbox: the email's `From`, or
//! [`EnqueueOptions::mailbox`], or the queue's default mailbox. A burst of 1,000 emails
//! from one mailbox therefore takes about 33 minutes — which is why the queue exists.
//!
//! ## Running workers across a fleet
//!
//! Point every replica at one PostgreSQL database (`queue_url = "postgres://…"`) and run
//! [`Worker::run`] (or `mailctl worker`) in as many processes as you like: a claim locks
//! the sender mailbox's row (`FOR UPDATE SKIP LOCKED`) in a short transaction, counts that
//! mailbox's deliveries in flight and in the rate window, then leases one due message
//! (`FOR UPDATE SKIP LOCKED`). Give every worker the same limits and lease. Stop a worker with
//! SIGTERM or SIGINT: it takes no new work and lets in-flight deliveries finish within the
//! grace period; a delivery cut off while sending is marked `uncertain` (one cut off
//! while writing its outcome keeps that outcome). A worker killed outright
//! leaves its messages `sending` until their lease runs out (5 minutes by default), then
//! `uncertain`, still holding their mailbox's places for one more lease. Every time the queue stores — leases, rate windows, attempts, due and retry
//! times, enqueue and update times — is on the PostgreSQL server's clock, so workers whose
//! clocks drift still share one window: a time a worker or the application hands over is
//! stored as the server's now plus its distance from their own now. A retry a worker
//! schedules "in 30 s" is due 30 s after the server's now for every worker, however far
//! that worker's clock is off. `mailctl queue list` shows the times as stored.
//!
//! SQLite serves the workers of one machine: several processes may share one file on a
//! local disk (each claim is a `BEGIN IMMEDIATE` transaction, serialised by SQLite's write
//! lock, and they all read the machine's one clock), but never on a network filesystem,
//! where the write-ahead log is not safe.
//!
//! Retention: [`Worker::with_retention`] drops the bodies and attachments of `sent`
//! messages after a while (7 days by default), keeping the row and its report; rows
//! themselves stay until [`Queue::purge`] (`mailctl queue purge`) deletes them — schedule it
//! for `sent`, `failed` and `cancelled` rows. A purged row's idempotency key no longer holds
//! back a second enqueue with that key. [`Queue::stats`] counts per state and mailbox and names the
//! oldest due message; each delivery attempt runs in a `tracing` span `mail_queue.delivery`
//! with the message id, mailbox and attempt number.
//!
//! [`Error::is_transient`](crate::Error::is_transient): crate::Error::is_transient
//! [`Error::InvalidMessage`](crate::Error::InvalidMessage): crate::Error::InvalidMessage

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::error::Result;
use crate::message::Email;

mod codec;
mod delivery;
mod enqueue;
mod limits;
mod outcome;
#[cfg(feature = "queue-postgres")]
mod postgres;
mod rows;
mod sql;
#[cfg(feature = "queue-sqlite")]
mod sqlite;
mod store;
mod transport;
mod worker;

pub use codec::MAX_STORED_BYTES;
pub(crate) use enqueue::prepare;
pub use enqueue::{EnqueueOptions, MessageId};
pub use limits::MailboxLimits;
#[cfg(feature = "queue-postgres")]
pub use postgres::{PostgresStore, enqueue_in};
#[cfg(feature = "queue-sqlite")]
pub use sqlite::SqliteStore;
/// The database crate the stores are built on, re-exported so that the connection or
/// transaction you pass to [`enqueue_in`] is of the same version.
pub use sqlx;
pub use store::{
    Claim, ClaimRequest, ClaimedMessage, Enqueued, Lease, MailboxStats, MessageSummary, NewMessage,
    OldestDue, Outcome, QueueStats, QueueStore, Remainder, State, rfc3339,
};
pub use transport::QueueTransport;
pub use worker::{Worker, WorkerReport};

/// The mailbox key used when neither the email, the options nor the queue name one.
pub const DEFAULT_MAILBOX: &str = "default";

/// What to do about a message in `state`, which an operator tried to move to `to` (queued:
/// retry; cancelled: cancel) although that does not apply to it.
fn wrong_state_remedy(state: State, to: State) -> &'static str {
    let retrying = to == State::Queued;
    match state {
        State::Sending if retrying => {
            "wait for the delivery to end (`mailctl queue list` shows its state); a stuck \
             `sending` message becomes `uncertain` when its lease runs out"
        }
        State::Sending => "too late to cancel: it is being delivered; its outcome will show",
        State::Queued => "nothing to do: the message is waiting for a worker",
        State::Sent => "nothing to do: the message was delivered (its report is kept)",
        State::Failed | State::Uncertain if retrying => {
            "`mailctl queue retry ID` queues it again (for `uncertain`, check first that it \
             did not arrive)"
        }
        State::Failed | State::Uncertain => {
            "nothing to cancel: a failed or uncertain message is never sent again unless an \
             operator retries it"
        }
        State::Cancelled if retrying => "enqueue the email again to send it",
        State::Cancelled => "nothing to do: it is cancelled already",
    }
}

/// The application's handle on the queue: enqueue, inspect, and operate (retry, cancel,
/// purge). Clones share the store. See the [module page](self).
#[derive(Debug, Clone)]
pub struct Queue {
    store: Arc<dyn QueueStore>,
    default_mailbox: Option<String>,
    // Wakes this process's workers when it enqueues, instead of waiting for their next poll.
    wake: Arc<Notify>,
}

/// A queue URL whose scheme is neither SQLite's nor PostgreSQL's.
const UNKNOWN_SCHEME: &str = "the queue URL must start with `sqlite://` or `postgres://`";
/// A `sqlite://` URL in a build without the SQLite queue.
#[cfg(not(feature = "queue-sqlite"))]
const NO_SQLITE: &str = "this build has no SQLite queue: enable the `queue-sqlite` feature";
/// A `postgres://` URL in a build without the PostgreSQL queue.
#[cfg(not(feature = "queue-postgres"))]
const NO_POSTGRES: &str = "this build has no PostgreSQL queue: enable the `queue-postgres` feature";
/// The queue URLs there are.
const URL_FORMS: &str = "use `sqlite://PATH` (one process) or `postgres://user:password@host/db`";

/// What is wrong with `url` as a queue URL in this build, before it is opened: an unknown
/// scheme, or one whose feature this build lacks. For settings validation; never quotes the
/// URL (it may hold a password).
pub(crate) fn url_problem(url: &str) -> Option<String> {
    match url.split(':').next().unwrap_or_default() {
        #[cfg(feature = "queue-sqlite")]
        "sqlite" => None,
        #[cfg(feature = "queue-postgres")]
        "postgres" | "postgresql" => None,
        #[cfg(not(feature = "queue-sqlite"))]
        "sqlite" => Some(NO_SQLITE.to_owned()),
        #[cfg(not(feature = "queue-postgres"))]
        "postgres" | "postgresql" => Some(NO_POSTGRES.to_owned()),
        _ => Some(format!("{UNKNOWN_SCHEME}: {URL_FORMS}")),
    }
}

impl Queue {
    /// A queue on `store`.
    #[must_use]
    pub fn new(store: impl QueueStore + 'static) -> Self {
        Self::from_store(Arc::new(store))
    }

    /// A queue on a shared store.
    #[must_use]
    pub fn from_store(store: Arc<dyn QueueStore>) -> Self {
        Self {
            store,
            default_mailbox: None,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Opens the queue a URL names: `sqlite://PATH` (created when missing) or
    /// `postgres://user:password@host/database`, applying the embedded migrations.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`](crate::Error::Queue) for another scheme or a database that cannot be opened;
    /// [`Error::NotAvailable`](crate::Error::NotAvailable) when the scheme's feature (`queue-sqlite`, `queue-postgres`)
    /// is not enabled.
    pub async fn open(url: &str) -> Result<Self> {
        // The schemes are those `url_problem` knows: keep the two together.
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            #[cfg(feature = "queue-sqlite")]
            "sqlite" => Ok(Self::new(SqliteStore::open_url(url).await?)),
            #[cfg(feature = "queue-postgres")]
            "postgres" | "postgresql" => Ok(Self::new(PostgresStore::open(url).await?)),
            #[cfg(not(feature = "queue-sqlite"))]
            "sqlite" => Err(crate::Error::NotAvailable {
                transport: "queue-sqlite",
                reason: NO_SQLITE,
            }),
            #[cfg(not(feature = "queue-postgres"))]
            "postgres" | "postgresql" => Err(crate::Error::NotAvailable {
                transport: "queue-postgres",
                reason: NO_POSTGRES,
            }),
            _ => Err(store::queue_error(
                "open the queue",
                UNKNOWN_SCHEME,
                false,
                Some(URL_FORMS),
            )),
        }
    }

    /// The mailbox whose limits apply to emails that name no `From` and no
    /// [`EnqueueOptions::mailbox`] — the transport's own mailbox (`user_name`).
    #[must_use]
    pub fn with_default_mailbox(mut self, mailbox: impl Into<String>) -> Self {
        self.default_mailbox = Some(mailbox.into());
        self
    }

    /// The store under the queue.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn QueueStore> {
        &self.store
    }

    pub(crate) fn default_mailbox(&self) -> Option<&str> {
        self.default_mailbox.as_deref()
    }

    pub(crate) fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }

    /// Stores `email` for delivery and returns its id once the database has committed it.
    /// Attachments made from files are read now.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`](crate::Error::InvalidMessage) for an email over [`MAX_STORED_BYTES`] or a malformed
    /// idempotency key; [`Error::Io`](crate::Error::Io) when an attachment's file cannot be read;
    /// [`Error::Queue`](crate::Error::Queue) when the database fails. When the connection
    /// failed after the email was sent to the database, the email may have been stored: the
    /// error's [`delivery`](crate::Error::delivery) is then
    /// [`Uncertain`](crate::Delivery::Uncertain) and it is not transient (enqueueing again
    /// could store it twice) — unless the email has an idempotency key, with which enqueueing
    /// again is safe: then it is transient.
    pub async fn enqueue(&self, email: &Email, options: EnqueueOptions) -> Result<MessageId> {
        let keyed = options.has_key();
        self.store_email(email, options)
            .await
            .map_err(|error| rows::repeatable_if_keyed(keyed, error))
    }

    /// [`enqueue`](Self::enqueue), its errors as the store made them.
    pub(crate) async fn store_email(
        &self,
        email: &Email,
        options: EnqueueOptions,
    ) -> Result<MessageId> {
        let message = prepare(email, options, self.default_mailbox(), SystemTime::now()).await?;
        let enqueued = self.store.insert(message).await?;
        self.wake.notify_waiters();
        Ok(MessageId(enqueued.id))
    }

    /// Stores several emails at once — in one transaction on SQLite and PostgreSQL: all or
    /// none — and returns their ids in order.
    ///
    /// # Errors
    ///
    /// As [`Queue::enqueue`]; nothing is stored when one email is refused.
    pub async fn enqueue_batch(
        &self,
        emails: &[(Email, EnqueueOptions)],
    ) -> Result<Vec<MessageId>> {
        let now = SystemTime::now();
        let mut messages = Vec::with_capacity(emails.len());
        for (email, options) in emails {
            messages
                .push(prepare(email, options.clone(), self.default_mailbox.as_deref(), now).await?);
        }
        let keyed = messages.iter().all(|m| m.idempotency_key.is_some());
        let enqueued = self
            .store
            .insert_batch(messages)
            .await
            .map_err(|error| rows::repeatable_if_keyed(keyed, error))?;
        self.wake.notify_waiters();
        Ok(enqueued.into_iter().map(|e| MessageId(e.id)).collect())
    }

    /// Counts per state and mailbox, and the oldest due message.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`](crate::Error::Queue) when the database fails.
    pub async fn stats(&self) -> Result<QueueStats> {
        self.store.stats(SystemTime::now()).await
    }

    /// Up to `limit` messages in `state` (all states when `None`), oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`](crate::Error::Queue) when the database fails.
    pub async fn list(&self, state: Option<State>, limit: u32) -> Result<Vec<MessageSummary>> {
        self.store.list(state, limit).await
    }

    /// Queues an `uncertain` or `failed` message again, due now with a fresh round of
    /// attempts. For an uncertain one, check first that it really did not arrive: it may be
    /// delivered twice.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`](crate::Error::Queue) for an unknown id or a message in another state.
    pub async fn retry(&self, id: &str) -> Result<()> {
        self.move_to(
            id,
            &[State::Uncertain, State::Failed],
            State::Queued,
            "retried",
        )
        .await?;
        self.wake.notify_waiters();
        Ok(())
    }

    /// Cancels a `queued` message.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`](crate::Error::Queue) for an unknown id or a message in another state.
    pub async fn cancel(&self, id: &str) -> Result<()> {
        self.move_to(id, &[State::Queued], State::Cancelled, "cancelled")
            .await
    }

    async fn move_to(&self, id: &str, from: &[State], to: State, verb: &str) -> Result<()> {
        let action = if to == State::Queued {
            "retry the message"
        } else {
            "cancel the message"
        };
        let allowed = from
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" or ");
        match self
            .store
            .transition(id, from, to, SystemTime::now())
            .await?
        {
            None => Err(store::queue_error(
                action,
                format!("no message has the id `{id}`"),
                false,
                Some("list the queue (`mailctl queue list`) for the ids"),
            )),
            Some(state) if from.contains(&state) => Ok(()),
            Some(state) => Err(store::queue_error(
                action,
                format!(
                    "message `{id}` is {state}; only a message that is {allowed} can be {verb}",
                ),
                false,
                Some(wrong_state_remedy(state, to)),
            )),
        }
    }

    /// Deletes the messages in `state` whose state last changed more than `older_than` ago;
    /// returns how many. Messages being sent cannot be purged.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`](crate::Error::Queue) for `sending`, or when the database fails.
    pub async fn purge(&self, state: State, older_than: Duration) -> Result<u64> {
        if state == State::Sending {
            return Err(store::queue_error(
                "purge the queue",
                "messages that are being sent cannot be purged",
                false,
                Some(
                    "purge another state; a stuck `sending` message becomes `uncertain` when its lease runs out",
                ),
            ));
        }
        let before = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.store.purge(state, before).await
    }
}
