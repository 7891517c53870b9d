//! How an [`Error`] is made: the constructors transports, credentials and settings use, and
//! the public ones for transports and token providers outside this crate (an error of their
//! own with its remedy, auth verdict and `Retry-After`; a partial delivery).

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use super::{Advice, Delivery, Error, Recipient, Refusal, SettingsProblem, Transience};
use crate::transport::SendReport;

impl Error {
    /// An error for transports implemented outside this crate: the message was not sent;
    /// `transience` says whether sending it again later may work.
    ///
    /// ```
    /// use mail_connector::{Error, Transience};
    ///
    /// let error = Error::transport("queue", "queue is full", Transience::Transient);
    /// assert!(error.is_transient());
    /// ```
    #[must_use]
    pub fn transport(
        transport: impl Into<String>,
        message: impl Into<String>,
        transience: Transience,
    ) -> Self {
        Self::Transport {
            transport: transport.into(),
            message: message.into(),
            transient: transience == Transience::Transient,
            delivery: Delivery::NotSent,
            source: None,
            advice: Advice::default(),
        }
    }

    /// Like [`Error::transport`], keeping the transport's own error as the
    /// [`source`](std::error::Error::source) (its `Display` becomes the message). Make sure
    /// that error holds no secret: it is shown as it is.
    ///
    /// ```
    /// use mail_connector::{Error, Transience};
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "queue is down");
    /// let error = Error::transport_source("queue", io, Transience::Transient);
    /// assert!(std::error::Error::source(&error).is_some());
    /// ```
    #[must_use]
    pub fn transport_source(
        transport: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
        transience: Transience,
    ) -> Self {
        Self::Transport {
            transport: transport.into(),
            message: source.to_string(),
            transient: transience == Transience::Transient,
            delivery: Delivery::NotSent,
            source: Some(Arc::new(source)),
            advice: Advice::default(),
        }
    }

    /// Marks a [`Error::Transport`] error as one after which delivery is uncertain.
    /// Other variants are returned unchanged.
    #[must_use]
    pub fn with_uncertain_delivery(mut self) -> Self {
        if let Self::Transport { delivery, .. } = &mut self {
            *delivery = Delivery::Uncertain;
        }
        self
    }

    /// Adds what to change to fix this error, as [`remedy`](Error::remedy) then says: the
    /// setting, the setup step, the admin's action — replacing the remedy the error had. It
    /// applies to [`Error::transport`]'s errors, and to those of the transports, credentials
    /// and queue (`Graph`, `Smtp`, `TokenRequest`, `TokenEndpoint`, `Queue`), which a
    /// provider or transport of your own may pass on; the other variants derive their
    /// remedy from their fields and are returned unchanged.
    ///
    /// ```
    /// use mail_connector::{Error, Transience};
    ///
    /// let error = Error::transport("relay", "the API key was refused", Transience::Permanent)
    ///     .with_remedy("create a new API key in the relay's console and set `RELAY_KEY`")
    ///     .with_auth();
    /// assert!(error.remedy().unwrap().contains("RELAY_KEY"));
    /// assert!(error.is_auth());
    /// ```
    #[must_use]
    pub fn with_remedy(mut self, remedy: impl Into<String>) -> Self {
        if let Some(advice) = self.advice_mut() {
            *advice = std::mem::take(advice).replace_remedy(Some(remedy.into()));
        }
        self
    }

    /// Marks this error as a refused credential or permission, as
    /// [`is_auth`](Error::is_auth) then says: retrying cannot help until an admin acts.
    /// Applies to the variants [`with_remedy`](Error::with_remedy) applies to; `Smtp`,
    /// `Graph` and `Transport` errors report it, the token errors decide it themselves.
    #[must_use]
    pub fn with_auth(mut self) -> Self {
        if let Some(advice) = self.advice_mut() {
            *advice = std::mem::take(advice).with_auth(true);
        }
        self
    }

    /// Marks this error as one that only a change of the settings fixes (an endpoint, region
    /// or mode that cannot work as configured), as [`is_settings`](Error::is_settings) then
    /// says: the durable queue holds the sender mailbox's messages until an admin fixes it,
    /// rather than failing each of them the same way. Applies to `Transport`, `Graph` and
    /// `Smtp` errors; the others say it by their variant and are returned unchanged.
    ///
    /// ```
    /// use mail_connector::{Error, Transience};
    ///
    /// let error = Error::transport("relay", "no such region `eu-north-9`", Transience::Permanent)
    ///     .with_remedy("set `RELAY_REGION` to one of the regions the relay's console lists")
    ///     .with_settings();
    /// assert!(error.is_settings());
    /// ```
    #[must_use]
    pub fn with_settings(self) -> Self {
        self.marked(|advice| advice.with_settings(true))
    }

    /// Marks this error as the message's own — its content, or something only it needs (a
    /// size, an attachment type the backend refuses) — rather than the sender mailbox's: the
    /// durable queue then fails (or retries) this message alone and does not hold the
    /// mailbox's other messages behind it, even when the error [`is_auth`](Error::is_auth)
    /// or [`is_settings`](Error::is_settings). Applies to `Transport`, `Graph` and `Smtp`
    /// errors; the others are returned unchanged.
    ///
    /// ```
    /// use mail_connector::{Error, Transience};
    ///
    /// // The API key may not send attachments of this type: other mail still goes.
    /// let error = Error::transport("relay", "attachment type .exe refused", Transience::Permanent)
    ///     .with_auth()
    ///     .with_message_only();
    /// assert!(error.is_auth());
    /// ```
    #[must_use]
    pub fn with_message_only(self) -> Self {
        self.marked(|advice| advice.with_of_message(true))
    }

    /// This error with `mark` applied to its advice, for the variants whose classification
    /// reads the marks (`Transport`, `Graph`, `Smtp`); the others unchanged.
    fn marked(mut self, mark: impl FnOnce(Advice) -> Advice) -> Self {
        if let Self::Transport { advice, .. }
        | Self::Graph { advice, .. }
        | Self::Smtp { advice, .. } = &mut self
        {
            *advice = mark(std::mem::take(advice));
        }
        self
    }

    /// Adds how long the server asked to wait (`Retry-After`), as
    /// [`retry_after`](Error::retry_after) then says: the queue waits that long, and pauses
    /// the sender mailbox meanwhile. At most a day is kept. Applies to the variants
    /// [`with_remedy`](Error::with_remedy) applies to; `Transport`, `Graph`, `TokenRequest`
    /// and `TokenEndpoint` errors report it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mail_connector::{Error, Transience};
    ///
    /// let error = Error::transport("relay", "429 Too Many Requests", Transience::Transient)
    ///     .with_retry_after(Duration::from_secs(30));
    /// assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
    /// ```
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        if let Some(advice) = self.advice_mut() {
            *advice = std::mem::take(advice).with_retry_after(Some(crate::retry::capped(wait)));
        }
        self
    }

    /// The advice this error carries, for the variants that carry one.
    fn advice_mut(&mut self) -> Option<&mut Advice> {
        match self {
            Self::Transport { advice, .. }
            | Self::Graph { advice, .. }
            | Self::Smtp { advice, .. }
            | Self::TokenRequest { advice, .. }
            | Self::TokenEndpoint { advice, .. }
            | Self::Queue { advice, .. } => Some(advice),
            _ => None,
        }
    }

    /// An email delivered to some of its recipients only, as a transport outside this crate
    /// reports it: who got it (`delivered`, with the messages that carried it), whose
    /// delivery is `uncertain`, who did `not_sent` get it, the `refusals` among those (each
    /// recipient the server refused, with its reply: those
    /// [permanent](Refusal::is_permanent) become `refused_permanently`), and why the
    /// failing part failed (`source`). A caller, or the queue, then retries only the rest.
    ///
    /// Report refused recipients this way also when nobody got the email, and when it had a
    /// single recipient: [`RecipientLimit`](crate::RecipientLimit) then sends the parts after
    /// it, and the queue fails (or retries) those recipients rather than pausing the sender
    /// mailbox, as for an SMTP server's refusals at `RCPT TO`. Leave the `source` of a
    /// refusal without [`with_auth`](Error::with_auth): a `5.7.x` [`Refusal`] already makes
    /// the error [`is_auth`](Error::is_auth), while an auth `source` says the mailbox itself
    /// was refused, which pauses all its mail. A message in `delivered` that carries no
    /// recipient (an API's id for a request it took for nobody) is left out, so that
    /// `delivered` is empty when nobody got it.
    ///
    /// ```
    /// use mail_connector::{Error, Recipient, RecipientKind, Refusal, SendReport, SentMessage,
    ///     Transience};
    ///
    /// let ann = Recipient { kind: RecipientKind::To, mailbox: "ann@example.org".parse()? };
    /// let bob = Recipient { kind: RecipientKind::To, mailbox: "bob@example.org".parse()? };
    /// let refused = Refusal::new(bob.clone(), 550, "5.1.1 no such user");
    /// let source = Error::transport("relay", refused.to_string(), Transience::Permanent);
    /// let error = Error::partial_delivery(
    ///     SendReport::single(SentMessage::new(vec![ann], None)),
    ///     Vec::new(),
    ///     vec![bob.clone()],
    ///     vec![refused],
    ///     source,
    /// );
    /// let Error::PartialDelivery { refused_permanently, .. } = &error else { unreachable!() };
    /// assert_eq!(refused_permanently, &[bob]);
    /// assert!(error.to_string().contains("1 of 2"));
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    #[must_use]
    pub fn partial_delivery(
        delivered: SendReport,
        uncertain: Vec<Recipient>,
        not_sent: Vec<Recipient>,
        refusals: Vec<Refusal>,
        source: Error,
    ) -> Self {
        let refused_permanently = super::permanent_recipients(&refusals);
        // An empty `delivered` is what says "nobody got it" (retry, stop a split, fail as a
        // whole), as the crate's own transports report it.
        let mut delivered = delivered;
        delivered.messages.retain(|m| !m.recipients.is_empty());
        Self::PartialDelivery {
            delivered,
            uncertain,
            not_sent,
            refused_permanently,
            refusals: refusals.into_boxed_slice(),
            source: Box::new(source),
        }
    }

    /// One settings problem: `field` is the settings key, `message` says what is wrong and
    /// how to fix it.
    pub(crate) fn settings(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidSettings {
            problems: vec![SettingsProblem {
                field: field.into(),
                message: message.into(),
            }],
        }
    }

    pub(crate) fn invalid_message(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidMessage {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A failure on a local file that the settings do not name (an attachment, the outbox);
    /// for one they name use [`Error::settings_file`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            setting: None,
            source: Arc::new(source),
        }
    }

    /// A file that the setting `setting` names (or the settings file itself, `settings`)
    /// could not be read: a settings problem ([`Error::is_settings`]) whose remedy names the
    /// setting.
    pub(crate) fn settings_file(
        setting: &'static str,
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            setting: Some(setting),
            source: Arc::new(source),
        }
    }
}
