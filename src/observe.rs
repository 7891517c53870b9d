//! What every send reports about itself: the span fields recorded when it ends (outcome,
//! message id, attempts, duration) and the [`metrics`](crate::metrics) it counts.
//!
//! The transports open their `mail_connector.send` span with those four fields declared
//! [`Empty`](tracing::field::Empty), and run the send through [`observe_send`]. Retries deep
//! inside a transport (Graph's request loop, SMTP's send loop) call
//! [`metrics::retried`](crate::metrics::retried), which counts them here too, in a task-local
//! counter of the send that is running.

use std::cell::Cell;
use std::future::Future;
use std::time::Instant;

use tracing::Span;

use crate::error::{Delivery, Result};
use crate::metrics::Outcome;
use crate::transport::SendReport;

tokio::task_local! {
    /// The retries of the send running in this task.
    static RETRIES: Cell<u32>;
}

/// Counts one retry of the send running in this task (nothing outside a send).
#[cfg(any(feature = "graph", feature = "smtp"))]
pub(crate) fn count_retry() {
    let _ = RETRIES.try_with(|retries| retries.set(retries.get().saturating_add(1)));
}

/// Runs `send`, then records on `span` how it ended — `outcome` (`sent`, `failed`,
/// `uncertain`), `message_id` (the first id the transport returned), `attempts` (1 + the
/// retries) and `duration_ms` — and counts it in the metrics under `transport` and
/// `mailbox` (the configured sender, never a recipient).
pub(crate) async fn observe_send(
    span: &Span,
    transport: &'static str,
    mailbox: Option<&str>,
    send: impl Future<Output = Result<SendReport>>,
) -> Result<SendReport> {
    let started = Instant::now();
    let (result, retries) = RETRIES
        .scope(Cell::new(0), async {
            let result = send.await;
            (result, RETRIES.with(Cell::get))
        })
        .await;
    let took = started.elapsed();
    let outcome = match &result {
        Ok(_) => Outcome::Sent,
        Err(error) if error.delivery() == Delivery::Uncertain => Outcome::Uncertain,
        Err(error) => Outcome::Failed {
            transient: error.is_transient(),
        },
    };
    span.record("outcome", outcome.as_str());
    if let Some(id) = result
        .as_ref()
        .ok()
        .and_then(|report| report.messages.iter().find_map(|m| m.id.as_deref()))
    {
        span.record("message_id", id);
    }
    span.record("attempts", retries.saturating_add(1));
    span.record(
        "duration_ms",
        u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
    );
    // An event inside the span, after the fields are recorded: a subscriber that prints
    // spans with their events (tracing-subscriber's fmt) shows them here.
    tracing::debug!(parent: span, "send finished");
    crate::metrics::send_finished(
        transport,
        mailbox.unwrap_or(crate::metrics::NO_MAILBOX),
        outcome,
        took,
    );
    result
}
