//! A successful Graph answer, read whole up to the request's answer limit, and what its
//! status says: a message Graph took (202 Accepted), an attachment it added (201 Created),
//! or an answer that is not Graph's.

use reqwest::header::{HeaderMap, HeaderName};

use super::error::{GraphFailure, UNCERTAIN};
use crate::error::{Error, Result};

/// Graph's own id for a request, in its answer.
static REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// A successful response, read whole up to the request's answer limit.
#[derive(Debug)]
pub(crate) struct GraphResponse {
    /// A success status: Graph's own (202 for a send, 201 for a created item) or another.
    pub status: reqwest::StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Why the body is missing, when it could not be read (too large, cut off): the status
    /// still stands, but callers that need the body report this.
    pub unread: Option<String>,
}

impl GraphResponse {
    /// The body parsed as `T`, or a clear error for `operation`.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
    ) -> Result<T> {
        if let Some(reason) = &self.unread {
            return Err(unexpected_answer(operation, reason.clone()));
        }
        // serde's message may quote the answer, which may echo a credential: say where only.
        serde_json::from_slice(&self.body).map_err(|e| {
            unexpected_answer(
                operation,
                format!(
                    "unexpected answer: not the JSON Graph sends (at line {} column {})",
                    e.line(),
                    e.column()
                ),
            )
        })
    }

    /// Graph's `request-id` for a message sent (`sendMail`, a draft's `/send`), when Graph
    /// answered as it does for a message it takes: 202 Accepted. Any other success status
    /// says nothing of the message: Graph has been seen to answer 200 to a MIME message it
    /// did not take, and a proxy's page comes with 200. Whether the message went is then
    /// unknown: an error whose delivery is uncertain, never repeated, and never a report of
    /// a message sent.
    pub(crate) fn sent(&self, operation: &'static str) -> Result<Option<String>> {
        if self.status == reqwest::StatusCode::ACCEPTED {
            return Ok(self.request_id());
        }
        Err(not_accepted(operation, self.status, self.request_id()))
    }

    /// Graph's `request-id` for this answer, if it gave one.
    pub(crate) fn request_id(&self) -> Option<String> {
        self.headers
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// The error for an attachment added to a draft (`POST …/attachments`) answered with
/// another success status than Graph's 201 Created: the draft may lack the attachment, and
/// sending it would deliver the message without it. Nothing was sent.
#[cold]
#[inline(never)]
pub(crate) fn attachment_not_created(
    operation: &'static str,
    status: reqwest::StatusCode,
    request_id: Option<String>,
) -> Error {
    GraphFailure {
        status: Some(status.as_u16()),
        code: Some(UNEXPECTED_SUCCESS_CODE.to_owned()),
        request_id: request_id.map(Into::into),
        ..GraphFailure::local(
            operation,
            format!(
                "the answer was HTTP {status}, not the 201 Created with which Graph adds an \
                 attachment: the draft may lack it"
            ),
            true,
        )
    }
    .into_error()
    .with_remedy(
        "send the message again; if a proxy or gateway stands in front of Graph \
         (`graph_endpoint`), have it pass Graph's answers through unchanged",
    )
}

/// The error for a send answered with another success status than 202 Accepted, with
/// Graph's `request-id` (when the answer had one) for the admin to look it up. The remedy
/// does not guess which cause it was: the MIME messages sent in one request stay under the
/// size at which Graph has been seen to answer 200, so a proxy is as likely. Cold, out of
/// line: the path of a message Graph accepted stays a short run of code.
#[cold]
#[inline(never)]
fn not_accepted(
    operation: &'static str,
    status: reqwest::StatusCode,
    request_id: Option<String>,
) -> Error {
    GraphFailure {
        status: Some(status.as_u16()),
        code: Some(UNEXPECTED_SUCCESS_CODE.to_owned()),
        request_id: request_id.map(Into::into),
        delivery: crate::error::Delivery::Uncertain,
        ..GraphFailure::local(
            operation,
            format!(
                "the answer was HTTP {status}, not the 202 Accepted with which Graph takes a \
                 message: Graph may not have taken it (it has answered 200 to a MIME message \
                 it refused), or a proxy answered in its place{UNCERTAIN}"
            ),
            false,
        )
    }
    .into_error()
    .with_remedy(
        "check whether the message reached its recipients (or the Sent Items of the User \
         Name (`user_name`) mailbox) before sending it again; if a proxy or gateway stands in \
         front of Graph (`graph_endpoint`), have it pass Graph's answers through unchanged (one \
         that turns Graph's 202 into 200 makes every send fail this way)",
    )
}

/// The code of a send answered with another success status than 202 Accepted (not one of
/// Graph's).
const UNEXPECTED_SUCCESS_CODE: &str = "UnexpectedSuccessStatus";

/// An answer that is not what Graph sends for `operation`.
pub(crate) fn unexpected_answer(operation: &'static str, message: String) -> Error {
    GraphFailure {
        code: Some("UnexpectedResponse".to_owned()),
        ..GraphFailure::local(operation, message, false)
    }
    .into_error()
}
