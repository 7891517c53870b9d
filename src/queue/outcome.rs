//! From what a transport's `send` returned to the [`Outcome`] the worker records: sent,
//! queued again, failed, uncertain, or partly delivered. The at-most-once rule lives here:
//! anything after which the email may have been delivered is never queued again.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::codec;
use super::hold::{held_error, holds_mailbox};
use super::store::{Outcome, Remainder, State};
use crate::error::{
    Delivery, Error, REFUSED_REMEDY, Refusal, Result, UNCERTAIN_REMEDY, few_refusals,
    source_is_the_refusal,
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
    let part = email.with_recipients(recipients)?;
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
        // were refused temporarily or never tried). After any other permanent failure — a
        // later part refused for the sender, say (a used-up daily limit) — they would fail
        // the same way.
        let worth_retrying = source.is_transient()
            || source.delivery() == Delivery::Uncertain
            || source_is_the_refusal(refused_permanently, source);
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

    /// What `classify` makes of a transient failure of attempt `attempts` of a message that
    /// fell due `age` ago, under a backoff of 10 s, then 100 s, then 1,000 s (each jittered
    /// down to half), at most 3 attempts and an age limit of an hour: the wait before its
    /// next attempt, or the error it failed with.
    async fn after_transient(
        attempts: u32,
        age: Duration,
        retry_after: Option<Duration>,
    ) -> Result<Duration, String> {
        let email = Email::builder().to("a@example.org").build().unwrap();
        let retry = RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(1000),
            multiplier: 10.0,
            deadline: Some(Duration::from_secs(3600)),
        };
        let now = SystemTime::now();
        let attempt = Attempt {
            email: &email,
            attempts,
            retry_from: now - age,
            now,
            retry: &retry,
        };
        let mut error = Error::transport("test", "busy", crate::Transience::Transient);
        if let Some(wait) = retry_after {
            error = error.with_retry_after(wait);
        }
        match classify(Err(error), &attempt).await {
            Outcome::Retry { at, .. } => Ok(at.duration_since(now).unwrap()),
            Outcome::Failed { error, .. } => Err(error),
            other => panic!("a transient failure became {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_transient_failure_waits_its_backoff_until_attempts_or_age_run_out() {
        let secs = Duration::from_secs;
        // The first retry waits the first backoff, the second the second.
        let first = after_transient(1, Duration::ZERO, None).await.unwrap();
        assert!((secs(5)..=secs(10)).contains(&first), "{first:?}");
        let second = after_transient(2, Duration::ZERO, None).await.unwrap();
        assert!((secs(50)..=secs(100)).contains(&second), "{second:?}");
        // Never sooner than the server asked.
        let asked = after_transient(1, Duration::ZERO, Some(secs(300))).await;
        assert_eq!(asked, Ok(secs(300)));
        // The third attempt was the last: failed, saying after how many and how long.
        let error = after_transient(3, secs(90), None).await.unwrap_err();
        assert_eq!(
            error,
            "gave up after 3 attempt(s) over 90s: test transport: busy"
        );
        // Within the age limit to the second, it is retried; past it, failed.
        let last = secs(3600 - 300);
        assert_eq!(
            after_transient(1, last, Some(secs(300))).await,
            Ok(secs(300))
        );
        let error = after_transient(1, last + secs(1), Some(secs(300)))
            .await
            .unwrap_err();
        assert!(
            error.starts_with("gave up after 1 attempt(s) over 3301s"),
            "{error}"
        );
    }

    /// The groups `classify` makes of a partial delivery of an email to ann, busy, gone,
    /// carol and dave: who is queued again (and whether due again or failed), who is parked
    /// as uncertain, who failed as refused for good (and why); or the outcome as a whole
    /// when it is not split.
    async fn after_partial(
        delivered: &[usize],
        uncertain: &[usize],
        not_sent: &[usize],
        refusals: &[(usize, u16, &str)],
        source: Error,
    ) -> Result<Groups, Outcome> {
        let email = Email::builder()
            .to("ann@example.org")
            .to("busy@example.org")
            .to("gone@example.org")
            .to("carol@example.org")
            .to("dave@example.org")
            .build()
            .unwrap();
        let all: Vec<Recipient> = email.recipients().collect();
        let pick = |which: &[usize]| which.iter().map(|&i| all[i].clone()).collect::<Vec<_>>();
        let refusals = refusals
            .iter()
            .map(|&(i, code, text)| Refusal::new(all[i].clone(), code, text))
            .collect();
        let delivered = SendReport::single(crate::SentMessage::new(pick(delivered), None));
        let error =
            Error::partial_delivery(delivered, pick(uncertain), pick(not_sent), refusals, source);
        let retry = RetryPolicy::default();
        let now = SystemTime::now();
        let attempt = Attempt {
            email: &email,
            attempts: 1,
            retry_from: now,
            now,
            retry: &retry,
        };
        match classify(Err(error), &attempt).await {
            Outcome::Partial {
                error,
                not_sent,
                uncertain,
                refused,
                ..
            } => Ok(Groups {
                not_sent: not_sent.map(|(rest, due)| (rest.recipients, due.is_some())),
                uncertain: uncertain.map(|rest| rest.recipients),
                refused: refused.map(|(rest, why)| (rest.recipients, why)),
                held: error.starts_with("held until an admin fixes this"),
            }),
            other => Err(other),
        }
    }

    #[derive(Debug, PartialEq)]
    struct Groups {
        not_sent: Option<(String, bool)>,
        uncertain: Option<String>,
        refused: Option<(String, String)>,
        held: bool,
    }

    fn permanent(message: &str) -> Error {
        Error::transport("test", message, crate::Transience::Permanent)
    }

    #[tokio::test]
    async fn a_partial_delivery_retries_only_those_a_retry_can_reach() {
        let (ann, busy, gone, carol, dave) = (0, 1, 2, 3, 4);
        let busy_now = (busy, 450, "4.2.1 Mailbox busy");
        let gone_for_good = (gone, 550, "5.1.1 User unknown");
        let for_now = || Error::transport("test", "busy", crate::Transience::Transient);
        let groups = |not_sent: Option<(&str, bool)>, uncertain: Option<&str>, held| Groups {
            not_sent: not_sent.map(|(r, due)| (r.to_owned(), due)),
            uncertain: uncertain.map(str::to_owned),
            refused: None,
            held,
        };
        // Delivered to ann; busy refused for now, gone for good: busy queued again, gone
        // failed with the server's reply.
        let mixed = after_partial(
            &[ann],
            &[],
            &[busy, gone],
            &[busy_now, gone_for_good],
            for_now(),
        )
        .await
        .unwrap();
        assert_eq!(
            mixed.not_sent,
            Some(("To: busy@example.org".to_owned(), true))
        );
        assert_eq!(
            mixed.refused,
            Some((
                "To: gone@example.org".to_owned(),
                "refused permanently by the server; sending to them again fails the same way: \
                 gone@example.org: 550 5.1.1 User unknown"
                    .to_owned()
            ))
        );
        assert_eq!((mixed.uncertain, mixed.held), (None, false));
        // The same with nothing delivered still splits: their fates differ.
        let none_sent = after_partial(
            &[],
            &[],
            &[busy, gone],
            &[busy_now, gone_for_good],
            for_now(),
        )
        .await
        .unwrap();
        assert_eq!(none_sent.not_sent, mixed.not_sent);
        // Delivered to ann, then a permanent failure that is no refusal (a used-up daily
        // limit): dave would fail the same way, so he fails now.
        let limit = after_partial(&[ann], &[], &[dave], &[], permanent("daily limit")).await;
        assert_eq!(
            limit.unwrap(),
            (groups(Some(("To: dave@example.org", false)), None, false))
        );
        // Delivered to ann, gone refused for good and the send stopped there: dave, never
        // tried, goes again.
        let refusal = after_partial(
            &[ann],
            &[],
            &[gone, dave],
            &[gone_for_good],
            permanent("refused"),
        )
        .await
        .unwrap();
        assert_eq!(
            refusal.not_sent,
            Some(("To: dave@example.org".to_owned(), true))
        );
        // Nothing delivered, carol's part uncertain: carol parked, dave (never tried) again.
        let maybe = after_partial(
            &[],
            &[carol],
            &[dave],
            &[],
            permanent("connection lost after the data").with_uncertain_delivery(),
        )
        .await;
        assert_eq!(
            maybe.unwrap(),
            (groups(
                Some(("To: dave@example.org", true)),
                Some("To: carol@example.org"),
                false
            ))
        );
        // Delivered to ann, then the mailbox's permission refused: dave held for the fix.
        let held = after_partial(&[ann], &[], &[dave], &[], permanent("denied").with_auth()).await;
        assert_eq!(
            held.unwrap(),
            (groups(Some(("To: dave@example.org", true)), None, true))
        );
        // Delivered to ann, dave for now: retried, not held.
        let busy_dave = after_partial(&[ann], &[], &[dave], &[], for_now()).await;
        assert_eq!(
            busy_dave.unwrap(),
            (groups(Some(("To: dave@example.org", true)), None, false))
        );
        // Nobody got it and everyone was refused alike: the email fails, or is retried, as
        // a whole.
        let all_gone =
            after_partial(&[], &[], &[gone], &[gone_for_good], permanent("refused")).await;
        assert!(
            matches!(all_gone, Err(Outcome::Failed { .. })),
            "{all_gone:?}"
        );
        let all_busy = after_partial(&[], &[], &[busy], &[busy_now], for_now()).await;
        assert!(
            matches!(all_busy, Err(Outcome::Retry { .. })),
            "{all_busy:?}"
        );
    }

    #[test]
    fn a_row_s_report_names_everyone_who_got_the_email_over_its_attempts() {
        let ann = Email::builder().to("ann@example.org").build().unwrap();
        let report = SendReport::single(crate::SentMessage::new(
            ann.recipients().collect(),
            Some("m1".into()),
        ));
        let first = report_json(&report);
        assert_eq!(
            first,
            r#"{"messages":[{"id":"m1","recipients":["To: ann@example.org"]}]}"#
        );
        let second = r#"{"messages":[{"id":"m2","recipients":["To: bob@example.org"]}]}"#;
        assert_eq!(merge_reports(None, second.to_owned()), second);
        assert_eq!(
            merge_reports(Some(first.clone()), second.to_owned()),
            r#"{"messages":[{"id":"m1","recipients":["To: ann@example.org"]},{"id":"m2","recipients":["To: bob@example.org"]}]}"#
        );
        // An earlier report that cannot be read is kept beside the new one.
        let kept = merge_reports(Some("{not json".to_owned()), second.to_owned());
        let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
        assert_eq!(kept["earlier"], "{not json");
        assert_eq!(kept["latest"], second);
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
}
