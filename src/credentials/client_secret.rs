//! [`ClientSecretCredential`]: the client-credentials grant with a shared secret.

use async_trait::async_trait;

use crate::credentials::endpoint::TokenEndpoint;
use crate::credentials::source::{Attempts, Fetch, FetchFailure};
use crate::credentials::token::AccessToken;
use crate::error::Result;
use crate::secret::Secret;

/// Fetches tokens from Entra ID with an app registration's client secret
/// (`grant_type=client_credentials`, `client_id`, `client_secret`, `scope`).
///
/// Made by [`Credentials::client_secret`](crate::Credentials::client_secret); `Debug`
/// shows the endpoint and client id, never the secret.
#[derive(Debug, Clone)]
pub struct ClientSecretCredential {
    endpoint: TokenEndpoint,
    client_id: String,
    secret: Secret,
}

impl ClientSecretCredential {
    pub(crate) fn new(endpoint: TokenEndpoint, client_id: String, secret: Secret) -> Self {
        Self {
            endpoint,
            client_id,
            secret,
        }
    }
}

#[async_trait]
impl Fetch for ClientSecretCredential {
    async fn fetch(&self, scope: &str, attempts: Attempts) -> Result<AccessToken, FetchFailure> {
        self.endpoint
            .request(scope, attempts, || {
                Ok(vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", self.client_id.clone()),
                    ("client_secret", self.secret.expose_secret().to_owned()),
                    ("scope", scope.to_owned()),
                ])
            })
            .await
    }
}
