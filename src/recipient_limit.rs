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
/// its role (an address listed twice is one recipient, in its first place). A limit of 0
/// means no limit.
///
/// Parts are sent one after another. A part whose recipients a server refused one by one
/// (SMTP's `RCPT TO`: an unknown mailbox, a full one) went out to the others, and the
/// parts after it are sent too, as one message would have gone to everyone else. Sending
/// stops at the first part that fails otherwise (the message, the sender or the connection
/// refused; delivery uncertain), and at a part whose recipients were all refused for good
/// by a policy (relay denied: the sender's problem, which later parts would repeat). Either way the error is [`Error::PartialDelivery`], which
/// lists who got the message, whose delivery is uncertain, and who did not get it (and which
/// of those a server refused, with each one's reply, and which of those for good), so a
/// caller can retry only the rest. An email that needs a single message is passed through
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
/// recipient, in its first place, as [`Email::recipients`] lists it: sent as one message it
/// is one `RCPT TO`, and split it must not get two messages.
#[must_use]
pub fn split_recipients(email: &Email, limit: usize) -> Vec<Vec<Recipient>> {
    let all: Vec<Recipient> = email.recipients().collect();
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
        let mut done = Done::default();
        for (index, part) in parts.iter().enumerate() {
            // A part is never empty (a valid email has a recipient; chunks are not empty),
            // and were it so, its error would be the part's failure like any other.
            let sent = match email.with_recipients(part) {
                Ok(part) => self.inner.send(&part).await,
                Err(error) => Err(error),
            };
            match sent {
                Ok(report) => done.delivered.messages.extend(report.messages),
                Err(error) => {
                    if let Err(error) = done.refused(part, error) {
                        let rest = parts[index + 1..].iter().flatten().cloned();
                        return Err(done.stopped(part, error, rest));
                    }
                }
            }
        }
        done.finish()
    }

    async fn check(&self) -> Result<CheckReport> {
        self.inner.check().await
    }
}

/// Whether a part's partial delivery is only recipients refused one by one, each with its
/// reply, the message gone to the others. Not when several recipients and every one were
/// refused for good by a policy (relay denied, the sender not allowed): the sender's problem,
/// which the parts after would only repeat (and Exchange pauses a mailbox that does).
fn refused_alone(error: &Error) -> bool {
    let Error::PartialDelivery {
        delivered,
        uncertain,
        not_sent,
        refusals,
        ..
    } = error
    else {
        return false;
    };
    let each_refused = not_sent
        .iter()
        .all(|r| refusals.iter().any(|f| f.recipient == *r));
    let sender_refused = delivered.messages.is_empty()
        && refusals.len() > 1
        && refusals.iter().all(|f| f.is_permanent() && f.is_auth());
    uncertain.is_empty() && each_refused && !sender_refused
}

/// Where a split send stands: what went out, and the recipients refused one by one so far.
#[derive(Default)]
struct Done {
    delivered: SendReport,
    /// The refused recipients, in the order of the parts.
    not_sent: Vec<Recipient>,
    refusals: Vec<Refusal>,
    /// The first part's refusal error, and the first temporary one.
    first: Option<Box<Error>>,
    first_temporary: Option<Box<Error>>,
}

impl Done {
    /// Takes in a part's `error` when it only refused recipients one by one (the message
    /// went to the others): the parts after it are sent too. Any other failure is given back.
    fn refused(&mut self, part: &[Recipient], error: Error) -> std::result::Result<(), Error> {
        let source = match error {
            Error::PartialDelivery { .. } if !refused_alone(&error) => return Err(error),
            Error::PartialDelivery {
                delivered,
                not_sent,
                refusals,
                source,
                ..
            } => {
                self.take_in(delivered, not_sent, refusals);
                source
            }
            // A part of one recipient, refused: that recipient alone.
            error => match part {
                [one] => match Refusal::of(one, &error) {
                    Some(refusal) => {
                        self.not_sent.push(one.clone());
                        self.refusals.push(refusal);
                        Box::new(error)
                    }
                    None => return Err(error),
                },
                _ => return Err(error),
            },
        };
        if self.first_temporary.is_none() && source.is_transient() {
            self.first_temporary = Some(source.clone());
        }
        self.first.get_or_insert(source);
        Ok(())
    }

    /// The error of a send stopped by `part`'s `error`: what went out, the recipients
    /// refused so far, `part`'s own (uncertain ones when its delivery is uncertain) and the
    /// parts never sent (`rest`).
    fn stopped(
        mut self,
        part: &[Recipient],
        error: Error,
        rest: impl Iterator<Item = Recipient>,
    ) -> Error {
        let (uncertain, source) = match error {
            // The part itself went out in part (e.g. SMTP refused some RCPT TO, then the
            // data timed out): merge its split into ours.
            Error::PartialDelivery {
                delivered,
                uncertain,
                not_sent,
                refusals,
                source,
                ..
            } => {
                self.take_in(delivered, not_sent, refusals);
                (uncertain, source)
            }
            error => {
                match error.delivery() {
                    Delivery::Uncertain => {
                        return self.into_error(part.to_vec(), rest, Box::new(error));
                    }
                    Delivery::NotSent => self.not_sent.extend(part.iter().cloned()),
                }
                (Vec::new(), Box::new(error))
            }
        };
        self.into_error(uncertain, rest, source)
    }

    /// A part's partial delivery merged into ours.
    fn take_in(
        &mut self,
        delivered: SendReport,
        not_sent: Vec<Recipient>,
        refusals: Box<[Refusal]>,
    ) {
        self.delivered.messages.extend(delivered.messages);
        self.not_sent.extend(not_sent);
        self.refusals.extend(refusals);
    }

    fn into_error(
        mut self,
        uncertain: Vec<Recipient>,
        rest: impl Iterator<Item = Recipient>,
        source: Box<Error>,
    ) -> Error {
        self.not_sent.extend(rest);
        Error::PartialDelivery {
            delivered: self.delivered,
            uncertain,
            not_sent: self.not_sent,
            refused_permanently: permanent_recipients(&self.refusals),
            refusals: self.refusals.into(),
            source,
        }
    }

    /// Every part sent: the report, or the refusals, their source the first temporary one
    /// when there is one (it says whether a retry may reach the refused).
    fn finish(mut self) -> Result<SendReport> {
        match self.first_temporary.take().or(self.first.take()) {
            None => Ok(self.delivered),
            Some(source) => Err(self.into_error(Vec::new(), std::iter::empty(), source)),
        }
    }
}
