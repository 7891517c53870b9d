//! One delivery, as a worker's task: send with the lease kept alive, classify the result,
//! and record the outcome — trying again while the store fails for a moment, so that a
//! brief database outage does not turn a known outcome into an uncertain one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::Instrument;

use super::codec;
use super::hold::{MAX_HOLD, holds_mailbox};
use super::outcome::{Attempt, classify};
use super::store::{ClaimedMessage, Lease, Outcome, QueueStore};
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::transport::MailTransport;

/// A delivery's outcome as recorded, and when the retry it scheduled (if any) is due at
/// the latest, on this worker's clock.
pub(super) struct Delivered {
    pub outcome: Outcome,
    pub due: Option<SystemTime>,
    /// Whether the outcome holds the message (or its recipients not sent) for an admin.
    pub held: bool,
}

/// A lease a worker holds, and the outcome of its delivery once decided (with the instant it
/// was decided at): what the worker records when it shuts down before the delivery's task
/// could.
pub(super) struct HeldLease {
    pub lease: Lease,
    pub decided: Option<(Outcome, SystemTime)>,
}

/// The leases a worker holds, by lease token (new at every claim, so a message claimed again
/// at once never shares an entry with its previous delivery).
pub(super) type Held = Arc<Mutex<HashMap<String, HeldLease>>>;

/// Locks the held leases, whatever a panicking task left behind (each entry stays whole).
pub(super) fn held(held: &Held) -> std::sync::MutexGuard<'_, HashMap<String, HeldLease>> {
    held.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a delivery needs of its worker.
pub(super) struct Delivery {
    pub store: Arc<dyn QueueStore>,
    pub transport: Arc<dyn MailTransport>,
    pub retry: RetryPolicy,
    /// How long a lease lasts unless extended.
    pub lease: Duration,
}

/// Delivers `message` and records its outcome. The outcome is kept in `held` from the moment
/// it is decided until it is recorded, for the worker's shutdown to record instead of
/// `uncertain` if it cuts this task off.
pub(super) fn deliver(
    delivery: Delivery,
    message: ClaimedMessage,
    held: Held,
) -> impl Future<Output = Option<Delivered>> + Send + 'static {
    let span = tracing::info_span!(
        "mail_queue.delivery",
        message_id = %message.lease.id,
        mailbox = %message.mailbox,
        attempt = message.attempts,
    );
    async move {
        let Delivery {
            store,
            transport,
            retry,
            lease: lease_length,
        } = delivery;
        let lease = message.lease.clone();
        let Attempted {
            outcome,
            now,
            pause,
            held: held_by_admin,
        } = attempt(&*store, &*transport, &message, &retry, lease_length).await;
        if let Some(entry) = self::held(&held).get_mut(&lease.token) {
            entry.decided = Some((outcome.clone(), now));
        }
        // Once the outcome is decided (a shutdown meanwhile records it): the mailbox's other
        // messages wait with this one, rather than each taking its turn to fail the same way.
        if let Some(until) = pause
            && let Err(error) = store.pause(&message.mailbox, until).await
        {
            tracing::warn!(%error, "mail queue: could not pause the mailbox");
        }
        // Written with `now`, the instant the outcome was decided at, so that its retry time
        // and the row's `updated_at` are measured from one clock reading.
        let recorded = record(&*store, &lease, &outcome, now, lease_length).await;
        // A store on another clock stored the retry at its distance from that clock's
        // now, read after `now`: on this clock it is due up to that much later.
        let late = SystemTime::now().duration_since(now).unwrap_or_default();
        let due = match &outcome {
            // Held for an admin: no clock makes it go, so `run_once` does not wait for it.
            Outcome::Held { .. } => None,
            Outcome::Partial { .. } if held_by_admin => None,
            Outcome::Retry { at, .. } => Some(*at + late),
            Outcome::Partial {
                not_sent: Some((_, at)),
                ..
            } => at.map(|at| at + late),
            _ => None,
        };
        self::held(&held).remove(&lease.token);
        match recorded {
            Ok(Recorded::Now) => tracing::info!(
                outcome = outcome_name(&outcome),
                "mail queue: delivery recorded"
            ),
            Ok(Recorded::Lost { retried: false }) => {
                tracing::warn!("mail queue: the lease was lost before the outcome was recorded");
            }
            Ok(Recorded::Lost { retried: true }) => tracing::warn!(
                outcome = outcome_name(&outcome),
                "mail queue: after the store failed, the outcome was found recorded already \
                 (its answer was lost) or the lease lost"
            ),
            Err(error) => tracing::error!(
                %error,
                outcome = outcome_name(&outcome),
                "mail queue: could not record the outcome; the lease will run out and the \
                 message become uncertain"
            ),
        }
        Some(Delivered {
            outcome,
            due,
            held: held_by_admin,
        })
    }
    .instrument(span)
}

/// What [`record`] did.
enum Recorded {
    /// The outcome is recorded.
    Now,
    /// The lease was no longer held; `retried` when an earlier write failed, which may
    /// have landed with its answer lost.
    Lost { retried: bool },
}

/// The first wait before writing an outcome again, doubled after each failure up to
/// [`RECORD_WAIT_MAX`].
const RECORD_WAIT: Duration = Duration::from_millis(100);
const RECORD_WAIT_MAX: Duration = Duration::from_secs(5);

/// Records `outcome` under `lease`, writing it again while the store fails transiently (a
/// failover, a busy database, a full pool), for up to `patience` — a lease's length: by then
/// another worker may have marked the message uncertain, and the lease is lost anyway.
/// Writing again is safe: the lease's token lets one write through, and a write that landed
/// with its answer lost makes the next find the lease gone.
async fn record(
    store: &dyn QueueStore,
    lease: &Lease,
    outcome: &Outcome,
    now: SystemTime,
    patience: Duration,
) -> Result<Recorded> {
    let give_up = Instant::now() + patience;
    let mut wait = RECORD_WAIT;
    let mut retried = false;
    loop {
        match store.finish(lease, outcome.clone(), now).await {
            Ok(true) => return Ok(Recorded::Now),
            Ok(false) => return Ok(Recorded::Lost { retried }),
            Err(error) if error.is_transient() && Instant::now() + wait < give_up => {
                tracing::warn!(
                    %error,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "mail queue: could not record the outcome; trying again"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RECORD_WAIT_MAX);
                retried = true;
            }
            Err(error) => return Err(error),
        }
    }
}

/// What one attempt decided.
struct Attempted {
    outcome: Outcome,
    /// The instant it was decided at.
    now: SystemTime,
    /// Until when to pause the sender mailbox: the server throttled it and said how long,
    /// or the failure [holds](holds_mailbox) it until the message's next try.
    pause: Option<SystemTime>,
    /// Whether the outcome holds the message (or its recipients not sent) for an admin.
    held: bool,
}

/// Sends the stored email, extending the lease meanwhile, and classifies the result.
async fn attempt(
    store: &dyn QueueStore,
    transport: &dyn MailTransport,
    message: &ClaimedMessage,
    retry: &RetryPolicy,
    lease_length: Duration,
) -> Attempted {
    let email = match codec::decode(&message.body) {
        Ok(email) => email,
        Err(error) => {
            let failed = Outcome::Failed {
                error: error.to_string(),
                remedy: error.remedy(),
            };
            return Attempted {
                outcome: failed,
                now: SystemTime::now(),
                pause: None,
                held: false,
            };
        }
    };
    let send = transport.send(&email);
    tokio::pin!(send);
    let mut heartbeat = tokio::time::interval(lease_length / 3);
    heartbeat.tick().await;
    let result = loop {
        tokio::select! {
            result = &mut send => break result,
            _ = heartbeat.tick() => {
                let until = SystemTime::now() + lease_length;
                match store.extend(&message.lease, until).await {
                    Ok(true) => {}
                    Ok(false) => tracing::error!(
                        id = %message.lease.id,
                        "mail queue: lease lost while sending; the message is marked \
                         uncertain and another worker may see it; do not retry it until \
                         this send has ended"
                    ),
                    Err(error) => {
                        tracing::warn!(%error, "mail queue: could not extend the lease");
                    }
                }
            }
        }
    };
    // The server throttled the mailbox and said for how long: pause all of its messages,
    // not only this one, so that the others do not burn their attempts meanwhile.
    let throttled = result
        .as_ref()
        .err()
        .and_then(Error::retry_after)
        .map(pause_length)
        .and_then(|wait| SystemTime::now().checked_add(wait));
    let holds = result.as_ref().err().is_some_and(holds_mailbox);
    let now = SystemTime::now();
    let attempt = Attempt {
        email: &email,
        attempts: message.attempts,
        retry_from: message.retry_from,
        now,
        retry,
    };
    let outcome = classify(result, &attempt).await;
    let held_until = match &outcome {
        Outcome::Held { at, error }
        | Outcome::Partial {
            not_sent: Some((_, Some(at))),
            error,
            ..
        } if holds => {
            tracing::warn!(%error, "mail queue: sender mailbox held until an admin acts");
            Some(*at)
        }
        _ => None,
    };
    Attempted {
        pause: throttled.max(held_until),
        held: held_until.is_some(),
        outcome,
        now,
    }
}

/// How long to pause a mailbox whose server asked to wait `asked`: at most [`MAX_HOLD`],
/// as a hold. A pause is never shortened and no command lifts it, so a `Retry-After` of
/// hours (a proxy's, or an HTTP date from a wrong clock) would otherwise keep every message
/// of the mailbox from being tried, or reaching its age limit, for that long; a server
/// still throttling after the cap says so again, and pauses the mailbox again.
fn pause_length(asked: Duration) -> Duration {
    if asked > MAX_HOLD {
        tracing::warn!(
            asked_secs = asked.as_secs(),
            paused_secs = MAX_HOLD.as_secs(),
            "mail queue: the server asked to pause the sender mailbox for longer than the \
             queue ever pauses one; pausing it for the longest"
        );
    }
    asked.min(MAX_HOLD)
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Sent { .. } => "sent",
        Outcome::Retry { .. } => "queued",
        Outcome::Held { .. } => "held",
        Outcome::Failed { .. } => "failed",
        Outcome::Uncertain { .. } => "uncertain",
        Outcome::Partial { .. } => "partial",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailbox_is_paused_as_long_as_its_server_asked_up_to_five_minutes() {
        let secs = Duration::from_secs;
        assert_eq!(pause_length(secs(30)), secs(30));
        assert_eq!(pause_length(secs(300)), secs(300));
        assert_eq!(pause_length(secs(3 * 3600)), secs(300));
    }
}
