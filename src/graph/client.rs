//! One Graph request, done right: the per-mailbox concurrency limit, a bearer token from the
//! shared credentials (refreshed once after a 401), `client-request-id`, timeouts inside the
//! send's deadline, retries of 429/503 that honour `Retry-After`, and the at-most-once rule.
//!
//! # At most once
//!
//! `sendMail` and a draft's `/send` are not idempotent: repeating one the server accepted
//! delivers the mail twice. So a request is repeated only when the server certainly did not
//! act on it — the connection was never made, or the server answered 429, 503 or 401. A
//! timeout after the request was written, a dropped connection or a 500/502/504 leaves the
//! outcome unknown: such a request is never repeated, and the error says delivery is
//! *uncertain* ([`Delivery::Uncertain`]) so the caller can decide. Requests that are safe to
//! repeat (uploading a byte range, deleting a draft) are also retried after those.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::error::GraphFailure;
use crate::credentials::{AccessToken, Credentials};
use crate::error::{Delivery, Error, Result};
use crate::http::{bearer_header, describe_error, retry_after};
use crate::retry::RetryPolicy;

/// Whether repeating a request can duplicate its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Repeating is harmless (an upload range, a delete, a read).
    Safe,
    /// Repeat only when the server certainly did not act (sendMail, `/send`, creating a draft).
    OnlyIfNotProcessed,
}

/// A request to send, kept so it can be sent again.
#[derive(Debug)]
pub(crate) struct GraphRequest<'a> {
    pub operation: &'static str,
    pub method: Method,
    pub url: &'a str,
    pub body: Option<(&'static str, Vec<u8>)>,
    pub headers: Vec<(&'static str, String)>,
    /// Pre-authenticated upload URLs must not carry the bearer token.
    pub authorize: bool,
    pub repeat: Repeat,
}

impl<'a> GraphRequest<'a> {
    /// A JSON `POST` with the bearer token.
    pub(crate) fn post_json(
        operation: &'static str,
        url: &'a str,
        body: Vec<u8>,
        repeat: Repeat,
    ) -> Self {
        Self {
            operation,
            method: Method::POST,
            url,
            body: Some(("application/json", body)),
            headers: Vec::new(),
            authorize: true,
            repeat,
        }
    }

    /// A `POST` without a body (`/send`), never repeated once the server may have acted.
    pub(crate) fn post_empty(operation: &'static str, url: &'a str) -> Self {
        Self {
            body: None,
            ..Self::post_json(operation, url, Vec::new(), Repeat::OnlyIfNotProcessed)
        }
    }

    /// A `DELETE` with the bearer token.
    pub(crate) fn delete(operation: &'static str, url: &'a str) -> Self {
        Self {
            method: Method::DELETE,
            body: None,
            ..Self::post_json(operation, url, Vec::new(), Repeat::Safe)
        }
    }

    /// One byte range of an upload session: no bearer token (the URL is pre-authenticated).
    pub(crate) fn upload_range(url: &'a str, range: String, chunk: Vec<u8>) -> Self {
        Self {
            operation: "upload attachment",
            method: Method::PUT,
            url,
            body: Some(("application/octet-stream", chunk)),
            headers: vec![("Content-Range", range)],
            authorize: false,
            repeat: Repeat::Safe,
        }
    }
}

/// A successful response, read whole (Graph's answers here are small).
#[derive(Debug)]
pub(crate) struct GraphResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Sends Graph requests for one mailbox.
#[derive(Debug, Clone)]
pub(crate) struct GraphClient {
    pub http: reqwest::Client,
    pub credentials: Credentials,
    pub scope: String,
    pub permits: Arc<Semaphore>,
    pub retry: RetryPolicy,
    pub request_timeout: Duration,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
    #[serde(alias = "innererror", alias = "innerError")]
    inner_error: Option<InnerError>,
}

#[derive(Deserialize)]
struct InnerError {
    #[serde(rename = "request-id")]
    request_id: Option<String>,
}

/// Why an attempt failed, before deciding whether to try again.
enum Failure {
    /// No request reached the server; trying again may work.
    NotSent(String),
    /// The request could not even be built; trying again cannot help.
    Invalid(String),
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

impl GraphClient {
    /// Sends `request`, retrying what is safe to retry, until `deadline`.
    pub(crate) async fn execute(
        &self,
        request: &GraphRequest<'_>,
        deadline: Instant,
    ) -> Result<GraphResponse> {
        let started = Instant::now();
        let mut retries = 0u32;
        let mut refreshed_token = false;
        loop {
            let client_request_id = uuid::Uuid::new_v4().to_string();
            let (outcome, token) = self.attempt(request, &client_request_id, deadline).await?;
            let failure = match outcome {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            let error = |failure: &Failure, delivery: Delivery, transient: bool| {
                to_error(
                    request.operation,
                    failure,
                    &client_request_id,
                    delivery,
                    transient,
                )
            };
            let retry_after = match &failure {
                // The server certainly did not act on a refused token: fetch a new one, once.
                Failure::Status { status, code, .. }
                    if *status == StatusCode::UNAUTHORIZED
                        && request.authorize
                        && !refreshed_token
                        && code.as_deref() != Some("NoPermissionsInAccessToken") =>
                {
                    refreshed_token = true;
                    if let Some(token) = &token {
                        // Only now: a token refused for lack of permissions is not refetched.
                        self.credentials.invalidate(token);
                    }
                    tracing::info!(
                        operation = request.operation,
                        "Graph refused the access token; fetching a new one"
                    );
                    continue;
                }
                Failure::Status {
                    status,
                    retry_after,
                    ..
                } if matches!(
                    *status,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                ) =>
                {
                    *retry_after
                }
                Failure::NotSent(_) => None,
                Failure::Invalid(_) => return Err(error(&failure, Delivery::NotSent, false)),
                Failure::Unknown(_) if request.repeat == Repeat::Safe => None,
                Failure::Status { status, .. }
                    if request.repeat == Repeat::Safe && status.is_server_error() =>
                {
                    None
                }
                // Not repeated: the server may have acted on it. Retrying is the caller's call.
                Failure::Unknown(_) => return Err(error(&failure, Delivery::Uncertain, false)),
                Failure::Status { status, .. } if status.is_server_error() => {
                    return Err(error(&failure, Delivery::Uncertain, false));
                }
                Failure::Status { .. } => return Err(error(&failure, Delivery::NotSent, false)),
            };
            let elapsed = started.elapsed();
            let remaining = deadline.saturating_duration_since(Instant::now());
            let delay = self
                .retry
                .next_delay(retries, elapsed, retry_after)
                .filter(|delay| *delay < remaining);
            let Some(delay) = delay else {
                tracing::warn!(
                    operation = request.operation,
                    retries,
                    "giving up on Graph: retries or send deadline used up"
                );
                return Err(error(&failure, Delivery::NotSent, true));
            };
            tracing::info!(
                operation = request.operation,
                retry = retries + 1,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "Graph asked to retry later"
            );
            tokio::time::sleep(delay).await;
            retries += 1;
        }
    }

    /// One attempt, and the token it used. The outer `Result` is for errors that end the
    /// send at once (no token; the deadline passed before anything was sent).
    async fn attempt(
        &self,
        request: &GraphRequest<'_>,
        client_request_id: &str,
        deadline: Instant,
    ) -> Result<(
        std::result::Result<GraphResponse, Failure>,
        Option<AccessToken>,
    )> {
        let not_sent_by_deadline = || {
            GraphFailure::local(
                request.operation,
                "the send deadline passed before the request could be sent".to_owned(),
                true,
            )
            .into_error()
        };
        // The token first, bounded by the deadline, and without holding a request slot: a slow
        // login host must neither overrun the send nor block other sends. (After a 401 the
        // refused token was invalidated, so this fetches a new one.)
        let token = match request.authorize {
            true => Some(
                tokio::time::timeout_at(deadline, self.credentials.access_token(&self.scope))
                    .await
                    .map_err(|_| not_sent_by_deadline())??,
            ),
            false => None,
        };
        // The concurrency limit counts requests in flight, however many sends are waiting.
        let permit = tokio::time::timeout_at(deadline, self.permits.acquire())
            .await
            .map_err(|_| not_sent_by_deadline())?
            .map_err(|_| not_sent_by_deadline())?;

        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(not_sent_by_deadline());
        }
        let mut builder = self
            .http
            .request(request.method.clone(), request.url)
            .timeout(self.request_timeout.min(remaining))
            .header("client-request-id", client_request_id)
            .header("return-client-request-id", "true");
        if let Some(token) = &token {
            builder = builder.header(
                reqwest::header::AUTHORIZATION,
                bearer_header(token.expose_secret())?,
            );
        }
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        builder = match &request.body {
            Some((content_type, body)) => builder
                .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
                .body(body.clone()),
            None => builder.header(reqwest::header::CONTENT_LENGTH, "0"),
        };

        let response = match builder.send().await {
            Ok(response) => response,
            Err(e) if e.is_builder() => {
                return Ok((Err(Failure::Invalid(describe_error(&e))), token));
            }
            Err(e) if e.is_connect() => {
                return Ok((Err(Failure::NotSent(describe_error(&e))), token));
            }
            Err(e) => return Ok((Err(Failure::Unknown(describe_error(&e))), token)),
        };
        let status = response.status();
        let headers = response.headers().clone();
        // The status is Graph's answer; a body cut off after it does not change it. Callers
        // that need the body (a draft's id) report an unexpected answer instead.
        let body = response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        drop(permit);

        if status.is_success() {
            return Ok((Ok(GraphResponse { headers, body }), token));
        }
        let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let (code, message, inner_request_id) = match parsed {
            Some(ErrorBody { error }) => (
                error.code,
                error.message.unwrap_or_default(),
                error.inner_error.and_then(|i| i.request_id),
            ),
            None => (
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
        Ok((
            Err(Failure::Status {
                status,
                code,
                message,
                request_id: header("request-id").or(inner_request_id),
                retry_after: retry_after(&headers),
            }),
            token,
        ))
    }
}

fn to_error(
    operation: &'static str,
    failure: &Failure,
    client_request_id: &str,
    delivery: Delivery,
    transient: bool,
) -> Error {
    let (status, code, message, request_id, retry_after) = match failure {
        Failure::NotSent(message) | Failure::Invalid(message) => {
            (None, None, message.clone(), None, None)
        }
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
        Delivery::Uncertain => format!("{message} — delivery is uncertain, do not resend blindly"),
        Delivery::NotSent if operation_sends(operation) => {
            format!("{message} — the mail was not sent")
        }
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
    }
    .into_error()
}

fn operation_sends(operation: &str) -> bool {
    matches!(operation, "sendMail" | "send draft")
}
