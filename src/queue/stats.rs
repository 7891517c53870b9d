//! What the queue reports of itself: counts per state and per mailbox (with a mailbox's
//! pause), the oldest due message, and one message's summary.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::rows::rfc3339;
use super::store::State;

/// Counts of one mailbox's messages per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MailboxStats {
    /// The sender mailbox.
    pub mailbox: String,
    /// Messages per state (states with none are left out).
    pub states: BTreeMap<State, u64>,
    /// Until when no message of the mailbox is taken, when it is paused now: a server asked
    /// to wait (a 429's `Retry-After`), or a failure an admin must fix holds it (the held
    /// message's error says why and how). As stored (PostgreSQL: on the server's clock).
    #[serde(serialize_with = "serialize_time_option")]
    pub paused_until: Option<SystemTime>,
}

/// What the queue holds: counts per state and per mailbox, and the oldest due message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Messages per state, every state listed.
    pub states: BTreeMap<State, u64>,
    /// Per sender mailbox.
    pub mailboxes: Vec<MailboxStats>,
    /// The queued message that has been due the longest, with its due time.
    pub oldest_due: Option<OldestDue>,
}

/// The queued message that has been due the longest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OldestDue {
    /// Its id.
    pub id: String,
    /// When it fell due, as stored (PostgreSQL: on the server's clock).
    #[serde(serialize_with = "serialize_time")]
    pub due_at: SystemTime,
}

/// One message as listed by [`QueueStore::list`](super::QueueStore::list). Its times are as stored: on
/// [`PostgresStore`](super::PostgresStore), the database server's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MessageSummary {
    /// The id.
    pub id: String,
    /// The state.
    pub state: State,
    /// The sender mailbox.
    pub mailbox: String,
    /// The recipients (`To: ann@example.org, Bcc: …`).
    pub recipients: String,
    /// The subject.
    pub subject: String,
    /// Delivery attempts so far (tries held for an admin are not counted).
    pub attempts: u32,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// What to fix, for a failed message; for an uncertain one, to verify with its
    /// recipients before any resend. An operator's retry clears it.
    pub remedy: Option<String>,
    /// The transport's report, for a sent message (JSON).
    pub report: Option<String>,
    /// The idempotency key it was enqueued with.
    pub idempotency_key: Option<String>,
    /// When it was enqueued.
    #[serde(serialize_with = "serialize_time")]
    pub created_at: SystemTime,
    /// When it is (or was) due.
    #[serde(serialize_with = "serialize_time")]
    pub due_at: SystemTime,
    /// When its state last changed.
    #[serde(serialize_with = "serialize_time")]
    pub updated_at: SystemTime,
    /// The message it was split from by a partial delivery.
    pub parent_id: Option<String>,
}

fn serialize_time<S: serde::Serializer>(
    time: &SystemTime,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*time))
}

fn serialize_time_option<S: serde::Serializer>(
    time: &Option<SystemTime>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_str(&rfc3339(*time)),
        None => serializer.serialize_none(),
    }
}
