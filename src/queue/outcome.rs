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
mod tests;
