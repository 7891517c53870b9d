//! [`PostgresStore`]: the queue in PostgreSQL, for fleets — any number of workers in any
//! number of processes share it — and [`enqueue_in`], the transactional outbox.

use std::str::FromStr;
use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use super::sql::{finish_outcome, in_flight, still_in_flight, transition_state};
use super::store::{
    Claim, ClaimRequest, Enqueued, ErrorOf, Lease, MessageSummary, NewMessage, Outcome, QueueStats,
    QueueStore, SUMMARY_COLUMNS, State, SummaryRow, db_error, enqueue_error, stats_from_counts,
};
use crate::error::{Delivery, Result};
use admit::{Admission, Unclaimed};
use clock::{Clocks, SERVER_NOW, from_now};

mod admit;
mod clock;
mod lost;
mod open;
mod outbox;

pub use outbox::enqueue_in;

/// The queue in PostgreSQL, in the schema `mail_queue` (created with its tables when
/// missing; its migration history is kept there too, apart from the application's).
///
/// A claim locks the sender mailbox's row (`FOR UPDATE SKIP LOCKED`) for the length of a
/// short transaction, counts that mailbox's deliveries in flight and started within the rate
/// window, and only then leases its oldest due message (`FOR UPDATE SKIP LOCKED` again), so
/// the limits hold across every worker of the fleet. Every time it stores or compares —
/// lease expiry, the rate window, attempt stamps, due and retry times, enqueue and update
/// times — is on the database server's clock, not the workers': a time a worker hands over
/// is stored as the server's now plus its distance from the worker's now. So a worker
/// whose clock runs ahead can neither open a new rate window early nor expire the leases
/// of healthy deliveries, and a retry it schedules "in 30 s" is due 30 s after the server's
/// now for every worker. The times it reads back ([`list`](QueueStore::list),
/// [`stats`](QueueStore::stats)) are the server's; those a claim answers are told on the
/// claiming worker's clock. A claim whose `COMMIT` lost its answer (a server restart, a
/// broken connection) may have leased a message no worker has: it is put back to `queued`
/// by its lease token, at once or at this store's next claim, rather than turning
/// `uncertain` although it was never sent.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Claims whose answer was lost, to put back once the database answers again.
    unclaimed: std::sync::Arc<std::sync::Mutex<Vec<Unclaimed>>>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host/database`) and applies the
    /// embedded migrations.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`](crate::Error::Queue) when the URL is malformed, the server cannot be
    /// reached, or the schema cannot be created (the user needs `CREATE` on the database
    /// the first time). A server that cannot be reached for now is said at once when it
    /// refuses the connection, after 30 s when it does not answer: a transient error, which
    /// [`OpenWait`](super::OpenWait) waits out. One that is not PostgreSQL, a wrong password
    /// or a database that does not exist is not transient.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| db_error("read the PostgreSQL queue URL", &e))?;
        // Lazily: sqlx's `connect_with` tries a refused connection again and again for the
        // pool's whole acquire timeout (30 s) before it says so. The migration's own
        // connection in `from_pool` tells a refused one at once, and a wrong URL too.
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_lazy_with(options);
        Self::from_pool(pool).await
    }

    /// Uses the application's own pool, applying the embedded migrations. The migration
    /// runs on a connection of its own, opened with the pool's options and closed
    /// afterwards, so the pool's sessions keep the application's settings (`search_path`).
    ///
    /// # Errors
    ///
    /// As [`PostgresStore::open`].
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        let options = pool.connect_options();
        let mut conn = open::connect(&options).await?;
        let migrated = open::migrate(&mut conn).await;
        // Closing ends the session: its search_path and advisory lock go with it.
        let closed = conn.close().await;
        migrated?;
        closed.map_err(|e| db_error("migrate the PostgreSQL queue", &e))?;
        Ok(Self {
            pool,
            unclaimed: std::sync::Arc::default(),
        })
    }

    /// The connection pool.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Inserts `m` on `conn`, or finds the message stored with its idempotency key; `error`
/// makes the error of a failed statement.
async fn insert(conn: &mut PgConnection, m: NewMessage, error: ErrorOf) -> Result<Enqueued> {
    const ACTION: &str = "enqueue the email";
    // Created now on the server's clock, due as long after that as the caller asked (its
    // `created_at` is its now): one reading of the clock for all four times. Retries count
    // towards the age limit from the due time: one enqueued for tomorrow is not old then.
    let inserted: Option<(String,)> = sqlx::query_as(&format!(
        "INSERT INTO mail_queue.messages (id, idempotency_key, mailbox, recipients, subject, \
         state, body, body_bytes, due_at, created_at, updated_at, retry_from) \
         SELECT $1, $2, $3, $4, $5, 'queued', $6, $7, clock.now + $8, clock.now, clock.now, \
         clock.now + $8 FROM (SELECT {SERVER_NOW} AS now) AS clock \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    ))
    .bind(&m.id)
    .bind(&m.idempotency_key)
    .bind(&m.mailbox)
    .bind(&m.recipients)
    .bind(&m.subject)
    .bind(&m.body)
    .bind(m.body.len() as i64)
    .bind(from_now(m.due_at, m.created_at))
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| error(ACTION, &e))?;
    if let Some((id,)) = inserted {
        return Ok(Enqueued { id, created: true });
    }
    let (id,): (String,) =
        sqlx::query_as("SELECT id FROM mail_queue.messages WHERE idempotency_key = $1")
            .bind(&m.idempotency_key)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| error(ACTION, &e))?;
    Ok(Enqueued { id, created: false })
}

#[async_trait]
impl QueueStore for PostgresStore {
    async fn insert(&self, message: NewMessage) -> Result<Enqueued> {
        const ACTION: &str = "enqueue the email";
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| db_error(ACTION, &e))?;
        let (id, key) = (message.id.clone(), message.idempotency_key.clone());
        // A statement that commits by itself: an answer lost may hide a stored email, which
        // is looked up by its id on another connection.
        match insert(&mut conn, message, enqueue_error).await {
            Err(error) if error.delivery() == Delivery::Uncertain => {
                // The connection broke: not one to give back to the pool.
                drop(conn.detach());
                let stored = self.settle_lost(ACTION, error, &id, key.as_deref()).await?;
                let created = stored == id;
                Ok(Enqueued {
                    id: stored,
                    created,
                })
            }
            done => done,
        }
    }

    async fn insert_batch(&self, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
        const ACTION: &str = "enqueue the emails";
        let mut tx = self.pool.begin().await.map_err(|e| db_error(ACTION, &e))?;
        let mut enqueued = Vec::with_capacity(messages.len());
        for message in messages {
            enqueued.push(insert(&mut tx, message, db_error).await?);
        }
        if let Err(error) = tx.commit().await {
            // All or none: whether one message the batch stored is there says whether all
            // are (with none, nothing was to be stored).
            let error = enqueue_error(ACTION, &error);
            match enqueued.iter().find(|e| e.created) {
                Some(new) => {
                    self.settle_lost(ACTION, error, &new.id, None).await?;
                }
                None if error.delivery() == Delivery::Uncertain => {}
                None => return Err(error),
            }
        }
        Ok(enqueued)
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Claim> {
        const ACTION: &str = "claim a message";
        let err = |e: sqlx::Error| db_error(ACTION, &e);
        let limits = request.limits;
        let window = i64::try_from(limits.window.as_millis()).unwrap_or(i64::MAX);
        // Every time here is the server's (see `clock`); `request.now` only converts the
        // answer back to the worker's clock.
        self.put_back_unclaimed().await;
        let clocks = Clocks::read(&self.pool, request.now).await.map_err(err)?;
        let now = clocks.now();
        sqlx::query(
            "UPDATE mail_queue.messages SET state = 'uncertain', updated_at = $1, last_error = \
             'the worker stopped or lost its lease while sending: the message may have been \
             delivered', remedy = $2 WHERE state = 'sending' AND lease_until < $1",
        )
        .bind(now)
        .bind(crate::error::UNCERTAIN_REMEDY)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        // Mailboxes with a due message and room under both limits, oldest due first: a
        // mailbox at a limit never takes a place that another could use. The scan is
        // bounded; admission re-checks each candidate under its mailbox's lock.
        let per_window = if limits.per_window == 0 {
            i64::MAX
        } else {
            i64::from(limits.per_window)
        };
        let candidates: Vec<(String, i64)> = sqlx::query_as(&format!(
            "WITH due AS (SELECT mailbox, MIN(due_at) AS due_at FROM mail_queue.messages \
             WHERE state = 'queued' AND due_at <= $1 GROUP BY mailbox), \
             busy AS (SELECT mailbox FROM mail_queue.messages WHERE {} \
             GROUP BY mailbox HAVING COUNT(*) >= $2), \
             spent AS (SELECT mailbox FROM mail_queue.attempts WHERE started_at > $3 \
             GROUP BY mailbox HAVING COUNT(*) >= $4) \
             SELECT due.mailbox, due.due_at FROM due \
             WHERE due.mailbox NOT IN (SELECT mailbox FROM busy) \
             AND due.mailbox NOT IN (SELECT mailbox FROM spent) \
             AND due.mailbox NOT IN (SELECT mailbox FROM mail_queue.mailboxes \
             WHERE paused_until > $1) \
             ORDER BY due.due_at, due.mailbox LIMIT 100",
            in_flight("", "$1", "$5"),
        ))
        .bind(now)
        .bind(i64::from(limits.max_in_flight))
        .bind(now.saturating_sub(window))
        .bind(per_window)
        .bind(i64::try_from(request.lease.as_millis()).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let mut next: Option<i64> = None;
        let mut soonest = |at: i64| next = Some(next.map_or(at, |n: i64| n.min(at)));
        for (mailbox, _) in candidates {
            match self.admit(request, &mailbox).await? {
                Admission::Claimed(message) => return Ok(Claim::Message(message)),
                Admission::Busy => soonest(now + 20),
                Admission::Full(Some(free)) => soonest(free),
                Admission::Full(None) => {}
            }
        }
        // When a mailbox whose rate window is spent, and that has due messages, frees up;
        // and the next due time.
        let (free, due, resumes): (Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT MIN(a.oldest) + $3 FROM (SELECT mailbox, MIN(started_at) AS oldest \
             FROM mail_queue.attempts WHERE started_at > $2 GROUP BY mailbox \
             HAVING COUNT(*) >= $4) a WHERE EXISTS (SELECT 1 FROM mail_queue.messages m \
             WHERE m.mailbox = a.mailbox AND m.state = 'queued' AND m.due_at <= $1)), \
             (SELECT MIN(due_at) FROM mail_queue.messages WHERE state = 'queued' \
             AND due_at > $1), \
             (SELECT MIN(p.paused_until) FROM mail_queue.mailboxes p WHERE p.paused_until > $1 \
             AND EXISTS (SELECT 1 FROM mail_queue.messages m WHERE m.mailbox = p.mailbox \
             AND m.state = 'queued' AND m.due_at <= $1))",
        )
        .bind(now)
        .bind(now.saturating_sub(window))
        .bind(window)
        .bind(per_window)
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        free.into_iter()
            .chain(due)
            .chain(resumes)
            .for_each(&mut soonest);
        // Back to the worker's clock: the same distance from its `now`, never before it.
        Ok(Claim::Idle {
            next: next.map(|at| clocks.to_worker(at.max(now))),
        })
    }

    async fn extend(&self, lease: &Lease, until: SystemTime) -> Result<bool> {
        // `until` is on this machine's clock: keep its distance from now, on the server's.
        let length = from_now(until, SystemTime::now());
        let done = sqlx::query(&format!(
            "UPDATE mail_queue.messages SET lease_until = {SERVER_NOW} + $3 \
             WHERE id = $1 AND lease_token = $2 AND state = 'sending'"
        ))
        .bind(&lease.id)
        .bind(&lease.token)
        .bind(length)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("extend a lease", &e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn pause(&self, mailbox: &str, until: SystemTime) -> Result<()> {
        // `until` is on this machine's clock: the same distance from now, on the server's.
        let length = from_now(until, SystemTime::now());
        sqlx::query(&format!(
            "INSERT INTO mail_queue.mailboxes AS b (mailbox, paused_until) \
             VALUES ($1, {SERVER_NOW} + $2) ON CONFLICT (mailbox) DO UPDATE SET \
             paused_until = GREATEST(COALESCE(b.paused_until, 0), EXCLUDED.paused_until)"
        ))
        .bind(mailbox)
        .bind(length)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("pause a mailbox", &e))?;
        Ok(())
    }

    async fn finish(&self, lease: &Lease, outcome: Outcome, now: SystemTime) -> Result<bool> {
        const ACTION: &str = "record a delivery";
        let err = |e: sqlx::Error| db_error(ACTION, &e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        // `now` and the outcome's retry times are on the worker's clock: each is stored at
        // the same distance from the server's now.
        let clocks = Clocks::read(&mut *tx, now).await.map_err(err)?;
        let done = finish_outcome!(tx, "mail_queue.messages", lease, outcome, now, |at| {
            clocks.to_server(at)
        })
        .map_err(err)?;
        tx.commit().await.map_err(|e| db_error(ACTION, &e))?;
        Ok(done)
    }

    async fn stats(&self, _now: SystemTime) -> Result<QueueStats> {
        const ACTION: &str = "count the queue";
        let counts: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT mailbox, state, COUNT(*) FROM mail_queue.messages GROUP BY mailbox, state \
             ORDER BY mailbox, state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error(ACTION, &e))?;
        // Due by the caller's now: by the server's now, whatever the caller's clock says.
        let oldest: Option<(String, i64)> = sqlx::query_as(&format!(
            "SELECT id, due_at FROM mail_queue.messages WHERE state = 'queued' \
             AND due_at <= (SELECT {SERVER_NOW}) ORDER BY due_at, created_at LIMIT 1",
        ))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error(ACTION, &e))?;
        let paused: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT mailbox, paused_until FROM mail_queue.mailboxes \
             WHERE paused_until > (SELECT {SERVER_NOW})",
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error(ACTION, &e))?;
        stats_from_counts(counts, oldest, &paused)
    }

    async fn list(&self, state: Option<State>, limit: u32) -> Result<Vec<MessageSummary>> {
        let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM mail_queue.messages \
             WHERE ($1::text IS NULL OR state = $1) ORDER BY created_at, id LIMIT $2"
        ))
        .bind(state.map(State::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("list the queue", &e))?;
        rows.into_iter().map(SummaryRow::into_summary).collect()
    }

    async fn transition(
        &self,
        id: &str,
        from: &[State],
        to: State,
        now: SystemTime,
    ) -> Result<Option<State>> {
        const ACTION: &str = "change a message's state";
        let mut tx = self.pool.begin().await.map_err(|e| db_error(ACTION, &e))?;
        // Lock the row first, so that a worker's claim cannot slip in between.
        sqlx::query("SELECT 1 FROM mail_queue.messages WHERE id = $1 FOR UPDATE")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error(ACTION, &e))?;
        // Due at the operator's `now`: the server's now, whatever the operator's clock says.
        let now = Clocks::read(&mut *tx, now)
            .await
            .map_err(|e| db_error(ACTION, &e))?
            .now();
        let (state, running) = transition_state!(tx, "mail_queue.messages", id, from, to, now)
            .map_err(|e| db_error(ACTION, &e))?;
        if let Some(wait) = running {
            return Err(still_in_flight(id, wait));
        }
        tx.commit().await.map_err(|e| db_error(ACTION, &e))?;
        state.map(|s| s.parse()).transpose()
    }

    async fn purge(&self, state: State, before: SystemTime) -> Result<u64> {
        // `before` is on this machine's clock: the same distance from now, on the server's.
        let done = sqlx::query(&format!(
            "DELETE FROM mail_queue.messages WHERE state = $1 \
             AND updated_at < (SELECT {SERVER_NOW}) + $2"
        ))
        .bind(state.as_str())
        .bind(from_now(before, SystemTime::now()))
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("purge the queue", &e))?;
        Ok(done.rows_affected())
    }

    async fn purge_sent_bodies(&self, before: SystemTime) -> Result<u64> {
        // As `purge`.
        let done = sqlx::query(&format!(
            "UPDATE mail_queue.messages SET body = NULL WHERE state = 'sent' \
             AND body IS NOT NULL AND updated_at < (SELECT {SERVER_NOW}) + $1"
        ))
        .bind(from_now(before, SystemTime::now()))
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("purge sent bodies", &e))?;
        Ok(done.rows_affected())
    }

    async fn pending(&self, by: SystemTime) -> Result<(u64, u64)> {
        // `by` is on this machine's clock: the same distance from now, on the server's.
        let (due, sending): (i64, i64) = sqlx::query_as(&format!(
            "WITH clock AS (SELECT {SERVER_NOW} + $1 AS by) \
             SELECT COUNT(*) FILTER (WHERE state = 'queued' AND due_at <= (SELECT by FROM clock) \
             AND mailbox NOT IN (SELECT mailbox FROM mail_queue.mailboxes \
             WHERE paused_until > (SELECT by FROM clock))), \
             COUNT(*) FILTER (WHERE state = 'sending') FROM mail_queue.messages",
        ))
        .bind(from_now(by, SystemTime::now()))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_error("count the queue", &e))?;
        Ok((due.max(0).unsigned_abs(), sending.max(0).unsigned_abs()))
    }
}
