//! The application's handle on the queue: [`Queue`] opens a store from a URL, enqueues, and
//! operates on messages (retry, cancel, purge).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::error::Result;
use crate::message::Email;

#[cfg(feature = "queue-postgres")]
use super::PostgresStore;
#[cfg(feature = "queue-sqlite")]
use super::SqliteStore;
use super::{
    EnqueueOptions, MessageId, MessageSummary, OpenWait, QueueStats, QueueStore, State, prepare,
    rows, store,
};

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
/// purge). Clones share the store. See the [module page](super).
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
const URL_FORMS: &str =
    "set `queue_url` to `sqlite://PATH` (one process) or `postgres://user:password@host/db`";

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
    /// [`Error::Queue`](crate::Error::Queue) for another scheme or a database that cannot be
    /// opened: [transient](crate::Error::is_transient) when it cannot be reached for now
    /// (refused or closed connections, a timeout, a server starting up or shutting down),
    /// not when the URL is wrong (a server that is not PostgreSQL, a wrong password, a
    /// database that does not exist), its remedy naming `queue_url` and the fix.
    /// [`Error::NotAvailable`](crate::Error::NotAvailable) when the scheme's feature
    /// (`queue-sqlite`, `queue-postgres`) is not enabled. It does not wait for a database
    /// that is down: [`open_waiting`](Self::open_waiting) does.
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

    /// [`open`](Self::open), waiting while the database cannot be reached yet — a service
    /// starting with PostgreSQL, or during a failover — as `wait` says: each wait is logged
    /// (or reported to [`OpenWait::on_wait`]) and the open tried again. A mistake in the URL
    /// fails at once.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open): at once for an error that is not transient (a wrong
    /// password, a database that does not exist, a server that is not PostgreSQL, an
    /// unknown scheme); the last transient error when `wait` gives up.
    pub async fn open_waiting(url: &str, wait: &OpenWait) -> Result<Self> {
        wait.open_with(|| Self::open(url)).await
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
    /// [`Error::InvalidMessage`](crate::Error::InvalidMessage) for an email over
    /// [`MAX_STORED_BYTES`](super::MAX_STORED_BYTES) or a malformed idempotency key;
    /// [`Error::Io`](crate::Error::Io) when an attachment's file cannot be read;
    /// [`Error::Queue`](crate::Error::Queue) when the database fails. When the connection
    /// failed after the email was sent to the database, the email may have been stored: the
    /// store looks its id up once the database answers, and returns the id when it is
    /// stored, or a transient error when it is not. Only when that lookup cannot be made is
    /// the error's [`delivery`](crate::Error::delivery)
    /// [`Uncertain`](crate::Delivery::Uncertain) and it not transient (enqueueing again
    /// could store it twice), its remedy naming the id to look for — unless the email has an
    /// idempotency key, with which enqueueing again is safe: then it is transient.
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
    /// [`Error::Queue`](crate::Error::Queue) for an unknown id or a message in another state;
    /// also for an `uncertain` message whose lease ran out less than a lease ago (its worker
    /// may still be sending it, and records the outcome when it ends): its remedy says how
    /// long to wait.
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
                    "purge another state; a stuck `sending` message becomes `uncertain` when its \
                     lease runs out",
                ),
            ));
        }
        let before = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.store.purge(state, before).await
    }
}
