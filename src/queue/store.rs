//! [`QueueStore`]: the storage trait under the queue, with the plain data it reads and writes.
//! The SQLite and PostgreSQL stores implement it; another store can be added downstream.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Serialize;

use super::limits::MailboxLimits;
pub use super::rows::rfc3339;
pub(crate) use super::rows::{
    ErrorOf, SUMMARY_COLUMNS, SummaryRow, db_error, enqueue_error, queue_error, stats_from_counts,
};
#[cfg(feature = "queue-sqlite")]
pub(crate) use super::rows::{from_millis, millis};
pub use super::stats::{MailboxStats, MessageSummary, OldestDue, QueueStats};
use crate::error::{Error, Result};

/// Where a queued message is in its life. See the [module page](super) for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting to be delivered, now or at its due time.
    Queued,
    /// Leased by a worker that is delivering it.
    Sending,
    /// Delivered: the transport's report is kept.
    Sent,
    /// Permanently failed: the error and its remedy are kept.
    Failed,
    /// May or may not have been delivered: never resent without an operator.
    Uncertain,
    /// Cancelled by an operator before it was sent.
    Cancelled,
}

impl State {
    /// Every state, in the order of a message's life.
    pub const ALL: [State; 6] = [
        State::Queued,
        State::Sending,
        State::Sent,
        State::Failed,
        State::Uncertain,
        State::Cancelled,
    ];

    /// The state's name, as stored and as `mailctl` prints it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Uncertain => "uncertain",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        State::ALL
            .into_iter()
            .find(|s| s.as_str() == text.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                queue_error(
                    "read the state",
                    format!("`{text}` is not a queue state"),
                    false,
                    Some("use one of queued, sending, sent, failed, uncertain, cancelled"),
                )
            })
    }
}

/// A message to store, as [`Queue::enqueue`](super::Queue::enqueue) prepared it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewMessage {
    /// The new message's id (a UUID).
    pub id: String,
    /// The caller's idempotency key: a second message with the same key is not stored.
    pub idempotency_key: Option<String>,
    /// The sender mailbox whose limits apply.
    pub mailbox: String,
    /// The recipients, for listings (`To: ann@example.org, Bcc: …`).
    pub recipients: String,
    /// The subject, for listings.
    pub subject: String,
    /// The whole email, attachments included, in the queue's stored form.
    pub body: Vec<u8>,
    /// Not delivered before this time.
    pub due_at: SystemTime,
    /// When it was enqueued: the enqueuer's now, from which a store on its own clock
    /// measures `due_at`.
    pub created_at: SystemTime,
}

/// What [`QueueStore::insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The message's id: the new one, or the first message's with the same idempotency key.
    pub id: String,
    /// `false` when a message with the same idempotency key was already stored.
    pub created: bool,
}

/// A worker's request for the next message it may deliver.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// The worker's name, kept with the lease (for operators).
    pub worker: String,
    /// The current time on the worker's clock. [`SqliteStore`](super::SqliteStore) measures
    /// by it (one file, one machine, one clock); [`PostgresStore`](super::PostgresStore)
    /// measures leases, rate windows and due times by the server's clock, so that workers
    /// whose clocks disagree still share one window, and uses `now` only to tell the times
    /// it answers — [`Claim::Idle`]'s `next`, [`ClaimedMessage::retry_from`] — on the
    /// worker's clock (see [Clocks](QueueStore#clocks)).
    pub now: SystemTime,
    /// How long the lease lasts unless extended.
    pub lease: Duration,
    /// The per-mailbox limits to admit the message under.
    pub limits: MailboxLimits,
}

impl ClaimRequest {
    /// A request at `now`.
    #[must_use]
    pub fn new(
        worker: impl Into<String>,
        now: SystemTime,
        lease: Duration,
        limits: MailboxLimits,
    ) -> Self {
        Self {
            worker: worker.into(),
            now,
            lease,
            limits,
        }
    }
}

/// A worker's lease on a message: only the holder of the token can record its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The message id.
    pub id: String,
    /// The lease's token, new at every claim.
    pub token: String,
}

/// A message a worker has leased for delivery.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClaimedMessage {
    /// The lease to extend and finish with.
    pub lease: Lease,
    /// The sender mailbox.
    pub mailbox: String,
    /// The stored email.
    pub body: Vec<u8>,
    /// Delivery attempts so far, this one included (tries held for an admin are not
    /// counted: see [`Outcome::Held`]).
    pub attempts: u32,
    /// Since when retries count towards the age limit (when it fell due: its enqueue, its
    /// not-before time, or an operator's retry), on the claiming worker's clock.
    pub retry_from: SystemTime,
}

/// What [`QueueStore::claim`] found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// A message to deliver.
    Message(Box<ClaimedMessage>),
    /// Nothing may be delivered now. `next` is the earliest time something is known to
    /// become deliverable (a due time, a rate-limit window that frees up); `None` when only
    /// a finished delivery or a new message can change that.
    Idle {
        /// When to look again at the latest.
        next: Option<SystemTime>,
    },
}

/// The rest of an email after a partial delivery, stored in place of the original.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Remainder {
    /// The email restricted to these recipients, in stored form.
    pub body: Vec<u8>,
    /// The recipients, for listings.
    pub recipients: String,
}

impl Remainder {
    /// A remainder.
    #[must_use]
    pub fn new(body: Vec<u8>, recipients: String) -> Self {
        Self { body, recipients }
    }
}

/// The outcome of a delivery attempt, as the worker records it.
// One per delivery attempt, moved once into the store: boxing `Partial`'s fields would
// only make the variant harder to build and match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// Delivered; `report` is the transport's report (JSON).
    Sent {
        /// The transport's report.
        report: String,
    },
    /// Not sent, transient: queued again for `at`.
    Retry {
        /// The next attempt's due time.
        at: SystemTime,
        /// Why this attempt failed.
        error: String,
    },
    /// Not sent, and held for an admin: the failure is the admin's to fix for the whole
    /// sender mailbox (an expired secret, a permission not granted). Queued again for `at`
    /// like [`Outcome::Retry`], but the attempt is not counted: the store takes back the one
    /// its claim added to the message's attempts, so that a message held for hours still
    /// has its attempts once the fix is in. A store written before this variant must record
    /// it at least as it records `Retry`, never as an error (the message would turn
    /// `uncertain` when its lease ran out).
    Held {
        /// The next try's due time.
        at: SystemTime,
        /// Why it is held, and the fix.
        error: String,
    },
    /// Not sent, permanently (or out of attempts).
    Failed {
        /// Why.
        error: String,
        /// What to fix.
        remedy: Option<String>,
    },
    /// May have been delivered: parked for an operator.
    Uncertain {
        /// Why delivery is uncertain.
        error: String,
    },
    /// Some recipients got it — or none, when those that did not fare differently (SMTP
    /// refused some for good at `RCPT TO` and others for now, or a recipient-limit split
    /// left later parts untried after a part refused for good). When nobody got it and every
    /// recipient failed the same way, the outcome is `Retry` or `Failed` instead. A store
    /// records it in one transaction, only while `lease` holds the message (else nothing,
    /// and `finish` returns `false`): the message keeps the first of the groups `not_sent`,
    /// `uncertain`, `refused` that has recipients, in the state that group gets (`queued`
    /// with its due time, or `failed`; `uncertain`; `failed`), its body and recipients
    /// replaced by the group's [`Remainder`], with that group's error and remedy; each other
    /// group becomes a new message in its own state, with its own error and remedy, the
    /// message's mailbox, subject, attempts, `created_at` and `retry_from`, the `due_at` the
    /// message had when this attempt took it, and a `parent_id` that names the message. With
    /// no group, the message is `sent`. `report` is merged with earlier attempts' reports.
    /// Fields may be added: match with `..`.
    #[non_exhaustive]
    Partial {
        /// The report of the parts that were delivered (JSON).
        report: String,
        /// Why the rest failed: the error of the `not_sent` and `uncertain` groups.
        error: String,
        /// What to fix for the `not_sent` group. The `uncertain` group's remedy is to
        /// verify with its recipients whether the email reached them before any resend; the
        /// `refused` group's, to check their addresses (or the mailbox's permission to send
        /// to them) and not to resend to them unchanged.
        remedy: Option<String>,
        /// The recipients that certainly did not get it, those refused permanently aside,
        /// and what happens to them: `Some(at)` to retry at `at`, `None` to fail them.
        not_sent: Option<(Remainder, Option<SystemTime>)>,
        /// The recipients whose delivery is uncertain: `uncertain`, never resent without an
        /// operator.
        uncertain: Option<Remainder>,
        /// The recipients the server refused for good, with the error to record for them:
        /// `failed`, never attempted again.
        refused: Option<(Remainder, String)>,
    },
}

/// The storage under a [`Queue`](super::Queue): it keeps messages as bytes and decides
/// admission under the per-mailbox limits, atomically across every worker that shares it.
///
/// Implemented by [`SqliteStore`](super::SqliteStore) and
/// [`PostgresStore`](super::PostgresStore); implement it to keep the queue elsewhere. A
/// store must make `claim` atomic: two workers never lease one message, and the limits hold
/// across all of them.
///
/// # Clocks
///
/// Every time the trait passes is on the clock of the machine that calls it (the worker's,
/// or the application's). A store may keep its own clock, as
/// [`PostgresStore`](super::PostgresStore) keeps the database server's, so that workers
/// whose clocks disagree share one: it then stores each time as its own now plus the time's
/// distance from the caller's now, and tells each time it answers a claim with the same
/// distance from the claim's `now`. The caller's now is the `now` a method is given with the
/// time (a claim's, a finish's, an enqueued message's `created_at`, an operator's), else its
/// clock when it calls (`extend`, `pause`, `purge`, `purge_sent_bodies`, `pending`). So a
/// retry "in 30 s" is due 30 s after the store's now, however far the worker's clock is off.
/// [`SqliteStore`](super::SqliteStore) serves one machine and stores its clock's times as
/// they are.
#[async_trait]
pub trait QueueStore: Send + Sync + fmt::Debug {
    /// Stores a message, unless one with the same idempotency key is stored: then nothing
    /// is stored and the first one's id is returned.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn insert(&self, message: NewMessage) -> Result<Enqueued>;

    /// Stores several messages, each as [`insert`](Self::insert) would; a store that can
    /// makes it one transaction (all or none, and much faster). The default inserts one
    /// after another.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn insert_batch(&self, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
        let mut enqueued = Vec::with_capacity(messages.len());
        for message in messages {
            enqueued.push(self.insert(message).await?);
        }
        Ok(enqueued)
    }

    /// Leases the next message due under the limits, first turning `sending` messages whose
    /// lease ran out into `uncertain`.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim>;

    /// Extends a lease to `until` (on this machine's clock; a store with its own clock keeps
    /// its distance from this machine's now); `false` when the lease is no longer held.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn extend(&self, lease: &Lease, until: SystemTime) -> Result<bool>;

    /// Pauses `mailbox` until `until` (on this machine's clock, kept as its distance from this
    /// machine's now by a store with its own clock): the server throttled it and asked to
    /// wait, or a failure an admin must fix holds it, so none of its messages is claimed
    /// before then. A later pause never shortens an earlier one. [`QueueStore::stats`]
    /// reports a pause still running as [`MailboxStats::paused_until`].
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn pause(&self, mailbox: &str, until: SystemTime) -> Result<()>;

    /// Records an attempt's outcome at `now` (the instant it was decided at, on the worker's
    /// clock, from which any retry time in it is measured: a store with its own clock stores
    /// the retry at the same distance from its now); `false` when the lease is no longer
    /// held (an operator or another worker has moved the message on), and then nothing is
    /// recorded — not even the messages an [`Outcome::Partial`] splits off, whose rule it
    /// documents.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn finish(&self, lease: &Lease, outcome: Outcome, now: SystemTime) -> Result<bool>;

    /// Counts per state and mailbox, each mailbox's pause still running, and the oldest
    /// message due at `now` (the caller's now: a store with its own clock counts by its own
    /// now). The times named are as stored.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn stats(&self, now: SystemTime) -> Result<QueueStats>;

    /// The messages in `state` (all when `None`), oldest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn list(&self, state: Option<State>, limit: u32) -> Result<Vec<MessageSummary>>;

    /// Moves a message from `from` (one of these states) to `to`, due at `now` (the caller's
    /// now: a store with its own clock makes it due at its own now); returns the state it
    /// was in, `None` for an unknown id. Leaves it alone when it is in another state.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn transition(
        &self,
        id: &str,
        from: &[State],
        to: State,
        now: SystemTime,
    ) -> Result<Option<State>>;

    /// Deletes messages in `state` last changed before `before` (on this machine's clock,
    /// kept as its distance from this machine's now by a store with its own clock); returns
    /// how many.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn purge(&self, state: State, before: SystemTime) -> Result<u64>;

    /// Drops the bodies (and attachments) of `sent` messages sent before `before` (as in
    /// [`purge`](Self::purge)), keeping the row and its report; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn purge_sent_bodies(&self, before: SystemTime) -> Result<u64>;

    /// How many messages are `queued` and due by `by` (on this machine's clock, kept as its
    /// distance from this machine's now by a store with its own clock), and how many are
    /// `sending`.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the database fails.
    async fn pending(&self, by: SystemTime) -> Result<(u64, u64)>;
}
