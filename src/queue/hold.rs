//! The hold: a failure that is the admin's to fix for the whole sender mailbox keeps its
//! message queued, the mailbox paused, until the fix — rather than failing every message
//! the same way in turn. Which failures hold, when a held message is tried again, and what
//! its row says meanwhile.

use std::time::{Duration, SystemTime};

use super::outcome::Attempt;
use crate::error::{Delivery, Error};

/// The longest wait between two tries of a [held](holds_mailbox) message: how soon mail
/// flows again once an admin has fixed what held it.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(5 * 60);

/// The shortest: held messages are tried whatever their attempts, so a retry policy without
/// backoff would otherwise try them back to back.
pub(crate) const MIN_HOLD: Duration = Duration::from_secs(1);

/// How long a message may be held when the retry policy sets no age limit: its attempts
/// limit does not end a hold, which counts none.
pub(crate) const HOLD_LIMIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether a failure holds the sender mailbox until an admin acts, rather than failing the
/// message: nothing was sent, and what failed is the admin's to fix for every message of
/// the mailbox alike — a refused or expired credential, a missing permission or consent, a
/// mailbox the app may not send from ([`Error::is_auth`]), a setting
/// ([`Error::is_settings`]), or a token endpoint that gives no token for good (no managed
/// identity on this host). Failing the message would fail every queued message the same
/// way until the fix; held, they go once it is made (as an MTA defers mail when its relay
/// refuses its login). Not held: the refusal of one recipient (a `550 5.7.1` for one domain
/// is that recipient's); a failure its transport calls the message's own (an SMTP refusal
/// after the data, for its content; Graph's draft for large attachments refused
/// `Mail.ReadWrite`), which would otherwise hold the mailbox's other messages behind one
/// that alone cannot go. For a partial delivery, the failure that stopped it: its recipients
/// not sent are held, those delivered are done and those uncertain parked as ever.
pub(crate) fn holds_mailbox(error: &Error) -> bool {
    match error {
        // The recipients not sent wait as the failure that stopped the send says (those
        // delivered are done, those uncertain parked).
        Error::PartialDelivery { source, .. } => holds_mailbox(source),
        _ => {
            error.delivery() == Delivery::NotSent
                && !error.is_transient()
                // A token that cannot be had (no managed identity here, a proxy in the way
                // of the login host) is no message's own either.
                && (error.is_auth()
                    || error.is_settings()
                    || matches!(error, Error::TokenEndpoint { .. }))
                && !error.refuses_recipient()
                && !error.concerns_message_only()
        }
    }
}

impl Attempt<'_> {
    /// When to try a [held](holds_mailbox) message again: after the policy's first backoff,
    /// or half the time since it fell due (or was retried by an operator) when that is
    /// longer, within [`MIN_HOLD`]..=[`MAX_HOLD`] — whatever its attempts, which a hold does
    /// not count; `None` past the age limit, or [`HOLD_LIMIT`] without one.
    pub(super) fn next_hold(&self) -> Option<SystemTime> {
        let age = self.now.duration_since(self.retry_from).unwrap_or_default();
        let wait = self
            .retry
            .delay(0, None)
            .max(age / 2)
            .clamp(MIN_HOLD, MAX_HOLD);
        let at = self.now.checked_add(wait)?;
        let limit = self.retry.deadline.unwrap_or(HOLD_LIMIT);
        (at.duration_since(self.retry_from).unwrap_or_default() <= limit).then_some(at)
    }

    pub(super) fn held_too_long(&self, error: &Error) -> String {
        format!(
            "held for an admin past the age limit ({}s since it fell due): {error}",
            self.now
                .duration_since(self.retry_from)
                .unwrap_or_default()
                .as_secs()
        )
    }
}

/// The error a held message keeps while it waits: that it is held and why, and the fix
/// (a queued row has no remedy of its own).
pub(super) fn held_error(error: &Error, wait: Duration) -> String {
    let fix = error
        .remedy()
        .map(|fix| format!("; to fix: {fix}"))
        .unwrap_or_default();
    format!(
        "held until an admin fixes this; the sender mailbox is paused for {}s, then its \
         mail is tried again: {error}{fix}",
        wait.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transience;
    use crate::error::{Advice, SmtpStage};
    use crate::message::{Email, Recipient};
    use crate::queue::outcome::classify;
    use crate::queue::store::Outcome;
    use crate::retry::RetryPolicy;
    use crate::transport::SendReport;

    fn refused() -> Error {
        Error::transport("test", "refused", Transience::Permanent)
    }

    #[test]
    fn only_a_failure_the_admin_fixes_for_the_whole_mailbox_holds_it() {
        // A refused credential or permission, a setting, no token to be had: held.
        assert!(holds_mailbox(&refused().with_auth()));
        assert!(holds_mailbox(&refused().with_settings()));
        let no_token = Error::TokenEndpoint {
            endpoint: "http://169.254.169.254/metadata/identity/oauth2/token".into(),
            reason: "no managed identity on this host".into(),
            transient: false,
            advice: Advice::default(),
        };
        assert!(holds_mailbox(&no_token));
        // Not held: any other permanent failure (the message fails alone), a failure for
        // now (retried), a send that may have delivered (parked), the message's own, the
        // refusal of one recipient.
        assert!(!holds_mailbox(&refused()));
        let busy = Error::transport("test", "refused", Transience::Transient).with_auth();
        assert!(!holds_mailbox(&busy));
        assert!(!holds_mailbox(
            &refused().with_auth().with_uncertain_delivery()
        ));
        assert!(!holds_mailbox(&refused().with_auth().with_message_only()));
        let relay_denied = Error::Smtp {
            stage: SmtpStage::Rcpt,
            code: Some(550),
            enhanced_code: Some("5.7.1".into()),
            message: "Unable to relay".into(),
            mechanism: None,
            transient: false,
            delivery: crate::error::Delivery::NotSent,
            advice: Advice::default(),
        }
        .with_auth();
        assert!(relay_denied.is_auth());
        assert!(!holds_mailbox(&relay_denied));
        // A partial delivery: as the failure that stopped it.
        let ann: Recipient = Email::builder()
            .to("ann@example.org")
            .build()
            .unwrap()
            .recipients()
            .next()
            .unwrap();
        let partial = |source: Error| {
            let delivered = SendReport::single(crate::SentMessage::new(vec![ann.clone()], None));
            Error::partial_delivery(delivered, Vec::new(), vec![ann.clone()], Vec::new(), source)
        };
        assert!(holds_mailbox(&partial(refused().with_auth())));
        assert!(holds_mailbox(&partial(no_token)));
        assert!(!holds_mailbox(&partial(refused())));
        assert!(!holds_mailbox(&partial(
            refused().with_auth().with_message_only()
        )));
    }

    #[tokio::test]
    async fn a_held_message_says_it_waits_for_the_fix_until_the_age_limit_fails_it() {
        let email = Email::builder().to("a@example.org").build().unwrap();
        let retry = RetryPolicy {
            max_retries: 0,
            initial_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(30),
            multiplier: 1.0,
            deadline: None,
        };
        let now = SystemTime::now();
        let classified = |age: Duration| {
            let attempt = Attempt {
                email: &email,
                attempts: 7,
                retry_from: now - age,
                now,
                retry: &retry,
            };
            let error = refused().with_auth().with_remedy("grant the permission");
            async move { classify(Err(error), &attempt).await }
        };
        match classified(Duration::from_secs(100)).await {
            Outcome::Held { at, error } => {
                assert_eq!(at.duration_since(now).unwrap(), Duration::from_secs(50));
                assert_eq!(
                    error,
                    "held until an admin fixes this; the sender mailbox is paused for 50s, \
                     then its mail is tried again: test transport: refused; to fix: grant \
                     the permission"
                );
            }
            other => panic!("not held: {other:?}"),
        }
        match classified(HOLD_LIMIT).await {
            Outcome::Failed { error, remedy } => {
                assert_eq!(
                    error,
                    "held for an admin past the age limit (86400s since it fell due): test \
                     transport: refused"
                );
                assert_eq!(remedy.as_deref(), Some("grant the permission"));
            }
            other => panic!("not failed: {other:?}"),
        }
    }

    #[test]
    fn a_hold_grows_with_the_message_age_and_ends_at_the_age_limit() {
        let email = Email::builder().to("a@example.org").build().unwrap();
        let retry = RetryPolicy {
            max_retries: 0,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            multiplier: 2.0,
            deadline: None,
        };
        let now = SystemTime::now();
        let hold = |age: Duration, retry: &RetryPolicy| {
            let attempt = Attempt {
                email: &email,
                attempts: 50,
                retry_from: now - age,
                now,
                retry,
            };
            attempt
                .next_hold()
                .map(|at| at.duration_since(now).unwrap())
        };
        // Whatever the attempts: the shortest hold for a new message, half its age later,
        // at most 5 minutes.
        assert_eq!(hold(Duration::ZERO, &retry), Some(MIN_HOLD));
        assert_eq!(
            hold(Duration::from_secs(60), &retry),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            hold(Duration::from_secs(7200), &retry),
            Some(Duration::from_secs(300))
        );
        // Without an age limit, a day held at most; with one, that limit.
        assert_eq!(hold(HOLD_LIMIT - MAX_HOLD, &retry), Some(MAX_HOLD));
        assert_eq!(hold(HOLD_LIMIT, &retry), None);
        let limited = RetryPolicy {
            deadline: Some(Duration::from_secs(3600)),
            ..retry
        };
        assert_eq!(hold(Duration::from_secs(3600), &limited), None);
    }
}
