//! Graph failures as [`Error::Graph`], with the remedy and the auth verdict from Graph's own
//! error codes attached where the error is made.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::error::{Advice, Delivery, Error};

use super::remedy::{Permission, is_auth, needed_permission, refused_for_permission, remedy};

/// The facts of one failed Graph request; [`GraphFailure::into_error`] adds the advice.
pub(super) struct GraphFailure {
    pub operation: &'static str,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<Box<str>>,
    pub client_request_id: Option<Box<str>>,
    pub transient: bool,
    pub delivery: Delivery,
    pub retry_after: Option<Duration>,
    /// How to grant `Mail.Send` when the app registration's steps do not apply (a managed
    /// identity's token provider says).
    pub permission_remedy: Option<String>,
    /// Whether the token used carries the permission the operation needs (`Mail.Send`, or
    /// `Mail.ReadWrite` for a draft), as its claims say; `None` when unknown.
    pub permission_granted: Option<bool>,
}

impl GraphFailure {
    /// A failure before any response: no status, no code, no ids.
    pub fn local(operation: &'static str, message: String, transient: bool) -> Self {
        Self {
            operation,
            status: None,
            code: None,
            message,
            request_id: None,
            client_request_id: None,
            transient,
            delivery: Delivery::NotSent,
            retry_after: None,
            permission_remedy: None,
            permission_granted: None,
        }
    }

    pub fn into_error(self) -> Error {
        let advice = Advice::remedy(remedy(
            self.operation,
            self.status,
            self.code.as_deref(),
            &self.message,
            Permission {
                remedy: self.permission_remedy.as_deref(),
                granted: self.permission_granted,
            },
        ))
        .with_auth(self.operation != UPLOAD && is_auth(self.status, self.code.as_deref()))
        .with_of_message(self.draft_permission_refused())
        .with_retry_after(self.retry_after);
        Error::Graph {
            operation: self.operation,
            status: self.status,
            code: self.code,
            message: self.message,
            request_id: self.request_id,
            client_request_id: self.client_request_id,
            transient: self.transient,
            delivery: self.delivery,
            advice,
        }
    }

    /// Whether Graph refused a draft (which only a message with large attachments uses) for
    /// the lack of `Mail.ReadWrite`: the message's own failure, as messages without large
    /// attachments still go. Any other draft failure (a wrong mailbox, a token Graph does
    /// not take, an access policy) is the mailbox's, as for `sendMail`.
    fn draft_permission_refused(&self) -> bool {
        needed_permission(self.operation) == "Mail.ReadWrite"
            && self.permission_granted != Some(true)
            && self
                .status
                .and_then(|status| StatusCode::from_u16(status).ok())
                .is_some_and(|status| {
                    refused_for_permission(status, self.code.as_deref(), &self.message)
                })
    }
}

/// The operation of an upload session's byte ranges, sent to the pre-authenticated upload
/// URL Graph handed out (on `outlook.office.com` in the global cloud): not to Graph, and
/// without the app's token.
pub(super) const UPLOAD: &str = "upload attachment";

/// The code of an upload session that did not move forward however often the upload
/// resumed where it said it stood (not one of Graph's).
pub(super) const STALLED_CODE: &str = "UploadSessionStalled";

#[derive(Deserialize)]
pub(super) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Deserialize)]
pub(super) struct ErrorDetail {
    pub code: Option<String>,
    pub message: Option<String>,
    #[serde(alias = "innererror", alias = "innerError")]
    pub inner_error: Option<InnerError>,
}

#[derive(Deserialize)]
pub(super) struct InnerError {
    #[serde(rename = "request-id")]
    pub request_id: Option<String>,
}

/// Why an attempt failed, before deciding whether to try again.
pub(super) enum Failure {
    /// No request reached the server; trying again may work.
    NotSent(String),
    /// The request could not even be built; trying again cannot help.
    Invalid(String),
    /// The server's TLS certificate was refused; trying again cannot help.
    Tls(String),
    /// The server answered with a redirect, which is never followed.
    Redirect {
        status: StatusCode,
        from: String,
        to: String,
    },
    /// The request was written but no complete answer came back.
    Unknown(String),
    /// The server answered with an error status.
    Status {
        status: StatusCode,
        code: Option<String>,
        message: String,
        request_id: Option<String>,
        retry_after: Option<Duration>,
    },
}

pub(super) fn to_error(
    operation: &'static str,
    failure: &Failure,
    client_request_id: &str,
    delivery: Delivery,
    transient: bool,
    permission_remedy: Option<String>,
    permission_granted: Option<bool>,
) -> Error {
    let (status, code, message, request_id, retry_after) = match failure {
        Failure::NotSent(message) | Failure::Invalid(message) => {
            (None, None, message.clone(), None, None)
        }
        Failure::Tls(message) => (None, Some(TLS_CODE.to_owned()), message.clone(), None, None),
        Failure::Redirect { status, from, to } => (
            Some(status.as_u16()),
            Some(REDIRECT_CODE.to_owned()),
            format!(
                "`{from}` answered with a redirect{}; redirects are not followed{}",
                match to.is_empty() {
                    true => String::new(),
                    false => format!(" to `{to}`"),
                },
                match operation {
                    UPLOAD => "",
                    _ =>
                        ", so the access token is never sent elsewhere: set `graph_endpoint` to \
                           the Graph host itself",
                }
            ),
            None,
            None,
        ),
        Failure::Unknown(message) => (
            None,
            None,
            format!("{message}; the server may have accepted the request"),
            None,
            None,
        ),
        Failure::Status {
            status,
            code,
            message,
            request_id,
            retry_after,
        } => (
            Some(status.as_u16()),
            code.clone(),
            message.clone(),
            request_id.as_deref().map(Box::from),
            *retry_after,
        ),
    };
    let message = match delivery {
        Delivery::Uncertain => format!("{message}{UNCERTAIN}"),
        Delivery::NotSent if operation_sends(operation) => format!("{message}{NOT_SENT}"),
        Delivery::NotSent => message,
    };
    GraphFailure {
        operation,
        status,
        code,
        message,
        request_id,
        client_request_id: Some(client_request_id.into()),
        transient,
        delivery,
        retry_after,
        permission_remedy,
        permission_granted,
    }
    .into_error()
}

/// What the message of a failure that certainly sent nothing ends with.
pub(super) const NOT_SENT: &str = " — the mail was not sent";
/// What an uncertain failure's message ends with.
pub(super) const UNCERTAIN: &str = " — delivery is uncertain, do not resend blindly";

/// The code given to a refused TLS certificate (not one of Graph's: no answer came).
pub(crate) const TLS_CODE: &str = "TlsCertificateRejected";
/// The code given to a redirect (not one of Graph's).
pub(crate) const REDIRECT_CODE: &str = "RedirectNotFollowed";

fn operation_sends(operation: &str) -> bool {
    matches!(operation, "sendMail" | "send draft")
}
