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
//! repeat (deleting a draft, reading an upload session's status) are also retried after
//! those. An upload range is not ([`Repeat::Resumable`]): a session refuses a range it holds
//! already, so the upload asks the session where it stands and resumes from there.
//!
//! # Shared by the mailbox
//!
//! A request owns its concurrency permit until Graph's answer is read, and finishes in a
//! task of its own when its caller gives up: the slot is not freed while Graph still works
//! on the request. A `Retry-After` pauses every request of the transport ([`MailboxState`]).
//!
//! # What is read from the server
//!
//! No redirect is followed (the client is built that way; a 3xx is a permanent error).
//! Answers are read in chunks up to a cap, and Graph's error text is cleaned of the bearer
//! token (or the upload URL) before it is kept in an error.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::error::{Failure, GraphFailure, to_error};
use super::remedy::{
    GaveUp, PERMISSION_STALE_AFTER, permission_granted, refused_for_permission, throttled_remedy,
};
use crate::credentials::{AccessToken, TokenProvider};
use crate::error::{Delivery, Error, Result};
use crate::http::{ERROR_BODY_LIMIT, read_body, retry_after, secret_forms};
use crate::retry::RetryPolicy;

use super::answer::answer;
use super::call::{GraphRequest, Repeat};
use super::http_failure::{CONNECT_SLACK, failure_of, never_left};
use super::in_flight::InFlight;
pub(crate) use super::mailbox::MailboxState;
use super::response::GraphResponse;

/// A new `client-request-id`: a random (version 4) UUID from a fast thread-local generator,
/// with no system call per request. It correlates a request with Graph's logs; it is not a
/// secret, so it needs no cryptographic randomness.
fn client_request_id() -> uuid::fmt::Hyphenated {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_ne_bytes())
        .into_uuid()
        .hyphenated()
}

/// Sends Graph requests for one mailbox.
#[derive(Debug, Clone)]
pub(crate) struct GraphClient {
    pub http: reqwest::Client,
    pub tokens: Arc<dyn TokenProvider>,
    pub scope: String,
    pub permits: Arc<Semaphore>,
    pub retry: RetryPolicy,
    pub request_timeout: Duration,
    /// The timeout the HTTP client applies to each request by itself, when known.
    pub client_timeout: Option<Duration>,
    /// The HTTP client's connect timeout, when known (a client made here): a request whose
    /// timeout is shorter may end while it waits for a connection.
    pub connect_timeout: Option<Duration>,
    pub state: Arc<MailboxState>,
    /// The last token's `Authorization` header: read by every request, written once per
    /// token.
    pub bearer: Arc<std::sync::RwLock<Option<(AccessToken, HeaderValue)>>>,
}

/// The status and headers of an answer, the headers taken rather than copied (the body's
/// length is known without them), and the answer left to read. Out of the request's future:
/// a response borrowed there would be kept in it, beside the copy its body's reader holds.
fn take_head(
    mut response: reqwest::Response,
    state: &MailboxState,
) -> (StatusCode, reqwest::header::HeaderMap, reqwest::Response) {
    state.answered_over(response.version());
    let headers = std::mem::take(response.headers_mut());
    (response.status(), headers, response)
}

/// The error for a request that could not be sent before the send's deadline.
#[cold]
#[inline(never)]
pub(super) fn not_sent_by_deadline(operation: &'static str) -> Error {
    GraphFailure::local(
        operation,
        "the send deadline passed before the request could be sent".to_owned(),
        true,
    )
    .into_error()
}

/// The error for a request whose caller stopped waiting before it was handed over: not
/// sent, nor tried again.
#[cold]
#[inline(never)]
fn unwanted(operation: &'static str) -> Error {
    tracing::info!(
        operation,
        "the send was dropped and nobody waits for its answer: the request is not sent (again)"
    );
    GraphFailure::local(
        operation,
        "the send was dropped before the request went out; it was not sent".to_owned(),
        false,
    )
    .into_error()
}

/// Where a send's attempts stand, for deciding after a failure.
struct Tries<'a> {
    started: Instant,
    deadline: Instant,
    retries: u32,
    /// Whether a refused token was already replaced by a new one.
    refreshed_token: &'a mut bool,
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
            // Everything of this attempt ends before the wait for the next: the wait's
            // state then holds none of it (each send's future is allocated whole).
            let delay = {
                let mut id_buffer = uuid::Uuid::encode_buffer();
                let client_request_id: &str = client_request_id().encode_lower(&mut id_buffer);
                let (outcome, token) = self.attempt(request, client_request_id, deadline).await?;
                let failure = match outcome {
                    Ok(response) => {
                        if request.authorize {
                            self.state.token_accepted();
                        }
                        return Ok(response);
                    }
                    Err(failure) => failure,
                };
                // What to do about the failure is decided out of line: the common path (an
                // answer at the first attempt) stays a short run of code.
                let retry = self.after_failure(
                    request,
                    &failure,
                    token.as_ref(),
                    client_request_id,
                    Tries {
                        started,
                        deadline,
                        retries,
                        refreshed_token: &mut refreshed_token,
                    },
                )?;
                // Tried again: the server certainly did not act on this attempt (the only
                // retries of a request that may not be repeated), so nothing of it is in
                // flight any more. Until the next attempt is handed over, a caller that
                // gives up (a dropped send waiting out a `Retry-After`) knows it was not sent.
                if let Some(handed_over) = request.handed_over {
                    handed_over.store(false, std::sync::atomic::Ordering::Release);
                }
                let Some(delay) = retry else {
                    continue;
                };
                delay
            };
            tokio::time::sleep(delay).await;
            retries += 1;
        }
    }

    /// What to do after an attempt's `failure`: try again at once (`None`, after a refused
    /// token was dropped), after a delay, or give up with the error. Out of line and cold,
    /// so that the path of an answer at the first attempt stays short.
    #[cold]
    #[inline(never)]
    fn after_failure(
        &self,
        request: &GraphRequest<'_>,
        failure: &Failure,
        token: Option<&AccessToken>,
        client_request_id: &str,
        tries: Tries<'_>,
    ) -> Result<Option<Duration>> {
        // What the token's claims say of the permission the operation needs: read only here,
        // after a failure.
        let granted = token.and_then(|token| permission_granted(token, request.operation));
        let error = |failure: &Failure, delivery: Delivery, transient: bool| {
            to_error(
                request.operation,
                failure,
                client_request_id,
                delivery,
                transient,
                self.tokens.permission_remedy(),
                granted,
            )
        };
        let throttled = matches!(failure, Failure::Status { status, .. }
            if matches!(*status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE));
        let retry_after = match failure {
            // Refused for a permission the token lacks, though it may have been granted since
            // the token was fetched (admin consent after the first sends): a token older than
            // a few minutes is replaced, once. Nothing was sent.
            Failure::Status {
                status,
                code,
                message,
                ..
            } if request.authorize
                && !*tries.refreshed_token
                && granted == Some(false)
                && refused_for_permission(*status, code.as_deref(), message)
                && token.is_some_and(|token| {
                    token
                        .issued_at()
                        .elapsed()
                        .is_ok_and(|age| age >= PERMISSION_STALE_AFTER)
                }) =>
            {
                *tries.refreshed_token = true;
                if let Some(token) = token {
                    self.tokens.invalidate(token);
                }
                tracing::info!(
                    operation = request.operation,
                    "Graph refused a permission the access token lacks; the token predates any \
                     grant since, so a new one is fetched"
                );
                crate::observe::count_attempt(); // a second request: an attempt, not a retry
                return Ok(None);
            }
            // The server certainly did not act on a refused token: fetch a new one, once.
            Failure::Status { status, code, .. }
                if *status == StatusCode::UNAUTHORIZED
                    && request.authorize
                    && !*tries.refreshed_token
                    && code.as_deref() != Some("NoPermissionsInAccessToken")
                    && self.state.refresh_allowed() =>
            {
                *tries.refreshed_token = true;
                if let Some(token) = token {
                    // Only now: a token refused for lack of permissions is not refetched.
                    self.tokens.invalidate(token);
                }
                tracing::info!(
                    operation = request.operation,
                    "Graph refused the access token; fetching a new one"
                );
                crate::observe::count_attempt(); // a second request: an attempt, not a retry
                return Ok(None);
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
            Failure::Status { status, code, .. }
                if *status == StatusCode::UNAUTHORIZED
                    && *tries.refreshed_token
                    && code.as_deref() != Some("NoPermissionsInAccessToken") =>
            {
                // A token fetched just now was refused too: not a rollover but a revoked
                // or blocked app. Stop asking Entra for new tokens for a while.
                self.state.token_refused_after_refresh();
                return Err(error(failure, Delivery::NotSent, false));
            }
            Failure::NotSent(_) => None,
            Failure::Invalid(_) | Failure::Tls(_) | Failure::Redirect { .. } => {
                return Err(error(failure, Delivery::NotSent, false));
            }
            Failure::Unknown(_) if request.repeat == Repeat::Safe => None,
            Failure::Status { status, .. }
                if request.repeat == Repeat::Safe && status.is_server_error() =>
            {
                None
            }
            // Not repeated: the server may have acted on it. Retrying is the caller's call.
            Failure::Unknown(_) => return Err(error(failure, Delivery::Uncertain, false)),
            Failure::Status { status, .. } if status.is_server_error() => {
                return Err(error(failure, Delivery::Uncertain, false));
            }
            Failure::Status { .. } => {
                return Err(error(failure, Delivery::NotSent, false));
            }
        };
        let elapsed = tries.started.elapsed();
        let remaining = tries.deadline.saturating_duration_since(Instant::now());
        let delay = self
            .retry
            .next_delay(tries.retries, elapsed, retry_after)
            .filter(|delay| *delay < remaining);
        let Some(delay) = delay else {
            tracing::warn!(
                operation = request.operation,
                retries = tries.retries,
                "giving up on Graph: retries or send deadline used up"
            );
            let error = error(failure, Delivery::NotSent, true);
            return Err(match failure {
                Failure::Status { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                    let gave_up = match tries.retries >= self.retry.max_retries {
                        true => GaveUp::Retries(tries.retries),
                        false => GaveUp::Deadline,
                    };
                    error.with_remedy(throttled_remedy(Some(gave_up)))
                }
                _ => error,
            });
        };
        tracing::info!(
            operation = request.operation,
            retry = tries.retries + 1,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "Graph asked to retry later"
        );
        if throttled {
            crate::metrics::throttled("graph", delay);
        }
        crate::metrics::retried("graph");
        Ok(Some(delay))
    }

    /// One attempt, and the token it used. The outer `Result` is for errors that end the
    /// send at once (no token; the deadline passed before anything was sent).
    ///
    /// The request holds the concurrency permit until the answer is read (bounded by the
    /// request timeout), and finishes in a task of its own when its caller gives up (a
    /// timeout, a dropped future): the slot is not freed while the server still works on it.
    async fn attempt(
        &self,
        request: &GraphRequest<'_>,
        client_request_id: &str,
        deadline: Instant,
    ) -> Result<(
        std::result::Result<GraphResponse, Failure>,
        Option<AccessToken>,
    )> {
        // The token first, bounded by the deadline, and without holding a request slot: a slow
        // login host must neither overrun the send nor block other sends. (After a 401 the
        // refused token was invalidated, so this fetches a new one.)
        //
        // Each wait that a send can skip (fetching a token, waiting for a free slot, waiting
        // out a pause) runs boxed, out of line: kept inline, their state would make every
        // send's future larger, and async_trait allocates that future for each send. (With
        // more callers than slots, most sends wait for one, and pay a small allocation.)
        let token = match request.authorize {
            // The common case, a cached token, without the provider's boxed future.
            true => match self.tokens.ready_token(&self.scope) {
                Some(token) => Some(token),
                None => Some(Box::pin(self.fetch_token(deadline)).await?),
            },
            false => None,
        };
        // The concurrency limit counts requests in flight, however many sends are waiting.
        // A Retry-After pauses the whole mailbox, not just the request that got it: a
        // request waits it out before it takes a slot, so that the requests that need not
        // wait (deleting a draft) still find one.
        let paused = request.waits_for_pause && self.state.paused_until().is_some();
        let free = match paused {
            false => Arc::clone(&self.permits).try_acquire_owned().ok(),
            true => None,
        };
        let permit = match free {
            Some(permit) => permit,
            None => {
                Box::pin(self.slot(request.operation, request.waits_for_pause, deadline)).await?
            }
        };

        let bearer = match &token {
            Some(token) => {
                let (header, new_token) = self.bearer(token)?;
                if new_token && self.state.let_connection_return_first() {
                    // Likely fetched just now, over the same HTTP client when it is shared:
                    // let the token request's connection go back to the pool first, so that
                    // this request reuses it rather than dial another one.
                    tokio::task::yield_now().await;
                }
                Some(header)
            }
            None => None,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(not_sent_by_deadline(request.operation));
        }
        let timeout = self.request_timeout.min(remaining);
        // A timeout that may end the request while it still waits for a connection (the
        // send deadline nearly over, a request timeout below the connect timeout, or a
        // caller's client whose connect timeout is unknown): its body is watched, so that a
        // request that never left is not reported as one that may have been delivered.
        let watch = self
            .connect_timeout
            .is_none_or(|connect| timeout < connect.saturating_add(CONNECT_SLACK));
        // Set on the request only when the client's own timeout is not already this one:
        // a request's timeout is kept in a map of its own, allocated and copied with it.
        let own_timeout = (self.client_timeout != Some(timeout)).then_some(timeout);
        let id_enters_table = self.state.request_id_enters_table();
        // The last point at which nothing of the request has left: a caller gone by now
        // gets nothing from it.
        if request.wanted.is_some_and(|wanted| !wanted()) {
            return Err(unwanted(request.operation));
        }
        // Built and handed over in one expression: the request is not kept in this
        // future's state (where it would take room in every send's future) while it runs.
        let (sent, body_read) = match request.to_http(
            client_request_id,
            id_enters_table,
            bearer,
            own_timeout,
            watch,
        ) {
            Ok((http_request, body_read)) => {
                if let Some(handed_over) = request.handed_over {
                    handed_over.store(true, std::sync::atomic::Ordering::Release);
                }
                (self.http.execute(http_request), body_read)
            }
            Err(failure) => return Ok((Err(failure), token)),
        };
        // What the server could echo back, to keep out of errors and logs: worked out only
        // when there is server text to clean.
        let secrets = || {
            let mut secrets = Vec::new();
            if let Some(token) = &token {
                secrets.extend(secret_forms(token.expose_secret()));
            }
            if !request.authorize {
                // A pre-authenticated upload URL is a credential of its own.
                secrets.extend(secret_forms(request.url.as_str()));
            }
            secrets
        };

        let state = Arc::clone(&self.state);
        let answer_limit = request.answer_limit;
        let request_in_flight = InFlight::new(async move {
            let _permit = permit;
            let (status, headers, response) = take_head(sent.await?, &state);
            let wait = retry_after(&headers);
            if let (StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE, Some(wait)) =
                (status, wait)
            {
                // Before the permit is released, so no waiting request slips through.
                state.pause_for(wait);
            }
            let limit = match status.is_success() {
                true => answer_limit,
                false => ERROR_BODY_LIMIT,
            };
            let body = read_body(response, limit).await;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = match request_in_flight.await {
            Ok(answer) => answer,
            Err(e) => {
                let failure = match body_read {
                    Some(read) if e.is_timeout() && !read.happened() => {
                        never_left(request.url.as_str(), timeout)
                    }
                    _ => failure_of(&e, request.url.as_str()),
                };
                return Ok((Err(failure), token));
            }
        };

        let answer = answer(request.url.as_str(), status, headers, body, secrets);
        Ok((answer, token))
    }
}
