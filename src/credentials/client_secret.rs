//! [`ClientSecretCredential`]: the client-credentials grant with a shared secret, given as a
//! value or kept in a file that a vault rotates (read again for every token request).

use std::path::PathBuf;

use async_trait::async_trait;

use crate::credentials::builder::AppCredential;
use crate::credentials::endpoint::TokenEndpoint;
use crate::credentials::file::read_credential_file;
use crate::credentials::source::{Attempts, Fetch, FetchFailure};
use crate::credentials::token::AccessToken;
use crate::credentials::{Credentials, CredentialsBuilder};
use crate::error::Result;
use crate::secret::Secret;

/// Fetches tokens from Entra ID with an app registration's client secret
/// (`grant_type=client_credentials`, `client_id`, `client_secret`, `scope`).
///
/// Made by [`Credentials::client_secret`](crate::Credentials::client_secret) or
/// [`Credentials::client_secret_file`](crate::Credentials::client_secret_file); `Debug`
/// shows the endpoint, client id and the secret's file (if any), never the secret.
#[derive(Debug, Clone)]
pub struct ClientSecretCredential {
    endpoint: TokenEndpoint,
    client_id: String,
    secret: SecretSource,
}

/// Where the secret comes from.
#[derive(Debug, Clone)]
enum SecretSource {
    /// Given once, at start-up.
    Value(Secret),
    /// Read from this file at each token request, so a rotated secret is used at once.
    File(PathBuf),
}

/// What to do about an unreadable or empty secret file.
const SECRET_FILE_FIX: &str = "check `client_secret_file`: it must name a file this process can read holding the client secret's Value (e.g. a Key Vault secret mounted by the Secrets Store CSI driver or written by a vault agent)";

impl ClientSecretCredential {
    pub(crate) fn new(endpoint: TokenEndpoint, client_id: String, secret: Secret) -> Self {
        Self {
            endpoint,
            client_id,
            secret: SecretSource::Value(secret),
        }
    }

    pub(crate) fn from_file(endpoint: TokenEndpoint, client_id: String, path: PathBuf) -> Self {
        Self {
            endpoint,
            client_id,
            secret: SecretSource::File(path),
        }
    }

    /// The secret to send now: the value, or the file's current content.
    async fn current_secret(&self) -> Result<Secret> {
        match &self.secret {
            SecretSource::Value(secret) => Ok(secret.clone()),
            SecretSource::File(path) => {
                read_credential_file("client_secret_file", "client secret", path, SECRET_FILE_FIX)
                    .await
            }
        }
    }
}

#[async_trait]
impl Fetch for ClientSecretCredential {
    async fn fetch(&self, scope: &str, attempts: Attempts) -> Result<AccessToken, FetchFailure> {
        let secret = self.current_secret().await?;
        self.endpoint
            .request(scope, attempts, || {
                Ok(vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", self.client_id.clone()),
                    ("client_secret", secret.expose_secret().to_owned()),
                    ("scope", scope.to_owned()),
                ])
            })
            .await
    }
}

impl Credentials {
    /// OAuth credentials of an app registration whose client secret is kept in a file that a
    /// vault rotates — for example a Key Vault secret mounted by the Secrets Store CSI driver.
    /// The file is read (and trimmed) at each token request, so a new secret is used without a
    /// restart; errors name the file, never its content. Expiry warnings in `check` need
    /// [`CredentialsBuilder::secret_expiry`], since a rotated secret's date is not known here.
    ///
    /// ```
    /// use mail_connector::Credentials;
    ///
    /// let credentials = Credentials::client_secret_file(
    ///     "contoso.onmicrosoft.com",
    ///     "00000000-0000-0000-0000-000000000001",
    ///     "/mnt/secrets-store/mail-client-secret",
    /// )
    /// .build()?; // the file is first read at the first token request
    /// assert!(credentials.is_oauth());
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    pub fn client_secret_file(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> CredentialsBuilder {
        CredentialsBuilder::new(
            tenant_id.into(),
            client_id.into(),
            AppCredential::SecretFile(path.into()),
        )
    }
}
