//! Settings → credentials: the sign-in the Authentication Mode describes — the app
//! registration's secret or certificate, a managed or workload identity, or a user name and
//! password — for the transports `build` makes, or for a caller to configure further.

use super::{AuthMode, ConnectorSettings, non_blank};
use crate::credentials::{Credentials, CredentialsBuilder};
use crate::error::{Error, Result};
use crate::secret::Secret;

impl ConnectorSettings {
    /// The credentials the Authentication Mode describes: for `oauth` the app registration's
    /// client secret or certificate (see [`credentials_builder`](Self::credentials_builder)),
    /// for `basic` `user_name` and `password`, for `none` nothing.
    ///
    /// # Errors
    ///
    /// As [`CredentialsBuilder::build`]; [`Error::InvalidSettings`] naming `auth_mode` when it
    /// is not set.
    #[cfg(feature = "oauth")]
    pub fn credentials(&self) -> Result<Credentials> {
        match self.auth_mode {
            Some(AuthMode::OAuth) => self.credentials_builder()?.build(),
            // The login is the mailbox's address, without a display name User Name may have.
            Some(AuthMode::Basic) => Credentials::basic(
                self.sender().map_or_else(
                    |_| {
                        non_blank(self.user_name.as_deref())
                            .unwrap_or_default()
                            .to_owned()
                    },
                    |mailbox| mailbox.address().to_owned(),
                ),
                self.password.clone().unwrap_or_default(),
            ),
            Some(AuthMode::None) => Ok(Credentials::anonymous()),
            None => Err(Error::settings(
                "auth_mode",
                "Authentication Mode (`auth_mode`) is required: choose `oauth`, `basic` or `none`",
            )),
        }
    }

    /// A builder for the OAuth credentials these settings describe — by
    /// [`oauth_credential_kind`](Self::oauth_credential_kind): the app registration's client
    /// secret (`client_secret`, or `client_secret_file` read at every token request) or
    /// certificate (the certificate files), with `tenant_id` and `oauth_client_id`; the
    /// resource's managed identity (`managed_identity_client_id`,
    /// `managed_identity_endpoint`); or workload identity federation (`federated_token_file`,
    /// with the `AZURE_*` variables filling what the settings lack) — with `authority_host` or
    /// `cloud`, `tls_ca_file` and
    /// `client_secret_expires`, to configure further (a shared cache store, an HTTP client)
    /// before building.
    ///
    /// # Errors
    ///
    /// None today; the builder reports missing values when it is built.
    #[cfg(feature = "oauth")]
    pub fn credentials_builder(&self) -> Result<CredentialsBuilder> {
        use super::OAuthCredential;

        let tenant = non_blank(self.tenant_id.as_deref()).unwrap_or_default();
        let client = non_blank(self.oauth_client_id.as_deref()).unwrap_or_default();
        let builder = match self.oauth_credential_kind() {
            Some(OAuthCredential::ManagedIdentity) => {
                let mut builder = Credentials::managed_identity();
                if let Some(id) = non_blank(self.managed_identity_client_id.as_deref()) {
                    builder = builder.managed_identity_client_id(id);
                }
                if let Some(endpoint) = non_blank(self.managed_identity_endpoint.as_deref()) {
                    builder = builder.managed_identity_endpoint(endpoint);
                }
                builder
            }
            Some(OAuthCredential::Certificate) => {
                match (&self.client_certificate_file, &self.client_private_key_file) {
                    (Some(certificate), Some(key)) => {
                        Credentials::client_certificate(tenant, client, certificate, key)
                    }
                    _ => Credentials::client_secret(tenant, client, Secret::default()),
                }
            }
            Some(OAuthCredential::WorkloadIdentity) => {
                let ids = self.workload_identity(|name| std::env::var(name).ok());
                let builder = Credentials::workload_identity(
                    ids.tenant_id.unwrap_or_default(),
                    ids.client_id.unwrap_or_default(),
                    ids.token_file.unwrap_or_default(),
                );
                // The webhook's login host, unless the settings name one (or a cloud).
                return Ok(self.common_credentials(
                    builder.authority_host(
                        ids.authority_host
                            .unwrap_or_else(|| self.authority_host().to_owned()),
                    ),
                ));
            }
            Some(OAuthCredential::Secret) if self.client_secret_file.is_some() => {
                Credentials::client_secret_file(
                    tenant,
                    client,
                    self.client_secret_file.clone().unwrap_or_default(),
                )
            }
            _ => Credentials::client_secret(
                tenant,
                client,
                self.client_secret.clone().unwrap_or_default(),
            ),
        }
        .authority_host(self.authority_host());
        Ok(self.common_credentials(builder))
    }

    /// What every OAuth credential takes from the settings besides its own fields.
    #[cfg(feature = "oauth")]
    fn common_credentials(&self, mut builder: CredentialsBuilder) -> CredentialsBuilder {
        if let Some(path) = &self.tls_ca_file {
            builder = builder.tls_ca_file(path);
        }
        if let Some(date) = self.client_secret_expires {
            builder = builder.secret_expiry(date);
        }
        builder
    }
}
