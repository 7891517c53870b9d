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
//!   in flight until it ends, within the transport's send deadline (by default 2 minutes
//!   for Graph, 1 for SMTP: keep the lease, 5 minutes by default, longer than that); the worker
//!   logs an error when it finds its lease gone, and records the send's real outcome over
//!   `uncertain` when it ends. Meanwhile the message keeps its place under the mailbox's
//!   in-flight limit, until that outcome is recorded or for one more lease — the lease of the
//!   worker claiming next, so give every worker the same lease. Before deciding to retry an
//!   `uncertain` message, wait that long: one lease after it became uncertain. Until then
//!   [`Queue::retry`] refuses it, saying how long to wait (the lease the message was
//!   claimed with).
//! - **Recording an outcome**: when the database fails for a moment just after a send (a
//!   failover, a full pool, a busy SQLite file), the worker writes the outcome again, waiting
//!   0.1 s and doubling up to 5 s, for as long as a lease lasts — a delivery known to be sent,
//!   or sent to some recipients only, keeps that record rather than turning `uncertain` when
//!   its lease runs out. Writing again is safe: the lease lets one write through. A worker
//!   stopped meanwhile records the outcome its delivery had decided.
//! - A transient failure that certainly did not deliver ([`Error::is_transient`](crate::Error::is_transient)) goes back
//!   to `queued` with exponential backoff and jitter, never sooner than the error's
//!   [`Retry-After`](crate::Error::retry_after) — and when the server gave one (a 429), the
//!   whole sender mailbox is paused until then, for 5 minutes at most (a longer wait, a
//!   proxy's or a wrong clock's, is cut and logged: no command lifts a pause), so that its
//!   other messages do not burn their attempts meanwhile; after `max_attempts` attempts, or when the
//!   next attempt would come later than the age limit (counted from when the message fell
//!   due: its enqueue, or its [not-before](EnqueueOptions::not_before) time), it is `failed`.
//! - **Held for an admin**: a failure that certainly did not deliver and is the admin's to fix
//!   for the whole sender mailbox — a refused or expired credential, a missing permission or
//!   consent, authentication required ([`Error::is_auth`](crate::Error::is_auth)), or a
//!   setting ([`Error::is_settings`](crate::Error::is_settings)) — does not fail the message:
//!   every message of the mailbox would fail the same way until the fix. The message goes
//!   back to `queued`, its error saying it is held, why, and the fix, and the mailbox is
//!   paused until its next try: after the first backoff, or half the message's age when
//!   longer, at least a second and at most 5 minutes — so mail flows again within 5 minutes
//!   of the fix. A hold does not count as an attempt: the message has all of its attempts
//!   once the fix is in.
//!   Only the age limit fails it (a day held, when the retry policy sets none), checked
//!   when a try finds the fault still there: with many messages held, each is tried less
//!   often than its mailbox (a few per pause), and one tried after the fix is sent, late.
//!   The recipients a partial delivery did not reach are held the same way, though the
//!   attempt that reached the others counts.
//!   [`Worker::run_once`] does not wait for a held message (it may try it again while it
//!   waits for another message's retry).
//!   The refusal of one recipient (a `550 5.7.1` for one domain, say) is that recipient's,
//!   and an SMTP server's refusal after the data (a `5.7.x` for the content), or Graph's
//!   refusal of the draft only large attachments need (`Mail.ReadWrite`), that message's:
//!   none of these is held.
//! - **Partial delivery** ([`Error::PartialDelivery`](crate::Error::PartialDelivery): an SMTP
//!   server refused some recipients at `RCPT TO` and took the rest, or refused all of
//!   several, or the [recipient limit](crate::RecipientLimit) split the email and a part
//!   failed): the recipients who got it are done (the report is kept, and merged with later
//!   attempts'); those the server refused permanently (a 5xx such as `550 5.1.1` unknown
//!   mailbox) are `failed`, never attempted again, with the server's replies in their error
//!   (`gone@example.org: 550 5.1.1 User unknown; …`, the first three, then how many more);
//!   those not sent otherwise — refused temporarily (a 4xx), or never tried — are retried
//!   as above, when the failure was temporary, left delivery
//!   uncertain, or was only the permanent refusals, and held as above when it holds the
//!   mailbox; those whose delivery is uncertain are
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
//!   outbox: see `examples/queue_outbox.rs`). SQLite has no `enqueue_in`: its queue file has
//!   a pool of its own, not the application's database. Enqueue right after the
//!   application's commit, with an [idempotency key](EnqueueOptions::idempotency_key) made
//!   from its row: a crash between the two loses the email unless the application enqueues
//!   it again (at start-up, for rows not marked as queued), which the key makes harmless.
//! - **A message that was not sent is retried; one that may have been sent is never resent
//!   without an operator** (`mailctl queue retry ID`). Two workers never lease one message.
//! - **Idempotent enqueue**: a second enqueue with the same idempotency key stores nothing
//!   and returns the first id, however many run at once.
//! - **An enqueue whose answer was lost** (the connection to PostgreSQL broke after the email
//!   went to the database) may have stored it. The message's id is made before it is sent,
//!   so the store looks it up once the database answers (within the pool's acquire
//!   timeout): stored, the enqueue returns its id. Not found, the statement may still be
//!   running on the server, to commit after the look: with an idempotency key (which a late
//!   copy shares) the error is transient and enqueueing again is safe; without one, as when
//!   the lookup cannot be made, the error's [`delivery`](crate::Error::delivery) is
//!   [`Uncertain`](crate::Delivery::Uncertain) and it not transient, its remedy naming the
//!   id to look for (`mailctl queue list`). In the application's
//!   transaction ([`enqueue_in`]) a lost answer loses the transaction, and the email with
//!   it. (SQLite runs in the process: its answers are never lost.)
//!   [`QueueTransport`]'s `send` enqueues under a key of its own and tries twice more itself.
//! - **Limits across the fleet**: at most [`MailboxLimits::max_in_flight`] deliveries in flight
//!   per sender mailbox and at most [`MailboxLimits::per_window`] started per minute, counted
//!   by the database across every worker and process.
//! - The stored email is limited to [`MAX_STORED_BYTES`] (150 MiB) with its attachments, which
//!   are read at enqueue time, or a prepared message's bytes ([`Email::from_mime`](crate::Email::from_mime),
//!   `mailctl send --eml`): a larger email is refused with [`Error::InvalidMessage`](crate::Error::InvalidMessage).
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
//! (`FOR UPDATE SKIP LOCKED`). Give every worker the same limits and lease. While the
//! database is down or restarting, a running worker's claims fail with a transient error:
//! it logs a warning and tries again at its next poll, and carries on once the database is
//! back. [`Queue::open`] (and so a worker about to start) does not wait: a server that
//! refuses connections, closes them at once or is starting up fails it at once, one that
//! does not answer after 30 s, with a transient error. To wait for the database at start,
//! open with an [`OpenWait`] ([`Queue::open_waiting`],
//! [`ConnectorSettings::queue_worker_waiting`](crate::ConnectorSettings::queue_worker_waiting)):
//! it tries again while the error is transient, logging each wait, and fails at once on a
//! wrong `queue_url` — a server that is not PostgreSQL (an HTTP or SMTP port), a wrong
//! password, a database that does not exist. `mailctl worker` waits so, and says each wait
//! on stderr. Stop a worker with
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

mod codec;
mod db_error;
mod delivery;
mod enqueue;
mod handle;
mod hold;
mod limits;
mod open_wait;
mod outcome;
#[cfg(feature = "queue-postgres")]
mod postgres;
mod rows;
mod sql;
#[cfg(feature = "queue-sqlite")]
mod sqlite;
#[cfg(feature = "queue-sqlite")]
mod sqlite_migrate;
mod stats;
mod store;
mod transport;
mod worker;

pub use codec::MAX_STORED_BYTES;
pub(crate) use enqueue::prepare;
pub use enqueue::{EnqueueOptions, MessageId};
pub use handle::Queue;
pub(crate) use handle::url_problem;
pub use limits::MailboxLimits;
pub use open_wait::OpenWait;
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
