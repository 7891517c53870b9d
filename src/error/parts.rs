//! The small types an [`Error`](super::Error) is made of: delivery, settings problems,
//! transience, advice, SMTP stages.

use std::fmt;
use std::time::Duration;

#[cfg(doc)]
use super::Error;

/// Whether a failed send may still have reached its recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Delivery {
    /// The server certainly did not accept the message: sending it again cannot duplicate it.
    NotSent,
    /// The server may have accepted the message (for example a timeout after the request
    /// was written). Sending it again may deliver it twice.
    Uncertain,
}

/// One missing or contradictory setting, as reported by settings validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    /// The settings key, e.g. `oauth_client_id`.
    pub field: String,
    /// What is wrong and how to fix it, naming the field as the admin screen shows it.
    pub message: String,
}

impl fmt::Display for SettingsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Whether a failure reported by a custom transport may clear up if the email is sent again
/// later (see [`Error::transport`](super::Error::transport)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transience {
    /// Sending again later may succeed: the backend was busy, unreachable or throttling.
    Transient,
    /// Sending again will fail the same way until something is changed.
    Permanent,
}

/// What the part of the crate that made an error advises about it: the remedy an admin should
/// apply, whether it is an authentication or permission failure, and how long the server asked
/// callers to wait. Read it through [`Error::remedy`], [`Error::is_auth`] and
/// [`Error::retry_after`]; each transport fills it from its own table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advice(Option<Box<AdviceInner>>);

// Boxed: most errors are passed along untouched, and `Error` stays small.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AdviceInner {
    remedy: Option<String>,
    auth: bool,
    settings: bool,
    /// The failure concerns this message only: others from the same mailbox may still go.
    of_message: bool,
    retry_after: Option<Duration>,
}

// Only the transports and credentials make advice; the core alone never does.
#[cfg_attr(not(feature = "oauth"), allow(dead_code))]
impl Advice {
    /// Advice with this remedy, not an authentication failure.
    pub(crate) fn remedy(remedy: Option<String>) -> Self {
        Self(Some(Box::new(AdviceInner {
            remedy,
            ..AdviceInner::default()
        })))
    }

    /// This advice with `remedy` as its remedy, the rest kept.
    pub(crate) fn replace_remedy(mut self, remedy: Option<String>) -> Self {
        self.0.get_or_insert_with(Box::default).remedy = remedy;
        self
    }

    /// Marks (or unmarks) the failure as one of authentication or permissions.
    pub(crate) fn with_auth(mut self, auth: bool) -> Self {
        self.0.get_or_insert_with(Box::default).auth = auth;
        self
    }

    /// Marks (or unmarks) the failure as one that only a change of the settings fixes (a TLS
    /// mode that does not match the port, for example).
    pub(crate) fn with_settings(mut self, settings: bool) -> Self {
        self.0.get_or_insert_with(Box::default).settings = settings;
        self
    }

    /// Marks (or unmarks) the failure as this message's own — its content, or what it alone
    /// needs (a permission only large attachments use) — rather than the sender mailbox's:
    /// the mailbox's other messages may still go.
    pub(crate) fn with_of_message(mut self, of_message: bool) -> Self {
        self.0.get_or_insert_with(Box::default).of_message = of_message;
        self
    }

    /// Adds the server's `Retry-After`.
    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.0.get_or_insert_with(Box::default).retry_after = retry_after;
        self
    }

    pub(super) fn remedy_text(&self) -> Option<String> {
        self.0.as_ref().and_then(|a| a.remedy.clone())
    }

    pub(super) fn retry_after(&self) -> Option<Duration> {
        self.0.as_ref().and_then(|a| a.retry_after)
    }

    pub(super) fn is_auth(&self) -> bool {
        self.0.as_ref().is_some_and(|a| a.auth)
    }

    pub(super) fn is_settings(&self) -> bool {
        self.0.as_ref().is_some_and(|a| a.settings)
    }

    #[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
    pub(super) fn is_of_message(&self) -> bool {
        self.0.as_ref().is_some_and(|a| a.of_message)
    }
}

/// The stage of an SMTP session at which an [`Error::Smtp`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SmtpStage {
    /// Connecting, the greeting and EHLO.
    Connect,
    /// STARTTLS or the implicit TLS handshake (certificate verification included).
    Tls,
    /// SMTP AUTH.
    Auth,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA` and the message content.
    Data,
}

impl fmt::Display for SmtpStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Auth => "auth",
            Self::Mail => "mail",
            Self::Rcpt => "rcpt",
            Self::Data => "data",
        })
    }
}
