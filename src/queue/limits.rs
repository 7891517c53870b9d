//! [`MailboxLimits`]: how many deliveries one sender mailbox may have in flight and start per
//! window, across every worker — Exchange Online's limits as defaults.

use std::time::Duration;

/// Per-sender-mailbox limits, enforced by the queue's database across all workers and
/// processes: at most `max_in_flight` deliveries at once and at most `per_window` delivery
/// attempts started in any `window` (a minute unless changed).
///
/// Exchange Online allows a mailbox 30 messages a minute (SMTP submission rejects more; other
/// paths queue them), 4 concurrent Graph requests per app and mailbox, and 3 concurrent SMTP
/// connections per mailbox (more get `432 4.3.2`). The defaults follow those numbers so that
/// a fleet of workers keeps under them — with these limits to what they cover:
///
/// - They count per sender mailbox as the queue knows it: the message's `From` (or the
///   enqueue option). With `allow_send_as`, each `From` address gets its own budget even
///   though every one of them is sent through the one authenticated Graph mailbox, which
///   Exchange counts as one: give those messages one queue mailbox
///   ([`EnqueueOptions::mailbox`](super::EnqueueOptions::mailbox)) to share one budget.
/// - One attempt is one message here, but a message split by the recipient limit goes out
///   as several requests, each of which Exchange counts.
/// - Exchange's 10,000 recipients a day per mailbox is not enforced.
///
/// So Exchange may still throttle; the queue then retries as its `Retry-After` says.
///
/// ```
/// use mail_connector::queue::MailboxLimits;
///
/// assert_eq!(MailboxLimits::graph().max_in_flight, 4);
/// assert_eq!(MailboxLimits::smtp().max_in_flight, 3);
/// assert_eq!(MailboxLimits::graph().per_window, 30);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailboxLimits {
    /// Deliveries in flight at once per mailbox; at least 1.
    pub max_in_flight: u32,
    /// Delivery attempts started per mailbox in any `window`; 0 lifts the limit.
    pub per_window: u32,
    /// The rate window: one minute, except in tests that cannot wait that long.
    pub window: Duration,
}

impl MailboxLimits {
    /// Exchange Online's message rate per mailbox and minute.
    pub const EXCHANGE_PER_MINUTE: u32 = 30;

    /// Graph's limits: 4 requests in flight, 30 messages a minute.
    #[must_use]
    pub fn graph() -> Self {
        Self::new(4, Self::EXCHANGE_PER_MINUTE)
    }

    /// SMTP's limits: 3 connections in flight, 30 messages a minute.
    #[must_use]
    pub fn smtp() -> Self {
        Self::new(3, Self::EXCHANGE_PER_MINUTE)
    }

    /// `max_in_flight` at once and `per_minute` a minute (0: no rate limit).
    #[must_use]
    pub fn new(max_in_flight: u32, per_minute: u32) -> Self {
        Self {
            max_in_flight: max_in_flight.max(1),
            per_window: per_minute,
            window: Duration::from_secs(60),
        }
    }

    /// No limits worth the name: for a sink that is not Exchange (tests, benches).
    #[must_use]
    pub fn unlimited() -> Self {
        Self::new(u32::MAX, 0)
    }

    /// The same limits with another rate window: `per_window` attempts per `window`.
    #[must_use]
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window.max(Duration::from_millis(1));
        self
    }
}

impl Default for MailboxLimits {
    /// Graph's, the stricter-rate and more common case.
    fn default() -> Self {
        Self::graph()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_transport_has_exchange_s_limits_and_a_window_can_be_shortened() {
        let minute = Duration::from_secs(60);
        let limits = |l: MailboxLimits| (l.max_in_flight, l.per_window, l.window);
        assert_eq!(limits(MailboxLimits::graph()), (4, 30, minute));
        assert_eq!(limits(MailboxLimits::smtp()), (3, 30, minute));
        assert_eq!(limits(MailboxLimits::unlimited()), (u32::MAX, 0, minute));
        let hour = Duration::from_secs(3600);
        let custom = MailboxLimits::new(10, 3).with_window(hour);
        assert_eq!(limits(custom), (10, 3, hour));
        let shortest = MailboxLimits::new(0, 3).with_window(Duration::ZERO);
        assert_eq!(limits(shortest), (1, 3, Duration::from_millis(1)));
    }
}
