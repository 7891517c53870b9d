//! One token request to Entra ID's v2.0 token endpoint, retried when that is safe.

use std::time::{Instant, SystemTime};

use crate::credentials::entra_error::EntraError;
use crate::credentials::source::{Attempts, FetchFailure};
use crate::credentials::token::{AccessToken, TokenResponse};
use crate::error::Advice;
use crate::error::{Error, Result};
use crate::http::{describe_error, retry_after};
use crate::retry::RetryPolicy;

/// `POST {authority_host}/{tenant}/oauth2/v2.0/token` with an HTTP client and retry policy.
#[derive(Debug, Clone)]
pub(crate) struct TokenEndpoint {
    url: String,
    client: reqwest::Client,
    retry: RetryPolicy,
}

/// The token endpoint URL for a login host and tenant.
pub(crate) fn token_endpoint_url(authority_host: &str, tenant: &str) -> String {
    format!(
        "{}/{}/oauth2/v2.0/token",
        authority_host.trim_end_matches('/'),
        tenant.trim()
    )
}

impl TokenEndpoint {
    pub(crate) fn new(url: String, client: reqwest::Client, retry: RetryPolicy) -> Self {
        Self { url, client, retry }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Sends the client-credentials form. `form` is built anew by `make_form` for every
    /// attempt, so a certificate assertion is fresh on each retry. With [`Attempts::Retry`],
    /// 429, 5xx, errors Entra calls transient (`temporarily_unavailable`, tenant
    /// throttling) and connection failures are retried per the policy, honouring
    /// `Retry-After`; other 4xx are not. With [`Attempts::Once`] nothing is retried and the
    /// failure carries the server's `Retry-After` for the caller to honour.
    ///
    /// The form holds the secret or assertion: it is never logged or put in an error.
    pub(crate) async fn request(
        &self,
        scope: &str,
        attempts: Attempts,
        mut make_form: impl FnMut() -> Result<Vec<(&'static str, String)>>,
    ) -> Result<AccessToken, FetchFailure> {
        let started = Instant::now();
        let mut retry = 0;
        loop {
            let form = make_form().map_err(FetchFailure::from)?;
            let issued = SystemTime::now();
            tracing::debug!(endpoint = %self.url, scope, attempt = retry + 1, "requesting an access token");
            let outcome = self.client.post(&self.url).form(&form).send().await;
            drop(form);
            let (error, retry_after) = match outcome {
                Ok(response) if response.status().is_success() => {
                    return Ok(self.parse_success(response, issued).await?);
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let body = response.bytes().await.unwrap_or_default();
                    let error = match EntraError::from_body(&body) {
                        Some(entra) => entra.into_error(status.as_u16(), retry_after),
                        None => endpoint_error(
                            &self.url,
                            format!("HTTP {status} without an Entra error body"),
                            status.as_u16() == 429 || status.is_server_error(),
                        ),
                    };
                    // The status, or Entra's own verdict: a 400 `temporarily_unavailable`
                    // or AADSTS90055 (tenant throttling) clears up when retried later.
                    if !error.is_transient() {
                        tracing::warn!(endpoint = %self.url, %status, error = %error, "token request refused");
                        return Err(FetchFailure { error, retry_after });
                    }
                    (error, retry_after)
                }
                Err(e) => (self.network_error(&e), None),
            };
            if attempts == Attempts::Once {
                tracing::debug!(endpoint = %self.url, error = %error, "token refresh failed; not retried while the cached token is valid");
                return Err(FetchFailure { error, retry_after });
            }
            match self.retry.next_delay(retry, started.elapsed(), retry_after) {
                Some(delay) => {
                    tracing::warn!(endpoint = %self.url, error = %error, retry_in_ms = delay.as_millis() as u64, "token request failed; retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                None => {
                    tracing::warn!(endpoint = %self.url, error = %error, attempts = retry + 1, "token request failed; giving up");
                    return Err(FetchFailure { error, retry_after });
                }
            }
        }
    }

    async fn parse_success(
        &self,
        response: reqwest::Response,
        issued: SystemTime,
    ) -> Result<AccessToken> {
        let unusable = |reason: String| endpoint_error(&self.url, reason, false);
        let body = response.bytes().await.map_err(|e| self.network_error(&e))?;
        // serde's message may quote the input; never echo it (it may hold the token).
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            unusable(format!(
                "the response is not a token response (at line {} column {}); is `authority_host` a proxy?",
                e.line(),
                e.column()
            ))
        })?;
        let token = parsed.into_token(issued).map_err(unusable)?;
        tracing::debug!(endpoint = %self.url, expires_at = ?token.expires_at(), "access token issued");
        Ok(token)
    }

    fn network_error(&self, error: &reqwest::Error) -> Error {
        endpoint_error(&self.url, describe_error(error), true)
    }
}

/// The token endpoint could not be reached or gave no usable answer.
pub(crate) fn endpoint_error(endpoint: &str, reason: String, transient: bool) -> Error {
    Error::TokenEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
        transient,
        advice: Advice::remedy(Some(
            "check that this machine can reach the login host over HTTPS (firewall, proxy, \
             DNS) and that `authority_host` and `cloud` are right"
                .to_owned(),
        )),
    }
}
