//! Retry policy as plain data: exponential backoff with jitter, and `Retry-After`.
//!
//! Used for requests that are safe to repeat — the token endpoint, and Graph requests the
//! server certainly did not accept. A server's `Retry-After` is a floor: the policy never
//! waits less than it asks, and gives up instead when that wait would overrun the deadline.

use std::time::{Duration, SystemTime};

/// The longest timeout, deadline or wait this crate accepts; longer values are capped to this
/// (a day), so that no `Instant + Duration` or `SystemTime + Duration` can overflow.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Caps a caller's timeout, deadline or wait at [`MAX_WAIT`].
#[cfg_attr(not(feature = "oauth"), allow(dead_code))]
pub(crate) fn capped(duration: Duration) -> Duration {
    duration.min(MAX_WAIT)
}

/// How often and how long to retry a request that failed transiently (HTTP 429, 5xx, a
/// dropped connection).
///
/// ```
/// use std::time::Duration;
/// use mail_connector::RetryPolicy;
///
/// let policy = RetryPolicy {
///     max_retries: 5,
///     initial_backoff: Duration::from_millis(200),
///     ..RetryPolicy::default()
/// };
/// // The server's Retry-After wins over a shorter backoff.
/// assert!(policy.delay(0, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// The backoff before the first retry, before jitter.
    pub initial_backoff: Duration,
    /// The longest backoff the policy chooses on its own (a `Retry-After` may be longer).
    pub max_backoff: Duration,
    /// Each retry's backoff is the previous one times this factor.
    pub multiplier: f64,
    /// Give up when the next attempt would start later than this after the first one;
    /// `None` means no overall limit beyond `max_retries`.
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            deadline: Some(Duration::from_secs(120)),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    #[must_use]
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The backoff before retry number `retry` (0 for the first retry), with "equal jitter":
    /// a random value between half and all of the exponential backoff, capped at
    /// `max_backoff`. Jitter keeps many clients from retrying in lockstep.
    #[must_use]
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
        let factor = self.multiplier.max(1.0).powi(exponent);
        let base =
            (self.initial_backoff.as_secs_f64() * factor).min(self.max_backoff.as_secs_f64());
        let jittered = base * (0.5 + fastrand::f64() * 0.5);
        Duration::try_from_secs_f64(jittered).unwrap_or(self.max_backoff)
    }

    /// How long to wait before retry number `retry`: the jittered backoff, but never less
    /// than the server's `Retry-After`.
    #[must_use]
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.backoff(retry);
        retry_after.map_or(backoff, |after| after.max(backoff))
    }

    /// The wait before retry number `retry`, or `None` when the policy says to stop: retries
    /// are used up, or waiting `delay` would pass the deadline counted from `elapsed`.
    #[must_use]
    pub fn next_delay(
        &self,
        retry: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        let delay = self.delay(retry, retry_after);
        match self.deadline {
            Some(deadline) if elapsed.saturating_add(delay) > deadline => None,
            _ => Some(delay),
        }
    }
}

/// Parses an HTTP `Retry-After` value: whole seconds (`120`), fractional seconds (`2.128`,
/// which Graph sends) or an HTTP date, relative to `now`. A date in the past means "now"
/// (zero). A number of seconds too large for a [`Duration`] gives [`Duration::MAX`]. Returns
/// `None` for anything else, including negative numbers.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use mail_connector::retry::parse_retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
/// assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
/// assert_eq!(parse_retry_after("2.128", now), Some(Duration::from_millis(2128)));
/// assert_eq!(
///     parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
///     Some(Duration::from_secs(10)),
/// );
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
#[must_use]
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let seconds: f64 = value.parse().ok()?;
        // Too many seconds for a `Duration` means "longer than anyone waits": saturate.
        return Some(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("1e3", now), None);
        assert_eq!(parse_retry_after("", now), None);
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            ..RetryPolicy::default()
        };
        for _ in 0..100 {
            let first = policy.backoff(0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let capped = policy.backoff(10);
            assert!(capped >= Duration::from_millis(150) && capped <= Duration::from_millis(300));
        }
    }

    #[test]
    fn never_waits_less_than_retry_after_and_respects_limits() {
        let policy = RetryPolicy {
            max_retries: 2,
            deadline: Some(Duration::from_secs(10)),
            ..RetryPolicy::default()
        };
        let after = Duration::from_secs(5);
        assert!(policy.next_delay(0, Duration::ZERO, Some(after)).unwrap() >= after);
        assert_eq!(
            policy.next_delay(0, Duration::from_secs(6), Some(after)),
            None
        );
        assert_eq!(policy.next_delay(2, Duration::ZERO, None), None);
        assert_eq!(
            RetryPolicy::none().next_delay(0, Duration::ZERO, None),
            None
        );
    }

    /// A server's or caller's absurd wait is kept as one day at most, as the error reports it
    /// to a queue that schedules its own retry.
    #[test]
    fn an_error_keeps_a_wait_of_one_day_at_most() {
        let day = Duration::from_secs(24 * 60 * 60);
        let throttled = |wait| {
            crate::Error::transport("relay", "429", crate::Transience::Transient)
                .with_retry_after(wait)
                .retry_after()
        };
        assert_eq!(throttled(Duration::from_secs(7 * 24 * 60 * 60)), Some(day));
        assert_eq!(throttled(Duration::MAX), Some(day));
        assert_eq!(
            throttled(Duration::from_secs(90)),
            Some(Duration::from_secs(90))
        );
    }

    /// A retry that would start exactly at the deadline, not later than it, is still made:
    /// the deadline is the latest an attempt may start.
    #[test]
    fn a_retry_that_starts_exactly_at_the_deadline_is_made() {
        let policy = RetryPolicy {
            deadline: Some(Duration::from_secs(10)),
            ..RetryPolicy::default()
        };
        // Retry-After (5 s) is longer than any backoff of the first retry, so the wait is it.
        let after = Duration::from_secs(5);
        assert_eq!(
            policy.next_delay(0, Duration::from_secs(5), Some(after)),
            Some(after)
        );
        assert_eq!(
            policy.next_delay(0, Duration::from_millis(5_001), Some(after)),
            None
        );
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let policy = RetryPolicy {
            max_retries: u32::MAX,
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            multiplier: f64::MAX,
            deadline: Some(Duration::MAX),
        };
        let _ = policy.backoff(u32::MAX);
        let _ = policy.next_delay(5, Duration::MAX, Some(Duration::MAX));
        let nan = RetryPolicy {
            multiplier: f64::NAN,
            ..RetryPolicy::default()
        };
        let _ = nan.next_delay(3, Duration::MAX, None);
        let now = SystemTime::now();
        assert!(parse_retry_after("18446744073709551615", now).is_some());
        let _ = parse_retry_after("1e300", now);
    }
}
