//! The [`MailTransport`] trait and what a send reports. What `check` reports is in `check`,
//! the recipient-limit splitting that serves every transport in `recipient_limit`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::BoxFuture;
use crate::check::CheckReport;
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::message::{Email, Recipient};

/// Something that sends email: Graph, SMTP, the outbox folder, a test stub, or a transport
/// of your own.
///
/// The trait is object safe, so one `Arc<dyn MailTransport>` can stand for whichever
/// transport the settings chose. It is implemented for `Arc<T>` and `Box<T>`.
///
/// ```
/// use mail_connector::{
///     CheckReport, Email, MailTransport, Result, SendReport, SentMessage, async_trait,
/// };
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

/// Forwards to the inner transport, handing back its future as it is: no second box, and no
/// extra layer to poll, on every send through an `Arc` or a `Box`.
macro_rules! forward_transport {
    ($pointer:ident) => {
        impl<T: MailTransport + ?Sized> MailTransport for $pointer<T> {
            fn send<'life0, 'life1, 'async_trait>(
                &'life0 self,
                email: &'life1 Email,
            ) -> BoxFuture<'async_trait, Result<SendReport>>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                (**self).send(email)
            }

            fn check<'life0, 'async_trait>(
                &'life0 self,
            ) -> BoxFuture<'async_trait, Result<CheckReport>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                (**self).check()
            }
        }
    };
}

forward_transport!(Arc);
forward_transport!(Box);

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
