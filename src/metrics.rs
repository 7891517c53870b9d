//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! With the feature on, the transports record counters and histograms with whichever
//! recorder the host installed (`metrics-exporter-prometheus`, StatsD, OpenTelemetry, …);
//! with none installed, recording costs next to nothing. Without the feature the recording
//! calls compile to nothing, and only the names below remain.
//!
//! The names and labels are a stable interface: dashboards and alerts depend on them. They
//! are changed only in a breaking release.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `mail_connector_messages_sent_total` | counter | `transport`, `mailbox` | emails the server accepted |
//! | `mail_connector_messages_failed_total` | counter | `transport`, `mailbox`, `error` | emails certainly not sent; `error` is `transient` (try again later) or `permanent` |
//! | `mail_connector_messages_uncertain_total` | counter | `transport`, `mailbox` | emails that may or may not have been delivered (never resent), including sends abandoned by their caller (a dropped future, a timeout) |
//! | `mail_connector_send_duration_seconds` | histogram | `transport`, `mailbox`, `outcome` | time of one `send`, retries and waits included; `outcome` is `sent`, `partial`, `failed` or `uncertain` |
//! | `mail_connector_retries_total` | counter | `transport` | requests repeated after a transient failure (not Graph's one re-send with a fresh token after a 401, which the span's `attempts` does count) |
//! | `mail_connector_throttle_waits_total` | counter | `transport` | waits imposed by the server: Graph's 429/503 and `Retry-After` pauses, SMTP `432 4.3.2` |
//! | `mail_connector_throttle_wait_seconds` | histogram | `transport` | how long each of those waits was |
//! | `mail_connector_token_fetches_total` | counter | `credential` | access tokens requested from the token source (cache hits are not counted) |
//! | `mail_connector_token_failures_total` | counter | `credential` | of those, the requests that failed |
//!
//! Label values:
//!
//! - `transport`: `graph`, `smtp` or `outbox`.
//! - `mailbox`: the configured sender mailbox (`user_name`), or `unset` when the transport
//!   has none. Recipient addresses never appear in a metric; nor do subjects, bodies,
//!   secrets or tokens.
//! - `credential`: `secret`, `secret-file`, `certificate`, `managed-identity`,
//!   `workload-identity` or `token-source` (a [`TokenProvider`] of your own behind
//!   [`Credentials`]).
//!
//! A partly delivered email (an SMTP server accepted some recipients and refused others:
//! [`Error::PartialDelivery`](crate::Error::PartialDelivery) with a delivered part) counts
//! in two counters: as sent for the delivered part, and as failed (or uncertain) for the
//! rest; its duration is recorded with `outcome` `partial`. The rest's `error` is
//! `transient` only when every recipient in it may still get the email: with any of them
//! refused for good it is `permanent`, though a queue still retries the others.
//!
//! An email the [`RecipientLimit`](crate::RecipientLimit) splits counts once per message
//! sent. The [`StubTransport`](crate::StubTransport) records nothing.
//!
//! ```
//! // The names are constants, for dashboards built in code and for tests.
//! assert_eq!(
//!     mail_connector::metrics::MESSAGES_SENT,
//!     "mail_connector_messages_sent_total"
//! );
//! ```

//!
#![cfg_attr(feature = "oauth", doc = "[`TokenProvider`]: crate::TokenProvider")]
#![cfg_attr(
    not(feature = "oauth"),
    doc = "[`TokenProvider`]: https://docs.rs/mail-connector/latest/mail_connector/trait.TokenProvider.html"
)]
#![cfg_attr(feature = "oauth", doc = "[`Credentials`]: crate::Credentials")]
#![cfg_attr(
    not(feature = "oauth"),
    doc = "[`Credentials`]: https://docs.rs/mail-connector/latest/mail_connector/struct.Credentials.html"
)]

/// Counter: emails the server accepted. Labels `transport`, `mailbox`.
pub const MESSAGES_SENT: &str = "mail_connector_messages_sent_total";
/// Counter: emails certainly not sent. Labels `transport`, `mailbox`, `error`
/// (`transient` or `permanent`).
pub const MESSAGES_FAILED: &str = "mail_connector_messages_failed_total";
/// Counter: emails whose delivery is uncertain. Labels `transport`, `mailbox`.
pub const MESSAGES_UNCERTAIN: &str = "mail_connector_messages_uncertain_total";
/// Histogram, seconds: one `send`, retries and waits included. Labels `transport`,
/// `mailbox`, `outcome` (`sent`, `partial`, `failed`, `uncertain`).
pub const SEND_DURATION: &str = "mail_connector_send_duration_seconds";
/// Counter: requests repeated after a transient failure. Label `transport`.
pub const RETRIES: &str = "mail_connector_retries_total";
/// Counter: waits the server imposed (throttling). Label `transport`.
pub const THROTTLE_WAITS: &str = "mail_connector_throttle_waits_total";
/// Histogram, seconds: each wait the server imposed. Label `transport`.
pub const THROTTLE_WAIT_DURATION: &str = "mail_connector_throttle_wait_seconds";
/// Counter: access tokens requested from the token source. Label `credential`.
pub const TOKEN_FETCHES: &str = "mail_connector_token_fetches_total";
/// Counter: token requests that failed. Label `credential`.
pub const TOKEN_FAILURES: &str = "mail_connector_token_failures_total";

/// The label value for a transport without a configured mailbox.
pub(crate) const NO_MAILBOX: &str = "unset";

/// How one send ended, for the span, the counters and the duration histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    /// Certainly not sent; `true` when trying again later may work.
    Failed {
        transient: bool,
    },
    Uncertain,
    /// Some recipients have it: `delivered` messages were accepted; the rest failed, with
    /// uncertain delivery to some of them or certainly not sent (`transient` as above).
    Partial {
        delivered: u64,
        rest_uncertain: bool,
        transient: bool,
    },
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed { .. } => "failed",
            Self::Uncertain => "uncertain",
            Self::Partial { .. } => "partial",
        }
    }
}

#[cfg(feature = "metrics")]
mod record {
    use std::time::Duration;

    use super::Outcome;

    pub(crate) fn send_finished(
        transport: &'static str,
        mailbox: &str,
        outcome: Outcome,
        took: Duration,
    ) {
        let mailbox = mailbox.to_owned();
        let sent = |n: u64| {
            ::metrics::counter!(super::MESSAGES_SENT, "transport" => transport, "mailbox" => mailbox.clone())
                .increment(n);
        };
        match outcome {
            Outcome::Sent => sent(1),
            // The delivered part counts as sent, the rest as what happened to it.
            Outcome::Partial {
                delivered,
                rest_uncertain,
                transient,
            } => {
                sent(delivered);
                let rest = if rest_uncertain {
                    Outcome::Uncertain
                } else {
                    Outcome::Failed { transient }
                };
                count_unsent(transport, &mailbox, rest);
            }
            rest => count_unsent(transport, &mailbox, rest),
        }
        ::metrics::histogram!(
            super::SEND_DURATION,
            "transport" => transport,
            "mailbox" => mailbox,
            "outcome" => outcome.as_str()
        )
        .record(took.as_secs_f64());
    }

    /// Counts a send (or the part of one) that failed or whose delivery is uncertain.
    fn count_unsent(transport: &'static str, mailbox: &str, outcome: Outcome) {
        let mailbox = mailbox.to_owned();
        match outcome {
            Outcome::Sent | Outcome::Partial { .. } => {}
            Outcome::Failed { transient } => {
                let error = if transient { "transient" } else { "permanent" };
                ::metrics::counter!(
                    super::MESSAGES_FAILED,
                    "transport" => transport,
                    "mailbox" => mailbox,
                    "error" => error
                )
                .increment(1);
            }
            Outcome::Uncertain => {
                ::metrics::counter!(super::MESSAGES_UNCERTAIN, "transport" => transport, "mailbox" => mailbox)
                    .increment(1);
            }
        }
    }

    #[cfg(any(feature = "graph", feature = "smtp"))]
    pub(crate) fn retried(transport: &'static str) {
        ::metrics::counter!(super::RETRIES, "transport" => transport).increment(1);
    }

    #[cfg(any(feature = "graph", feature = "smtp"))]
    pub(crate) fn throttled(transport: &'static str, wait: Duration) {
        ::metrics::counter!(super::THROTTLE_WAITS, "transport" => transport).increment(1);
        ::metrics::histogram!(super::THROTTLE_WAIT_DURATION, "transport" => transport)
            .record(wait.as_secs_f64());
    }

    #[cfg(feature = "oauth")]
    pub(crate) fn token_fetched(credential: &'static str, ok: bool) {
        ::metrics::counter!(super::TOKEN_FETCHES, "credential" => credential).increment(1);
        if !ok {
            ::metrics::counter!(super::TOKEN_FAILURES, "credential" => credential).increment(1);
        }
    }
}

/// Without the feature: the same calls, doing nothing.
#[cfg(not(feature = "metrics"))]
mod record {
    use std::time::Duration;

    use super::Outcome;

    #[inline(always)]
    pub(crate) fn send_finished(_: &'static str, _: &str, _: Outcome, _: Duration) {}
    #[inline(always)]
    #[cfg(any(feature = "graph", feature = "smtp"))]
    pub(crate) fn retried(_: &'static str) {}
    #[inline(always)]
    #[cfg(any(feature = "graph", feature = "smtp"))]
    pub(crate) fn throttled(_: &'static str, _: Duration) {}
    #[inline(always)]
    #[cfg(feature = "oauth")]
    pub(crate) fn token_fetched(_: &'static str, _: bool) {}
}

pub(crate) use record::send_finished;
// Only the transports over the network retry and wait out throttling; only credentials
// fetch tokens.
#[cfg(any(feature = "graph", feature = "smtp"))]
pub(crate) use record::throttled;
#[cfg(feature = "oauth")]
pub(crate) use record::token_fetched;

/// A request is repeated after a transient failure: counts it for the metric and for the
/// `attempts` field of the send's span.
#[cfg(any(feature = "graph", feature = "smtp"))]
pub(crate) fn retried(transport: &'static str) {
    crate::observe::count_attempt();
    record::retried(transport);
}
