//! [`TokenSource`]: where access tokens come from.

use async_trait::async_trait;

use crate::credentials::token::AccessToken;
use crate::error::Result;

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
