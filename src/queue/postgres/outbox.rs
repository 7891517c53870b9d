//! The transactional outbox: enqueueing in the application's own transaction, so that the
//! email commits or rolls back with its data.

use std::time::SystemTime;

use sqlx::postgres::PgConnection;

use sqlx::Connection;

use super::lost::may_be_queued_as;
use super::{ErrorOf, db_error, enqueue_error, insert};
use crate::error::{Delivery, Result};
use crate::message::Email;
use crate::queue::{EnqueueOptions, MessageId, Queue, prepare};

/// Enqueues `email` on `conn` — an open transaction of the application's, typically — so
/// that the email is committed or rolled back together with the application's own data:
/// the transactional outbox. The queue's schema must exist (open a [`PostgresStore`](crate::queue::PostgresStore) on the
/// database once, at start-up, to create it).
///
/// An email that names no `From` (and no [`EnqueueOptions::mailbox`]) counts against the
/// mailbox [`DEFAULT_MAILBOX`](crate::queue::DEFAULT_MAILBOX) here: to share the limits of the
/// transport's own mailbox with the emails [`Queue::enqueue`] stores, enqueue through
/// [`Queue::enqueue_in`] on the queue [`ConnectorSettings::queue`](crate::ConnectorSettings::queue)
/// opens (its default mailbox is `user_name`).
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// use mail_connector::Email;
/// use mail_connector::queue::{EnqueueOptions, enqueue_in};
///
/// let mut tx = pool.begin().await?;
/// sqlx::query("INSERT INTO orders (id) VALUES (42)").execute(&mut *tx).await?;
/// let email = Email::builder().to("ann@example.org").subject("Order 42").build()?;
/// let options = EnqueueOptions::new().idempotency_key("order-42-confirmation");
/// let id = enqueue_in(&mut tx, &email, options).await?;
/// tx.commit().await?; // the order and its email, or neither
/// # let _ = id; Ok(()) }
/// ```
///
/// # Errors
///
/// As [`Queue::enqueue`](crate::queue::Queue::enqueue), but an idempotency key never makes
/// an error transient: a failed statement breaks the caller's transaction, which the
/// application repeats whole. In a transaction (begun with sqlx's `begin`), a connection
/// broken before the answer came loses the transaction, and the email with it: the error is
/// transient, its delivery [`NotSent`](crate::Delivery::NotSent). On a connection outside a
/// transaction the `INSERT` commits by itself, and may have before the answer was lost: the
/// error is [`Uncertain`](crate::Delivery::Uncertain), and its remedy names the message id
/// to look for (`mailctl queue list`).
pub async fn enqueue_in(
    conn: &mut PgConnection,
    email: &Email,
    options: EnqueueOptions,
) -> Result<MessageId> {
    outbox_insert(conn, email, options, None).await
}

impl Queue {
    /// [`enqueue_in`] — the email committed or rolled back with the application's own data,
    /// in its transaction `conn` on this queue's PostgreSQL database — with this queue's
    /// default mailbox for an email that names no `From`, as [`Queue::enqueue`] has: both
    /// ways of enqueueing share the mailbox's limits.
    ///
    /// ```no_run
    /// # async fn demo(pool: sqlx::PgPool, settings: mail_connector::ConnectorSettings)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// use mail_connector::Email;
    /// use mail_connector::queue::EnqueueOptions;
    ///
    /// let queue = settings.queue().await?; // default mailbox: `user_name`
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("INSERT INTO orders (id) VALUES (42)").execute(&mut *tx).await?;
    /// let email = Email::builder().to("ann@example.org").subject("Order 42").build()?;
    /// let options = EnqueueOptions::new().idempotency_key("order-42-confirmation");
    /// queue.enqueue_in(&mut tx, &email, options).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`enqueue_in`].
    pub async fn enqueue_in(
        &self,
        conn: &mut PgConnection,
        email: &Email,
        options: EnqueueOptions,
    ) -> Result<MessageId> {
        outbox_insert(conn, email, options, self.default_mailbox()).await
    }
}

/// Prepares and inserts `email` in the caller's transaction `conn`.
async fn outbox_insert(
    conn: &mut PgConnection,
    email: &Email,
    options: EnqueueOptions,
    default_mailbox: Option<&str>,
) -> Result<MessageId> {
    let message = prepare(email, options, default_mailbox, SystemTime::now()).await?;
    let id = message.id.clone();
    // In the caller's transaction nothing is stored before its commit, and a lost answer
    // loses the transaction: certainly not stored, the application repeats it whole. On a
    // connection outside one, the statement commits by itself: a lost answer may hide a
    // stored email, which this connection, broken, cannot look up.
    let error_of: ErrorOf = if conn.is_in_transaction() {
        db_error
    } else {
        enqueue_error
    };
    match insert(conn, message, error_of).await {
        Ok(enqueued) => Ok(MessageId::new(enqueued.id)),
        Err(error) if error.delivery() == Delivery::Uncertain => Err(may_be_queued_as(
            error,
            &id,
            "the connection, outside a transaction, cannot look it up",
        )),
        Err(error) => Err(error),
    }
}
