//! The crate's one error type.
//!
//! Every fallible operation returns [`Error`]. Callers ask it questions rather than matching
//! on variants: [`Error::is_transient`] (retrying later may work), [`Error::is_auth`] (the
//! credentials or permissions are wrong), [`Error::delivery`] (was the message possibly
//! delivered?) and [`Error::remedy`] (what an admin should change).

use std::fmt;
use std::path::PathBuf;

use crate::message::Recipient;
use crate::transport::SendReport;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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

/// The error type of every operation in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The email is not valid; `field` names the builder field (`to`, `subject`, `header`, …).
    #[error("invalid email: {field}: {reason}")]
    InvalidMessage {
        /// The email field at fault, e.g. `to[1]` or `attachments[0].name`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The settings are incomplete or contradictory; every problem found is listed.
    #[error("invalid mail connector settings: {}", join_problems(problems))]
    InvalidSettings {
        /// Each missing or contradictory field, in the order of the settings table.
        problems: Vec<SettingsProblem>,
    },

    /// The connector is disabled (`enabled = false`): nothing was sent.
    #[error("the mail connector is disabled (`enabled = false`); nothing was sent")]
    Disabled,

    /// The requested transport is not part of this build or this version.
    #[error("the {transport} transport is not available: {reason}")]
    NotAvailable {
        /// `graph` or `smtp`.
        transport: &'static str,
        /// Why, and what to use instead.
        reason: &'static str,
    },

    /// Reading or writing a local file failed.
    #[error("could not {action} `{}`: {source}", path.display())]
    Io {
        /// What was being done, e.g. `write the outbox file`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// An email split by the recipient limit was sent in part: some parts went out, one
    /// failed, and the rest were not attempted.
    #[error(
        "the email was sent to {} of {} recipients; {} did not get it{}: {source}",
        delivered.recipients().count(),
        delivered.recipients().count() + not_sent.len() + uncertain.len(),
        not_sent.len(),
        if uncertain.is_empty() { String::new() } else { format!(" and delivery to {} is uncertain", uncertain.len()) }
    )]
    PartialDelivery {
        /// The parts that were accepted, with their recipients.
        delivered: SendReport,
        /// Recipients of the failed part when the failure leaves delivery uncertain.
        uncertain: Vec<Recipient>,
        /// Recipients that certainly did not get the message: retry these.
        not_sent: Vec<Recipient>,
        /// Why the failing part failed.
        #[source]
        source: Box<Error>,
    },

    /// A failure reported by a transport outside this crate, or by the stub transport.
    #[error("{transport} transport: {message}")]
    Transport {
        /// The transport's name.
        transport: String,
        /// What went wrong.
        message: String,
        /// Whether retrying later may succeed.
        transient: bool,
        /// Whether the message may have been delivered despite the error.
        delivery: Delivery,
    },

    /// An SMTP server refused a command, or the SMTP connection failed, at `stage`.
    #[error(
        "SMTP {stage} failed: {}{}{message}",
        code.map(|c| format!("{c} ")).unwrap_or_default(),
        enhanced_code.as_deref().map(|c| format!("{c} ")).unwrap_or_default()
    )]
    Smtp {
        /// Where in the SMTP session it failed.
        stage: SmtpStage,
        /// The server's reply code (e.g. 535), `None` for a connection or TLS failure.
        code: Option<u16>,
        /// The enhanced status code from the reply text (e.g. `5.7.139`), if any.
        enhanced_code: Option<String>,
        /// The server's reply text or the connection error; never contains a secret.
        message: String,
        /// The SASL mechanism in use when the stage is `auth` (`LOGIN`, `PLAIN`, `XOAUTH2`).
        mechanism: Option<String>,
        /// Whether retrying later may succeed (4xx replies, dropped connections, timeouts).
        transient: bool,
        /// Whether the message may have been delivered (a failure after the data was sent).
        delivery: Delivery,
    },
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

fn join_problems(problems: &[SettingsProblem]) -> String {
    problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// An error for transports implemented outside this crate: the message was not sent,
    /// and retrying later is pointless unless `transient` is true.
    ///
    /// ```
    /// let error = mail_connector::Error::transport("queue", "queue is full", true);
    /// assert!(error.is_transient());
    /// ```
    #[must_use]
    pub fn transport(
        transport: impl Into<String>,
        message: impl Into<String>,
        transient: bool,
    ) -> Self {
        Self::Transport {
            transport: transport.into(),
            message: message.into(),
            transient,
            delivery: Delivery::NotSent,
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

    pub(crate) fn invalid_message(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidMessage {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether the same operation may succeed if retried later (throttling, a server that is
    /// temporarily unavailable, a dropped connection). Errors caused by settings, the email
    /// itself or permissions are not transient.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { transient, .. } => *transient,
            Self::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            Self::PartialDelivery { source, .. } => source.is_transient(),
            Self::Smtp { transient, .. } => *transient,
            Self::InvalidMessage { .. }
            | Self::InvalidSettings { .. }
            | Self::Disabled
            | Self::NotAvailable { .. } => false,
        }
    }

    /// Whether the error comes from authentication or authorization: a wrong or expired
    /// secret, a missing permission or consent, a mailbox the app may not send from.
    #[must_use]
    pub fn is_auth(&self) -> bool {
        match self {
            Self::PartialDelivery { source, .. } => source.is_auth(),
            Self::Smtp {
                stage,
                code,
                enhanced_code,
                message,
                ..
            } => smtp_is_auth(*stage, *code, enhanced_code.as_deref(), message),
            _ => false,
        }
    }

    /// Whether the message may have been delivered despite this error.
    ///
    /// For [`Error::PartialDelivery`] this is [`Delivery::Uncertain`] when any recipient's
    /// delivery is uncertain; use its fields for the exact split.
    #[must_use]
    pub fn delivery(&self) -> Delivery {
        match self {
            Self::Transport { delivery, .. } | Self::Smtp { delivery, .. } => *delivery,
            Self::PartialDelivery { uncertain, .. } if !uncertain.is_empty() => Delivery::Uncertain,
            _ => Delivery::NotSent,
        }
    }

    /// What an admin or developer should change to fix this error: which setting, which
    /// setup step. `None` when there is nothing to change (for example a transient failure
    /// that a retry will fix).
    #[must_use]
    pub fn remedy(&self) -> Option<String> {
        match self {
            Self::InvalidMessage { field, .. } => Some(format!(
                "correct `{field}` in the email before sending it again"
            )),
            Self::InvalidSettings { problems } => Some(format!(
                "fix these settings: {}",
                problems
                    .iter()
                    .map(|p| format!("`{}`", p.field))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Self::Disabled => Some(
                "enable the connector (set `enabled = true`, the admin screen's Enable/Disable) \
                 to send mail"
                    .to_owned(),
            ),
            Self::NotAvailable { reason, .. } => Some((*reason).to_owned()),
            Self::Io { .. } => Some(
                "check that the path exists and that this process may read or write it".to_owned(),
            ),
            Self::PartialDelivery { source, .. } => source
                .remedy()
                .map(|r| format!("{r}; then resend only to the recipients listed as not sent")),
            Self::Transport { .. } => None,
            Self::Smtp {
                stage,
                code,
                enhanced_code,
                message,
                mechanism,
                ..
            } => smtp_remedy(
                *stage,
                *code,
                enhanced_code.as_deref(),
                message,
                mechanism.as_deref(),
            ),
        }
    }
}

// The SMTP reply-to-remedy table lives with the SMTP transport (`src/smtp/remedy.rs`).
#[cfg(feature = "smtp")]
use crate::smtp::remedy::{is_auth as smtp_is_auth, remedy as smtp_remedy};

#[cfg(not(feature = "smtp"))]
fn smtp_is_auth(_: SmtpStage, _: Option<u16>, _: Option<&str>, _: &str) -> bool {
    false
}

#[cfg(not(feature = "smtp"))]
fn smtp_remedy(
    _: SmtpStage,
    _: Option<u16>,
    _: Option<&str>,
    _: &str,
    _: Option<&str>,
) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_carry_transience_and_delivery() {
        let error = Error::transport("queue", "full", true);
        assert!(error.is_transient());
        assert_eq!(error.delivery(), Delivery::NotSent);
        let error = error.with_uncertain_delivery();
        assert_eq!(error.delivery(), Delivery::Uncertain);
        assert!(!Error::Disabled.is_transient());
    }

    #[test]
    fn settings_error_lists_every_problem() {
        let error = Error::InvalidSettings {
            problems: vec![
                SettingsProblem {
                    field: "tenant_id".into(),
                    message: "Tenant ID (`tenant_id`) is required".into(),
                },
                SettingsProblem {
                    field: "oauth_client_id".into(),
                    message: "OAuth Client ID (`oauth_client_id`) is required".into(),
                },
            ],
        };
        let text = error.to_string();
        assert!(
            text.contains("`tenant_id`") && text.contains("`oauth_client_id`"),
            "{text}"
        );
        assert_eq!(
            error.remedy().unwrap(),
            "fix these settings: `tenant_id`, `oauth_client_id`"
        );
    }
}
