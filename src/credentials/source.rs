//! [`TokenSource`]: where access tokens come from.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::credentials::token::AccessToken;
use crate::error::{Error, Result};

/// Fetches access tokens: Entra ID with a client secret or certificate, or a source of your
/// own (workload identity, managed identity, a test double).
///
/// [`Credentials`](crate::Credentials) caches what a source returns, makes concurrent
/// callers share one fetch and refreshes ahead of expiry, so a source simply fetches a new
/// token each time it is asked.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use async_trait::async_trait;
/// use mail_connector::{AccessToken, Credentials, Result, TokenSource};
///
/// /// Reads a token that a sidecar keeps fresh in a file.
/// #[derive(Debug)]
/// struct SidecarToken;
///
/// #[async_trait]
/// impl TokenSource for SidecarToken {
///     async fn fetch_token(&self, _scope: &str) -> Result<AccessToken> {
///         Ok(AccessToken::new("token-from-sidecar", SystemTime::now() + Duration::from_secs(3600)))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let credentials = Credentials::from_token_source(SidecarToken);
/// let token = credentials.access_token(mail_connector::SMTP_SCOPE).await?;
/// assert_eq!(token.expose_secret(), "token-from-sidecar");
/// # Ok::<(), mail_connector::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// Fetches a new token for `scope` (e.g. `https://graph.microsoft.com/.default`).
    ///
    /// # Errors
    ///
    /// Any [`Error`](crate::Error); the token variants (`TokenRequest`, `TokenEndpoint`,
    /// `InvalidCredential`) give admins the best remedies.
    async fn fetch_token(&self, scope: &str) -> Result<AccessToken>;
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
/// and report `Retry-After`) or any [`TokenSource`].
#[async_trait]
pub(crate) trait Fetch: Send + Sync + std::fmt::Debug {
    async fn fetch(&self, scope: &str, attempts: Attempts) -> Result<AccessToken, FetchFailure>;
}

/// A caller's [`TokenSource`]: its own retries (if any) cannot be skipped, and it reports
/// no `Retry-After`.
#[derive(Debug)]
pub(crate) struct CustomSource(pub(crate) Arc<dyn TokenSource>);

#[async_trait]
impl Fetch for CustomSource {
    async fn fetch(&self, scope: &str, _: Attempts) -> Result<AccessToken, FetchFailure> {
        self.0.fetch_token(scope).await.map_err(FetchFailure::from)
    }
}
