//! From what a transport's `send` returned to the [`Outcome`] the worker records: sent,
//! queued again, failed, uncertain, or partly delivered. The at-most-once rule lives here:
//! anything after which the email may have been delivered is never queued again.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::codec;
use super::store::{Outcome, Remainder, State};
use crate::error::{
    Delivery, Error, REFUSED_REMEDY, Refusal, Result, UNCERTAIN_REMEDY, few_refusals,
};
use crate::message::{Email, Recipient};
use crate::retry::RetryPolicy;
use crate::transport::SendReport;

/// What the worker knows about the attempt besides its result.
pub(crate) struct Attempt<'a> {
    pub email: &'a Email,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub retry_from: SystemTime,
    pub now: SystemTime,
    pub retry: &'a RetryPolicy,
}

impl Attempt<'_> {
    /// When to try again after a transient failure, or `None` when out of attempts or age.
    fn next_attempt(&self, retry_after: Option<Duration>) -> Option<SystemTime> {
        if self.attempts > self.retry.max_retries {
            return None;
        }
        // A wait past what a clock can say is no retry at all.
        let at = self
            .now
            .checked_add(self.retry.delay(self.attempts - 1, retry_after))?;
        match self.retry.deadline {
            Some(age) if at.duration_since(self.retry_from).unwrap_or_default() > age => None,
            _ => Some(at),
        }
    }

    /// When to try a [held](holds_mailbox) message again: after the policy's first backoff,
    /// or half the time since it was enqueued (or retried by an operator) when that is
    /// longer, within [`MIN_HOLD`]..=[`MAX_HOLD`] — whatever its attempts, which a hold does
    /// not count; `None` past the age limit, or [`HOLD_LIMIT`] without one.
    fn next_hold(&self) -> Option<SystemTime> {
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

    fn held_too_long(&self, error: &Error) -> String {
        format!(
            "held for an admin past the age limit ({}s since it was queued): {error}",
            self.now
                .duration_since(self.retry_from)
                .unwrap_or_default()
                .as_secs()
        )
    }

    fn gave_up(&self, error: &Error) -> String {
        format!(
            "gave up after {} attempt(s) over {}s: {error}",
            self.attempts,
            self.now
                .duration_since(self.retry_from)
                .unwrap_or_default()
                .as_secs()
        )
    }
}

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

/// The transport's report as stored (JSON): each message's id and recipients.
pub(crate) fn report_json(report: &SendReport) -> String {
    let messages: Vec<_> = report
        .messages
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "recipients": m.recipients.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "messages": messages }).to_string()
}

/// `report` with the messages of `prior` (an earlier attempt's partial delivery) in front,
/// so that the row names everyone who got the email. A prior report that cannot be read is
/// kept whole beside the new one rather than lost.
pub(crate) fn merge_reports(prior: Option<String>, report: String) -> String {
    let Some(prior) = prior else { return report };
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    let (Some(mut old), Some(new)) = (parse(&prior), parse(&report)) else {
        return json!({ "messages": [], "earlier": prior, "latest": report }).to_string();
    };
    match (old.get_mut("messages"), new.get("messages")) {
        (Some(serde_json::Value::Array(old)), Some(serde_json::Value::Array(new))) => {
            old.extend(new.iter().cloned());
        }
        _ => return json!({ "messages": [], "earlier": prior, "latest": report }).to_string(),
    }
    old.to_string()
}

async fn remainder(email: &Email, recipients: &[Recipient]) -> Result<Option<Remainder>> {
    if recipients.is_empty() {
        return Ok(None);
    }
    let part = email.with_recipients(recipients);
    Ok(Some(Remainder::new(
        codec::encode(&part).await?,
        codec::recipients_line(&part),
    )))
}

/// The outcome to record for `result`.
pub(crate) async fn classify(result: Result<SendReport>, attempt: &Attempt<'_>) -> Outcome {
    let error = match result {
        Ok(report) => {
            return Outcome::Sent {
                report: report_json(&report),
            };
        }
        Err(error) => error,
    };
    if let Error::PartialDelivery {
        delivered,
        uncertain,
        not_sent,
        refused_permanently,
        refusals,
        source,
        ..
    } = &error
        && splits(delivered, uncertain, not_sent, refused_permanently)
    {
        let (refused, retryable): (Vec<Recipient>, Vec<Recipient>) = not_sent
            .iter()
            .cloned()
            .partition(|r| refused_permanently.contains(r));
        let email = attempt.email;
        let groups = async {
            Ok::<_, Error>((
                remainder(email, &retryable).await?,
                remainder(email, uncertain).await?,
                remainder(email, &refused).await?,
            ))
        };
        let (rest, parked, refused) = match groups.await {
            Ok(groups) => groups,
            // Re-encoding a decoded email cannot read files; fail safe all the same.
            Err(e) => {
                return Outcome::Uncertain {
                    error: format!("{error}; {e}"),
                };
            }
        };
        // The recipients not sent can go again when the failure was temporary, when the
        // failing part's delivery is uncertain (they were never tried), or when the
        // permanent failure was the refusal of the recipients refused permanently (the rest
        // were refused temporarily or never tried). After any other permanent failure they
        // would fail the same way.
        let worth_retrying = source.is_transient()
            || source.delivery() == Delivery::Uncertain
            || !refused_permanently.is_empty();
        let held = holds_mailbox(source);
        let next = if held {
            attempt.next_hold()
        } else if worth_retrying {
            attempt.next_attempt(source.retry_after())
        } else {
            None
        };
        let why = refused_why(refusals);
        let error_text = match next {
            Some(at) if held => {
                held_error(&error, at.duration_since(attempt.now).unwrap_or_default())
            }
            _ => error.to_string(),
        };
        return Outcome::Partial {
            report: report_json(delivered),
            error: error_text,
            // The message's own: the other groups get theirs where they are split off.
            remedy: crate::error::rest_remedy(&error),
            not_sent: rest.map(|rest| (rest, next)),
            uncertain: parked,
            refused: refused.map(|refused| {
                let error = format!(
                    "refused permanently by the server; sending to them again fails the same \
                     way{why}"
                );
                (refused, error)
            }),
        };
    }
    if error.delivery() == Delivery::Uncertain {
        return Outcome::Uncertain {
            error: error.to_string(),
        };
    }
    if holds_mailbox(&error) {
        return match attempt.next_hold() {
            Some(at) => Outcome::Held {
                error: held_error(&error, at.duration_since(attempt.now).unwrap_or_default()),
                at,
            },
            None => Outcome::Failed {
                error: attempt.held_too_long(&error),
                remedy: error.remedy(),
            },
        };
    }
    if error.is_transient() {
        return match attempt.next_attempt(error.retry_after()) {
            Some(at) => Outcome::Retry {
                at,
                error: error.to_string(),
            },
            None => Outcome::Failed {
                error: attempt.gave_up(&error),
                remedy: error.remedy(),
            },
        };
    }
    Outcome::Failed {
        error: error.to_string(),
        remedy: error.remedy(),
    }
}

/// The error a held message keeps while it waits: that it is held and why, and the fix
/// (a queued row has no remedy of its own).
fn held_error(error: &Error, wait: Duration) -> String {
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

/// Why the recipients refused permanently were: the server's reply to each of the first
/// few, then how many more (`: gone@example.org: 550 5.1.1 User unknown; …; and 7 more`),
/// as the error of their row — the same as the error's message says, bounded for 1,000.
/// They are exactly the permanent ones of the error's `refusals`.
fn refused_why(refusals: &[Refusal]) -> String {
    format!(
        ": {}",
        few_refusals(refusals.iter().filter(|r| r.is_permanent()))
    )
}

/// Whether a partial delivery divides the recipients into groups that fare differently:
/// something delivered or uncertain, or among those not sent some refused for good and
/// others not. Nothing delivered or uncertain and either nobody or everybody refused for
/// good (every recipient refused for now, say, or the first part of a recipient-limit split
/// failing as a whole) is an ordinary failure of the email as a whole: retried, or failed,
/// as its source says.
fn splits(
    delivered: &SendReport,
    uncertain: &[Recipient],
    not_sent: &[Recipient],
    refused_permanently: &[Recipient],
) -> bool {
    !delivered.messages.is_empty()
        || !uncertain.is_empty()
        || !(refused_permanently.is_empty()
            || not_sent.iter().all(|r| refused_permanently.contains(r)))
}

/// A message of its own split off by a partial delivery.
pub(crate) struct Split {
    pub rest: Remainder,
    pub state: State,
    pub error: String,
    pub remedy: Option<String>,
}

/// What a partial delivery leaves in the queue.
pub(crate) struct PartialRows {
    /// The message's new state; `rest` its recipients (`None`: keep them, it is `sent`),
    /// `due` its next attempt when `queued`.
    pub state: State,
    pub rest: Option<Remainder>,
    pub due: Option<SystemTime>,
    pub error: String,
    pub remedy: Option<String>,
    /// The groups split off, each with its `parent_id` set to the message.
    pub splits: Vec<Split>,
}

/// The one rule for a partial delivery's recipients: those not sent are `queued` again (or
/// `failed` when not worth retrying or out of attempts), the uncertain ones `uncertain`, the
/// ones refused permanently `failed`. The message keeps the first of these groups that has
/// recipients, in that order; each other group is split off. With none left it is `sent`.
/// Each group has its own remedy: `remedy` for those not sent, a check before any resend
/// for the uncertain ones, a check of the addresses for the refused ones.
pub(crate) fn partial_rows(
    error: String,
    remedy: Option<String>,
    not_sent: Option<(Remainder, Option<SystemTime>)>,
    uncertain: Option<Remainder>,
    refused: Option<(Remainder, String)>,
) -> PartialRows {
    let mut groups = Vec::new();
    if let Some((rest, due)) = not_sent {
        let state = if due.is_some() {
            State::Queued
        } else {
            State::Failed
        };
        groups.push((rest, state, due, error.clone(), remedy));
    }
    if let Some(rest) = uncertain {
        let remedy = Some(UNCERTAIN_REMEDY.to_owned());
        groups.push((rest, State::Uncertain, None, error.clone(), remedy));
    }
    if let Some((rest, why)) = refused {
        let remedy = Some(REFUSED_REMEDY.to_owned());
        groups.push((rest, State::Failed, None, why, remedy));
    }
    let mut groups = groups.into_iter();
    let Some((rest, state, due, error, remedy)) = groups.next() else {
        return PartialRows {
            state: State::Sent,
            rest: None,
            due: None,
            error,
            remedy: None,
            splits: Vec::new(),
        };
    };
    let splits = groups
        .map(|(rest, state, _, error, remedy)| Split {
            rest,
            state,
            error,
            remedy,
        })
        .collect();
    PartialRows {
        state,
        rest: Some(rest),
        due,
        error,
        remedy,
        splits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(recipients: &str) -> Remainder {
        Remainder::new(Vec::new(), recipients.to_owned())
    }

    fn recipients(rows: &PartialRows) -> Vec<(State, &str)> {
        let kept = rows.rest.as_ref().map_or("", |r| r.recipients.as_str());
        let mut all = vec![(rows.state, kept)];
        all.extend(
            rows.splits
                .iter()
                .map(|s| (s.state, s.rest.recipients.as_str())),
        );
        all
    }

    #[test]
    fn the_message_keeps_the_first_group_and_the_others_are_split_off() {
        let at = SystemTime::now();
        let refused = || Some((rest("To: gone@example.org"), "refused".to_owned()));
        let rows = partial_rows(
            "partial".into(),
            Some("fix".into()),
            Some((rest("To: busy@example.org"), Some(at))),
            Some(rest("To: maybe@example.org")),
            refused(),
        );
        assert_eq!(
            recipients(&rows),
            [
                (State::Queued, "To: busy@example.org"),
                (State::Uncertain, "To: maybe@example.org"),
                (State::Failed, "To: gone@example.org"),
            ]
        );
        assert_eq!((rows.due, rows.error.as_str()), (Some(at), "partial"));
        assert_eq!(rows.splits[1].error, "refused");
        assert_eq!(rows.remedy.as_deref(), Some("fix"));
        assert_eq!(rows.splits[0].remedy.as_deref(), Some(UNCERTAIN_REMEDY));
        assert_eq!(rows.splits[1].remedy.as_deref(), Some(REFUSED_REMEDY));

        // Nothing to retry and nothing uncertain: the refused recipients stay in the message.
        let rows = partial_rows("partial".into(), None, None, None, refused());
        assert_eq!(recipients(&rows), [(State::Failed, "To: gone@example.org")]);
        assert_eq!((rows.due, rows.error.as_str()), (None, "refused"));
        assert_eq!(rows.remedy.as_deref(), Some(REFUSED_REMEDY));

        // Out of attempts: those not sent fail too, in the message; the refused apart.
        let rows = partial_rows(
            "partial".into(),
            None,
            Some((rest("To: busy@example.org"), None)),
            None,
            refused(),
        );
        assert_eq!(
            recipients(&rows),
            [
                (State::Failed, "To: busy@example.org"),
                (State::Failed, "To: gone@example.org"),
            ]
        );

        let rows = partial_rows("partial".into(), None, None, None, None);
        assert_eq!(recipients(&rows), [(State::Sent, "")]);
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
        assert_eq!(hold(Duration::from_secs(7200), &retry), Some(MAX_HOLD));
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
