//! What a Graph answer means: a response for the caller, a redirect refused, or Graph's
//! error (its code, message and request id, cleaned of the bearer token or upload URL).

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::error::{ErrorBody, Failure};
use super::response::GraphResponse;
use crate::http::{BodyError, host_of, redact, retry_after};

/// The meaning of `status`, `headers` and `body` answered to a request to `url`; `secrets`
/// gives the forms of the credentials to clean out of any text that is kept.
pub(super) fn answer(
    url: &str,
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Vec<u8>, BodyError>,
    secrets: impl Fn() -> Vec<String>,
) -> Result<GraphResponse, Failure> {
    if status.is_success() {
        // The status is Graph's answer; a body too large or cut off after it does not
        // change it. Callers that need the body report an unexpected answer instead.
        let (body, unread) = match body {
            Ok(body) => (body, None),
            Err(error) => (Vec::new(), Some(redact(&error.to_string(), &secrets()))),
        };
        return Ok(GraphResponse {
            status,
            headers,
            body,
            unread,
        });
    }
    if status.is_redirection() {
        let to = headers
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(host_of)
            .unwrap_or_default();
        let from = host_of(url);
        return Err(Failure::Redirect { status, from, to });
    }
    let (code, message, inner_request_id) = match body {
        Ok(body) => match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { error }) => (
                error.code,
                error.message.unwrap_or_default(),
                error.inner_error.and_then(|i| i.request_id),
            ),
            Err(_) => (
                None,
                status.canonical_reason().unwrap_or("error").to_owned(),
                None,
            ),
        },
        Err(BodyError::TooLarge(limit)) => (
            None,
            format!(
                "{}; its error body is larger than {limit} bytes and was not read",
                status.canonical_reason().unwrap_or("error")
            ),
            None,
        ),
        Err(BodyError::Failed(_)) => (
            None,
            status.canonical_reason().unwrap_or("error").to_owned(),
            None,
        ),
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let secrets = secrets();
    let clean = |text: String| redact(&text, &secrets);
    Err(Failure::Status {
        status,
        code: code.map(clean),
        message: clean(message),
        request_id: header("request-id").or(inner_request_id).map(clean),
        retry_after: retry_after(&headers),
    })
}
