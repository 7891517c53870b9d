//! The crate's one error type.
//!
//! Every fallible operation returns [`Error`]. Callers ask it questions rather than matching
//! on variants: [`Error::is_transient`] (retrying later may work), [`Error::is_auth`] (the
//! credentials or permissions are wrong), [`Error::delivery`] (was the message possibly
//! delivered?) and [`Error::remedy`] (what an admin should change).

use std::path::PathBuf;
use std::sync::Arc;

use crate::message::Recipient;
use crate::transport::SendReport;

mod classify;
mod make;
mod partial;
mod parts;
mod refusal;

#[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
pub(crate) use partial::{REFUSED_REMEDY, UNCERTAIN_REMEDY, rest_remedy, source_is_the_refusal};
pub use parts::{Advice, Delivery, SettingsProblem, SmtpStage, Transience};
pub use refusal::Refusal;
#[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
pub(crate) use refusal::few as few_refusals;
pub(crate) use refusal::permanent_recipients;
#[cfg(feature = "smtp")]
pub(crate) use refusal::{MAX_REPLY_TEXT, enhanced_code, refused_message};

/// The [`SettingsProblem::field`] of a problem with the settings as a whole rather than one
/// key: text that does not parse, or a key that does not exist.
pub(crate) const WHOLE_SETTINGS: &str = "settings";

/// The setting naming the outbox folder, the one path in the settings that is written to:
/// an [`Error::Io`] naming it says to let this process write into the folder.
pub(crate) const OUTBOX_DIR: &str = "outbox_dir";

/// The [`Error::Io`] actions on files that the settings name: failing to read one of them is
/// a settings problem (see [`Error::is_settings`]). Such an error is made with
/// [`Error::settings_file`], which records the setting; [`Error::io`] is for every other file.
pub(crate) mod settings_file {
    /// Reading the settings file itself.
    pub(crate) const SETTINGS: &str = "read the settings file";
    /// Reading `client_certificate_file`.
    #[cfg(feature = "oauth")]
    pub(crate) const CERTIFICATE: &str = "read the client certificate";
    /// Reading `client_private_key_file`.
    #[cfg(feature = "oauth")]
    pub(crate) const PRIVATE_KEY: &str = "read the client private key";
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error type of every operation in this crate.
///
/// Ask it rather than matching on it: [`Error::is_transient`], [`Error::is_auth`],
/// [`Error::delivery`], [`Error::status`], [`Error::retry_after`] and [`Error::remedy`]. It is
/// `Clone`, so one failure can be handed to every caller that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The email is not valid; `field` names the builder field (`to`, `subject`, `header`, …).
    #[error("invalid email: {field}: {reason}")]
    #[non_exhaustive]
    InvalidMessage {
        /// The email field at fault, e.g. `to[1]` or `attachments[0].name`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The settings are incomplete or contradictory; every problem found is listed.
    #[error("invalid mail connector settings: {}", join_problems(problems))]
    #[non_exhaustive]
    InvalidSettings {
        /// Each missing or contradictory field, every one found at once (grouped by check,
        /// not in the order of the settings table).
        problems: Vec<SettingsProblem>,
    },

    /// The connector is disabled (`enabled = false`): nothing was sent.
    #[error("the mail connector is disabled (`enabled = false`); nothing was sent")]
    Disabled,

    /// The requested transport is not part of this build or this version.
    #[error("the {transport} transport is not available: {reason}")]
    #[non_exhaustive]
    NotAvailable {
        /// `graph` or `smtp`.
        transport: &'static str,
        /// Why, and what to use instead.
        reason: &'static str,
    },

    /// Reading or writing a local file failed.
    #[error("could not {action} `{}`: {source}", path.display())]
    #[non_exhaustive]
    Io {
        /// What was being done, e.g. `write the outbox file`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The setting that names the file (`client_certificate_file`, `dkim_private_key_file`,
        /// `tls_ca_file`, `outbox_dir`, …, or `settings` for the settings file itself) when it
        /// is one the settings name: then the settings must change ([`Error::is_settings`]).
        setting: Option<&'static str>,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// An email went to some of its recipients only, or to none with each group named: an
    /// SMTP server refused some at `RCPT TO` (or refused every one of several), or a
    /// recipient-limit split had a part fail (the later parts not tried). `delivered` may be
    /// empty.
    ///
    /// Its message is the summary of who got it, then `source`, then the other recipients
    /// refused at `RCPT TO` with each one's reply — the first few, then how many more:
    /// `refusals` has them all.
    #[error(
        "{}: {source}{}",
        partial::summary(delivered, not_sent, refused_permanently, uncertain),
        refusal::listed(refusals, source)
    )]
    #[non_exhaustive]
    PartialDelivery {
        /// The parts that were accepted, with their recipients.
        delivered: SendReport,
        /// Recipients of the failed part when the failure leaves delivery uncertain.
        uncertain: Vec<Recipient>,
        /// Recipients that certainly did not get the message. Resend to those not in
        /// `refused_permanently`, and only when `source` says so: when it
        /// [is transient](Error::is_transient) or left delivery uncertain, or when
        /// `refused_permanently` is not empty (then the permanent failure was theirs).
        not_sent: Vec<Recipient>,
        /// Of `not_sent`, the recipients the server refused for good at `RCPT TO` (a
        /// permanent reply such as `550 5.1.1` unknown mailbox): sending to them again
        /// fails the same way. The rest of `not_sent` may succeed on a retry. Empty when no
        /// recipient was refused on its own (a whole message failed for another reason).
        /// Kept as it was for compatibility: it is the recipients of the `refusals` that
        /// [are permanent](Refusal::is_permanent), in the same order.
        refused_permanently: Vec<Recipient>,
        /// Each recipient the server refused at `RCPT TO`, permanently or temporarily, with
        /// its reply (code, enhanced code, text), in the order of the envelope: why each of
        /// `not_sent` that was tried did not get it. Empty when no recipient was refused on
        /// its own (a whole message or a recipient-limit part failed for another reason).
        /// A boxed slice, which keeps every `Result` of this crate small.
        refusals: Box<[Refusal]>,
        /// Why the failing part failed. When recipients were refused at `RCPT TO`, the
        /// first temporary refusal if there is one, else the first refusal: so
        /// `source.is_transient()` says whether a refused recipient is worth retrying.
        #[source]
        source: Box<Error>,
    },

    /// A failure reported by a transport outside this crate, or by the stub transport.
    #[error("{transport} transport: {message}")]
    #[non_exhaustive]
    Transport {
        /// The transport's name.
        transport: String,
        /// What went wrong.
        message: String,
        /// Whether retrying later may succeed.
        transient: bool,
        /// Whether the message may have been delivered despite the error.
        delivery: Delivery,
        /// The transport's own error, when it gave one.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
        /// The remedy, auth verdict and `Retry-After` the transport attached
        /// ([`Error::with_remedy`], [`Error::with_auth`], [`Error::with_retry_after`]).
        advice: Advice,
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
    #[non_exhaustive]
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
        request_id: Option<Box<str>>,
        /// The `client-request-id` this crate sent.
        client_request_id: Option<Box<str>>,
        /// Whether retrying later may succeed.
        transient: bool,
        /// Whether the message may have been delivered despite the error.
        delivery: Delivery,
        /// The Graph transport's advice; read it through [`Error::remedy`], [`Error::is_auth`]
        /// and [`Error::retry_after`].
        advice: Advice,
    },

    /// Microsoft Entra ID refused to issue an access token. [`Error::remedy`] names the setup
    /// step and setting to fix; the trace and correlation ids are kept for support.
    #[error("Entra ID refused the token request (HTTP {status}): {summary}")]
    #[non_exhaustive]
    TokenRequest {
        /// The token endpoint's HTTP status.
        status: u16,
        /// The OAuth error, e.g. `invalid_client`.
        error: String,
        /// The AADSTS numbers, e.g. `[7000215]`.
        codes: Box<[u64]>,
        /// Entra's description in one line, with its trace and correlation ids.
        summary: String,
        /// Entra's trace id (a GUID).
        trace_id: Option<Box<str>>,
        /// Entra's correlation id (a GUID).
        correlation_id: Option<Box<str>>,
        /// Whether retrying later may succeed (Entra is unavailable or throttling).
        transient: bool,
        /// The credentials' advice, from the AADSTS table; read it through [`Error::remedy`]
        /// and [`Error::retry_after`].
        advice: Advice,
    },

    /// The token endpoint could not be reached, timed out, or answered with something that
    /// is not a token (a proxy's error page, a 5xx that outlasted the retries).
    #[error("could not get an access token from {endpoint}: {reason}")]
    #[non_exhaustive]
    TokenEndpoint {
        /// The token endpoint URL (it holds no secret).
        endpoint: String,
        /// What went wrong, without response bodies.
        reason: String,
        /// Whether retrying later may succeed.
        transient: bool,
        /// The credentials' advice; read it through [`Error::remedy`] and
        /// [`Error::retry_after`] (a throttled endpoint's wait).
        advice: Advice,
    },

    /// A credential in the settings cannot be used: an unreadable certificate or key file,
    /// a key that does not match, a token source that failed.
    #[error("unusable credential `{setting}`: {reason}")]
    #[non_exhaustive]
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
    #[non_exhaustive]
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
        /// The SMTP transport's advice, from its reply table; read it through
        /// [`Error::remedy`] and [`Error::is_auth`].
        advice: Advice,
    },

    /// The mail queue's database could not be reached or refused an operation, or a queue
    /// operation does not apply (retrying a message that was sent, an unknown id).
    #[error("mail queue: could not {action}: {message}")]
    #[non_exhaustive]
    Queue {
        /// What was being done, e.g. `enqueue the email` or `claim a message`.
        action: &'static str,
        /// What went wrong; never holds the database password.
        message: String,
        /// Whether trying again later may succeed (a database that is down or busy).
        transient: bool,
        /// Whether the operation may have taken effect although it failed: an enqueue whose
        /// answer was lost (the connection broke after the statement was sent) may have
        /// stored the email, which a worker will then deliver. Read it through
        /// [`Error::delivery`].
        delivery: Delivery,
        /// The queue's advice; read it through [`Error::remedy`].
        advice: Advice,
    },
}

fn join_problems(problems: &[SettingsProblem]) -> String {
    problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
