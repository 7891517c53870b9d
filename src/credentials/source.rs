//! [`TokenProvider`]: where access tokens come from.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::BoxFuture;
use crate::check::CheckStep;
use crate::credentials::token::AccessToken;
use crate::error::{Error, Result};

/// Gives access tokens for a scope, and hears when a server rejected one: the one token
/// trait every transport consumes.
///
/// [`Credentials`](crate::Credentials) implements it with a cache in front of Entra ID (a
/// client secret or certificate). Bring your own — a workload identity, a managed identity, a
/// sidecar, a test double — and either hand it to a transport as it is, or put the same cache
/// in front of it with [`Credentials::from_token_provider`](crate::Credentials::from_token_provider)
/// (concurrent callers share one fetch, tokens are refreshed ahead of expiry), so that it
/// simply fetches a new token each time it is asked.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use mail_connector::{AccessToken, Credentials, Result, TokenProvider, async_trait};
///
/// /// Reads a token that a sidecar keeps fresh in a file.
/// #[derive(Debug)]
/// struct SidecarToken;
///
/// #[async_trait]
/// impl TokenProvider for SidecarToken {
///     async fn token(&self, _scope: &str) -> Result<AccessToken> {
///         Ok(AccessToken::new("token-from-sidecar", SystemTime::now() + Duration::from_secs(3600)))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let credentials = Credentials::from_token_provider(SidecarToken);
/// let token = credentials.token(mail_connector::credentials::SMTP_SCOPE).await?;
/// assert_eq!(token.expose_secret(), "token-from-sidecar");
/// # Ok::<(), mail_connector::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait TokenProvider: Send + Sync + std::fmt::Debug {
    /// A token for `scope` (e.g. `https://graph.microsoft.com/.default`).
    ///
    /// # Errors
    ///
    /// Any [`Error`](crate::Error). A provider outside this crate makes one with
    /// [`Error::transport`](crate::Error::transport), and says what to fix with
    /// [`with_remedy`](crate::Error::with_remedy), a refused credential with
    /// [`with_auth`](crate::Error::with_auth) and a server's `Retry-After` with
    /// [`with_retry_after`](crate::Error::with_retry_after): callers read those as they read
    /// the crate's own token errors.
    async fn token(&self, scope: &str) -> Result<AccessToken>;

    /// The token [`token`](Self::token) would return at once for `scope`, when the provider
    /// has one at hand (a cached, fresh token): callers on a hot path ask this first and skip
    /// `token`'s boxed future. `None` means only that `token` must be asked. The default
    /// always says `None`.
    fn ready_token(&self, scope: &str) -> Option<AccessToken> {
        let _ = scope;
        None
    }

    /// A server refused `token` (Graph 401, SMTP 535): forget it if it is kept, so that the
    /// next [`token`](Self::token) gets a new one. Many callers may report the same token.
    /// The default does nothing.
    fn invalidate(&self, token: &AccessToken) {
        let _ = token;
    }

    /// Steps for a transport's `check` about these tokens (can one be had, does it carry
    /// `required_roles`, does a secret expire soon). The default reports nothing.
    async fn check_steps(&self, scope: &str, required_roles: &[&str]) -> Vec<CheckStep> {
        let _ = (scope, required_roles);
        Vec::new()
    }

    /// Where tokens come from, for error messages (e.g. the token endpoint's URL).
    fn token_endpoint(&self) -> Option<&str> {
        None
    }

    /// What to check when no token came in time (a send's deadline passed while this
    /// provider was asked): where its tokens come from, named as an admin knows it. The
    /// default, `None`, has the caller say that the token provider gave no token and to check
    /// the service it gets its tokens from.
    fn timeout_remedy(&self) -> Option<String> {
        None
    }

    /// How to grant Microsoft Graph's `Mail.Send` to the identity behind these tokens, when
    /// that is not through an app registration's API permissions page (a managed identity
    /// has none): it replaces those steps in the remedy of Graph's 403. The default, `None`,
    /// keeps them.
    fn permission_remedy(&self) -> Option<String> {
        None
    }
}

/// Forwards to the inner provider, handing back its futures as they are (no second box).
impl<T: TokenProvider + ?Sized> TokenProvider for Arc<T> {
    fn token<'life0, 'life1, 'async_trait>(
        &'life0 self,
        scope: &'life1 str,
    ) -> BoxFuture<'async_trait, Result<AccessToken>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).token(scope)
    }

    fn ready_token(&self, scope: &str) -> Option<AccessToken> {
        (**self).ready_token(scope)
    }

    fn invalidate(&self, token: &AccessToken) {
        (**self).invalidate(token);
    }

    fn check_steps<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        scope: &'life1 str,
        required_roles: &'life2 [&'life3 str],
    ) -> BoxFuture<'async_trait, Vec<CheckStep>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        (**self).check_steps(scope, required_roles)
    }

    fn token_endpoint(&self) -> Option<&str> {
        (**self).token_endpoint()
    }

    fn timeout_remedy(&self) -> Option<String> {
        (**self).timeout_remedy()
    }

    fn permission_remedy(&self) -> Option<String> {
        (**self).permission_remedy()
    }
}

/// What to check when a token provider that does not say where its tokens come from gave
/// none in time.
pub(crate) const PROVIDER_TIMEOUT_REMEDY: &str = "the token provider (the application's own \
    `TokenProvider`) gave no token in time: check the service it gets its tokens from, and \
    that this machine can reach it";

/// What to check when `tokens` gave no token in time: its own remedy, or the generic one.
#[cfg(any(feature = "graph", feature = "smtp"))]
pub(crate) fn timeout_remedy(tokens: &dyn TokenProvider) -> String {
    tokens
        .timeout_remedy()
        .unwrap_or_else(|| PROVIDER_TIMEOUT_REMEDY.to_owned())
}

/// No token from `tokens` within `deadline`: blames where its tokens come from (the login
/// host, a managed identity endpoint, a caller's provider), with the provider's remedy.
#[cfg(feature = "graph")]
pub(crate) fn token_timeout(tokens: &dyn TokenProvider, deadline: Duration) -> Error {
    let remedy = timeout_remedy(tokens);
    Error::TokenEndpoint {
        endpoint: tokens
            .token_endpoint()
            .unwrap_or("the token provider")
            .to_owned(),
        reason: format!("no access token within the send deadline of {deadline:?}"),
        transient: true,
        advice: crate::error::Advice::remedy(Some(remedy)),
    }
}

/// How hard one fetch should try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempts {
    /// There is no usable token: retry transient failures per the retry policy.
    Retry,
    /// A still-valid token is at hand (this is a refresh ahead of expiry): one request, no
    /// retries and no `Retry-After` waits, so the caller is never held up for long.
    Once,
}

/// A failed fetch, with the server's `Retry-After` when it sent one.
#[derive(Debug)]
pub(crate) struct FetchFailure {
    pub(crate) error: Error,
    pub(crate) retry_after: Option<Duration>,
}

impl From<Error> for FetchFailure {
    fn from(error: Error) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// What the cache calls to get a token: the built-in flows (which can skip their retries
/// and report `Retry-After`) or any [`TokenProvider`].
#[async_trait]
pub(crate) trait Fetch: Send + Sync + std::fmt::Debug {
    async fn fetch(&self, scope: &str, attempts: Attempts) -> Result<AccessToken, FetchFailure>;
}

/// A caller's [`TokenProvider`] behind the cache: its own retries (if any) cannot be
/// skipped, and it reports no `Retry-After`.
#[derive(Debug)]
pub(crate) struct CustomSource(pub(crate) Arc<dyn TokenProvider>);

#[async_trait]
impl Fetch for CustomSource {
    async fn fetch(&self, scope: &str, _: Attempts) -> Result<AccessToken, FetchFailure> {
        self.0.token(scope).await.map_err(FetchFailure::from)
    }
}
