//! The waits a Graph request may have before it is sent — a token to fetch, a free request
//! slot, the mailbox's pause — and the bearer header made once per token.

use std::sync::Arc;
use std::task::Poll;

use reqwest::header::HeaderValue;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::client::{GraphClient, not_sent_by_deadline};
use super::error::{GraphFailure, NOT_SENT};
use crate::credentials::AccessToken;
use crate::error::{Error, Result};
use crate::http::bearer_header;

impl GraphClient {
    /// Waits out the mailbox's pause (a `Retry-After`), and any pause set while it waited;
    /// an error when one lasts past `deadline`.
    async fn wait_out_pause(&self, operation: &'static str, deadline: Instant) -> Result<()> {
        while let Some(until) = self.state.paused_until() {
            if until >= deadline {
                return Err(GraphFailure {
                    status: Some(429),
                    retry_after: Some(until.saturating_duration_since(Instant::now())),
                    ..GraphFailure::local(
                        operation,
                        format!(
                            "Graph asked this mailbox to wait (Retry-After) past the send \
                             deadline{NOT_SENT}"
                        ),
                        true,
                    )
                }
                .into_error());
            }
            crate::metrics::throttled("graph", until.saturating_duration_since(Instant::now()));
            tokio::time::sleep_until(until).await;
        }
        Ok(())
    }

    /// A token that was not ready in the cache, fetched within `deadline`.
    pub(super) async fn fetch_token(&self, deadline: Instant) -> Result<AccessToken> {
        // A provider may still answer at the first poll: only a fetch needs a timer.
        let mut token = self.tokens.token(&self.scope);
        match std::future::poll_fn(|cx| Poll::Ready(token.as_mut().poll(cx))).await {
            Poll::Ready(token) => token,
            Poll::Pending => tokio::time::timeout_at(deadline, token)
                .await
                .map_err(|_| self.token_timeout())?,
        }
    }

    /// A request slot, when none was free at once or the mailbox is paused: a request that
    /// waits for the pause (`waits_for_pause`) waits it out holding no slot, and again if
    /// another began while it waited for the slot.
    pub(super) async fn slot(
        &self,
        operation: &'static str,
        waits_for_pause: bool,
        deadline: Instant,
    ) -> Result<OwnedSemaphorePermit> {
        loop {
            if waits_for_pause {
                self.wait_out_pause(operation, deadline).await?;
            }
            let permit = self
                .wait_for_permit(deadline)
                .await
                .ok_or_else(|| not_sent_by_deadline(operation))?;
            if !waits_for_pause || self.state.paused_until().is_none() {
                return Ok(permit);
            }
        }
    }

    /// A request slot, when none was free at once; `None` when none came by `deadline`.
    async fn wait_for_permit(&self, deadline: Instant) -> Option<OwnedSemaphorePermit> {
        if self.permits.available_permits() == 0 {
            tracing::debug!("waiting for a free request slot (the mailbox's in-flight cap)");
        }
        let permit = tokio::time::timeout_at(deadline, Arc::clone(&self.permits).acquire_owned())
            .await
            .ok()?
            .ok()?;
        // This slot was just freed by a request whose connection the HTTP client puts back
        // in its pool a moment after the answer is read. Let that happen first, so that this
        // request reuses the connection rather than dial another one alongside it. (Over
        // HTTP/2 it never leaves: no need.)
        if self.state.let_connection_return_first() {
            tokio::task::yield_now().await;
        }
        Some(permit)
    }

    /// The `Authorization` header for `token`, and whether it is another token than the
    /// last request's: made once per token, not per request (a token is one to two
    /// kilobytes, checked byte by byte when it becomes a header).
    pub(super) fn bearer(&self, token: &AccessToken) -> Result<(HeaderValue, bool)> {
        if let Some((cached, header)) = &*self
            .bearer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            && cached.same_value(token)
        {
            return Ok((header.clone(), false));
        }
        self.new_bearer(token).map(|header| (header, true))
    }

    /// The `Authorization` header for a token the last request did not use, kept for the
    /// next requests.
    #[cold]
    #[inline(never)]
    fn new_bearer(&self, token: &AccessToken) -> Result<HeaderValue> {
        let header = bearer_header(token.expose_secret())?;
        *self
            .bearer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((token.clone(), header.clone()));
        Ok(header)
    }

    /// The error for a token that did not come within the send deadline: the fault of
    /// where tokens come from (the login host, a managed identity endpoint, a caller's
    /// provider), not Graph's.
    pub(super) fn token_timeout(&self) -> Error {
        crate::credentials::token_timeout(&*self.tokens, self.retry.deadline.unwrap_or_default())
    }
}
