//! Managed identity: tokens from the Azure host itself, with no secret in the configuration.
//!
//! Two endpoints, chosen by the host's environment:
//!
//! - **Azure VMs, scale sets and AKS nodes**: the Instance Metadata Service,
//!   `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`
//!   with the header `Metadata: true`.
//! - **App Service, Functions and Container Apps**: when `IDENTITY_ENDPOINT` and
//!   `IDENTITY_HEADER` are set, `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…`
//!   with the header `X-IDENTITY-HEADER`. That header is a per-instance secret: it is held in
//!   a [`Secret`], marked sensitive on the wire, and removed from anything the endpoint says
//!   before it reaches an error or a log.
//!
//! The system-assigned identity is used unless a user-assigned one is chosen by its client id
//! (`client_id=`). The resource is the scope without `/.default`. `expires_in` and
//! `expires_on` are read as numbers or numeric strings; a lifetime over a day counts as a day.
//! 404 and 410 (the metadata service is starting), 429 and 5xx are retried with the retry
//! policy's backoff within its deadline; connect and request timeouts are short since the
//! endpoint is on this machine or next to it. An endpoint that cannot be connected to means
//! no managed identity on this host (permanent) — unless it has answered before, when it is
//! down for now (transient, retried). Redirects are not followed and answers are read up to
//! 64 KiB.
//!
//! The identity needs `Mail.Send` as an **app role assignment**: the portal's *API
//! permissions* page does not exist for a managed identity (see the `credentials` module docs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use reqwest::header::HeaderValue;
use serde::Deserialize;

use crate::credentials::Credentials;
use crate::credentials::builder::{AppCredential, CredentialsBuilder};
use crate::credentials::source::{Attempts, Fetch, FetchFailure};
use crate::credentials::token::{AccessToken, IdentityToken};
use crate::error::{Advice, Error, Result};
use crate::http::{
    BodyError, ERROR_BODY_LIMIT, describe_error, read_body, redact, retry_after, secret_forms,
};
use crate::retry::RetryPolicy;
use crate::secret::Secret;

/// The Instance Metadata Service's token endpoint (Azure VMs, scale sets, AKS nodes).
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// The longest a connection to the identity endpoint may take: it is local.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest one token request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How to grant `Mail.Send` to a managed identity, for `check` and errors.
pub(crate) const APP_ROLE_REMEDY: &str = "the portal cannot grant application permissions to a managed identity: assign Microsoft Graph's app role `Mail.Send` to the identity's service principal with Microsoft Graph PowerShell (`New-MgServicePrincipalAppRoleAssignment -ServicePrincipalId <identity's object id> -PrincipalId <identity's object id> -ResourceId <Microsoft Graph's service principal id> -AppRoleId <id of Mail.Send in its appRoles>`) or the Graph API (`POST /servicePrincipals/{id}/appRoleAssignments`), which covers every mailbox in the tenant; for one mailbox only, assign instead Exchange Online's RBAC for Applications role `Application Mail.Send` scoped to it (an app role and RBAC add up)";

/// What to fix when Entra ID, asked by the identity endpoint, knows no resource of the scope.
const RESOURCE_REMEDY: &str = "the identity was found, but Entra ID knows no resource of the token's scope in this tenant: leave `oauth_scope` unset for Graph (for SMTP it is `https://outlook.office365.com/.default`), and check that `cloud` names the cloud this Azure resource and its tenant are in (a US Government or China tenant has its own Graph resource)";

impl Credentials {
    /// OAuth credentials of the Azure host's managed identity (VM, scale set, AKS node, App
    /// Service, Functions, Container Apps): no tenant id, client id or secret is needed.
    /// App Service's endpoint is used when the environment variables `IDENTITY_ENDPOINT` and
    /// `IDENTITY_HEADER` are set, else the instance metadata service ([`IMDS_ENDPOINT`]).
    /// Choose a user-assigned identity with
    /// [`managed_identity_client_id`](CredentialsBuilder::managed_identity_client_id).
    ///
    /// ```
    /// use mail_connector::Credentials;
    ///
    /// let credentials = Credentials::managed_identity()
    ///     .managed_identity_client_id("00000000-0000-0000-0000-0000000000aa")
    ///     .build()?;
    /// assert!(credentials.is_oauth());
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    pub fn managed_identity() -> CredentialsBuilder {
        let env = |name: &str| std::env::var(name).ok();
        Self::managed_identity_with_env(
            env("IDENTITY_ENDPOINT"),
            env("IDENTITY_HEADER").map(Secret::new),
        )
    }

    /// [`Credentials::managed_identity`] with the values of `IDENTITY_ENDPOINT` and
    /// `IDENTITY_HEADER` given rather than read from the process environment: App Service's
    /// endpoint when both are set (and not blank), else the instance metadata service.
    pub fn managed_identity_with_env(
        identity_endpoint: Option<String>,
        identity_header: Option<Secret>,
    ) -> CredentialsBuilder {
        CredentialsBuilder::new(
            String::new(),
            String::new(),
            AppCredential::ManagedIdentity {
                app_service: app_service_from(identity_endpoint, identity_header),
            },
        )
    }
}

/// Which protocol the endpoint speaks.
#[derive(Debug, Clone)]
pub(crate) enum IdentityHost {
    /// The Instance Metadata Service (`Metadata: true`, api-version 2018-02-01).
    Imds,
    /// App Service and kin (`X-IDENTITY-HEADER`, api-version 2019-08-01).
    AppService { header: Secret },
}

/// The App Service endpoint when both environment values are set (and not blank), else
/// `None` (the metadata service). Takes the values so that it is testable without touching
/// the process environment.
pub(crate) fn app_service_from(
    identity_endpoint: Option<String>,
    identity_header: Option<Secret>,
) -> Option<(String, Secret)> {
    let endpoint = identity_endpoint.filter(|e| !e.trim().is_empty())?;
    let header = identity_header.filter(|h| !h.expose_secret().trim().is_empty())?;
    Some((endpoint.trim().to_owned(), header))
}

/// Fetches tokens from a managed-identity endpoint.
#[derive(Debug, Clone)]
pub(crate) struct ManagedIdentityCredential {
    url: String,
    host: IdentityHost,
    client_id: Option<String>,
    client: reqwest::Client,
    retry: RetryPolicy,
    /// Whether the endpoint has ever answered (with a token or an error): then it exists,
    /// and a connection it refuses later is an outage of it, not a host without one.
    answered: Arc<AtomicBool>,
}

impl ManagedIdentityCredential {
    pub(crate) fn new(
        url: String,
        host: IdentityHost,
        client_id: Option<String>,
        client: reqwest::Client,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            url,
            host,
            client_id,
            client,
            retry,
            answered: Arc::default(),
        }
    }

    /// What `check` prints: the kind and the endpoint, never the header.
    pub(crate) fn describe(&self) -> String {
        let identity = match &self.client_id {
            Some(id) => format!("user-assigned, client id {id}"),
            None => "system-assigned".to_owned(),
        };
        let host = match self.host {
            IdentityHost::Imds => "the instance metadata service",
            IdentityHost::AppService { .. } => "the App Service identity endpoint",
        };
        format!(
            "managed identity ({identity}); tokens from {host} at {}",
            self.url
        )
    }

    /// The token URL for `resource`, with the api-version of this endpoint's protocol.
    fn token_url(&self, resource: &str) -> Result<url::Url> {
        let mut url = url::Url::parse(&self.url).map_err(|e| {
            Error::settings(
                "managed_identity_endpoint",
                format!("`{}` is not a URL ({e})", self.url),
            )
        })?;
        let version = match self.host {
            IdentityHost::Imds => "2018-02-01",
            IdentityHost::AppService { .. } => "2019-08-01",
        };
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("api-version", version);
            query.append_pair("resource", resource);
            if let Some(id) = &self.client_id {
                query.append_pair("client_id", id);
            }
        }
        Ok(url)
    }

    fn request(&self, resource: &str) -> Result<reqwest::RequestBuilder> {
        let request = self.client.get(self.token_url(resource)?);
        Ok(match &self.host {
            IdentityHost::Imds => request.header("Metadata", "true"),
            IdentityHost::AppService { header } => {
                let mut value = HeaderValue::from_str(header.expose_secret()).map_err(|_| {
                    Error::settings(
                        "IDENTITY_HEADER",
                        "the environment variable IDENTITY_HEADER holds characters a header cannot carry",
                    )
                })?;
                value.set_sensitive(true);
                request.header("X-IDENTITY-HEADER", value)
            }
        })
    }

    fn secrets(&self) -> Vec<String> {
        match &self.host {
            IdentityHost::Imds => Vec::new(),
            IdentityHost::AppService { header } => secret_forms(header.expose_secret()),
        }
    }

    fn error(&self, reason: String, transient: bool, remedy: String) -> Error {
        Error::TokenEndpoint {
            endpoint: self.url.clone(),
            reason: redact(&reason, &self.secrets()),
            transient,
            advice: Advice::remedy(Some(remedy)),
        }
    }

    /// The remedy when the endpoint says the identity does not exist here.
    fn not_found_remedy(&self) -> String {
        match &self.client_id {
            Some(id) => format!(
                "the user-assigned managed identity with client id {id} is not attached to this \
                 resource: add it under Identity → User assigned on the VM, scale set or app, or fix \
                 `managed_identity_client_id`"
            ),
            None => "no managed identity is assigned to this resource: turn on Identity → System \
                     assigned on the VM, scale set or app, or set `managed_identity_client_id` to a \
                     user-assigned identity attached to it"
                .to_owned(),
        }
    }

    fn unreachable_remedy(&self) -> String {
        format!(
            "no managed identity on this host: `{}` cannot be reached. Run on an Azure VM, scale \
             set, AKS node, App Service, Functions or Container Apps with a managed identity \
             enabled (Identity → System assigned, or a user-assigned identity), or use a client \
             secret or certificate instead",
            self.url
        )
    }

    /// The remedy when the endpoint took the request and gave no complete answer (a
    /// timeout, a connection closed or cut off): something listens there, so the host has
    /// an identity service, in trouble for now.
    fn no_answer_remedy(&self) -> String {
        format!(
            "the identity endpoint `{}` took the request but gave no complete answer (it timed \
             out or closed the connection): the host's identity service is slow, restarting or \
             overloaded; sending again later should work",
            self.url
        )
    }

    async fn refused(&self, response: reqwest::Response) -> Error {
        let status = response.status();
        let transient = matches!(status.as_u16(), 404 | 410 | 429) || status.is_server_error();
        let said = match read_body(response, ERROR_BODY_LIMIT).await {
            Ok(body) => ErrorBody::text(&body, &self.secrets()),
            Err(e) => Some(e.to_string()),
        };
        let reason = match &said {
            Some(text) => format!("HTTP {status}: {text}"),
            None => format!("HTTP {status}"),
        };
        let lower = reason.to_ascii_lowercase();
        let remedy = if transient {
            "the identity endpoint is starting or busy: retry later".to_owned()
        } else if lower.contains("invalid_resource") || lower.contains("aadsts500011") {
            // Entra ID's refusal, passed through: the identity exists (it asked for the
            // token), the resource the scope names does not, in this tenant or its cloud.
            RESOURCE_REMEDY.to_owned()
        } else if lower.contains("identity not found")
            || lower.contains("no managed identity")
            || lower.contains("not assigned")
            || (status.as_u16() == 400 && lower.contains("not found"))
        {
            self.not_found_remedy()
        } else if status.is_redirection() {
            "the identity endpoint answered with a redirect, which is not followed: set \
             `managed_identity_endpoint` to the endpoint itself"
                .to_owned()
        } else {
            format!(
                "the identity endpoint refused the request; check `managed_identity_client_id` \
                 and that a managed identity is enabled. {}",
                self.not_found_remedy()
            )
        };
        self.error(reason, transient, remedy)
    }

    async fn parse(&self, response: reqwest::Response, issued: SystemTime) -> Result<AccessToken> {
        let unusable = |reason: String| {
            self.error(
                reason,
                false,
                "`managed_identity_endpoint` does not answer like a managed-identity endpoint; \
                 remove the override or point it at one"
                    .to_owned(),
            )
        };
        let body = match read_body(response, ERROR_BODY_LIMIT).await {
            Ok(body) => body,
            Err(BodyError::Failed(e)) => {
                return Err(self.error(describe_error(&e), true, self.no_answer_remedy()));
            }
            Err(too_large) => return Err(unusable(too_large.to_string())),
        };
        // serde's message may quote the input (the token); never echo it.
        let parsed: IdentityToken = serde_json::from_slice(&body).map_err(|e| {
            unusable(format!(
                "the response is not a token response (at line {} column {})",
                e.line(),
                e.column()
            ))
        })?;
        parsed.into_token(issued).map_err(unusable)
    }
}

#[async_trait]
impl Fetch for ManagedIdentityCredential {
    async fn fetch(&self, scope: &str, attempts: Attempts) -> Result<AccessToken, FetchFailure> {
        let resource = resource_of(scope);
        let started = Instant::now();
        let mut retry = 0;
        loop {
            let request = self.request(resource).map_err(FetchFailure::from)?;
            let issued = SystemTime::now();
            tracing::debug!(endpoint = %self.url, resource, attempt = retry + 1, "requesting a managed-identity token");
            let sent = request.send().await;
            if sent.is_ok() {
                self.answered.store(true, Ordering::Relaxed);
            }
            let (error, wait) = match sent {
                Ok(response) if response.status().is_success() => {
                    let token = self.parse(response, issued).await?;
                    tracing::debug!(endpoint = %self.url, expires_at = ?token.expires_at(), "managed-identity token issued");
                    return Ok(token);
                }
                Ok(response) => {
                    let wait = retry_after(response.headers());
                    // Kept on the error, for a queue or caller to honour once the retries
                    // give up (IMDS throttles each VM's requests).
                    let error = self.refused(response).await;
                    let error = match wait {
                        Some(wait) => error.with_retry_after(wait),
                        None => error,
                    };
                    (error, wait)
                }
                // It answered before: it is restarting or overloaded, not missing.
                Err(e) if e.is_connect() && self.answered.load(Ordering::Relaxed) => (
                    self.error(
                        describe_error(&e),
                        true,
                        format!(
                            "the identity endpoint `{}` answered before and now cannot be \
                             reached: the host's identity service is restarting or overloaded; \
                             sending again later should work",
                            self.url
                        ),
                    ),
                    None,
                ),
                // Nothing listens: there is no identity endpoint on this host; retrying
                // would only delay the answer.
                Err(e) if e.is_connect() => {
                    let error = self.error(describe_error(&e), false, self.unreachable_remedy());
                    tracing::warn!(endpoint = %self.url, error = %error, "managed-identity endpoint unreachable");
                    return Err(FetchFailure::from(error));
                }
                // Connected, then no answer: a slow or restarting identity service.
                Err(e) => (
                    self.error(describe_error(&e), true, self.no_answer_remedy()),
                    None,
                ),
            };
            if !error.is_transient() {
                tracing::warn!(endpoint = %self.url, error = %error, "managed-identity token refused");
                return Err(FetchFailure {
                    error,
                    retry_after: wait,
                });
            }
            let next = match attempts {
                Attempts::Once => None,
                Attempts::Retry => self.retry.next_delay(retry, started.elapsed(), wait),
            };
            let Some(delay) = next else {
                tracing::warn!(endpoint = %self.url, error = %error, attempts = retry + 1, "managed-identity token request failed; giving up");
                return Err(FetchFailure {
                    error,
                    retry_after: wait,
                });
            };
            tracing::warn!(endpoint = %self.url, error = %error, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "managed-identity token request failed; retrying");
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}

/// The resource a scope names: `https://graph.microsoft.com/.default` → `https://graph.microsoft.com`.
pub(crate) fn resource_of(scope: &str) -> &str {
    let scope = scope.trim();
    scope
        .strip_suffix(super::GRAPH_SCOPE_SUFFIX)
        .unwrap_or(scope)
}

/// What an identity endpoint says when it refuses: IMDS sends `error` and
/// `error_description`, App Service `message` (sometimes nested under `error`).
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

impl ErrorBody {
    /// The error's texts, each with `secrets` redacted: after parsing, since JSON may escape
    /// an echoed secret (`\u002B` for `+`, `\/` for `/`) where the raw body would not show
    /// it; before shortening, since an echo cut in half must not keep half a secret.
    fn text(body: &[u8], secrets: &[String]) -> Option<String> {
        let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
        let error = match parsed.error {
            Some(serde_json::Value::String(code)) => Some(code),
            Some(serde_json::Value::Object(inner)) => inner
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned),
            _ => None,
        };
        let parts: Vec<String> = [error, parsed.error_description, parsed.message]
            .into_iter()
            .flatten()
            .map(|p| redact(&p, secrets).chars().take(500).collect())
            .collect();
        (!parts.is_empty()).then(|| parts.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_service_needs_both_environment_values() {
        let endpoint = Some("http://127.0.0.1:41000/msi/token".to_owned());
        let header = || Some(Secret::new("header-value"));
        let (url, secret) = app_service_from(endpoint.clone(), header()).unwrap();
        assert_eq!(url, "http://127.0.0.1:41000/msi/token");
        assert_eq!(secret.expose_secret(), "header-value");
        assert!(app_service_from(endpoint.clone(), None).is_none());
        assert!(app_service_from(None, header()).is_none());
        assert!(app_service_from(Some("  ".into()), header()).is_none());
        assert!(app_service_from(endpoint, Some(Secret::new(" "))).is_none());
    }

    #[test]
    fn resource_drops_the_default_suffix() {
        assert_eq!(
            resource_of("https://graph.microsoft.com/.default"),
            "https://graph.microsoft.com"
        );
        assert_eq!(
            resource_of("https://outlook.office365.com"),
            "https://outlook.office365.com"
        );
    }
}
