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
//! let credentials = Credentials::from_settings(&settings)?;
//! assert!(credentials.is_oauth());
//! assert_eq!(mail_connector::graph_scope(&settings), "https://graph.microsoft.com/.default");
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
//! Callers that waited for a fetch that failed get a copy of its error: the same variant,
//! fields, [`Error::is_auth`] and [`Error::remedy`] as the fetching caller (an
//! [`Error::Io`] keeps its kind and message, not its source chain).

mod cache;
mod certificate;
mod claims;
mod client_secret;
mod endpoint;
mod entra_error;
mod source;
mod token;

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

use crate::error::{Error, Result, SettingsProblem};
use crate::http::{HttpOptions, http_client};
use crate::retry::RetryPolicy;
use crate::secret::Secret;
use crate::settings::{AuthMode, ConnectorSettings, ExpiryDate, non_blank};
use crate::transport::CheckStep;
use cache::TokenCache;
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

/// The scope for Microsoft Graph tokens: `oauth_scope` when set, otherwise the cloud's Graph
/// resource with `/.default` (e.g. `https://graph.microsoft.us/.default` for `us-gov`).
///
/// Overriding `graph_endpoint` does not change it: a proxy or test server in front of Graph
/// still needs tokens for Graph itself.
#[must_use]
pub fn graph_scope(settings: &ConnectorSettings) -> String {
    explicit_scope(settings)
        .unwrap_or_else(|| format!("{}{GRAPH_SCOPE_SUFFIX}", settings.cloud.graph_endpoint()))
}

/// The scope for SMTP XOAUTH2 tokens: `oauth_scope` when set, otherwise [`SMTP_SCOPE`].
/// (Exchange's resource in national clouds is not documented; set `oauth_scope` there.)
#[must_use]
pub fn smtp_scope(settings: &ConnectorSettings) -> String {
    explicit_scope(settings).unwrap_or_else(|| SMTP_SCOPE.to_owned())
}

fn explicit_scope(settings: &ConnectorSettings) -> Option<String> {
    settings
        .oauth_scope
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

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

/// Configures [`Credentials`] beyond the settings: refresh margin, retries, cache store,
/// assertion algorithm, HTTP client. Made by [`Credentials::builder`].
#[must_use]
#[derive(Debug)]
pub struct CredentialsBuilder {
    settings: ConnectorSettings,
    refresh_margin: Duration,
    retry: RetryPolicy,
    store: Option<Arc<dyn TokenCacheStore>>,
    algorithm: AssertionAlgorithm,
    http_client: Option<reqwest::Client>,
    source: Option<Arc<dyn TokenSource>>,
    refresh_cooldown: Duration,
}

impl CredentialsBuilder {
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

    /// Use this HTTP client for the token endpoint instead of one made from the settings
    /// (`tls_ca_file`). Use it to share a connection pool or add a proxy.
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Take tokens from `source` instead of the client secret or certificate in the
    /// settings; the tenant and client id still name the cache entry and the consent URL.
    pub fn with_token_source(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Makes the credentials the settings' `auth_mode` describes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] when a field the mode needs is missing;
    /// [`Error::Io`] / [`Error::InvalidCredential`] when a certificate or key file cannot be
    /// read or used; [`Error::InvalidSettings`] naming `tls_ca_file` when it is unusable.
    pub fn build(self) -> Result<Credentials> {
        let settings = &self.settings;
        let inner = match settings.auth_mode {
            Some(AuthMode::OAuth) => Inner::OAuth(self.oauth()?),
            Some(AuthMode::Basic) => {
                let user_name = non_blank(settings.user_name.as_deref());
                let password = settings.password.clone().filter(|p| !p.is_empty());
                match (user_name, password) {
                    (Some(user_name), Some(password)) => Inner::Basic {
                        user_name: user_name.to_owned(),
                        password,
                    },
                    (user_name, _) => {
                        return Err(missing(if user_name.is_none() {
                            (
                                "user_name",
                                "User Name (`user_name`) is required when Authentication Mode is Basic",
                            )
                        } else {
                            (
                                "password",
                                "Password (`password`) is required when Authentication Mode is Basic",
                            )
                        }));
                    }
                }
            }
            Some(AuthMode::None) => Inner::Anonymous,
            None if self.source.is_some() => Inner::OAuth(self.oauth()?),
            None => {
                return Err(missing((
                    "auth_mode",
                    "Authentication Mode (`auth_mode`) is required: choose `oauth`, `basic` or `none`",
                )));
            }
        };
        Ok(Credentials {
            inner: Arc::new(inner),
        })
    }

    fn oauth(self) -> Result<OAuth> {
        let settings = &self.settings;
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(InMemoryTokenCache::new()));
        // Longer than a day means "a day": no time arithmetic on them can overflow.
        let cache = TokenCache::new(
            store,
            crate::http::capped(self.refresh_margin),
            crate::http::capped(self.refresh_cooldown),
        );
        let authority_host = settings.authority_host().to_owned();
        let tenant_id = non_blank(settings.tenant_id.as_deref()).map(str::to_owned);
        let client_id = non_blank(settings.oauth_client_id.as_deref()).map(str::to_owned);
        if let Some(source) = self.source {
            let key_prefix = format!(
                "token-source|{}|{}|",
                tenant_id.as_deref().unwrap_or(""),
                client_id.as_deref().unwrap_or("")
            );
            return Ok(OAuth {
                source: Arc::new(CustomSource(source)),
                cache,
                key_prefix,
                authority_host: None,
                tenant_id,
                client_id,
                token_endpoint: None,
                uses_certificate: false,
                secret_expires: None,
            });
        }
        let (Some(tenant), Some(client)) = (tenant_id.clone(), client_id.clone()) else {
            return Err(missing(if tenant_id.is_none() {
                (
                    "tenant_id",
                    "Tenant ID (`tenant_id`) is required when Authentication Mode is OAuth: copy the Directory (tenant) ID from the app registration's Overview page",
                )
            } else {
                (
                    "oauth_client_id",
                    "OAuth Client ID (`oauth_client_id`) is required when Authentication Mode is OAuth: copy the Application (client) ID from the app registration's Overview page",
                )
            }));
        };
        let http = match self.http_client {
            Some(client) => client,
            None => http_client(&HttpOptions {
                tls_ca_file: settings.tls_ca_file.clone(),
                ..HttpOptions::default()
            })?,
        };
        let url = token_endpoint_url(&authority_host, &tenant);
        let endpoint = TokenEndpoint::new(url.clone(), http, self.retry);
        let secret = settings.client_secret.clone().filter(|s| !s.is_empty());
        let (source, uses_certificate): (Arc<dyn Fetch>, bool) = match (
            secret,
            &settings.client_certificate_file,
            &settings.client_private_key_file,
        ) {
            (_, Some(cert), Some(key)) => (
                Arc::new(ClientCertificateCredential::from_pem_files(
                    endpoint,
                    client.clone(),
                    cert,
                    key,
                    self.algorithm,
                )?),
                true,
            ),
            (Some(secret), _, _) => (
                Arc::new(ClientSecretCredential::new(
                    endpoint,
                    client.clone(),
                    secret,
                )),
                false,
            ),
            _ => {
                return Err(missing((
                    "client_secret",
                    "OAuth needs a credential: set `client_secret` (the secret's Value), or both `client_certificate_file` and `client_private_key_file`",
                )));
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
            secret_expires: settings.client_secret_expires,
        })
    }
}

fn missing((field, message): (&str, &str)) -> Error {
    Error::InvalidSettings {
        problems: vec![SettingsProblem {
            field: field.to_owned(),
            message: message.to_owned(),
        }],
    }
}

impl Credentials {
    /// The credentials the admin-screen settings describe: `auth_mode = "oauth"` → the
    /// client-secret or certificate flow, `basic` → `user_name` + `password`, `none` →
    /// anonymous.
    ///
    /// # Errors
    ///
    /// As [`CredentialsBuilder::build`].
    pub fn from_settings(settings: &ConnectorSettings) -> Result<Self> {
        Self::builder(settings).build()
    }

    /// A builder starting from `settings`, for the refresh margin, retry policy, cache store
    /// and HTTP client.
    pub fn builder(settings: &ConnectorSettings) -> CredentialsBuilder {
        CredentialsBuilder {
            settings: settings.clone(),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            retry: RetryPolicy::default(),
            store: None,
            algorithm: AssertionAlgorithm::default(),
            http_client: None,
            source: None,
            refresh_cooldown: DEFAULT_REFRESH_COOLDOWN,
        }
    }

    /// OAuth credentials whose tokens come from `source` (workload identity, managed
    /// identity, tests), cached like any other.
    #[must_use]
    pub fn from_token_source(source: impl TokenSource + 'static) -> Self {
        let settings = ConnectorSettings {
            auth_mode: Some(AuthMode::OAuth),
            ..ConnectorSettings::default()
        };
        Self::builder(&settings)
            .with_token_source(Arc::new(source))
            .build()
            .expect("a token source needs no other setting")
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
    /// `https://graph.microsoft.com/.default` ([`graph_scope`]) or [`SMTP_SCOPE`].
    ///
    /// # Errors
    ///
    /// [`Error::TokenRequest`] when Entra ID refuses (ask [`Error::remedy`]),
    /// [`Error::TokenEndpoint`] when it cannot be reached, and
    /// [`Error::InvalidSettings`] naming `auth_mode` for Basic or anonymous credentials.
    pub async fn access_token(&self, scope: &str) -> Result<AccessToken> {
        let Inner::OAuth(oauth) = &*self.inner else {
            return Err(missing((
                "auth_mode",
                "access tokens need Authentication Mode OAuth (`auth_mode = \"oauth\"`)",
            )));
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
            .unwrap_or(crate::settings::Cloud::Global.authority_host());
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
