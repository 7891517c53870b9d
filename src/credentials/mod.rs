//! [`Credentials`]: one provider of the connector's credentials, whatever the
//! Authentication Mode.
//!
//! With `auth_mode = "oauth"` it fetches access tokens from Microsoft Entra ID with the
//! OAuth 2.0 client-credentials grant — with a client secret or a certificate — caches them,
//! and hands them to the Graph transport (as a bearer token) and the SMTP transport (as
//! XOAUTH2). With `auth_mode = "basic"` it holds the user name and password; with `none` it
//! holds nothing. A host app switches between them by changing one setting, not its code.
//!
//! # Azure setup, and which setting each value goes into
//!
//! 1. **Register an app.** In the Entra admin center (or the Azure portal) open *App
//!    registrations → New registration*; a single-tenant app with no redirect URI is enough.
//!    From its *Overview* page copy
//!    - *Application (client) ID* → `oauth_client_id`,
//!    - *Directory (tenant) ID* → `tenant_id` (the tenant's domain, e.g.
//!      `contoso.onmicrosoft.com`, works too; `common` does not).
//! 2. **Give it a credential**, under *Certificates & secrets* — one of:
//!    - *Client secrets → New client secret.* Copy the **Value** column right away (it is
//!      shown once; the *Secret ID* next to it is not the secret) → `client_secret`. Note the
//!      *Expires* date (at most 24 months) → `client_secret_expires` (`YYYY-MM-DD`), so that
//!      `check` warns 30 days ahead.
//!    - *Certificates → Upload certificate.* Upload the public certificate (`.cer`, `.pem`
//!      or `.crt`); keep its private key on the server. The PEM certificate →
//!      `client_certificate_file`, the PEM private key (PKCS#8 or PKCS#1 RSA) →
//!      `client_private_key_file`. Each token request then carries a fresh assertion signed
//!      with PS256 (see [`AssertionAlgorithm`]).
//! 3. **Add the permission.** *API permissions → Add a permission → Microsoft Graph →
//!    **Application** permissions → `Mail.Send`* (and `Mail.ReadWrite` if you send
//!    attachments larger than 3 MB, which go through an upload session). A *Delegated*
//!    permission does not work for a background service. For SMTP XOAUTH2 use *APIs my
//!    organization uses → Office 365 Exchange Online → Application permissions →
//!    `SMTP.SendAsApp`* instead.
//! 4. **Grant admin consent.** Click *Grant admin consent for {tenant}* on the same page.
//!    Without it Entra still issues tokens, but they carry no `roles`, and every send fails;
//!    [`Credentials::check_steps`] says so and prints the admin-consent URL.
//!
//! National clouds: set `cloud` (`us-gov`, `us-dod`, `china`) — it picks the login host and
//! the Graph resource together. Overriding `graph_endpoint` (a proxy, a test server) does
//! not change the resource the token is for; set `oauth_scope` to do that.
//!
//! ```
//! use mail_connector::{ConnectorSettings, Credentials};
//!
//! let settings = ConnectorSettings::from_toml_str(r#"
//!     auth_mode = "oauth"
//!     user_name = "no-reply@contoso.com"
//!     oauth_client_id = "00000000-0000-0000-0000-000000000001"
//!     tenant_id = "contoso.onmicrosoft.com"
//!     client_secret = "value-from-the-portal"
//!     client_secret_expires = "2027-01-31"
//! "#)?;
//! let credentials = settings.credentials()?;
//! assert!(credentials.is_oauth());
//! assert_eq!(settings.graph_scope(), "https://graph.microsoft.com/.default");
//! assert!(!format!("{credentials:?}").contains("value-from-the-portal"));
//! # Ok::<(), mail_connector::Error>(())
//! ```
//!
//! # Caching
//!
//! Tokens are cached per (login host, tenant, client id, scope) and reused until
//! [`CredentialsBuilder::with_refresh_margin`] (5 minutes, at most half the token's lifetime)
//! before they expire. When a token is missing or expired, one request goes to Entra ID while
//! concurrent callers wait for its result. A token that is due but still valid is refreshed
//! with a single request (no retries) while other callers keep using it; if that refresh
//! fails, the cached token is used and the next attempt waits for the endpoint's
//! `Retry-After` or [`CredentialsBuilder::with_refresh_cooldown`] (30 seconds). Only an
//! expired token makes callers fail. A transport that gets 401 (Graph) or 535 (SMTP) calls
//! [`Credentials::invalidate`]. The token endpoint's 429, 5xx and transient Entra errors
//! (`temporarily_unavailable`, tenant throttling) are retried, waiting at least its
//! `Retry-After`.
//!
//! The token endpoint is trusted no further than needed: redirects are not followed (the
//! form carries the secret), answers over 64 KiB are not read, a lifetime (`expires_in`,
//! `refresh_in`) over a day counts as a day, and any text it sends back is cleaned of the
//! secret or assertion (raw or form-encoded) before it reaches an error or a log.
//!
//! Callers that waited for a fetch that failed get a clone of its error: the same variant,
//! fields, source chain, [`Error::is_auth`] and [`Error::remedy`] as the fetching caller.
//!
//! # Standing alone
//!
//! [`Credentials::client_secret`], [`Credentials::client_certificate`] and
//! [`Credentials::token_source`] build OAuth credentials from their own arguments;
//! [`ConnectorSettings::credentials`](crate::ConnectorSettings::credentials) maps the admin
//! screen onto them. This module never reads the settings.

mod cache;
mod certificate;
mod claims;
mod client_secret;
mod endpoint;
mod entra_error;
mod source;
mod token;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use cache::{InMemoryTokenCache, TokenCacheStore};
pub use certificate::AssertionAlgorithm;
use certificate::ClientCertificateCredential;
pub use claims::TokenClaims;
use client_secret::ClientSecretCredential;
pub use entra_error::EntraError;
pub use source::TokenSource;
pub use token::AccessToken;

use crate::error::{Error, Result};
use crate::expiry::ExpiryDate;
use crate::http::{HttpOptions, http_client};
use crate::net::https_url;
use crate::retry::RetryPolicy;
use crate::secret::Secret;
use crate::transport::CheckStep;
use cache::TokenCache;
#[cfg(feature = "graph")]
pub(crate) use endpoint::endpoint_error;
use endpoint::{TokenEndpoint, token_endpoint_url};
use source::{CustomSource, Fetch};

/// The suffix of every client-credentials scope: `{resource}/.default`.
pub const GRAPH_SCOPE_SUFFIX: &str = "/.default";

/// The scope of tokens for Exchange Online SMTP (XOAUTH2) in the global cloud.
pub const SMTP_SCOPE: &str = "https://outlook.office365.com/.default";

/// The default time before expiry at which a cached token is refreshed. It is capped at half
/// a token's lifetime, so short-lived tokens are still reused.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The default wait after a failed refresh, while the cached token is still valid, before
/// the next attempt (when the token endpoint sent no `Retry-After`).
const DEFAULT_REFRESH_COOLDOWN: Duration = Duration::from_secs(30);

/// The login host of Microsoft Entra ID in the global cloud.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// The connector's credentials: OAuth tokens, a user name and password, or nothing.
///
/// Cheap to clone (an `Arc` inside); clones share the token cache. `Debug` never shows a
/// secret.
#[derive(Clone, Debug)]
pub struct Credentials {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    OAuth(OAuth),
    Basic { user_name: String, password: Secret },
    Anonymous,
}

#[derive(Debug)]
struct OAuth {
    source: Arc<dyn Fetch>,
    cache: TokenCache,
    /// `{authority}|{tenant}|{client_id}|`, the cache key without the scope.
    key_prefix: String,
    authority_host: Option<String>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    token_endpoint: Option<String>,
    uses_certificate: bool,
    secret_expires: Option<ExpiryDate>,
}

impl OAuth {
    fn from_source(
        source: Arc<dyn TokenSource>,
        cache: TokenCache,
        tenant_id: Option<String>,
        client_id: Option<String>,
    ) -> Self {
        let key_prefix = format!(
            "token-source|{}|{}|",
            tenant_id.as_deref().unwrap_or(""),
            client_id.as_deref().unwrap_or("")
        );
        Self {
            source: Arc::new(CustomSource(source)),
            cache,
            key_prefix,
            authority_host: None,
            tenant_id,
            client_id,
            token_endpoint: None,
            uses_certificate: false,
            secret_expires: None,
        }
    }
}

/// How the app proves who it is.
#[derive(Debug)]
enum AppCredential {
    Secret(Secret),
    Certificate {
        certificate_file: PathBuf,
        private_key_file: PathBuf,
    },
    Source(Arc<dyn TokenSource>),
}

/// Builds OAuth [`Credentials`]: made by [`Credentials::client_secret`],
/// [`Credentials::client_certificate`] or [`Credentials::token_source`], then configured
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
}

impl CredentialsBuilder {
    fn new(tenant_id: String, client_id: String, credential: AppCredential) -> Self {
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
        }
    }

    /// The login host (default [`DEFAULT_AUTHORITY_HOST`]); a national cloud's, a proxy's or
    /// a test server's. `https`, or plain `http` for localhost only.
    pub fn with_authority_host(mut self, host: impl Into<String>) -> Self {
        self.authority_host = host.into();
        self
    }

    /// Trust the root certificates in this PEM file too, for the login host.
    pub fn with_tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// When the client secret expires, so that `check` warns 30 days ahead.
    pub fn with_secret_expiry(mut self, date: ExpiryDate) -> Self {
        self.secret_expires = Some(date);
        self
    }

    /// Name the app this token source signs in as: the tenant and client id name the cache
    /// entry and the admin-consent URL. Already set for a secret or a certificate.
    pub fn with_app(mut self, tenant_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        self.tenant_id = tenant_id.into();
        self.client_id = client_id.into();
        self
    }

    /// Refresh cached tokens this long before they expire (default 5 minutes; at most half
    /// a token's lifetime, and values over a day count as a day).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// After a refresh ahead of expiry fails, keep serving the still-valid cached token
    /// and try again only after this long (default 30 seconds), or after the token
    /// endpoint's `Retry-After` when it sent one. An expired, missing or rejected token is
    /// fetched at once regardless. Values over a day count as a day.
    pub fn with_refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.refresh_cooldown = cooldown;
        self
    }

    /// How the token endpoint's 429 and 5xx answers are retried.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Keep tokens in `store` instead of this process's memory.
    pub fn with_cache_store(mut self, store: Arc<dyn TokenCacheStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How the certificate flow signs its assertion (default [`AssertionAlgorithm::Ps256`]).
    pub fn with_assertion_algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Use this HTTP client for the token endpoint instead of one of its own (which trusts
    /// [`with_tls_ca_file`](Self::with_tls_ca_file)). Use it to share a connection pool or add a
    /// proxy.
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
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
            inner: Arc::new(Inner::OAuth(oauth)),
        })
    }

    fn oauth(self) -> Result<OAuth> {
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
            other => other,
        };
        let (Some(tenant), Some(client)) = (tenant_id.clone(), client_id.clone()) else {
            return Err(if tenant_id.is_none() {
                Error::settings(
                    "tenant_id",
                    "Tenant ID (`tenant_id`) is required for OAuth: copy the Directory (tenant) ID from the app registration's Overview page",
                )
            } else {
                Error::settings(
                    "oauth_client_id",
                    "OAuth Client ID (`oauth_client_id`) is required for OAuth: copy the Application (client) ID from the app registration's Overview page",
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
        let (source, uses_certificate): (Arc<dyn Fetch>, bool) = match secret {
            AppCredential::Certificate {
                certificate_file,
                private_key_file,
            } => (
                Arc::new(ClientCertificateCredential::from_pem_files(
                    endpoint,
                    client.clone(),
                    &certificate_file,
                    &private_key_file,
                    self.algorithm,
                )?),
                true,
            ),
            AppCredential::Secret(secret) if !secret.is_empty() => (
                Arc::new(ClientSecretCredential::new(
                    endpoint,
                    client.clone(),
                    secret,
                )),
                false,
            ),
            AppCredential::Secret(_) | AppCredential::Source(_) => {
                return Err(Error::settings(
                    "client_secret",
                    "OAuth needs a credential: set `client_secret` (the secret's Value), or both `client_certificate_file` and `client_private_key_file`",
                ));
            }
        };
        Ok(OAuth {
            source,
            cache,
            key_prefix: format!("{authority_host}|{tenant}|{client}|"),
            authority_host: Some(authority_host),
            tenant_id: Some(tenant),
            client_id: Some(client),
            token_endpoint: Some(url),
            uses_certificate,
            secret_expires: self.secret_expires,
        })
    }
}

/// The trimmed value, or `None` when it is blank.
fn non_blank(value: &str) -> Option<String> {
    Some(value.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl Credentials {
    /// OAuth credentials of an app registration with a client secret: the
    /// *Directory (tenant) ID* (or the tenant's domain), the *Application (client) ID* and the
    /// secret's **Value**.
    ///
    /// ```
    /// use mail_connector::{Credentials, Secret};
    ///
    /// let credentials = Credentials::client_secret(
    ///     "contoso.onmicrosoft.com",
    ///     "00000000-0000-0000-0000-000000000001",
    ///     Secret::new("value-from-the-portal"),
    /// )
    /// .build()?;
    /// assert!(credentials.is_oauth());
    /// assert!(!format!("{credentials:?}").contains("value-from-the-portal"));
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    pub fn client_secret(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        secret: Secret,
    ) -> CredentialsBuilder {
        CredentialsBuilder::new(
            tenant_id.into(),
            client_id.into(),
            AppCredential::Secret(secret),
        )
    }

    /// OAuth credentials of an app registration with a certificate: the PEM certificate
    /// uploaded to the app registration and its PEM private key (PKCS#8 or PKCS#1 RSA). Each
    /// token request carries a fresh signed assertion.
    pub fn client_certificate(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        certificate_file: impl Into<PathBuf>,
        private_key_file: impl Into<PathBuf>,
    ) -> CredentialsBuilder {
        CredentialsBuilder::new(
            tenant_id.into(),
            client_id.into(),
            AppCredential::Certificate {
                certificate_file: certificate_file.into(),
                private_key_file: private_key_file.into(),
            },
        )
    }

    /// OAuth credentials whose tokens come from `source` (a workload identity, a managed
    /// identity, a test), cached like any other; configure the cache with the builder.
    pub fn token_source(source: Arc<dyn TokenSource>) -> CredentialsBuilder {
        CredentialsBuilder::new(String::new(), String::new(), AppCredential::Source(source))
    }

    /// OAuth credentials whose tokens come from `source`, with the default cache.
    #[must_use]
    pub fn from_token_source(source: impl TokenSource + 'static) -> Self {
        let cache = TokenCache::new(
            Arc::new(InMemoryTokenCache::new()),
            DEFAULT_REFRESH_MARGIN,
            DEFAULT_REFRESH_COOLDOWN,
        );
        let oauth = OAuth::from_source(Arc::new(source), cache, None, None);
        Self {
            inner: Arc::new(Inner::OAuth(oauth)),
        }
    }

    /// A user name and password, for SMTP basic authentication.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] naming `user_name` or `password` when it is empty.
    pub fn basic(user_name: impl Into<String>, password: Secret) -> Result<Self> {
        let user_name = user_name.into().trim().to_owned();
        if user_name.is_empty() {
            return Err(Error::settings(
                "user_name",
                "User Name (`user_name`) is required when Authentication Mode is Basic",
            ));
        }
        if password.is_empty() {
            return Err(Error::settings(
                "password",
                "Password (`password`) is required when Authentication Mode is Basic",
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner::Basic {
                user_name,
                password,
            }),
        })
    }

    /// No credentials: an anonymous SMTP relay.
    #[must_use]
    pub fn anonymous() -> Self {
        Self {
            inner: Arc::new(Inner::Anonymous),
        }
    }

    /// Whether these are OAuth credentials (tokens rather than a password).
    #[must_use]
    pub fn is_oauth(&self) -> bool {
        matches!(*self.inner, Inner::OAuth(_))
    }

    /// For Basic: the user name and password.
    #[must_use]
    pub fn user_password(&self) -> Option<(&str, &Secret)> {
        match &*self.inner {
            Inner::Basic {
                user_name,
                password,
            } => Some((user_name, password)),
            _ => None,
        }
    }

    /// The token endpoint URL, for OAuth with a secret or certificate.
    #[must_use]
    pub fn token_endpoint(&self) -> Option<&str> {
        match &*self.inner {
            Inner::OAuth(oauth) => oauth.token_endpoint.as_deref(),
            _ => None,
        }
    }

    /// The refresh margin, for OAuth.
    #[must_use]
    pub fn refresh_margin(&self) -> Option<Duration> {
        match &*self.inner {
            Inner::OAuth(oauth) => Some(oauth.cache.refresh_margin()),
            _ => None,
        }
    }

    /// A cached or freshly fetched access token for `scope`, e.g.
    /// `https://graph.microsoft.com/.default` (see
    /// [`ConnectorSettings::graph_scope`](crate::ConnectorSettings::graph_scope)) or [`SMTP_SCOPE`].
    ///
    /// # Errors
    ///
    /// [`Error::TokenRequest`] when Entra ID refuses (ask [`Error::remedy`]),
    /// [`Error::TokenEndpoint`] when it cannot be reached, and
    /// [`Error::InvalidSettings`] naming `auth_mode` for Basic or anonymous credentials.
    pub async fn access_token(&self, scope: &str) -> Result<AccessToken> {
        let Inner::OAuth(oauth) = &*self.inner else {
            return Err(Error::settings(
                "auth_mode",
                "access tokens need Authentication Mode OAuth (`auth_mode = \"oauth\"`)",
            ));
        };
        let key = format!("{}{scope}", oauth.key_prefix);
        oauth
            .cache
            .get_or_fetch(&key, |attempts| oauth.source.fetch(scope, attempts))
            .await
    }

    /// Reports that a server rejected `token` (Graph 401, SMTP 535): it is dropped if it is
    /// still the cached one, so the next [`Credentials::access_token`] fetches a new one.
    /// Many callers reporting the same token cause one fetch.
    pub fn invalidate(&self, token: &AccessToken) {
        if let Inner::OAuth(oauth) = &*self.inner {
            oauth.cache.invalidate(token);
        }
    }

    /// The admin-consent URL for the app, when tenant and client id are known:
    /// `{authority_host}/{tenant}/adminconsent?client_id={client_id}`.
    #[must_use]
    pub fn admin_consent_url(&self) -> Option<String> {
        let Inner::OAuth(oauth) = &*self.inner else {
            return None;
        };
        let host = oauth
            .authority_host
            .as_deref()
            .unwrap_or(DEFAULT_AUTHORITY_HOST);
        Some(format!(
            "{host}/{}/adminconsent?client_id={}",
            oauth.tenant_id.as_deref()?,
            oauth.client_id.as_deref()?
        ))
    }

    /// Building blocks of a transport's `check`: `token` (a token for `scope` can be had),
    /// `permission` (each of `required_roles`, e.g. `Mail.Send`, is in the token's `roles`;
    /// if not, why and the admin-consent URL) and `secret expiry` (from
    /// `client_secret_expires`: warning within 30 days, failure after). Basic and anonymous
    /// credentials report one `credentials` step.
    pub async fn check_steps(&self, scope: &str, required_roles: &[&str]) -> Vec<CheckStep> {
        let oauth = match &*self.inner {
            Inner::OAuth(oauth) => oauth,
            Inner::Basic { user_name, .. } => {
                return vec![CheckStep::ok(
                    "credentials",
                    format!("basic authentication as {user_name}"),
                )];
            }
            Inner::Anonymous => {
                return vec![CheckStep::ok(
                    "credentials",
                    "no authentication (anonymous relay)",
                )];
            }
        };
        let mut steps = Vec::new();
        match self.access_token(scope).await {
            Ok(token) => {
                let left = token
                    .expires_at()
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                let claims = token.claims();
                let tenant = claims
                    .as_ref()
                    .and_then(|c| c.tid.as_deref())
                    .map(|t| format!(", tenant {t}"))
                    .unwrap_or_default();
                steps.push(CheckStep::ok(
                    "token",
                    format!(
                        "access token for {scope} obtained; valid for {} min{tenant}",
                        left.as_secs() / 60
                    ),
                ));
                if !required_roles.is_empty() {
                    steps.push(self.permission_step(claims.as_ref(), required_roles));
                }
            }
            Err(error) => steps.push(CheckStep::from_error("token", &error)),
        }
        if !oauth.uses_certificate && oauth.token_endpoint.is_some() {
            steps.push(secret_expiry_step(oauth.secret_expires));
        }
        steps
    }

    fn permission_step(&self, claims: Option<&TokenClaims>, required: &[&str]) -> CheckStep {
        let Some(claims) = claims else {
            return CheckStep::warning(
                "permission",
                "the access token is not a JWT, so its permissions cannot be read",
                "nothing to change if sending works",
            );
        };
        if claims.scp.is_some() {
            return CheckStep::failed(
                "permission",
                "the token is a delegated (user) token; app-only sending needs the client-credentials flow",
                Some("use an app registration with a client secret or certificate, not a user sign-in".into()),
            );
        }
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|role| !claims.has_role(role))
            .collect();
        if missing.is_empty() {
            return CheckStep::ok(
                "permission",
                format!("granted: {}", claims.roles.join(", ")),
            );
        }
        let consent = self
            .admin_consent_url()
            .map(|url| format!("; an admin of the tenant can also consent at {url}"))
            .unwrap_or_default();
        CheckStep::failed(
            "permission",
            format!(
                "the token lacks the application permission {} (granted: {})",
                missing.join(", "),
                if claims.roles.is_empty() {
                    "none".to_owned()
                } else {
                    claims.roles.join(", ")
                }
            ),
            Some(format!(
                "the permission was not added as an Application permission, or admin consent was not granted: in the app registration open API permissions, add Microsoft Graph → Application permissions → {}, then click Grant admin consent{consent}",
                missing.join(", ")
            )),
        )
    }
}

fn secret_expiry_step(expires: Option<ExpiryDate>) -> CheckStep {
    const NAME: &str = "secret expiry";
    let Some(date) = expires else {
        return CheckStep::warning(
            NAME,
            "the client secret's expiry date is not known",
            "set `client_secret_expires` (YYYY-MM-DD, the Expires column under Certificates & secrets) so that check warns before it expires",
        );
    };
    let days = date.days_left();
    let renew = "create a new secret under Certificates & secrets, then update `client_secret` and `client_secret_expires`";
    if days < 0 {
        CheckStep::failed(
            NAME,
            format!("the client secret expired on {date}"),
            Some(renew.to_owned()),
        )
    } else if days <= 30 {
        CheckStep::warning(
            NAME,
            format!("the client secret expires on {date}, in {days} days"),
            renew,
        )
    } else {
        CheckStep::ok(
            NAME,
            format!("the client secret expires on {date}, in {days} days"),
        )
    }
}
