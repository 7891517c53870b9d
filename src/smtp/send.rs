//! Sending: the sender and `From` of an email, the send loop with its retries within the
//! send deadline, and each attempt in a task of its own that owns the connection permit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::time::Instant;
use tracing::Instrument;
use tracing::instrument::WithSubscriber as _;

use super::connect::{Deadline, TlsProbe};
use super::envelope::{Accepted, Envelope, Progress, gave_up};
use super::{Inner, SendAsPolicy, SmtpTransport, connect, remedy};
use crate::error::{Delivery, Error, Result, SmtpStage};
use crate::message::{Email, Mailbox};
use crate::mime::{BccHeader, render};
use crate::transport::SendReport;

impl SmtpTransport {
    fn sender_for(&self, email: &Email) -> Result<(Mailbox, Mailbox)> {
        let inner = &self.inner;
        let mailbox = match (&inner.sender, email.from()) {
            (Some(mailbox), _) => mailbox.clone(),
            (None, Some(from)) => from.clone(),
            (None, None) => {
                // The fix is in the settings: the transport needs a mailbox.
                return Err(Error::settings(
                    "user_name",
                    "the email has no sender and the transport has none: set User Name \
                     (`user_name`)",
                ));
            }
        };
        let from = match email.from() {
            Some(from) if !from.same_address(&mailbox) => {
                if inner.send_as == SendAsPolicy::MailboxOnly {
                    let (what, fix) = email.send_as_fix();
                    return Err(Error::settings(
                        "allow_send_as",
                        format!(
                            "{what} is from `{}`, not the mailbox `{}`, and the send-as policy \
                             is MailboxOnly: {fix}, or set `allow_send_as = true` once the \
                             mailbox may send as that address",
                            from.address(),
                            mailbox.address()
                        ),
                    ));
                }
                from.clone()
            }
            Some(from) => from.clone(),
            None => mailbox.clone(),
        };
        Ok((mailbox, from))
    }

    pub(super) async fn send_inner(&self, email: &Email) -> Result<SendReport> {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.send_deadline;
        let (mailbox, from) = self.sender_for(email)?;
        let rendered = render(email, &from, BccHeader::Drop, inner.dkim.as_ref()).await?;
        let (mut bytes, message_id) = (rendered.bytes, rendered.message_id);
        // lettre ends the data with CRLF.CRLF; a message's own final CRLF is the first half
        // of it, else every message would gain an empty last line on the wire.
        if bytes.ends_with(b"\r\n") {
            bytes.truncate(bytes.len() - 2);
        }
        let envelope = Arc::new(Envelope::new(&mailbox, email, &from, &bytes)?);
        let bytes: Arc<[u8]> = bytes.into();

        let started = Instant::now();
        // Shared by every attempt of this send: the TLS question is asked once.
        let probe = Arc::new(TlsProbe::default());
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let (outcome, progress) = self.run_attempt(&envelope, &bytes, deadline, &probe).await;
            let error = match outcome {
                Ok(Ok(accepted)) => {
                    return envelope.report(accepted, message_id.clone());
                }
                Ok(Err(error)) => error,
                Err(_elapsed) => {
                    let deadline = inner.send_deadline;
                    let (delivery, text) = match (
                        progress.may_be_delivered(),
                        progress.data_started,
                    ) {
                        (true, _) => (
                            Delivery::Uncertain,
                            format!(
                                "no answer within the send deadline of {deadline:?}; the message \
                                 data was written, so it may have been delivered"
                            ),
                        ),
                        (false, true) => (
                            Delivery::NotSent,
                            format!(
                                "the send deadline of {deadline:?} passed while the message data \
                                 was still being written; its end was never sent, so no server \
                                 can have taken it"
                            ),
                        ),
                        (false, false) => (
                            Delivery::NotSent,
                            format!("no answer within the send deadline of {deadline:?}"),
                        ),
                    };
                    let error = remedy::client_error(progress.stage, text, true, delivery);
                    return Err(progress.exact(error));
                }
            };
            // A 4xx *reply* to the end of the data (Exchange's `432 4.3.2`) is the server's
            // explicit refusal and is NotSent, so it is retried like any other; no reply after
            // the data is Uncertain, which is never transient, so never retried.
            // Not within this send after `close`: the transport takes no more.
            let retryable = error.is_transient()
                && error.delivery() == Delivery::NotSent
                && !inner.permits.is_closed();
            let wait = match retryable {
                true => inner
                    .retry
                    .next_delay(attempt.saturating_sub(1), started.elapsed(), None),
                false => None,
            };
            let Some(wait) = wait else {
                return Err(progress.exact(error));
            };
            if Instant::now()
                .checked_add(wait)
                .is_none_or(|end| end >= deadline)
            {
                return Err(progress.exact(error));
            }
            tracing::warn!(attempt, ?wait, error = %error, "transient SMTP failure; retrying");
            if is_throttling(&error) {
                crate::metrics::throttled("smtp", wait);
            }
            crate::metrics::retried("smtp");
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt, in a task of its own that owns the permit and the connection.
    ///
    /// A caller that gives up (its future dropped by a timeout) must not free its permit
    /// while the server is still working on its transaction: the server counts that session
    /// against the mailbox, and the next send would open one more. So the task goes on
    /// after the caller has left: it waits for the reply it is owed, ends the transaction
    /// (`RSET`) before the data if the caller is gone, and only then releases the permit.
    async fn run_attempt(
        &self,
        envelope: &Arc<Envelope>,
        bytes: &Arc<[u8]>,
        deadline: Instant,
        probe: &Arc<TlsProbe>,
    ) -> (AttemptOutcome, Progress) {
        // Waiting for a permit involves no server: a caller that gives up here leaves
        // nothing behind.
        let permits = Arc::clone(&self.inner.permits);
        let permit = match tokio::time::timeout_at(deadline, permits.acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            // Closed by `close`, for a shutdown: nothing was sent; a later try (after the
            // restart) may send it.
            Ok(Err(_closed)) => {
                let error = remedy::client_error(
                    SmtpStage::Connect,
                    "the transport was closed (`SmtpTransport::close`); the mail was not sent",
                    true,
                    Delivery::NotSent,
                );
                return (Ok(Err(error)), Progress::default());
            }
            Err(elapsed) => return (Err(elapsed), Progress::default()),
        };
        let inner = Arc::clone(&self.inner);
        let (envelope, bytes) = (Arc::clone(envelope), Arc::clone(bytes));
        let probe = Arc::clone(probe);
        let cancelled = Arc::new(AtomicBool::new(false));
        let gone = Arc::clone(&cancelled);
        let task = async move {
            let _permit = permit;
            let mut progress = Progress::default();
            let outcome = attempt(
                &inner,
                &envelope,
                &bytes,
                &mut progress,
                deadline,
                &probe,
                &gone,
            )
            .await;
            if gone.load(Ordering::Relaxed) {
                log_abandoned(&outcome, &progress);
            }
            (outcome, progress)
        };
        let handle = tokio::spawn(task.in_current_span().with_current_subscriber());
        let _cancel = CancelOnDrop(cancelled);
        match handle.await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Only a runtime that shuts down cancels the task.
            Err(_cancelled) => {
                let error = remedy::client_error(
                    SmtpStage::Connect,
                    "the runtime shut down during the send",
                    false,
                    Delivery::Uncertain,
                );
                (Ok(Err(error)), Progress::default())
            }
        }
    }
}

/// Whether the server refused for load rather than for a fault: Exchange Online's
/// `432 4.3.2` (too many connections or messages for the mailbox), counted as a throttling
/// wait in the metrics.
fn is_throttling(error: &Error) -> bool {
    match error {
        Error::Smtp {
            code,
            enhanced_code,
            ..
        } => *code == Some(432) || enhanced_code.as_deref() == Some("4.3.2"),
        // Every recipient refused: as its source, the first temporary refusal, says.
        Error::PartialDelivery { source, .. } => is_throttling(source),
        _ => false,
    }
}

/// Whether a pooled connection's refusal of `MAIL FROM` for now may have been the server's
/// parting words to it while it was idle (Exchange's `451 4.7.0 Timeout waiting for client
/// input`) from a server that then kept it open: every reply after would be one behind (the
/// RSET reading the MAIL reply, a later DATA's reply read as the message's), so the
/// connection is not used again. The refusal is reported as it is: a real one would come
/// on a new connection too.
fn out_of_turn(error: &Error) -> bool {
    matches!(
        error,
        Error::Smtp {
            stage: SmtpStage::Mail,
            code: Some(400..=499),
            ..
        }
    )
}

/// Says what became of an attempt whose caller stopped waiting (and was told delivery is
/// uncertain), so that an operator can tell whether the message went out.
fn log_abandoned(outcome: &AttemptOutcome, progress: &Progress) {
    const GONE: &str = "a send its caller stopped waiting for";
    match outcome {
        Ok(Ok(accepted)) => tracing::warn!(
            recipients = accepted.accepted_count(),
            "{GONE} was delivered after all"
        ),
        Ok(Err(error)) => match error.delivery() {
            Delivery::Uncertain => tracing::warn!(
                error = %error,
                "{GONE} ended with its delivery uncertain"
            ),
            Delivery::NotSent => tracing::info!(error = %error, "{GONE} was not delivered"),
        },
        Err(_elapsed) if progress.may_be_delivered() => tracing::warn!(
            "{GONE} reached the send deadline after its data was written: it may have been \
             delivered"
        ),
        Err(_elapsed) => tracing::info!("{GONE} reached the send deadline and was not delivered"),
    }
}

/// What one attempt came to: its result, or the send deadline passing.
type AttemptOutcome = std::result::Result<Result<Accepted>, tokio::time::error::Elapsed>;

/// Tells the attempt's task, when the caller's future is dropped, that nobody waits for it.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One attempt under a permit: a connection (pooled or new), MAIL/RCPT/DATA. `cancelled`
/// says the caller is gone: no new connection is opened and no transaction started or
/// continued up to the data.
///
/// Every wait ends at `deadline`: opening a connection stage by stage (each with a message
/// that says what did not answer: the SMTP server, or the login host for a token), the
/// transaction as a whole (`Err(Elapsed)`, explained by the caller from `progress`).
async fn attempt(
    inner: &Inner,
    envelope: &Envelope,
    bytes: &[u8],
    progress: &mut Progress,
    deadline: Instant,
    probe: &TlsProbe,
    cancelled: &AtomicBool,
) -> AttemptOutcome {
    let limit = Deadline {
        at: deadline,
        total: inner.send_deadline,
        of: "send",
    };
    loop {
        progress.stage = SmtpStage::Connect;
        if cancelled.load(Ordering::Relaxed) {
            return Ok(Err(gave_up(SmtpStage::Connect)));
        }
        let taken = match inner.pool.take(&inner.connector, limit).await {
            Ok(taken) => taken,
            Err(error) => return Ok(Err(error)),
        };
        let (mut conn, reused) = match taken {
            Some(conn) => (conn, true),
            None => match inner.connector.open(limit, probe).await {
                Ok(conn) => {
                    inner.opened.fetch_add(1, Ordering::Relaxed);
                    (conn, false)
                }
                Err(error) => return Ok(Err(error)),
            },
        };
        // A pooled connection may have died while idle, silently (a NAT or firewall that
        // forgot it): its first reply is waited for no longer than a new connection's
        // greeting would be, and at most half the time left, so that a new one can be tried.
        let mail_reply_by = reused.then(|| {
            let now = Instant::now();
            let half_left = deadline.saturating_duration_since(now) / 2;
            now + inner.connector.connect_timeout.min(half_left)
        });
        // No answer by the deadline: the connection is dropped (closed) with the future.
        let transfer = conn.transfer(envelope, bytes, progress, cancelled, mail_reply_by);
        let result = tokio::time::timeout_at(deadline, transfer).await?;
        match result {
            Ok(accepted) => {
                inner.pool.put(conn);
                return Ok(Ok(accepted));
            }
            Err(error) => {
                let broken = conn.is_broken();
                if broken || (reused && out_of_turn(&error)) {
                    conn.abort().await;
                } else {
                    inner.pool.put(conn);
                }
                // A pooled connection the server closed while idle fails on its first
                // command without a reply (or with its parting 421 or 451); nothing was
                // accepted, so use a new one at once, without counting a failed attempt.
                if reused && broken && !progress.data_started && connect::closed_while_idle(&error)
                {
                    // The connections idle in the pool have waited at least as long: closed
                    // or dead alike, most likely (a NAT forgets them all at once).
                    inner.pool.clear();
                    tracing::debug!("pooled SMTP connection was closed; opening a new one");
                    continue;
                }
                return Ok(Err(error));
            }
        }
    }
}
