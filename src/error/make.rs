//! How an [`Error`] is made: the constructors transports, credentials and settings use (and
//! the two public ones for transports outside this crate).

use std::path::PathBuf;
use std::sync::Arc;

use super::{Delivery, Error, SettingsProblem, Transience};

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
