//! The [`MailTransport`] trait, what a send reports, and the recipient-limit splitting that
//! serves every transport.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Delivery, Error, Result};
use crate::message::{Email, Recipient};

/// Something that sends email: Graph, SMTP, the outbox folder, a test stub, or a transport
/// of your own.
///
/// The trait is object safe, so one `Arc<dyn MailTransport>` can stand for whichever
/// transport the settings chose. It is implemented for `Arc<T>` and `Box<T>`.
///
/// ```
/// use async_trait::async_trait;
/// use mail_connector::{CheckReport, Email, MailTransport, Result, SendReport, SentMessage};
///
/// /// Prints emails instead of sending them.
/// struct Printer;
///
/// #[async_trait]
/// impl MailTransport for Printer {
///     async fn send(&self, email: &Email) -> Result<SendReport> {
///         println!("would send {:?}", email.subject());
///         Ok(SendReport::single(SentMessage::new(email.recipients().collect(), None)))
///     }
///
///     async fn check(&self) -> Result<CheckReport> {
///         Ok(CheckReport::default())
///     }
/// }
/// ```
#[async_trait]
pub trait MailTransport: Send + Sync {
    /// Sends one email.
    ///
    /// # Errors
    ///
    /// Any [`Error`]: ask it [`Error::is_transient`], [`Error::delivery`] and
    /// [`Error::remedy`] rather than matching variants.
    async fn send(&self, email: &Email) -> Result<SendReport>;

    /// Verifies the configuration and connectivity without sending mail, step by step.
    ///
    /// Failed steps are reported in the [`CheckReport`]; an `Err` means the check itself
    /// could not run (for example a disabled connector).
    ///
    /// # Errors
    ///
    /// [`Error::Disabled`] for a disabled connector; transports may return other errors when
    /// no step could be attempted.
    async fn check(&self) -> Result<CheckReport>;
}

#[async_trait]
impl<T: MailTransport + ?Sized> MailTransport for Arc<T> {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        (**self).send(email).await
    }
    async fn check(&self) -> Result<CheckReport> {
        (**self).check().await
    }
}

#[async_trait]
impl<T: MailTransport + ?Sized> MailTransport for Box<T> {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        (**self).send(email).await
    }
    async fn check(&self) -> Result<CheckReport> {
        (**self).check().await
    }
}

/// One message a transport submitted, with the recipients it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The recipients this message carried (To, Cc and Bcc).
    pub recipients: Vec<Recipient>,
    /// What the server or transport returned to identify it: a Message-ID, a Graph request
    /// id, an outbox file path. `None` when nothing was returned.
    pub id: Option<String>,
}

impl SentMessage {
    /// A submitted message.
    #[must_use]
    pub fn new(recipients: Vec<Recipient>, id: Option<String>) -> Self {
        Self { recipients, id }
    }
}

/// What a send submitted: one [`SentMessage`] per message (more than one when the recipient
/// limit split the email).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// The submitted messages, in order.
    pub messages: Vec<SentMessage>,
}

impl SendReport {
    /// A report of one message.
    #[must_use]
    pub fn single(message: SentMessage) -> Self {
        Self {
            messages: vec![message],
        }
    }

    /// Every recipient that was sent the email, across all messages.
    pub fn recipients(&self) -> impl Iterator<Item = &Recipient> {
        self.messages.iter().flat_map(|m| m.recipients.iter())
    }
}

/// The outcome of one [`CheckStep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckStatus {
    /// The step passed.
    Ok,
    /// The step passed but needs attention soon (e.g. a secret that expires in 10 days).
    Warning,
    /// The step failed: mail cannot be sent until it is fixed.
    Failed,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Failed => "failed",
        })
    }
}

/// One step of a configuration check (token, permission, mailbox, connection, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStep {
    /// Short name of the step, e.g. `token` or `mailbox`.
    pub name: String,
    /// How it went.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// What to change, for a warning or failure.
    pub remedy: Option<String>,
}

impl CheckStep {
    /// A passed step.
    #[must_use]
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Ok,
            detail: detail.into(),
            remedy: None,
        }
    }

    /// A step that needs attention.
    #[must_use]
    pub fn warning(
        name: impl Into<String>,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Warning,
            detail: detail.into(),
            remedy: Some(remedy.into()),
        }
    }

    /// A failed step.
    #[must_use]
    pub fn failed(
        name: impl Into<String>,
        detail: impl Into<String>,
        remedy: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Failed,
            detail: detail.into(),
            remedy,
        }
    }

    /// A failed step described by an error and its remedy.
    #[must_use]
    pub fn from_error(name: impl Into<String>, error: &Error) -> Self {
        Self::failed(name, error.to_string(), error.remedy())
    }
}

impl fmt::Display for CheckStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<10} {:<8} {}", self.name, self.status, self.detail)?;
        if let Some(remedy) = &self.remedy {
            write!(f, " — fix: {remedy}")?;
        }
        Ok(())
    }
}

/// The steps of a configuration check, in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The steps.
    pub steps: Vec<CheckStep>,
}

impl CheckReport {
    /// Adds a step.
    pub fn push(&mut self, step: CheckStep) {
        self.steps.push(step);
    }

    /// The worst status of any step (`Ok` for an empty report).
    #[must_use]
    pub fn status(&self) -> CheckStatus {
        let worst = |s: &CheckStep| match s.status {
            CheckStatus::Ok => 0,
            CheckStatus::Warning => 1,
            CheckStatus::Failed => 2,
        };
        self.steps
            .iter()
            .max_by_key(|s| worst(s))
            .map_or(CheckStatus::Ok, |s| s.status)
    }

    /// Whether no step failed (warnings allowed).
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.status() != CheckStatus::Failed
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        Ok(())
    }
}

/// Wraps a transport so that no message carries more than `limit` recipients.
///
/// An email with more recipients (To + Cc + Bcc) is sent as several messages of at most
/// `limit` recipients each, in order; every recipient is in exactly one message and keeps
/// its role. A limit of 0 means no limit. Parts are sent one after another and sending stops
/// at the first part that fails: the error is then [`Error::PartialDelivery`], which lists
/// who got the message, whose delivery is uncertain, and who did not get it, so a caller can
/// retry only the rest. An email that needs a single message is passed through unchanged, and
/// so are its errors.
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
                            source,
                        } => {
                            delivered.messages.extend(part_delivered.messages);
                            not_sent.extend(rest);
                            Error::PartialDelivery {
                                delivered,
                                uncertain,
                                not_sent,
                                source,
                            }
                        }
                        error => {
                            let (uncertain, mut not_sent) = match error.delivery() {
                                Delivery::Uncertain => (part.clone(), Vec::new()),
                                Delivery::NotSent => (Vec::new(), part.clone()),
                            };
                            not_sent.extend(rest);
                            Error::PartialDelivery {
                                delivered,
                                uncertain,
                                not_sent,
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
