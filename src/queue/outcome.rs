//! From what a transport's `send` returned to the [`Outcome`] the worker records: sent,
//! queued again, failed, uncertain, or partly delivered. The at-most-once rule lives here:
//! anything after which the email may have been delivered is never queued again.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::codec;
use super::store::{Outcome, Remainder};
use crate::error::{Delivery, Error, Result};
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
        let at = self.now + self.retry.delay(self.attempts - 1, retry_after);
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
        source,
        ..
    } = &error
    {
        let rest = match remainder(attempt.email, not_sent).await {
            Ok(rest) => rest,
            // Re-encoding a decoded email cannot read files; fail safe all the same.
            Err(e) => {
                return Outcome::Uncertain {
                    error: format!("{error}; {e}"),
                };
            }
        };
        let parked = match remainder(attempt.email, uncertain).await {
            Ok(parked) => parked,
            Err(e) => {
                return Outcome::Uncertain {
                    error: format!("{error}; {e}"),
                };
            }
        };
        // The recipients not sent were never tried when the failing part's delivery is
        // uncertain: they can go again. After a permanent failure they would fail the same way.
        let next = if source.is_transient() || source.delivery() == Delivery::Uncertain {
            attempt.next_attempt(source.retry_after())
        } else {
            None
        };
        return Outcome::Partial {
            report: report_json(delivered),
            error: error.to_string(),
            remedy: error.remedy(),
            not_sent: rest.map(|rest| (rest, next)),
            uncertain: parked,
        };
    }
    if error.delivery() == Delivery::Uncertain {
        return Outcome::Uncertain {
            error: error.to_string(),
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
