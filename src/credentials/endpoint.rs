//! One token request to Entra ID's v2.0 token endpoint, retried when that is safe.

use std::time::{Instant, SystemTime};

use crate::credentials::entra_error::EntraError;
use crate::credentials::source::{Attempts, FetchFailure};
use crate::credentials::token::{AccessToken, TokenResponse};
use crate::error::{Advice, Error, Result};
use crate::http::{
    BodyError, ERROR_BODY_LIMIT, describe_error, host_of, is_tls_failure, is_tls_text, read_body,
    redact, retry_after, secret_forms, tls_remedy,
};
use crate::retry::RetryPolicy;

/// The most bytes of a token response read: an app-only token is a few KB.
const TOKEN_BODY_LIMIT: usize = 64 * 1024;

/// The form fields that hold a credential, redacted from anything the server says.
const SECRET_FIELDS: [&str; 2] = ["client_secret", "client_assertion"];

/// `POST {authority_host}/{tenant}/oauth2/v2.0/token` with an HTTP client and retry policy.
#[derive(Debug, Clone)]
pub(crate) struct TokenEndpoint {
    url: String,
    client: reqwest::Client,
    retry: RetryPolicy,
    /// The setting of the credential the form carries, which Entra's refusals send the
    /// admin to (`client_secret` unless [`carrying`](Self::carrying) says otherwise).
    credential: &'static str,
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
        Self {
            url,
            client,
            retry,
            credential: "client_secret",
        }
    }

    /// The same endpoint, for requests carrying the credential of `setting`
    /// (`client_secret_file`, `client_certificate_file`, `federated_token_file`).
    pub(crate) fn carrying(self, setting: &'static str) -> Self {
        Self {
            credential: setting,
            ..self
        }
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
            // Every form a server could echo the credential in, to remove from its answers.
            let secrets: Vec<String> = form
                .iter()
                .filter(|(name, _)| SECRET_FIELDS.contains(name))
                .flat_map(|(_, value)| secret_forms(value))
                .collect();
            let issued = SystemTime::now();
            tracing::debug!(endpoint = %self.url, scope, attempt = retry + 1, "requesting an access token");
            let outcome = self.client.post(&self.url).form(&form).send().await;
            drop(form);
            let (error, retry_after) = match outcome {
                Ok(response) if response.status().is_success() => {
                    match self.parse_success(response, issued, &secrets).await {
                        Ok(token) => return Ok(token),
                        // Cut off on its way (a connection reset): a connection failure
                        // like any other, and the request is safe to repeat.
                        Err(error) if error.is_transient() => (error, None),
                        Err(error) => return Err(FetchFailure::from(error)),
                    }
                }
                Ok(response) if response.status().is_redirection() => {
                    // Never followed: the form would go, secret and all, wherever it points.
                    let error = self.unusable(format!(
                        "the login host `{}` answered HTTP {} (a redirect{}); redirects are not followed, \
                         so that the credential is never sent elsewhere: set `authority_host` to \
                         the login host itself",
                        host_of(&self.url),
                        response.status().as_u16(),
                        response
                            .headers()
                            .get(reqwest::header::LOCATION)
                            .and_then(|l| l.to_str().ok())
                            .map(|l| format!(" to `{}`", host_of(l)))
                            .unwrap_or_default(),
                    ));
                    return Err(FetchFailure::from(error));
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let transient_status = status.as_u16() == 429 || status.is_server_error();
                    let error = match read_body(response, ERROR_BODY_LIMIT).await {
                        Ok(body) => match EntraError::from_body(&body) {
                            Some(entra) => entra.redacted(&secrets).into_error(
                                status.as_u16(),
                                retry_after,
                                self.credential,
                            ),
                            None => endpoint_error(
                                &self.url,
                                format!("HTTP {status} without an Entra error body"),
                                transient_status,
                            ),
                        },
                        Err(body_error) => endpoint_error(
                            &self.url,
                            format!(
                                "HTTP {status}: {}",
                                redact(&body_error.to_string(), &secrets)
                            ),
                            transient_status,
                        ),
                    };
                    // The wait stays on the error when the retries give up before it is
                    // over, for a queue or caller to honour (also without Entra's JSON: a
                    // gateway's 429 or 503 page).
                    let error = match retry_after {
                        Some(wait) => error.with_retry_after(wait),
                        None => error,
                    };
                    // The status, or Entra's own verdict: a 400 `temporarily_unavailable`
                    // or AADSTS90055 (tenant throttling) clears up when retried later.
                    if !error.is_transient() {
                        tracing::warn!(endpoint = %self.url, %status, error = %error, "token request refused");
                        return Err(FetchFailure { error, retry_after });
                    }
                    (error, retry_after)
                }
                Err(e) if is_tls_failure(&e) => {
                    let error = self.unusable(describe_error(&e));
                    tracing::warn!(endpoint = %self.url, error = %error, "the login host's TLS certificate was refused");
                    return Err(FetchFailure::from(error));
                }
                Err(e) => (self.network_error(&e), None),
            };
            if attempts == Attempts::Once {
                tracing::debug!(endpoint = %self.url, error = %error, "token refresh failed; not retried while the cached token is valid");
                return Err(FetchFailure { error, retry_after });
            }
            match self.retry.next_delay(retry, started.elapsed(), retry_after) {
                Some(delay) => {
                    tracing::warn!(endpoint = %self.url, error = %error, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "token request failed; retrying");
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

    fn unusable(&self, reason: String) -> Error {
        endpoint_error(&self.url, reason, false)
    }

    async fn parse_success(
        &self,
        response: reqwest::Response,
        issued: SystemTime,
        secrets: &[String],
    ) -> Result<AccessToken> {
        let unusable = |reason: String| self.unusable(redact(&reason, secrets));
        let body = match read_body(response, TOKEN_BODY_LIMIT).await {
            Ok(body) => body,
            Err(BodyError::Failed(e)) => return Err(self.network_error(&e)),
            Err(too_large) => return Err(unusable(too_large.to_string())),
        };
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

/// The token endpoint could not be reached or gave no usable answer. The remedy is the
/// credentials' own: a refused certificate names `tls_ca_file` and the clock, anything else
/// the network path to the login host.
pub(crate) fn endpoint_error(endpoint: &str, reason: String, transient: bool) -> Error {
    let remedy = if is_tls_text(&reason) {
        tls_remedy("authority_host")
    } else {
        "check that this machine can reach the login host over HTTPS (firewall, proxy, DNS) \
         and that `authority_host` and `cloud` are right"
            .to_owned()
    };
    Error::TokenEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
        transient,
        advice: Advice::remedy(Some(remedy)),
    }
}
