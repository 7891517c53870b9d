//! Admission on PostgreSQL: under one sender mailbox's row lock, check its pause, its
//! deliveries in flight and its rate window by the server's clock, then lease its oldest due
//! message.

use super::PostgresStore;
use super::clock::Clocks;
use crate::error::Result;
use crate::queue::db_error::answer_lost;
use crate::queue::sql::in_flight;
use crate::queue::store::{ClaimRequest, ClaimedMessage, Lease, db_error};

/// What admission found for one mailbox.
pub(super) enum Admission {
    Claimed(Box<ClaimedMessage>),
    /// Another worker is admitting for it right now: look again soon.
    Busy,
    /// At a limit; the rate window frees up at this time (ms), if that is the limit.
    Full(Option<i64>),
}

/// A claim whose `COMMIT` lost its answer (the connection broke, the server restarted): it
/// may have committed, leaving the message `sending` — later `uncertain`, waiting for an
/// operator — although no worker has it and it was certainly never sent. Put back by its
/// lease token, which only this claim knew.
#[derive(Debug)]
pub(super) struct Unclaimed {
    lease: Lease,
    mailbox: String,
    /// The attempt the claim stamped (server clock, ms), taken back with it.
    started_at: i64,
}

impl PostgresStore {
    pub(super) async fn admit(&self, request: &ClaimRequest, mailbox: &str) -> Result<Admission> {
        const ACTION: &str = "claim a message";
        let err = |e: sqlx::Error| db_error(ACTION, &e);
        let limits = request.limits;
        let window = i64::try_from(limits.window.as_millis()).unwrap_or(i64::MAX);
        let lease = i64::try_from(request.lease.as_millis()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO mail_queue.mailboxes (mailbox) VALUES ($1) ON CONFLICT DO NOTHING",
        )
        .bind(mailbox)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        let mut tx = self.pool.begin().await.map_err(err)?;
        // The limits rely on each statement seeing every claim committed before it: an
        // application pool may default to a stricter level, so say it here.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let locked: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT paused_until FROM mail_queue.mailboxes WHERE mailbox = $1 \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(mailbox)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        let Some((paused,)) = locked else {
            return Ok(Admission::Busy);
        };
        // The server's clock, read once the lock is held: every worker's claims are stamped
        // and counted by the same clock, however far the workers' own clocks drift.
        let clocks = Clocks::read(&mut *tx, request.now).await.map_err(err)?;
        let now = clocks.now();
        if let Some(paused) = paused.filter(|&p| p > now) {
            return Ok(Admission::Full(Some(paused)));
        }
        // Attempts that left the window go here, for this mailbox only and under its lock,
        // never in another worker's claim: a delete by a clock read after this one's,
        // committed between this reading and the count below, would drop an attempt that
        // is still in this window and let one too many in.
        sqlx::query("DELETE FROM mail_queue.attempts WHERE mailbox = $1 AND started_at <= $2")
            .bind(mailbox)
            .bind(now.saturating_sub(window))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        // Read committed: each count sees every claim committed before the lock was granted.
        let (in_flight,): (i64,) = sqlx::query_as(&format!(
            "SELECT COUNT(*) FROM mail_queue.messages WHERE mailbox = $1 AND {}",
            in_flight("", "$2", "$3"),
        ))
        .bind(mailbox)
        .bind(now)
        .bind(lease)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        if in_flight >= i64::from(limits.max_in_flight) {
            return Ok(Admission::Full(None));
        }
        if limits.per_window > 0 {
            let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), MIN(started_at) FROM mail_queue.attempts \
                 WHERE mailbox = $1 AND started_at > $2",
            )
            .bind(mailbox)
            .bind(now.saturating_sub(window))
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
            if count >= i64::from(limits.per_window) {
                return Ok(Admission::Full(Some(
                    oldest.unwrap_or(now).saturating_add(window),
                )));
            }
        }
        let row: Option<(String, Vec<u8>, i64, i64)> = sqlx::query_as(
            "SELECT id, body, attempts, retry_from FROM mail_queue.messages \
             WHERE mailbox = $1 AND state = 'queued' AND due_at <= $2 \
             ORDER BY due_at, created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(mailbox)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        let Some((id, body, attempts, retry_from)) = row else {
            return Ok(Admission::Full(None));
        };
        let token = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "UPDATE mail_queue.messages SET state = 'sending', attempts = attempts + 1, \
             lease_token = $2, lease_owner = $3, lease_until = $4, updated_at = $5, \
             lease_ms = $6 WHERE id = $1",
        )
        .bind(&id)
        .bind(&token)
        .bind(&request.worker)
        .bind(now.saturating_add(lease))
        .bind(now)
        .bind(lease)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query("INSERT INTO mail_queue.attempts (mailbox, started_at) VALUES ($1, $2)")
            .bind(mailbox)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        if let Err(error) = tx.commit().await {
            if answer_lost(&error) {
                let lease = Lease {
                    id: id.clone(),
                    token,
                };
                let mailbox = mailbox.to_owned();
                let unclaimed = Unclaimed {
                    lease,
                    mailbox,
                    started_at: now,
                };
                self.put_back(unclaimed).await;
            }
            return Err(err(error));
        }
        Ok(Admission::Claimed(Box::new(ClaimedMessage {
            lease: Lease { id, token },
            mailbox: mailbox.to_owned(),
            body,
            attempts: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
            // Stored on the server's clock; the worker measures the message's age by its own.
            retry_from: clocks.to_worker(retry_from),
        })))
    }

    /// Puts back the message of a claim whose `COMMIT` lost its answer, if that claim
    /// committed: `queued` again (`uncertain` too, should its lease have run out since),
    /// its attempt and rate-window stamp taken back. When the database cannot be reached
    /// yet, it is kept for [`put_back_unclaimed`](Self::put_back_unclaimed) to try again.
    async fn put_back(&self, unclaimed: Unclaimed) {
        if let Err(error) = self.release(&unclaimed).await {
            tracing::warn!(
                %error,
                id = %unclaimed.lease.id,
                "mail queue: a claim lost its answer and the message could not be put back \
                 yet; the next claim tries again"
            );
            self.unclaimed().push(unclaimed);
        }
    }

    /// Tries again to put back every claim whose answer was lost (see [`Unclaimed`]).
    pub(super) async fn put_back_unclaimed(&self) {
        let pending = std::mem::take(&mut *self.unclaimed());
        for unclaimed in pending {
            if self.release(&unclaimed).await.is_err() {
                self.unclaimed().push(unclaimed);
            }
        }
    }

    fn unclaimed(&self) -> std::sync::MutexGuard<'_, Vec<Unclaimed>> {
        self.unclaimed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn release(&self, unclaimed: &Unclaimed) -> std::result::Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let released = sqlx::query(
            "UPDATE mail_queue.messages SET state = 'queued', attempts = attempts - 1, \
             lease_token = NULL, lease_owner = NULL, lease_until = NULL, lease_ms = NULL \
             WHERE id = $1 AND lease_token = $2 AND state IN ('sending', 'uncertain')",
        )
        .bind(&unclaimed.lease.id)
        .bind(&unclaimed.lease.token)
        .execute(&mut *tx)
        .await?;
        if released.rows_affected() == 1 {
            sqlx::query(
                "DELETE FROM mail_queue.attempts WHERE ctid = (SELECT ctid FROM \
                 mail_queue.attempts WHERE mailbox = $1 AND started_at = $2 LIMIT 1)",
            )
            .bind(&unclaimed.mailbox)
            .bind(unclaimed.started_at)
            .execute(&mut *tx)
            .await?;
            tracing::info!(
                id = %unclaimed.lease.id,
                "mail queue: a claim lost its answer; its message, never sent, is queued again"
            );
        }
        tx.commit().await
    }
}
