//! [`CredentialsBuilder`]: OAuth credentials from their own arguments, with the cache and
//! HTTP options a service tunes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::cache::TokenCache;
use super::certificate::ClientCertificateCredential;
use super::check::CredentialKind;
use super::client_secret::ClientSecretCredential;
use super::endpoint::{TokenEndpoint, token_endpoint_url};
use super::entra_error::{FEDERATED_TOKEN_FILE, SECRET_FILE};
use super::federated::WorkloadIdentityCredential;
use super::managed_identity::{
    CONNECT_TIMEOUT, IMDS_ENDPOINT, IdentityHost, ManagedIdentityCredential, REQUEST_TIMEOUT,
};
use super::source::{CustomSource, Fetch, PROVIDER_TIMEOUT_REMEDY};
use super::{
    AssertionAlgorithm, Credentials, DEFAULT_AUTHORITY_HOST, DEFAULT_REFRESH_COOLDOWN,
    DEFAULT_REFRESH_MARGIN, InMemoryTokenCache, Inner, TokenCacheStore, TokenProvider,
};
use crate::error::{Error, Result};
use crate::expiry::ExpiryDate;
use crate::http::{HttpOptions, http_client};
use crate::net::{https_url, local_service_url};
use crate::retry::RetryPolicy;
use crate::secret::Secret;

/// Built OAuth credentials: the token source, its cache and what `check` reports.
#[derive(Debug)]
pub(super) struct OAuth {
    pub(super) source: Arc<dyn Fetch>,
    pub(super) cache: TokenCache,
    /// The cache key without the scope: `{kind}|{authority}|{tenant}|{client_id}|`.
    pub(super) key_prefix: String,
    pub(super) authority_host: Option<String>,
    pub(super) tenant_id: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) token_endpoint: Option<String>,
    /// Which credential, and where it comes from, for `check`.
    pub(super) kind: CredentialKind,
    pub(super) secret_expires: Option<ExpiryDate>,
    /// What to check when no token came in time: the login host, the identity endpoint or
    /// the caller's provider, whichever the tokens come from.
    pub(super) timeout_remedy: String,
}

impl OAuth {
    pub(super) fn from_source(
        source: Arc<dyn TokenProvider>,
        cache: TokenCache,
        tenant_id: Option<String>,
        client_id: Option<String>,
    ) -> Self {
        let key_prefix = match (&tenant_id, &client_id) {
            // The caller named the app: every provider of it (another replica's too) may
            // share its tokens through a shared store.
            (Some(tenant), Some(client)) => format!("token-source|{tenant}|{client}|"),
            // Nothing says whose tokens these are: they are this instance's (and its
            // clones') own, so that two providers sharing a store never get each other's.
            _ => format!("token-source|instance|{}|", uuid::Uuid::new_v4().simple()),
        };
        let timeout_remedy = source
            .timeout_remedy()
            .unwrap_or_else(|| PROVIDER_TIMEOUT_REMEDY.to_owned());
        Self {
            source: Arc::new(CustomSource(source)),
            cache,
            key_prefix,
            authority_host: None,
            tenant_id,
            client_id,
            token_endpoint: None,
            kind: CredentialKind::Provider,
            secret_expires: None,
            timeout_remedy,
        }
    }
}

/// How the app proves who it is.
#[derive(Debug)]
pub(super) enum AppCredential {
    Secret(Secret),
    /// A client secret read from this file at each token request.
    SecretFile(PathBuf),
    /// The workload's own token, read from this file at each token request.
    WorkloadIdentity(PathBuf),
    Certificate {
        certificate_file: PathBuf,
        private_key_file: PathBuf,
    },
    Source(Arc<dyn TokenProvider>),
    /// The host's managed identity; App Service's endpoint and header when its environment
    /// names them, else the instance metadata service.
    ManagedIdentity {
        app_service: Option<(String, Secret)>,
    },
}

/// Builds OAuth [`Credentials`]: made by [`Credentials::client_secret`],
/// [`Credentials::client_secret_file`], [`Credentials::client_certificate`],
/// [`Credentials::workload_identity`], [`Credentials::managed_identity`] or
/// [`Credentials::token_provider`], then configured
/// (login host, refresh margin, retries, cache store, HTTP client) and [built](Self::build).
#[must_use]
#[derive(Debug)]
pub struct CredentialsBuilder {
    tenant_id: String,
    client_id: String,
    credential: AppCredential,
    authority_host: String,
    tls_ca_file: Option<PathBuf>,
    secret_expires: Option<ExpiryDate>,
    refresh_margin: Duration,
    retry: RetryPolicy,
    store: Option<Arc<dyn TokenCacheStore>>,
    algorithm: AssertionAlgorithm,
    http_client: Option<reqwest::Client>,
    refresh_cooldown: Duration,
    managed_identity_client_id: Option<String>,
    managed_identity_endpoint: Option<String>,
}

impl CredentialsBuilder {
    pub(super) fn new(tenant_id: String, client_id: String, credential: AppCredential) -> Self {
        Self {
            tenant_id,
            client_id,
            credential,
            authority_host: DEFAULT_AUTHORITY_HOST.to_owned(),
            tls_ca_file: None,
            secret_expires: None,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            retry: RetryPolicy::default(),
            store: None,
            algorithm: AssertionAlgorithm::default(),
            http_client: None,
            refresh_cooldown: DEFAULT_REFRESH_COOLDOWN,
            managed_identity_client_id: None,
            managed_identity_endpoint: None,
        }
    }

    /// The login host (default [`DEFAULT_AUTHORITY_HOST`]); a national cloud's, a proxy's or
    /// a test server's. `https`, or plain `http` for localhost only.
    pub fn authority_host(mut self, host: impl Into<String>) -> Self {
        self.authority_host = host.into();
        self
    }

    /// Trust the root certificates in this PEM file too, for the login host.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// When the client secret expires, so that `check` warns 30 days ahead.
    pub fn secret_expiry(mut self, date: ExpiryDate) -> Self {
        self.secret_expires = Some(date);
        self
    }

    /// Name the app this token source signs in as: the tenant and client id name the cache
    /// entry and the admin-consent URL. Already set for a secret or a certificate.
    ///
    /// For [`Credentials::token_provider`], naming the app (both ids) lets every provider of
    /// it share its tokens through one [`cache_store`](Self::cache_store), across replicas
    /// too; say it only of providers whose tokens are interchangeable. Without it, the
    /// provider's tokens are cached for these credentials (and their clones) alone.
    pub fn app(mut self, tenant_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        self.tenant_id = tenant_id.into();
        self.client_id = client_id.into();
        self
    }

    /// Use the user-assigned managed identity with this client id instead of the
    /// system-assigned one. Only for [`Credentials::managed_identity`].
    pub fn managed_identity_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.managed_identity_client_id = Some(client_id.into());
        self
    }

    /// Ask this managed-identity endpoint instead of the host's (the instance metadata
    /// service, or App Service's `IDENTITY_ENDPOINT`): for tests and unusual hosts. `https`,
    /// or plain `http` to this machine or a link-local address only. Only for
    /// [`Credentials::managed_identity`].
    pub fn managed_identity_endpoint(mut self, url: impl Into<String>) -> Self {
        self.managed_identity_endpoint = Some(url.into());
        self
    }

    /// Refresh cached tokens this long before they expire (default 5 minutes; at most half
    /// a token's lifetime, and values over a day count as a day).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// After a refresh ahead of expiry fails, keep serving the still-valid cached token
    /// and try again only after this long (default 30 seconds), or after the token
    /// endpoint's `Retry-After` when it sent one. An expired, missing or rejected token is
    /// fetched at once regardless. Values over a day count as a day.
    pub fn refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.refresh_cooldown = cooldown;
        self
    }

    /// How the token endpoint's 429 and 5xx answers are retried.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Keep tokens in `store` instead of this process's memory. Credentials of one app and
    /// credential kind share its tokens there, across processes and replicas: a client
    /// secret, secret file, certificate or workload identity by login host, tenant and client
    /// id; a user-assigned managed identity by endpoint and client id; a
    /// [`token_provider`](Credentials::token_provider) only when [`app`](Self::app) names
    /// its app. A system-assigned managed identity and a provider that names no app keep
    /// their tokens to themselves (and their clones), under a key no other instance uses.
    pub fn cache_store(mut self, store: Arc<dyn TokenCacheStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How the certificate flow signs its assertion (default [`AssertionAlgorithm::Ps256`]).
    pub fn assertion_algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Use this HTTP client for the token endpoint instead of one of its own (which trusts
    /// [`tls_ca_file`](Self::tls_ca_file)). Use it to share a connection pool or add a
    /// proxy. A managed identity ignores it: its endpoint is on this machine or link-local,
    /// and is always asked with a client of its own that uses no proxy.
    ///
    /// # Security
    ///
    /// Build it with `redirect(reqwest::redirect::Policy::none())`: a client that follows
    /// redirects would re-post the client secret or assertion wherever the login host's answer
    /// points. The credentials' own client follows none.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Makes the credentials.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] naming `tenant_id`, `oauth_client_id`, `client_secret` or
    /// `authority_host` when one is missing or unusable; [`Error::Io`] /
    /// [`Error::InvalidCredential`] when a certificate or key file cannot be read or used;
    /// [`Error::InvalidSettings`] naming `tls_ca_file` when it is unusable.
    pub fn build(self) -> Result<Credentials> {
        let oauth = self.oauth()?;
        Ok(Credentials {
            inner: Arc::new(Inner::OAuth(Box::new(oauth))),
        })
    }

    pub(super) fn oauth(self) -> Result<OAuth> {
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(InMemoryTokenCache::new()));
        // Longer than a day means "a day": no time arithmetic on them can overflow.
        let cache = TokenCache::new(
            store,
            crate::http::capped(self.refresh_margin),
            crate::http::capped(self.refresh_cooldown),
        );
        let tenant_id = non_blank(&self.tenant_id);
        let client_id = non_blank(&self.client_id);
        let secret = match self.credential {
            AppCredential::Source(source) => {
                return Ok(OAuth::from_source(source, cache, tenant_id, client_id));
            }
            AppCredential::ManagedIdentity { app_service } => {
                let identity = self
                    .managed_identity_client_id
                    .as_deref()
                    .and_then(non_blank);
                return managed_identity(
                    app_service,
                    self.managed_identity_endpoint,
                    identity,
                    self.retry,
                    cache,
                );
            }
            other => other,
        };
        let (Some(tenant), Some(client)) = (tenant_id.clone(), client_id.clone()) else {
            return Err(if tenant_id.is_none() {
                Error::settings("tenant_id", crate::fields::tenant_id_required("for OAuth"))
            } else {
                Error::settings(
                    "oauth_client_id",
                    crate::fields::client_id_required("for OAuth"),
                )
            });
        };
        let authority_host = https_url("authority_host", "Authority host", &self.authority_host)?;
        let authority_host = authority_host.as_str().trim_end_matches('/').to_owned();
        let http = match self.http_client {
            Some(client) => client,
            None => http_client(&HttpOptions {
                tls_ca_file: self.tls_ca_file.clone(),
                ..HttpOptions::default()
            })?,
        };
        let url = token_endpoint_url(&authority_host, &tenant);
        let endpoint = TokenEndpoint::new(url.clone(), http, self.retry);
        let (source, kind): (Arc<dyn Fetch>, CredentialKind) = match secret {
            AppCredential::Certificate {
                certificate_file,
                private_key_file,
            } => {
                let credential = ClientCertificateCredential::from_pem_files(
                    endpoint.carrying("client_certificate_file"),
                    client.clone(),
                    &certificate_file,
                    &private_key_file,
                    self.algorithm,
                )?;
                let kind = CredentialKind::Certificate {
                    not_after: credential.not_after(),
                    file: certificate_file,
                };
                (Arc::new(credential), kind)
            }
            AppCredential::Secret(secret) if !secret.is_empty() => (
                Arc::new(ClientSecretCredential::new(
                    endpoint,
                    client.clone(),
                    secret,
                )),
                CredentialKind::Secret,
            ),
            AppCredential::SecretFile(path) => (
                Arc::new(ClientSecretCredential::from_file(
                    endpoint.carrying(SECRET_FILE),
                    client.clone(),
                    path.clone(),
                )),
                CredentialKind::SecretFile(path),
            ),
            AppCredential::WorkloadIdentity(path) => (
                Arc::new(WorkloadIdentityCredential::new(
                    endpoint.carrying(FEDERATED_TOKEN_FILE),
                    client.clone(),
                    path.clone(),
                )),
                CredentialKind::WorkloadIdentity(path),
            ),
            AppCredential::Secret(_)
            | AppCredential::Source(_)
            | AppCredential::ManagedIdentity { .. } => {
                return Err(Error::settings(
                    "client_secret",
                    "OAuth needs a credential: a client secret (its Value, or a file holding it), a certificate and its private key, a managed identity, or a federated token file",
                ));
            }
        };
        let timeout_remedy = format!(
            "the login host {authority_host} gave no token in time: check that this machine can \
             reach it over HTTPS (firewall, proxy, DNS) and that `authority_host` and `cloud` \
             are right"
        );
        Ok(OAuth {
            source,
            cache,
            // The kind first: a secret and a federated token of one app are different
            // credentials, and must not share (or poison) each other's cached tokens.
            key_prefix: format!("{}|{authority_host}|{tenant}|{client}|", kind.cache_tag()),
            authority_host: Some(authority_host),
            tenant_id: Some(tenant),
            client_id: Some(client),
            token_endpoint: Some(url),
            kind,
            secret_expires: self.secret_expires,
            timeout_remedy,
        })
    }
}

/// Managed-identity credentials: the endpoint (the override, App Service's, or the
/// metadata service), checked for https or a local address, with short timeouts.
fn managed_identity(
    app_service: Option<(String, Secret)>,
    endpoint: Option<String>,
    client_id: Option<String>,
    retry: RetryPolicy,
    cache: TokenCache,
) -> Result<OAuth> {
    // An explicit endpoint speaks the metadata service's protocol: App Service's header is
    // only ever sent to the endpoint App Service itself names.
    let (url, host, field) = match (endpoint.as_deref().and_then(non_blank), app_service) {
        (Some(url), _) => (url, IdentityHost::Imds, "managed_identity_endpoint"),
        (None, Some((url, header))) => (
            url,
            IdentityHost::AppService { header },
            "IDENTITY_ENDPOINT",
        ),
        (None, None) => (
            IMDS_ENDPOINT.to_owned(),
            IdentityHost::Imds,
            "managed_identity_endpoint",
        ),
    };
    let url = local_service_url(field, "Managed identity endpoint", &url)?.to_string();
    // Its own client, whatever the caller gave for Entra ID and Graph: no proxy may see this
    // local request (or App Service's header), and the endpoint is expected to answer fast.
    let http = http_client(&HttpOptions {
        connect_timeout: CONNECT_TIMEOUT,
        request_timeout: REQUEST_TIMEOUT,
        no_proxy: true,
        ..HttpOptions::default()
    })?;
    let credential =
        ManagedIdentityCredential::new(url.clone(), host, client_id.clone(), http, retry);
    let kind = CredentialKind::ManagedIdentity(credential.describe());
    Ok(OAuth {
        source: Arc::new(credential),
        cache,
        // Every host's system-assigned identity answers at the same URL: its tokens are this
        // process's own, and never shared through a cache store with another host.
        key_prefix: match &client_id {
            Some(id) => format!("{}|{url}|{id}|", kind.cache_tag()),
            None => format!(
                "{}|{url}|system-assigned|{}|",
                kind.cache_tag(),
                uuid::Uuid::new_v4().simple()
            ),
        },
        authority_host: None,
        tenant_id: None,
        client_id,
        timeout_remedy: format!(
            "the managed identity endpoint {url} gave no token in time: the host's identity \
             service is slow, restarting or overloaded, and sending again later should work; \
             if it is not this host's identity endpoint, correct `{field}`"
        ),
        token_endpoint: Some(url),
        kind,
        secret_expires: None,
    })
}

/// The trimmed value, or `None` when it is blank.
fn non_blank(value: &str) -> Option<String> {
    Some(value.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}
