//! What every send reports about itself: the span fields recorded when it ends (outcome,
//! message id, attempts, duration) and the [`metrics`](crate::metrics) it counts.
//!
//! The transports open their `mail_connector.send` span with those four fields declared
//! [`Empty`](tracing::field::Empty), and run the send through [`observe_send`], which enters
//! the span while the send runs. Requests repeated deep inside a transport (Graph's request
//! loop, SMTP's send loop) call [`metrics::retried`](crate::metrics::retried) or
//! [`count_attempt`], which count them here, in a task-local counter of the send that is
//! running. A span nothing can see (no subscriber records it, and log's level keeps
//! tracing's `log` fallback from writing it) is neither entered nor given the counter: each
//! costs something on every poll of every send.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::time::Instant;
use tracing::{Instrument, Span};

use crate::error::{Delivery, Error, Result};
use crate::metrics::Outcome;
use crate::transport::SendReport;

tokio::task_local! {
    /// The requests after the first of the send running in this task.
    static EXTRA_ATTEMPTS: Arc<AtomicU32>;
}

/// Counts one more attempt (a request after the first) of the send running in this task
/// (nothing outside a send): a retry, or Graph's re-send with a fresh token after a 401.
#[cfg(any(feature = "graph", feature = "smtp"))]
pub(crate) fn count_attempt() {
    let _ = EXTRA_ATTEMPTS.try_with(|extra| extra.fetch_add(1, Ordering::Relaxed));
}

/// Runs `send`, then records on `span` how it ended — `outcome` (`sent`, `partial`,
/// `failed`, `uncertain`), `message_id` (the first id the transport returned, also of the
/// delivered part of a partial delivery), `attempts` (the requests made: 1 + the retries +
/// a re-send with a fresh token) and `duration_ms` — and counts it in the metrics under
/// `transport` and `mailbox` (the configured sender, never a recipient).
///
/// A send dropped before it ends (its caller gave up, e.g. on a timeout) is recorded as
/// `uncertain`, with the time until then: a request may have reached the server.
///
/// `started` is when the send began, on tokio's clock: the reading the transport takes anyway
/// for its deadline, not a second one.
///
/// `send` is best given pinned where it is made (`std::pin::pin!`): the future this returns
/// then holds a pointer to it rather than a copy.
pub(crate) fn observe_send<'a, F>(
    span: Span,
    transport: &'static str,
    mailbox: Option<&'a str>,
    started: Instant,
    send: F,
) -> impl Future<Output = Result<SendReport>> + Send + 'a
where
    F: Future<Output = Result<SendReport>> + Send + 'a,
{
    // Made before the future rather than in an `async fn`, which would hold each of its
    // arguments twice, and each send's future is allocated whole.
    let mut pending = Pending {
        // Nothing to enter on each poll of the send, and no attempts to count, for a span
        // nothing can see.
        extra_attempts: visible(&span).then(|| Arc::new(AtomicU32::new(0))),
        span,
        transport,
        mailbox: mailbox.unwrap_or(crate::metrics::NO_MAILBOX),
        started,
        polled: false,
        finished: false,
    };
    async move {
        // Only a send that began is recorded: one dropped before its first poll is not.
        pending.polled = true;
        let result = match pending.extra_attempts.clone() {
            None => send.await,
            Some(extra_attempts) => {
                EXTRA_ATTEMPTS
                    .scope(extra_attempts, send)
                    .instrument(pending.span.clone())
                    .await
            }
        };
        let (outcome, id) = outcome_of(&result);
        pending.finish(outcome, id, false);
        result
    }
}

/// Whether anything may see `span`: a subscriber records it, or tracing was built with its
/// `log` fallback (another crate in the build may turn it on) and log's levels, the one
/// compiled in and the one set at run time, let the span's own level through. That is the
/// level test the fallback makes before it writes a span's records; without a logger,
/// log's level stays `Off`. The fallback may still write nothing (it stays quiet once a
/// tracing subscriber is set, unless built with `log-always`): then the span is entered
/// for nothing, as every span was before.
fn visible(span: &Span) -> bool {
    !span.is_disabled()
        || span.metadata().is_some_and(|meta| {
            let level = log_level(*meta.level());
            level <= log::STATIC_MAX_LEVEL && level <= log::max_level()
        })
}

/// A tracing level as log's.
fn log_level(level: tracing::Level) -> log::Level {
    match level {
        tracing::Level::ERROR => log::Level::Error,
        tracing::Level::WARN => log::Level::Warn,
        tracing::Level::INFO => log::Level::Info,
        tracing::Level::DEBUG => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

/// How a send ended, and the first message id it has.
fn outcome_of(result: &Result<SendReport>) -> (Outcome, Option<&str>) {
    match result {
        Ok(report) => (Outcome::Sent, first_id(report)),
        Err(Error::PartialDelivery {
            delivered,
            uncertain,
            refused_permanently,
            source,
            ..
        }) if !delivered.messages.is_empty() => (
            Outcome::Partial {
                delivered: delivered.messages.len() as u64,
                rest_uncertain: !uncertain.is_empty(),
                // The rest counts as one failed message: temporary only when every
                // recipient in it may still get the email. A rest with a recipient refused
                // for good holds a failure no retry fixes, so it is `permanent` even though
                // a queue retries its other recipients (refused for now, or never tried
                // under a recipient limit) and fails only the refused ones: an alert on
                // permanent failures must fire for the refused address.
                transient: refused_permanently.is_empty() && source.is_transient(),
            },
            first_id(delivered),
        ),
        Err(error) if error.delivery() == Delivery::Uncertain => (Outcome::Uncertain, None),
        Err(error) => (
            Outcome::Failed {
                transient: error.is_transient(),
            },
            None,
        ),
    }
}

fn first_id(report: &SendReport) -> Option<&str> {
    report.messages.iter().find_map(|m| m.id.as_deref())
}

/// A send being observed; records it as `uncertain` if dropped before [`Pending::finish`].
struct Pending<'a> {
    span: Span,
    transport: &'static str,
    mailbox: &'a str,
    started: Instant,
    /// The counter of the send's attempts, when its span is recorded.
    extra_attempts: Option<Arc<AtomicU32>>,
    /// Whether the send began: one dropped before it did is not recorded.
    polled: bool,
    finished: bool,
}

impl Pending<'_> {
    fn finish(&mut self, outcome: Outcome, id: Option<&str>, abandoned: bool) {
        self.finished = true;
        // Inside the span, when it is recorded, like the send: what the metrics recorder
        // does (a layer may read the current span) happens in it too.
        let _entered = self.extra_attempts.is_some().then(|| self.span.enter());
        let took = self.started.elapsed();
        let span = &self.span;
        // Only a span something can see is worth its fields (each is looked up by name).
        if let Some(extra) = &self.extra_attempts {
            span.record("outcome", outcome.as_str());
            if let Some(id) = id {
                span.record("message_id", id);
            }
            let extra = extra.load(Ordering::Relaxed);
            span.record("attempts", extra.saturating_add(1));
            span.record(
                "duration_ms",
                u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            );
        }
        // An event inside the span, after the fields are recorded: a subscriber that prints
        // spans with their events (tracing-subscriber's fmt) shows them here.
        if abandoned {
            tracing::debug!(parent: span, "send abandoned by its caller; delivery uncertain");
        } else {
            tracing::debug!(parent: span, "send finished");
        }
        crate::metrics::send_finished(self.transport, self.mailbox, outcome, took);
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.polled && !self.finished {
            self.finish(Outcome::Uncertain, None, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With tracing's `log` fallback built in (as in tests) and no subscriber, a span counts
    /// as seen exactly when log's maximum level lets its level through.
    ///
    /// It changes the process's state: log's level (put back before it asserts), and
    /// tracing's record that a subscriber was once set, which turns the fallback off in this
    /// test binary. No other test here relies on either.
    /// A send is recorded once it began: dropped unpolled, nothing; dropped after its first
    /// poll, one uncertain send.
    #[cfg(feature = "metrics")]
    #[test]
    fn only_a_send_that_began_is_recorded_when_dropped() {
        use std::task::{Context, Waker};

        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let uncertain = || {
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .filter(|(key, ..)| key.key().name() == crate::metrics::MESSAGES_UNCERTAIN)
                .map(|(.., value)| match value {
                    metrics_util::debugging::DebugValue::Counter(n) => n,
                    _ => 0,
                })
                .sum::<u64>()
        };
        let observed = || {
            Box::pin(observe_send(
                Span::none(),
                "graph",
                Some("a@example.org"),
                Instant::now(),
                std::future::pending(),
            ))
        };
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let _in_runtime = runtime.enter();
            drop(observed());
            assert_eq!(uncertain(), 0, "never polled: the send never began");
            let mut began = observed();
            let mut cx = Context::from_waker(Waker::noop());
            assert!(began.as_mut().poll(&mut cx).is_pending());
            drop(began);
            assert_eq!(uncertain(), 1, "dropped after it began: uncertain");
        });
    }

    #[test]
    fn a_span_without_a_subscriber_is_seen_only_when_log_lets_its_level_through() {
        let _nothing = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::new());
        let span = tracing::info_span!("mail_connector.send");
        assert!(
            span.is_disabled() && !span.is_none(),
            "the fallback is built in"
        );
        let before = log::max_level();
        log::set_max_level(log::LevelFilter::Warn);
        let at_warn = visible(&span);
        log::set_max_level(log::LevelFilter::Info);
        let at_info = visible(&span);
        log::set_max_level(before);
        assert!(!at_warn, "an INFO span under a WARN logger");
        assert!(at_info, "an INFO span under an INFO logger");
        assert!(!visible(&Span::none()));
    }
}
