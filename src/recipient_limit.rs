//! [`RecipientLimit`]: the admin screen's Recipient Limit, for every transport.

use async_trait::async_trait;

use crate::check::CheckReport;
use crate::error::{Delivery, Error, Refusal, Result, permanent_recipients};
use crate::message::{Email, Recipient};
use crate::transport::{MailTransport, SendReport};

/// Wraps a transport so that no message carries more than `limit` recipients.
///
/// An email with more recipients (To + Cc + Bcc) is sent as several messages of at most
/// `limit` recipients each, in order; every recipient is in exactly one message and keeps
/// its role (an address listed twice is one recipient, in its first place). A limit of 0 means no limit. Parts are sent one after another and sending stops
/// at the first part that fails: the error is then [`Error::PartialDelivery`], which lists
/// who got the message, whose delivery is uncertain, and who did not get it (and which of
/// those a server refused, with each one's reply, and which of those for good), so a caller
/// can retry only the rest. An email that needs a single message is passed through
/// unchanged, and so are its errors.
///
/// ```
/// use mail_connector::{Email, MailTransport, RecipientLimit, StubTransport};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let stub = StubTransport::new();
/// let limited = RecipientLimit::new(stub.clone(), 2);
/// let email = Email::builder()
///     .to("a@example.org").to("b@example.org").cc("c@example.org")
///     .build()?;
/// let report = limited.send(&email).await?;
/// assert_eq!(report.messages.len(), 2);
/// assert_eq!(stub.sent().len(), 2);
/// # Ok::<(), mail_connector::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct RecipientLimit<T> {
    inner: T,
    limit: usize,
}

impl<T: MailTransport> RecipientLimit<T> {
    /// Wraps `inner`; `limit` 0 means no limit.
    #[must_use]
    pub fn new(inner: T, limit: usize) -> Self {
        Self { inner, limit }
    }

    /// The wrapped transport.
    #[must_use]
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

/// Splits `email`'s recipients into groups of at most `limit` (0 = one group), in To, Cc,
/// Bcc order, each recipient exactly once.
///
/// An address listed more than once (in To and in Bcc, say, or in another case) is one
/// recipient, in its first place: sent as one message, a server delivers it once, and split
/// it must not get two messages.
#[must_use]
pub fn split_recipients(email: &Email, limit: usize) -> Vec<Vec<Recipient>> {
    let mut seen = std::collections::HashSet::new();
    let all: Vec<Recipient> = email
        .recipients()
        .filter(|recipient| seen.insert(recipient.mailbox.address().to_lowercase()))
        .collect();
    if limit == 0 || all.len() <= limit {
        return vec![all];
    }
    all.chunks(limit).map(<[Recipient]>::to_vec).collect()
}

#[async_trait]
impl<T: MailTransport> MailTransport for RecipientLimit<T> {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        let parts = split_recipients(email, self.limit);
        if parts.len() == 1 {
            return self.inner.send(email).await;
        }
        tracing::debug!(
            parts = parts.len(),
            limit = self.limit,
            "splitting email by recipient limit"
        );
        let mut delivered = SendReport::default();
        for (index, part) in parts.iter().enumerate() {
            match self.inner.send(&email.with_recipients(part)).await {
                Ok(report) => delivered.messages.extend(report.messages),
                Err(error) => {
                    let rest = parts[index + 1..].iter().flatten().cloned();
                    let error = match error {
                        // The part itself went out in part (e.g. SMTP refused some RCPT TO):
                        // merge its split into ours.
                        Error::PartialDelivery {
                            delivered: part_delivered,
                            uncertain,
                            mut not_sent,
                            refused_permanently,
                            refusals,
                            source,
                        } => {
                            delivered.messages.extend(part_delivered.messages);
                            not_sent.extend(rest);
                            Error::PartialDelivery {
                                delivered,
                                uncertain,
                                not_sent,
                                refused_permanently,
                                refusals,
                                source,
                            }
                        }
                        error => {
                            let (uncertain, mut not_sent) = match error.delivery() {
                                Delivery::Uncertain => (part.clone(), Vec::new()),
                                Delivery::NotSent => (Vec::new(), part.clone()),
                            };
                            not_sent.extend(rest);
                            // A part of one recipient the server refused: that recipient
                            // alone is refused (permanently when the reply says so), not
                            // the parts after. Any other failure of a whole part names
                            // nobody.
                            let refusals: Box<[Refusal]> = match part.as_slice() {
                                [one] => Refusal::of(one, &error).into_iter().collect(),
                                _ => Box::default(),
                            };
                            let refused_permanently = permanent_recipients(&refusals);
                            Error::PartialDelivery {
                                delivered,
                                uncertain,
                                not_sent,
                                refused_permanently,
                                refusals,
                                source: Box::new(error),
                            }
                        }
                    };
                    return Err(error);
                }
            }
        }
        Ok(delivered)
    }

    async fn check(&self) -> Result<CheckReport> {
        self.inner.check().await
    }
}
