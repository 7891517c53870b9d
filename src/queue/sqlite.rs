//! [`SqliteStore`]: the queue in one SQLite file — the embedded default. Several workers and
//! several processes may share one file on a LOCAL disk: every claim is a `BEGIN IMMEDIATE`
//! transaction, so admission is serialised by SQLite's write lock. Never put the file on a
//! network filesystem (NFS, SMB): the write-ahead log needs shared memory that those do not
//! provide. All processes on one file run on one machine, so they share its clock: the
//! claim's `now` is that clock. A fleet across machines belongs on PostgreSQL.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use sqlx::{Sqlite, Transaction};

use super::sql::{finish_outcome, in_flight, still_in_flight, transition_state};
use super::store::{
    Claim, ClaimRequest, ClaimedMessage, Enqueued, ErrorOf, Lease, NewMessage, Outcome, QueueStats,
    QueueStore, SUMMARY_COLUMNS, State, SummaryRow, db_error, enqueue_error, from_millis, millis,
    queue_error, stats_from_counts,
};
use crate::error::Result;

/// The queue in an SQLite file, created with its schema when missing.
///
/// Every claim runs in a `BEGIN IMMEDIATE` transaction, so admission under the per-mailbox
/// limits is decided by one writer at a time.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating when missing) the queue file at `path` and applies the embedded
    /// migrations.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`](crate::Error::Queue) when the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true);
        Self::connect(options).await
    }

    /// Opens the queue from a `sqlite://PATH` URL: `sqlite:///var/lib/app/mail-queue.db` (an
    /// absolute path: three slashes). A relative path (`sqlite://mail-queue.db`) is taken
    /// from the process's working directory, so an application and a `mailctl worker`
    /// started elsewhere would each open a queue of their own (opening logs the file's full
    /// path at info level, to tell which file a process uses). Spaces may be written as they
    /// are or as `%20`; `?mode=ro` opens an existing queue read-only (for `mailctl queue
    /// status` and `list`: enqueueing and delivering then fail).
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`]; [`Error::Queue`](crate::Error::Queue) for a malformed URL,
    /// or a path starting with `~` (which only a shell expands).
    pub async fn open_url(url: &str) -> Result<Self> {
        let path = url.strip_prefix("sqlite:").unwrap_or(url);
        if path.strip_prefix("//").unwrap_or(path).starts_with('~') {
            // SQLite would look for a folder named `~` where the process runs.
            return Err(queue_error(
                "open the SQLite queue",
                "the path in `queue_url` starts with `~`, which only a shell expands",
                false,
                Some(
                    "write the file's full path in `queue_url`, e.g. \
                     `sqlite:///home/mailer/mail-queue.db` (three slashes)",
                ),
            ));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| db_error("read the SQLite queue URL", &e))?
            .create_if_missing(true);
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let file = options.get_filename().to_owned();
        let pool = first_connection(options).await?;
        super::sqlite_migrate::migrate(&pool).await?;
        // The file's full path, so that an operator can see which file a process uses: a
        // relative path is the working directory's, and two processes started in different
        // folders would each have a queue of their own.
        let file = std::fs::canonicalize(&file).unwrap_or(file);
        tracing::info!(file = %file.display(), "opened the SQLite queue");
        Ok(Self { pool })
    }

    /// The connection pool, for what the store does not offer (reports, backups).
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn immediate(&self, action: &'static str) -> Result<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| db_error(action, &e))
    }
}

/// The pool, once its first connection is made. A connection that finds the file locked
/// while it is being switched to write-ahead logging — by other processes opening a new
/// file at the same moment (replicas starting together) — is refused at once: SQLite does
/// not wait for that lock as the busy timeout waits for others. Tried again here (a locked
/// or busy file is SQLite's transient error), briefly and jittered, for as long as the busy
/// timeout would have waited, and without a warning per wait: these last milliseconds.
async fn first_connection(options: SqliteConnectOptions) -> Result<SqlitePool> {
    let wait = super::OpenWait::with_policy(crate::RetryPolicy {
        max_retries: u32::MAX,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(250),
        multiplier: 2.0,
        deadline: Some(Duration::from_secs(30)),
    })
    .on_wait(|_, _| {});
    wait.open_with(|| async {
        SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await
            .map_err(|e| db_error("open the SQLite queue", &e))
    })
    .await
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn insert(&self, message: NewMessage) -> Result<Enqueued> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| db_error("enqueue the email", &e))?;
        // A statement that commits by itself: an answer lost may hide a stored email.
        insert(&mut conn, message, enqueue_error).await
    }

    async fn insert_batch(&self, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
        const ACTION: &str = "enqueue the emails";
        let mut tx = self.immediate(ACTION).await?;
        let mut enqueued = Vec::with_capacity(messages.len());
        for message in messages {
            enqueued.push(insert(&mut tx, message, db_error).await?);
        }
        tx.commit().await.map_err(|e| enqueue_error(ACTION, &e))?;
        Ok(enqueued)
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Claim> {
        const ACTION: &str = "claim a message";
        let limits = request.limits;
        let window = i64::try_from(limits.window.as_millis()).unwrap_or(i64::MAX);
        let asked = std::time::Instant::now();
        let mut tx = self.immediate(ACTION).await?;
        // The worker's now as of the moment the lock was taken: waiting for it (up to the
        // busy timeout, while other processes claim) must not date this attempt earlier
        // and so free its place in the rate window early.
        let at = request.now + asked.elapsed();
        let now = millis(at);
        expire_leases(&mut tx, now).await?;
        sqlx::query("DELETE FROM mail_queue_attempts WHERE started_at <= $1")
            .bind(now.saturating_sub(window))
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error(ACTION, &e))?;
        // Mailboxes with a due message and room under the in-flight limit, oldest due first.
        let candidates: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT q.mailbox, MIN(q.due_at) FROM mail_queue q WHERE q.state = 'queued' \
             AND q.due_at <= $1 AND (SELECT COUNT(*) FROM mail_queue s WHERE \
             s.mailbox = q.mailbox AND {}) < $2 AND NOT EXISTS (SELECT 1 FROM \
             mail_queue_mailboxes p WHERE p.mailbox = q.mailbox AND p.paused_until > $1) \
             GROUP BY q.mailbox ORDER BY 2",
            in_flight("s.", "$1", "$3"),
        ))
        .bind(now)
        .bind(i64::from(limits.max_in_flight))
        .bind(i64::try_from(request.lease.as_millis()).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db_error(ACTION, &e))?;
        let mut next: Option<i64> = None;
        for (mailbox, _) in candidates {
            if limits.per_window > 0 {
                let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(started_at) FROM mail_queue_attempts \
                     WHERE mailbox = $1 AND started_at > $2",
                )
                .bind(&mailbox)
                .bind(now.saturating_sub(window))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| db_error(ACTION, &e))?;
                if count >= i64::from(limits.per_window) {
                    let free = oldest.unwrap_or(now).saturating_add(window);
                    next = Some(next.map_or(free, |n| n.min(free)));
                    continue;
                }
            }
            let row: Option<(String, Vec<u8>, i64, i64)> = sqlx::query_as(
                "SELECT id, body, attempts, retry_from FROM mail_queue WHERE state = 'queued' \
                 AND mailbox = $1 AND due_at <= $2 ORDER BY due_at, created_at LIMIT 1",
            )
            .bind(&mailbox)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_error(ACTION, &e))?;
            let Some((id, body, attempts, retry_from)) = row else {
                continue;
            };
            let token = uuid::Uuid::new_v4().to_string();
            let lease_until = millis(at + request.lease);
            sqlx::query(
                "UPDATE mail_queue SET state = 'sending', attempts = attempts + 1, \
                 lease_token = $2, lease_owner = $3, lease_until = $4, updated_at = $5, \
                 lease_ms = $6 WHERE id = $1",
            )
            .bind(&id)
            .bind(&token)
            .bind(&request.worker)
            .bind(lease_until)
            .bind(now)
            .bind(i64::try_from(request.lease.as_millis()).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error(ACTION, &e))?;
            sqlx::query("INSERT INTO mail_queue_attempts (mailbox, started_at) VALUES ($1, $2)")
                .bind(&mailbox)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(ACTION, &e))?;
            tx.commit().await.map_err(|e| db_error(ACTION, &e))?;
            return Ok(Claim::Message(Box::new(ClaimedMessage {
                lease: Lease { id, token },
                mailbox,
                body,
                attempts: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
                retry_from: from_millis(retry_from),
            })));
        }
        let (due,): (Option<i64>,) = sqlx::query_as(
            "SELECT MIN(t) FROM (SELECT MIN(due_at) AS t FROM mail_queue WHERE state = 'queued' \
             AND due_at > $1 UNION ALL SELECT MIN(p.paused_until) FROM mail_queue_mailboxes p \
             WHERE p.paused_until > $1 AND EXISTS (SELECT 1 FROM mail_queue m \
             WHERE m.mailbox = p.mailbox AND m.state = 'queued' AND m.due_at <= $1))",
        )
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error(ACTION, &e))?;
        tx.commit().await.map_err(|e| db_error(ACTION, &e))?;
        let next = match (next, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(Claim::Idle {
            next: next.map(from_millis),
        })
    }

    async fn extend(&self, lease: &Lease, until: SystemTime) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE mail_queue SET lease_until = $3 WHERE id = $1 AND lease_token = $2 \
             AND state = 'sending'",
        )
        .bind(&lease.id)
        .bind(&lease.token)
        .bind(millis(until))
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("extend a lease", &e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn pause(&self, mailbox: &str, until: SystemTime) -> Result<()> {
        sqlx::query(
            "INSERT INTO mail_queue_mailboxes (mailbox, paused_until) VALUES ($1, $2) \
             ON CONFLICT (mailbox) DO UPDATE SET \
             paused_until = MAX(paused_until, excluded.paused_until)",
        )
        .bind(mailbox)
        .bind(millis(until))
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("pause a mailbox", &e))?;
        Ok(())
    }

    async fn finish(&self, lease: &Lease, outcome: Outcome, now: SystemTime) -> Result<bool> {
        const ACTION: &str = "record a delivery";
        let mut tx = self.immediate(ACTION).await?;
        let done = finish_outcome!(tx, "mail_queue", lease, outcome, now, millis)
            .map_err(|e| db_error(ACTION, &e))?;
        tx.commit().await.map_err(|e| db_error(ACTION, &e))?;
        Ok(done)
    }

    async fn stats(&self, now: SystemTime) -> Result<QueueStats> {
        const ACTION: &str = "count the queue";
        let counts: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT mailbox, state, COUNT(*) FROM mail_queue GROUP BY mailbox, state \
             ORDER BY mailbox, state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error(ACTION, &e))?;
        let oldest: Option<(String, i64)> = sqlx::query_as(
            "SELECT id, due_at FROM mail_queue WHERE state = 'queued' AND due_at <= $1 \
             ORDER BY due_at, created_at LIMIT 1",
        )
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error(ACTION, &e))?;
        let paused: Vec<(String, i64)> = sqlx::query_as(
            "SELECT mailbox, paused_until FROM mail_queue_mailboxes WHERE paused_until > $1",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error(ACTION, &e))?;
        stats_from_counts(counts, oldest, &paused)
    }

    async fn list(&self, state: Option<State>, limit: u32) -> Result<Vec<super::MessageSummary>> {
        let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM mail_queue WHERE ($1 IS NULL OR state = $1) \
             ORDER BY created_at, id LIMIT $2"
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
        let mut tx = self.immediate(ACTION).await?;
        let (state, running) = transition_state!(tx, "mail_queue", id, from, to, millis(now))
            .map_err(|e| db_error(ACTION, &e))?;
        if let Some(wait) = running {
            return Err(still_in_flight(id, wait));
        }
        tx.commit().await.map_err(|e| db_error(ACTION, &e))?;
        state.map(|s| s.parse()).transpose()
    }

    async fn purge(&self, state: State, before: SystemTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM mail_queue WHERE state = $1 AND updated_at < $2")
            .bind(state.as_str())
            .bind(millis(before))
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("purge the queue", &e))?;
        Ok(done.rows_affected())
    }

    async fn purge_sent_bodies(&self, before: SystemTime) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE mail_queue SET body = NULL WHERE state = 'sent' AND body IS NOT NULL \
             AND updated_at < $1",
        )
        .bind(millis(before))
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("purge sent bodies", &e))?;
        Ok(done.rows_affected())
    }

    async fn pending(&self, by: SystemTime) -> Result<(u64, u64)> {
        let (due, sending): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(state = 'queued' AND due_at <= $1 AND NOT EXISTS (SELECT 1 \
             FROM mail_queue_mailboxes p WHERE p.mailbox = mail_queue.mailbox \
             AND p.paused_until > $1)), 0), \
             COALESCE(SUM(state = 'sending'), 0) FROM mail_queue",
        )
        .bind(millis(by))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_error("count the queue", &e))?;
        Ok((due.max(0).unsigned_abs(), sending.max(0).unsigned_abs()))
    }
}

async fn expire_leases(tx: &mut Transaction<'static, Sqlite>, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE mail_queue SET state = 'uncertain', updated_at = $1, last_error = \
         'the worker stopped or lost its lease while sending: the message may have been \
         delivered', remedy = $2 WHERE state = 'sending' AND lease_until < $1",
    )
    .bind(now)
    .bind(crate::error::UNCERTAIN_REMEDY)
    .execute(&mut **tx)
    .await
    .map_err(|e| db_error("expire leases", &e))?;
    Ok(())
}

/// Inserts `m` on `conn`, or finds the message stored with its idempotency key; `error`
/// makes the error of a failed statement.
async fn insert(conn: &mut SqliteConnection, m: NewMessage, error: ErrorOf) -> Result<Enqueued> {
    const ACTION: &str = "enqueue the email";
    // Retries count towards the age limit from when the message falls due (`retry_from` =
    // `due_at`): one enqueued for tomorrow is not old when tomorrow comes.
    let created = millis(m.created_at);
    // Run to its end, not read for a `RETURNING` row: SQLite hands that row over before the
    // statement commits, and a commit that fails then (a full disk, a file-size limit) would
    // go unseen — an email reported enqueued that was never stored.
    let inserted = sqlx::query(
        "INSERT INTO mail_queue (id, idempotency_key, mailbox, recipients, subject, state, \
         body, body_bytes, due_at, created_at, updated_at, retry_from) \
         VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $9, $8) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&m.id)
    .bind(&m.idempotency_key)
    .bind(&m.mailbox)
    .bind(&m.recipients)
    .bind(&m.subject)
    .bind(&m.body)
    .bind(m.body.len() as i64)
    .bind(millis(m.due_at))
    .bind(created)
    .execute(&mut *conn)
    .await
    .map_err(|e| error(ACTION, &e))?;
    if inserted.rows_affected() == 1 {
        return Ok(Enqueued {
            id: m.id,
            created: true,
        });
    }
    let (id,): (String,) = sqlx::query_as("SELECT id FROM mail_queue WHERE idempotency_key = $1")
        .bind(&m.idempotency_key)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| error(ACTION, &e))?;
    Ok(Enqueued { id, created: false })
}
