//! [`WorkloadIdentityCredential`]: workload identity federation. The workload's own token —
//! issued by Kubernetes, GitHub Actions or any OIDC issuer the app registration trusts, and
//! kept fresh in a file by that platform — is the client assertion of the client-credentials
//! grant, so no secret or certificate is stored anywhere.
//!
//! The file is read again for every token request: the platform rotates it (AKS projects a new
//! service-account token about every hour), and an old one is refused with AADSTS700024.

use std::path::PathBuf;

use async_trait::async_trait;

use crate::credentials::builder::AppCredential;
use crate::credentials::certificate::JWT_BEARER;
use crate::credentials::endpoint::TokenEndpoint;
use crate::credentials::file::read_credential_file;
use crate::credentials::source::{Attempts, Fetch, FetchFailure};
use crate::credentials::token::AccessToken;
use crate::credentials::{Credentials, CredentialsBuilder};
use crate::error::{Error, Result};

/// The environment variables the AKS workload-identity webhook sets.
const CLIENT_ID_VAR: &str = "AZURE_CLIENT_ID";
const TENANT_ID_VAR: &str = "AZURE_TENANT_ID";
const TOKEN_FILE_VAR: &str = "AZURE_FEDERATED_TOKEN_FILE";
const AUTHORITY_HOST_VAR: &str = "AZURE_AUTHORITY_HOST";

/// What to do about an unreadable or empty token file.
const TOKEN_FILE_FIX: &str = "check `federated_token_file` (AZURE_FEDERATED_TOKEN_FILE): on AKS the workload-identity webhook mounts the token when the pod is labelled `azure.workload.identity/use: \"true\"` and runs under a service account annotated with `azure.workload.identity/client-id`; elsewhere, the platform that issues the workload's token must write it to this file";

/// Fetches tokens from Entra ID with the workload's own token as the client assertion
/// (`client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`).
///
/// Made by [`Credentials::workload_identity`]; `Debug` shows the endpoint, client id and the
/// token file's path, never the token.
#[derive(Debug, Clone)]
pub struct WorkloadIdentityCredential {
    endpoint: TokenEndpoint,
    client_id: String,
    token_file: PathBuf,
}

impl WorkloadIdentityCredential {
    pub(crate) fn new(endpoint: TokenEndpoint, client_id: String, token_file: PathBuf) -> Self {
        Self {
            endpoint,
            client_id,
            token_file,
        }
    }
}

#[async_trait]
impl Fetch for WorkloadIdentityCredential {
    async fn fetch(&self, scope: &str, attempts: Attempts) -> Result<AccessToken, FetchFailure> {
        let assertion = read_credential_file(
            "federated_token_file",
            "federated token",
            &self.token_file,
            TOKEN_FILE_FIX,
        )
        .await?;
        self.endpoint
            .request(scope, attempts, || {
                Ok(vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", self.client_id.clone()),
                    ("client_assertion_type", JWT_BEARER.to_owned()),
                    ("client_assertion", assertion.expose_secret().to_owned()),
                    ("scope", scope.to_owned()),
                ])
            })
            .await
    }
}

impl Credentials {
    /// OAuth credentials by workload identity federation: the app registration (or
    /// user-assigned managed identity) `client_id` in `tenant_id` trusts the workload's own
    /// token, which the platform keeps fresh in `token_file`. The file is read at each token
    /// request; nothing secret is configured.
    ///
    /// ```
    /// use mail_connector::Credentials;
    ///
    /// let credentials = Credentials::workload_identity(
    ///     "contoso.onmicrosoft.com",
    ///     "00000000-0000-0000-0000-000000000001",
    ///     "/var/run/secrets/azure/tokens/azure-identity-token",
    /// )
    /// .build()?; // the file is first read at the first token request
    /// assert!(credentials.is_oauth());
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    pub fn workload_identity(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        token_file: impl Into<PathBuf>,
    ) -> CredentialsBuilder {
        CredentialsBuilder::new(
            tenant_id.into(),
            client_id.into(),
            AppCredential::WorkloadIdentity(token_file.into()),
        )
    }

    /// [`Credentials::workload_identity`] from the environment variables the AKS
    /// workload-identity webhook sets: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE` and, if set, `AZURE_AUTHORITY_HOST`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] naming the first variable that is missing or empty.
    pub fn workload_identity_from_env() -> Result<CredentialsBuilder> {
        Self::workload_identity_from_vars(
            std::env::vars_os().filter_map(|(key, value)| {
                Some((key.into_string().ok()?, value.into_string().ok()?))
            }),
        )
    }

    /// [`Credentials::workload_identity_from_env`] from these `(name, value)` pairs instead
    /// of the process environment (other names are ignored).
    ///
    /// ```
    /// use mail_connector::Credentials;
    ///
    /// let builder = Credentials::workload_identity_from_vars([
    ///     ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
    ///     ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001"),
    ///     ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token"),
    /// ])?;
    /// assert!(builder.build()?.is_oauth());
    ///
    /// let error = Credentials::workload_identity_from_vars([("AZURE_TENANT_ID", "contoso.onmicrosoft.com")])
    ///     .unwrap_err();
    /// assert!(error.to_string().contains("AZURE_CLIENT_ID"));
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] naming the first variable that is missing or empty.
    pub fn workload_identity_from_vars<K, V>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<CredentialsBuilder>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (mut tenant, mut client, mut file, mut host) = (None, None, None, None);
        for (key, value) in vars {
            let value = value.as_ref().trim();
            if value.is_empty() {
                continue;
            }
            let slot = match key.as_ref() {
                TENANT_ID_VAR => &mut tenant,
                CLIENT_ID_VAR => &mut client,
                TOKEN_FILE_VAR => &mut file,
                AUTHORITY_HOST_VAR => &mut host,
                _ => continue,
            };
            *slot = Some(value.to_owned());
        }
        let required = |value: Option<String>, name: &'static str, what: &str| {
            value.ok_or_else(|| {
                Error::settings(
                    name,
                    format!(
                        "workload identity needs the environment variable `{name}` ({what}); the AKS workload-identity webhook sets it in pods labelled `azure.workload.identity/use: \"true\"` whose service account is annotated with `azure.workload.identity/client-id`"
                    ),
                )
            })
        };
        let client = required(
            client,
            CLIENT_ID_VAR,
            "the client id of the app registration or user-assigned managed identity with the federated credential",
        )?;
        let tenant = required(tenant, TENANT_ID_VAR, "the Directory (tenant) ID")?;
        let file = required(
            file,
            TOKEN_FILE_VAR,
            "the path of the workload's token file",
        )?;
        let builder = Self::workload_identity(tenant, client, file);
        Ok(match host {
            Some(host) => builder.authority_host(host),
            None => builder,
        })
    }
}
