//! The crate's one error type.
//!
//! Every fallible operation returns [`Error`]. Callers ask it questions rather than matching
//! on variants: [`Error::is_transient`] (retrying later may work), [`Error::is_auth`] (the
//! credentials or permissions are wrong), [`Error::delivery`] (was the message possibly
//! delivered?) and [`Error::remedy`] (what an admin should change).

use std::fmt;
use std::path::PathBuf;

use crate::credentials::EntraError;
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

    /// Microsoft Graph refused or failed a request, or could not be reached.
    /// [`Error::remedy`] names the permission, setting or setup step to fix; the request ids
    /// are kept for Microsoft support.
    #[error(
        "Microsoft Graph {operation} failed{}{}: {message}{}",
        status.map(|s| format!(" (HTTP {s}")).unwrap_or_default(),
        match (status, code) { (Some(_), Some(c)) => format!(" {c})"), (Some(_), None) => ")".to_owned(), _ => String::new() },
        request_id.as_deref().map(|id| format!(" [request-id {id}]")).unwrap_or_default()
    )]
    Graph {
        /// What was being done: `sendMail`, `create draft`, `upload attachment`, …
        operation: &'static str,
        /// The HTTP status, or `None` when no response arrived.
        status: Option<u16>,
        /// Graph's error code, e.g. `ErrorAccessDenied`.
        code: Option<String>,
        /// Graph's message, or what went wrong on the way.
        message: String,
        /// Graph's `request-id`.
        request_id: Option<String>,
        /// The `client-request-id` this crate sent.
        client_request_id: Option<String>,
        /// Whether retrying later may succeed.
        transient: bool,
        /// Whether the message may have been delivered despite the error.
        delivery: Delivery,
    },

    /// Microsoft Entra ID refused to issue an access token. [`Error::remedy`] names the setup
    /// step and setting to fix; the trace and correlation ids are kept for support.
    #[error("Entra ID refused the token request (HTTP {status}): {entra}")]
    TokenRequest {
        /// The token endpoint's HTTP status.
        status: u16,
        /// The parsed error body.
        entra: Box<EntraError>,
    },

    /// The token endpoint could not be reached, timed out, or answered with something that
    /// is not a token (a proxy's error page, a 5xx that outlasted the retries).
    #[error("could not get an access token from {endpoint}: {reason}")]
    TokenEndpoint {
        /// The token endpoint URL (it holds no secret).
        endpoint: String,
        /// What went wrong, without response bodies.
        reason: String,
        /// Whether retrying later may succeed.
        transient: bool,
    },

    /// A credential in the settings cannot be used: an unreadable certificate or key file,
    /// a key that does not match, a token source that failed.
    #[error("unusable credential `{setting}`: {reason}")]
    InvalidCredential {
        /// The settings key at fault, e.g. `client_private_key_file`.
        setting: &'static str,
        /// What is wrong with it (never the secret itself).
        reason: String,
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

    /// Whether sending again later may succeed *and* cannot duplicate the mail: throttling, a
    /// server that is temporarily unavailable, a connection that was never made. Errors caused
    /// by settings, the email itself or permissions are not transient, and neither is any error
    /// after which delivery is [`Delivery::Uncertain`] — resending then is the caller's call —
    /// nor an [`Error::PartialDelivery`] after which some recipients already have the mail
    /// (resend only to its `not_sent` recipients).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        if self.delivery() == Delivery::Uncertain {
            return false;
        }
        match self {
            Self::Transport { transient, .. } => *transient,
            Self::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            // Once a part went out, resending the email would duplicate it: resend to
            // `not_sent` instead.
            Self::PartialDelivery {
                delivered, source, ..
            } => delivered.messages.is_empty() && source.is_transient(),
            Self::Graph { transient, .. } => *transient,
            Self::TokenRequest { status, entra } => {
                entra.is_transient() || *status == 429 || *status >= 500
            }
            Self::TokenEndpoint { transient, .. } => *transient,
            Self::Smtp { transient, .. } => *transient,
            Self::InvalidCredential { .. }
            | Self::InvalidMessage { .. }
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
            Self::Graph { status, code, .. } => {
                matches!(status, Some(401 | 403))
                    || matches!(
                        code.as_deref(),
                        Some("ErrorInvalidUser" | "MailboxNotEnabledForRESTAPI")
                    )
            }
            Self::TokenRequest { .. } => !self.is_transient(),
            Self::InvalidCredential { .. } => true,
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
            Self::Transport { delivery, .. }
            | Self::Graph { delivery, .. }
            | Self::Smtp { delivery, .. } => *delivery,
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
            Self::Graph {
                operation,
                status,
                code,
                message,
                ..
            } => graph_remedy(operation, *status, code.as_deref(), message),
            Self::TokenRequest { entra, .. } => Some(entra.remedy()),
            Self::TokenEndpoint { reason, .. } if crate::http::is_tls_text(reason) => {
                Some(crate::http::tls_remedy("authority_host"))
            }
            Self::TokenEndpoint { .. } => Some(
                "check that this machine can reach the login host over HTTPS (firewall, proxy, \
                 DNS) and that `authority_host` and `cloud` are right"
                    .to_owned(),
            ),
            Self::InvalidCredential { setting, .. } => Some(format!(
                "fix `{setting}`: see the credentials setup steps in the documentation"
            )),
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

    /// A copy for the callers that waited on one shared token fetch, so that they and the
    /// fetching caller agree on `is_transient`, `is_auth`, `status` and `remedy` (a token
    /// source may return any variant). Every variant is copied exactly, except that an
    /// [`Error::Io`] keeps its kind and message but not its source chain.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::Io {
                action,
                path,
                source,
            } => Self::Io {
                action,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Self::PartialDelivery {
                delivered,
                uncertain,
                not_sent,
                source,
            } => Self::PartialDelivery {
                delivered: delivered.clone(),
                uncertain: uncertain.clone(),
                not_sent: not_sent.clone(),
                source: Box::new(source.duplicate()),
            },
            Self::InvalidMessage { field, reason } => Self::invalid_message(field, reason),
            Self::InvalidSettings { problems } => Self::InvalidSettings {
                problems: problems.clone(),
            },
            Self::Disabled => Self::Disabled,
            Self::NotAvailable { transport, reason } => Self::NotAvailable { transport, reason },
            Self::Transport {
                transport,
                message,
                transient,
                delivery,
            } => Self::Transport {
                transport: transport.clone(),
                message: message.clone(),
                transient: *transient,
                delivery: *delivery,
            },
            Self::Graph {
                operation,
                status,
                code,
                message,
                request_id,
                client_request_id,
                transient,
                delivery,
            } => Self::Graph {
                operation,
                status: *status,
                code: code.clone(),
                message: message.clone(),
                request_id: request_id.clone(),
                client_request_id: client_request_id.clone(),
                transient: *transient,
                delivery: *delivery,
            },
            Self::TokenRequest { status, entra } => Self::TokenRequest {
                status: *status,
                entra: entra.clone(),
            },
            Self::TokenEndpoint {
                endpoint,
                reason,
                transient,
            } => Self::TokenEndpoint {
                endpoint: endpoint.clone(),
                reason: reason.clone(),
                transient: *transient,
            },
            Self::InvalidCredential { setting, reason } => Self::InvalidCredential {
                setting,
                reason: reason.clone(),
            },
            Self::Smtp {
                stage,
                code,
                enhanced_code,
                message,
                mechanism,
                transient,
                delivery,
            } => Self::Smtp {
                stage: *stage,
                code: *code,
                enhanced_code: enhanced_code.clone(),
                message: message.clone(),
                mechanism: mechanism.clone(),
                transient: *transient,
                delivery: *delivery,
            },
        }
    }

    /// The HTTP status or SMTP reply code the server answered with, if any.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Graph { status, .. } => *status,
            Self::TokenRequest { status, .. } => Some(*status),
            Self::Smtp { code, .. } => *code,
            Self::PartialDelivery { source, .. } => source.status(),
            _ => None,
        }
    }
}

/// What to change for a Graph error: from its code first, then its status.
fn graph_remedy(
    operation: &str,
    status: Option<u16>,
    code: Option<&str>,
    message: &str,
) -> Option<String> {
    const CONSENT: &str = "in the app registration add the Microsoft Graph permission `Mail.Send` \
        as an Application permission (not Delegated), then click \"Grant admin consent\"";
    let drafts = matches!(
        operation,
        "create draft" | "add attachment" | "create upload session"
    );
    let text = match (code, status) {
        (Some("ErrorAccessDenied"), _)
            if message.contains("AccessPolicy") || message.contains("OData is disabled") =>
        {
            "an Exchange application access policy or RBAC for Applications scope excludes the \
             User Name (`user_name`) mailbox: ask the Exchange admin to add it to the policy's \
             scope (changes can take an hour to apply)"
                .to_owned()
        }
        (Some("ErrorAccessDenied"), _) if drafts => {
            "large attachments are uploaded to a draft, which needs the Microsoft Graph \
             `Mail.ReadWrite` Application permission in addition to `Mail.Send`: add it in the app \
             registration and click \"Grant admin consent\""
                .to_owned()
        }
        (
            Some(
                "ErrorAccessDenied" | "NoPermissionsInAccessToken" | "Authorization_RequestDenied",
            ),
            _,
        )
        | (None, Some(403)) => CONSENT.to_owned(),
        (Some("ErrorInvalidUser" | "ResourceNotFound" | "MailboxNotEnabledForRESTAPI"), _)
        | (None, Some(404)) => {
            "User Name (`user_name`) is not a mailbox in this tenant, or it has \
            no Exchange Online licence: use the address (UPN) of a licensed user or shared mailbox \
            in the tenant named by `tenant_id`"
                .to_owned()
        }
        (Some("ErrorSendAsDenied"), _) => "the app may not send as the email's From address: \
            leave From unset so the User Name (`user_name`) mailbox sends it, or have the Exchange \
            admin grant Send As on that mailbox"
            .to_owned(),
        (Some("ErrorInvalidRecipients"), _) => {
            "Graph refused a recipient address: check the To, Cc and Bcc addresses".to_owned()
        }
        (Some("ErrorMessageSizeExceeded"), _) | (None, Some(413)) => {
            "the message is larger than the mailbox allows: send smaller attachments, or have \
             the Exchange admin raise the mailbox's MaxSendSize (up to 150 MB)"
                .to_owned()
        }
        (Some("InvalidInternetMessageHeader" | "InvalidInternetMessageHeaderCollection"), _) => {
            "Graph accepts at most 5 custom headers, each named `X-…`: remove the others".to_owned()
        }
        (Some("InvalidAuthenticationToken"), _) | (None, Some(401)) => {
            "Graph refused the access token even after fetching a new one. Most often the app \
             lost its access: admin consent was revoked (grant it again under API permissions), \
             the app or its service principal was disabled (Enterprise applications → \
             Properties → Enabled for users to sign in), a Conditional Access policy for \
             workload identities blocks it, or an Exchange application access policy / RBAC \
             for Applications scope excludes the User Name (`user_name`) mailbox. Otherwise \
             check that `cloud` (or `authority_host` and `graph_endpoint`) match the tenant's \
             cloud, and that this host's clock is correct"
                .to_owned()
        }
        (Some("TlsCertificateRejected"), _) => crate::http::tls_remedy("graph_endpoint"),
        (Some("RedirectNotFollowed"), _) => "Graph answered with a redirect, which is never \
            followed (it would carry the access token elsewhere): set `graph_endpoint` to the \
            Graph host itself, e.g. https://graph.microsoft.com"
            .to_owned(),
        (Some("ApplicationThrottled" | "TooManyRequests" | "MailboxConcurrency"), _)
        | (_, Some(429)) => "Graph is throttling this mailbox (limits: 4 concurrent requests, \
            10,000 requests per 10 minutes, 30 messages per minute): send less often, or raise \
            the send deadline so retries can wait longer"
            .to_owned(),
        (Some("UnexpectedResponse"), _) => "the Graph endpoint answered with something that is \
            not Graph's JSON: check `graph_endpoint` (a wrong URL, or a proxy's error page)"
            .to_owned(),
        (_, None) => "check that this host can reach the Graph endpoint (`graph_endpoint`): DNS, \
            proxy and firewall; a timeout can also mean the deadline is too short"
            .to_owned(),
        _ => return None,
    };
    Some(text)
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
