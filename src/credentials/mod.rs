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
//!    **Application** permissions → `Mail.Send`* (and `Mail.ReadWrite` if you send mail
//!    whose attachments come to about 3 MB or more, one or several together, or mail in
//!    Graph's MIME form over 2 MB: such mail goes through a draft, a large attachment
//!    through an upload session). A *Delegated*
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
//! # Workload identity federation
//!
//! No secret at all: the app registration trusts a token the workload already has — a
//! Kubernetes service-account token, a GitHub Actions OIDC token, any OIDC issuer's — and that
//! token, read from a file at every token request, is the client assertion. In the app
//! registration (or a user-assigned managed identity) open *Certificates & secrets →
//! Federated credentials → Add credential* and enter, exactly as they appear in the
//! workload's token:
//! - **Issuer** (`iss`): on AKS the cluster's OIDC issuer URL
//!   (`az aks show --query oidcIssuerProfile.issuerUrl`); for GitHub Actions
//!   `https://token.actions.githubusercontent.com`;
//! - **Subject identifier** (`sub`): on AKS `system:serviceaccount:{namespace}:{service account}`;
//!   for GitHub Actions e.g. `repo:{org}/{repo}:environment:{environment}`;
//! - **Audience** (`aud`): `api://AzureADTokenExchange`.
//!
//! Then add `Mail.Send` and grant admin consent as above. On AKS, label the pod
//! `azure.workload.identity/use: "true"` and annotate its service account with
//! `azure.workload.identity/client-id`; the webhook then sets `AZURE_CLIENT_ID`,
//! `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE` and `AZURE_AUTHORITY_HOST`, which
//! [`Credentials::workload_identity_from_env`] reads. Elsewhere use
//! [`Credentials::workload_identity`] with the token file's path. A token whose issuer,
//! subject or audience matches no federated credential is refused with AADSTS700211, 700213 or
//! 700212, and an expired one (a file no longer rotated) with AADSTS700024;
//! [`Error::remedy`] names the field to fix.
//!
//! # A secret a vault rotates
//!
//! When a secret cannot be avoided, let a vault own it: mount the Key Vault secret into the
//! container (the Secrets Store CSI driver) or have a vault agent write it to a file, and use
//! [`Credentials::client_secret_file`]. The file is read at every token request, so a rotated
//! secret is used without a restart; errors and `check` name the file, never its content. Set
//! [`CredentialsBuilder::secret_expiry`] only if the expiry is known. With a certificate,
//! `check` reads its notAfter and warns 30 days ahead.
//!
//! # Caching
//!
//! Tokens are cached per (credential kind, login host, tenant, client id, scope) and reused
//! until [`CredentialsBuilder::refresh_margin`] (5 minutes, at most half the token's
//! lifetime) before they expire. When a token is missing or expired, one request goes to Entra ID while
//! concurrent callers wait for its result. A token that is due but still valid is refreshed
//! with a single request (no retries) while other callers keep using it; if that refresh
//! fails, the cached token is used and the next attempt waits for the endpoint's
//! `Retry-After` or [`CredentialsBuilder::refresh_cooldown`] (30 seconds). Only an
//! expired token makes callers fail. A transport that gets 401 (Graph) or 535 (SMTP) calls
//! [`Credentials::invalidate`]. The token endpoint's 429, 5xx and transient Entra errors
//! (`temporarily_unavailable`, tenant throttling) are retried, waiting at least its
//! `Retry-After`; a wait that outlasts the retries stays on the error
//! ([`Error::retry_after`]), so that a queue does not ask sooner.
//!
//! The token endpoint is trusted no further than needed: redirects are not followed (the
//! form carries the secret), answers over 64 KiB are not read, a lifetime (`expires_in`,
//! `refresh_in`) over a day counts as a day, and any text it sends back is cleaned of the
//! secret or assertion (raw or form-encoded) before it reaches an error or a log.
//!
//! Callers that waited for a fetch that failed get a clone of its error: the same variant,
//! fields, source chain, [`Error::is_auth`] and [`Error::remedy`] as the fetching caller.
//!
//! # Managed identity
//!
//! On Azure no secret needs to be in the configuration at all:
//! [`Credentials::managed_identity`] gets tokens from the host itself — the instance metadata
//! service on VMs, scale sets and AKS nodes ([`IMDS_ENDPOINT`]), or App Service's endpoint
//! (Functions, Container Apps too) when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set.
//! No tenant id or client id is needed: a managed identity has no app registration.
//!
//! 1. **Enable the identity.** On the VM, scale set or app open *Identity*: turn
//!    *System assigned* on, or add a *User assigned* identity and put its *Client ID* into
//!    [`managed_identity_client_id`](CredentialsBuilder::managed_identity_client_id).
//! 2. **Grant `Mail.Send` as an app role.** The portal's *API permissions* page does not
//!    exist for a managed identity, so the application permission is an *app role
//!    assignment* on its service principal, made by an admin with Microsoft Graph PowerShell:
//!
//!    ```text
//!    Connect-MgGraph -Scopes AppRoleAssignment.ReadWrite.All,Application.Read.All
//!    $graph = Get-MgServicePrincipal -Filter "appId eq '00000003-0000-0000-c000-000000000000'"
//!    $role  = $graph.AppRoles | Where-Object { $_.Value -eq 'Mail.Send' -and $_.AllowedMemberTypes -contains 'Application' }
//!    New-MgServicePrincipalAppRoleAssignment -ServicePrincipalId <identity's object id> `
//!        -PrincipalId <identity's object id> -ResourceId $graph.Id -AppRoleId $role.Id
//!    ```
//!
//!    or with the Graph API: `POST /servicePrincipals/{identity's object id}/appRoleAssignments`
//!    with `principalId`, `resourceId` (Microsoft Graph's service principal) and `appRoleId`.
//!    For SMTP, assign Office 365 Exchange Online's `SMTP.SendAsApp` the same way.
//! 3. **Limit it to one mailbox** (recommended) with Exchange Online *RBAC for
//!    Applications*: a management role assignment of *Application Mail.Send* to the
//!    identity's service principal, scoped to the mailboxes it may send from.
//!
//! `check` names the identity (system- or user-assigned) and the endpoint its tokens come
//! from — never the App Service header — and says which of these steps is missing: no
//! identity on this host (the endpoint is unreachable, or says none is assigned), a
//! user-assigned identity not attached to this resource, or no `Mail.Send` app role.
//! [`managed_identity_endpoint`](CredentialsBuilder::managed_identity_endpoint) points at
//! another endpoint (tests, unusual hosts).
//!
//! ```
//! use mail_connector::Credentials;
//!
//! // On an App Service the environment names the endpoint; elsewhere IMDS is asked.
//! let credentials = Credentials::managed_identity().build()?;
//! assert!(credentials.is_oauth());
//! # Ok::<(), mail_connector::Error>(())
//! ```
//!
//! # Standing alone
//!
//! [`Credentials::client_secret`], [`Credentials::client_secret_file`],
//! [`Credentials::client_certificate`], [`Credentials::workload_identity`],
//! [`Credentials::managed_identity`] and [`Credentials::token_provider`] build OAuth
//! credentials from their own arguments;
//! [`ConnectorSettings::credentials`](crate::ConnectorSettings::credentials) maps the admin
//! screen onto them. This module never reads the settings.

mod builder;
mod cache;
mod certificate;
mod check;
mod claims;
mod client_secret;
mod endpoint;
mod entra_error;
mod federated;
mod file;
mod managed_identity;
mod source;
mod token;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use builder::CredentialsBuilder;
use builder::{AppCredential, OAuth};
pub use cache::{InMemoryTokenCache, TokenCacheStore};
pub use certificate::AssertionAlgorithm;
pub use claims::TokenClaims;
pub use entra_error::EntraError;
pub use managed_identity::IMDS_ENDPOINT;
pub use source::TokenProvider;
pub use token::AccessToken;

use crate::check::CheckStep;
use crate::error::{Error, Result};
use crate::secret::Secret;
use cache::TokenCache;
#[cfg(any(feature = "graph", feature = "smtp"))]
pub(crate) use source::timeout_remedy;
#[cfg(feature = "graph")]
pub(crate) use source::token_timeout;

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
pub const DEFAULT_AUTHORITY_HOST: &str = crate::net::GLOBAL_LOGIN_HOST;

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
    /// Boxed: far larger than the other variants, and behind an `Arc` anyway.
    OAuth(Box<OAuth>),
    Basic {
        user_name: String,
        password: Secret,
    },
    Anonymous,
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
    /// token request carries a fresh signed assertion. [`build`](CredentialsBuilder::build)
    /// refuses a key that is not the certificate's (a renewed certificate beside the old
    /// key), naming `client_private_key_file`.
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
    /// identity, a test), cached like any other; configure the cache with the builder. Its
    /// tokens are shared through a [`cache_store`](CredentialsBuilder::cache_store) only
    /// when [`app`](CredentialsBuilder::app) names the app they sign in as.
    pub fn token_provider(source: Arc<dyn TokenProvider>) -> CredentialsBuilder {
        CredentialsBuilder::new(String::new(), String::new(), AppCredential::Source(source))
    }

    /// OAuth credentials whose tokens come from `source`, with the default cache.
    #[must_use]
    pub fn from_token_provider(source: impl TokenProvider + 'static) -> Self {
        let cache = TokenCache::new(
            Arc::new(InMemoryTokenCache::new()),
            DEFAULT_REFRESH_MARGIN,
            DEFAULT_REFRESH_COOLDOWN,
        );
        let oauth = OAuth::from_source(Arc::new(source), cache, None, None);
        Self {
            inner: Arc::new(Inner::OAuth(Box::new(oauth))),
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
                crate::fields::BASIC_USER_REQUIRED,
            ));
        }
        if password.is_empty() {
            return Err(Error::settings(
                "password",
                crate::fields::PASSWORD_REQUIRED,
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
        // The common case first, without setting up a fetch.
        if let Some(token) = self.ready_token(scope) {
            return Ok(token);
        }
        oauth
            .cache
            .get_or_fetch(&oauth.key_prefix, scope, |attempts| async move {
                let fetched = oauth.source.fetch(scope, attempts).await;
                crate::metrics::token_fetched(oauth.kind.cache_tag(), fetched.is_ok());
                fetched
            })
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
}

/// The cached tokens of these credentials, for any transport. Basic and anonymous
/// credentials have no tokens: [`token`](TokenProvider::token) fails naming `auth_mode`.
#[async_trait::async_trait]
impl TokenProvider for Credentials {
    async fn token(&self, scope: &str) -> Result<AccessToken> {
        self.access_token(scope).await
    }

    /// The cached token for `scope` while it is fresh (or still valid while a failed
    /// refresh cools down): what [`access_token`](Credentials::access_token) returns without
    /// fetching.
    fn ready_token(&self, scope: &str) -> Option<AccessToken> {
        match &*self.inner {
            Inner::OAuth(oauth) => oauth.cache.cached(scope),
            _ => None,
        }
    }

    fn invalidate(&self, token: &AccessToken) {
        Credentials::invalidate(self, token);
    }

    async fn check_steps(&self, scope: &str, required_roles: &[&str]) -> Vec<CheckStep> {
        Credentials::check_steps(self, scope, required_roles).await
    }

    fn token_endpoint(&self) -> Option<&str> {
        Credentials::token_endpoint(self)
    }

    fn timeout_remedy(&self) -> Option<String> {
        match &*self.inner {
            Inner::OAuth(oauth) => Some(oauth.timeout_remedy.clone()),
            _ => None,
        }
    }

    fn permission_remedy(&self) -> Option<String> {
        match &*self.inner {
            Inner::OAuth(oauth) => oauth.kind.permission_remedy(),
            _ => None,
        }
    }
}
