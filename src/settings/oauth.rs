//! The OAuth credential the settings describe: its kind (`oauth_credential`, or inferred from
//! the fields set), what each kind requires, and the defaults workload identity federation
//! takes from the `AZURE_*` variables a Kubernetes workload-identity webhook sets.

use std::path::{Path, PathBuf};

use super::validate::{GuidForm, check_url, guid_form, problem, tenant_problem};
use super::{ConnectorSettings, OAuthCredential, non_blank};
use crate::error::SettingsProblem;
use crate::fields::{client_id_required, tenant_id_required};
use crate::secret::Secret;

/// What workload identity federation signs in with, from the settings or else the
/// environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WorkloadIdentity {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub token_file: Option<PathBuf>,
    pub authority_host: Option<String>,
    /// Whether `authority_host` came from `AZURE_AUTHORITY_HOST` rather than the settings.
    pub authority_host_from_env: bool,
}

/// The variable the workload-identity webhook sets to the login host.
const AUTHORITY_HOST_VAR: &str = "AZURE_AUTHORITY_HOST";

impl ConnectorSettings {
    /// How the app signs in for OAuth: `oauth_credential` when set, otherwise inferred from
    /// the fields set — certificate files → certificate; `client_secret` or
    /// `client_secret_file` → secret; `federated_token_file` → workload identity; a managed
    /// identity's client id or endpoint → managed identity. `None` when nothing says.
    #[must_use]
    pub fn oauth_credential_kind(&self) -> Option<OAuthCredential> {
        if self.oauth_credential.is_some() {
            return self.oauth_credential;
        }
        let secret = self.client_secret.as_ref().is_some_and(|s| !s.is_empty());
        if self.client_certificate_file.is_some() || self.client_private_key_file.is_some() {
            Some(OAuthCredential::Certificate)
        } else if secret || self.client_secret_file.is_some() {
            Some(OAuthCredential::Secret)
        } else if self.federated_token_file.is_some() {
            Some(OAuthCredential::WorkloadIdentity)
        } else if self.managed_identity_client_id.is_some()
            || self.managed_identity_endpoint.is_some()
        {
            Some(OAuthCredential::ManagedIdentity)
        } else {
            None
        }
    }

    /// Workload identity's tenant, client id, token file and login host: the settings'
    /// (for the login host: `authority_host`, or a `cloud` other than the global one), else
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` and
    /// `AZURE_AUTHORITY_HOST` as `env` gives them.
    pub(crate) fn workload_identity(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> WorkloadIdentity {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        // The settings' login host, or their cloud when it is not the default, win over the
        // environment's.
        let settings_host = non_blank(self.authority_host.as_deref())
            .map(str::to_owned)
            .or_else(|| {
                (self.cloud != super::Cloud::Global).then(|| self.cloud.authority_host().to_owned())
            });
        let authority_host_from_env = settings_host.is_none();
        WorkloadIdentity {
            tenant_id: non_blank(self.tenant_id.as_deref())
                .map(str::to_owned)
                .or_else(|| env("AZURE_TENANT_ID")),
            client_id: non_blank(self.oauth_client_id.as_deref())
                .map(str::to_owned)
                .or_else(|| env("AZURE_CLIENT_ID")),
            token_file: self
                .federated_token_file
                .clone()
                .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from)),
            authority_host: settings_host.or_else(|| env(AUTHORITY_HOST_VAR)),
            authority_host_from_env,
        }
    }

    /// Every problem with the OAuth credential, for [`validate`](Self::validate).
    pub(super) fn oauth_problems(&self, problems: &mut Vec<SettingsProblem>) {
        let when = "when Authentication Mode is OAuth";
        match self.oauth_credential_kind() {
            // Nothing says which kind: most admins follow the app-registration guide, so its
            // fields are reported too, and the credential's message names every kind.
            None => {
                self.app_registration_problems(problems, when, None);
                problem(
                    problems,
                    "client_secret",
                    format!(
                        "OAuth needs a credential {when}: a client secret (`client_secret`, or \
                         `client_secret_file`: create one under Certificates & secrets and copy \
                         its Value (not its Secret ID)), a certificate (`client_certificate_file` \
                         and `client_private_key_file`), `oauth_credential = \"managed_identity\"` \
                         on an Azure resource with a managed identity, or `oauth_credential = \
                         \"workload_identity\"` with a federated token file"
                    ),
                );
            }
            Some(OAuthCredential::Secret) => {
                self.app_registration_problems(problems, when, None);
                let secret = self
                    .client_secret
                    .as_ref()
                    .is_some_and(|s| !Secret::is_empty(s));
                match (&self.client_secret_file, secret) {
                    (Some(_), true) => problem(
                        problems,
                        "client_secret_file",
                        "set either Client secret (`client_secret`) or `client_secret_file`, not both",
                    ),
                    (Some(path), false) => {
                        file_problem(problems, "client_secret_file", "Client secret file", path)
                    }
                    // A secret's Value is never a GUID; its Secret ID, shown beside it, is.
                    (None, true)
                        if self.client_secret.as_ref().is_some_and(|secret| {
                            let secret = secret.expose_secret().trim();
                            // Only the hyphenated form the portal shows.
                            secret.len() == 36 && uuid::Uuid::try_parse(secret).is_ok()
                        }) =>
                    {
                        problem(
                            problems,
                            "client_secret",
                            "Client secret (`client_secret`) is a GUID, the shape of the \
                             secret's ID, not of its value: under Certificates & secrets copy the \
                             Value column (shown only when the secret is created; if it is gone, \
                             create a new secret)",
                        );
                    }
                    (None, true) => {}
                    (None, false) => problem(
                        problems,
                        "client_secret",
                        format!(
                            "Client secret (`client_secret`) or `client_secret_file` is required \
                             {when} with `oauth_credential = \"secret\"`: create a secret under \
                             Certificates & secrets and copy its Value (not its Secret ID)"
                        ),
                    ),
                }
            }
            Some(OAuthCredential::Certificate) => {
                self.app_registration_problems(problems, when, None);
                self.certificate_problems(problems);
            }
            Some(OAuthCredential::ManagedIdentity) => {
                // The identity is the Azure resource's: no app registration, tenant or secret.
                // The endpoint the builder will ask: the override, else App Service's.
                let (field, endpoint) = match non_blank(self.managed_identity_endpoint.as_deref()) {
                    Some(endpoint) => ("managed_identity_endpoint", Some(endpoint.to_owned())),
                    None => ("IDENTITY_ENDPOINT", std::env::var("IDENTITY_ENDPOINT").ok()),
                };
                if let Some(endpoint) = endpoint.filter(|e| !e.trim().is_empty())
                    && let Err(crate::error::Error::InvalidSettings {
                        problems: found, ..
                    }) =
                        crate::net::local_service_url(field, "Managed identity endpoint", &endpoint)
                {
                    problems.extend(found);
                }
            }
            Some(OAuthCredential::WorkloadIdentity) => {
                let ids = self.workload_identity(|name| std::env::var(name).ok());
                // The settings' `authority_host` is checked with the other hosts; one from
                // the environment gets the same checks, naming the variable.
                if ids.authority_host_from_env {
                    check_url(
                        problems,
                        AUTHORITY_HOST_VAR,
                        "Authority host from the environment",
                        ids.authority_host.as_deref(),
                        ids.tenant_id.as_deref(),
                    );
                }
                let when = "for workload identity federation (or set the environment variable \
                            the workload-identity webhook sets)";
                self.app_registration_problems(problems, when, Some(&ids));
                match &ids.token_file {
                    None => problem(
                        problems,
                        "federated_token_file",
                        "Federated token file (`federated_token_file`, or \
                         `AZURE_FEDERATED_TOKEN_FILE`) is required for workload identity \
                         federation: the file the platform writes the workload's token to",
                    ),
                    Some(path) => file_problem(
                        problems,
                        "federated_token_file",
                        "Federated token file",
                        path,
                    ),
                }
            }
        }
    }

    /// The client id and tenant an app registration needs (for workload identity, they may
    /// come from the environment instead).
    fn app_registration_problems(
        &self,
        problems: &mut Vec<SettingsProblem>,
        when: &str,
        workload: Option<&WorkloadIdentity>,
    ) {
        let client_id = match workload {
            Some(ids) => ids.client_id.clone(),
            None => non_blank(self.oauth_client_id.as_deref()).map(str::to_owned),
        };
        match client_id {
            None => problem(problems, "oauth_client_id", client_id_required(when)),
            Some(id) => match guid_form(&id) {
                GuidForm::Canonical => {}
                GuidForm::Other(canonical) => problem(
                    problems,
                    "oauth_client_id",
                    format!(
                        "OAuth Client ID (`oauth_client_id`) `{id}` is a GUID in a form Entra \
                         ID does not take: write it as `{canonical}`, as the app \
                         registration's Overview page shows it"
                    ),
                ),
                GuidForm::NotGuid => problem(
                    problems,
                    "oauth_client_id",
                    format!(
                        "OAuth Client ID (`oauth_client_id`) `{id}` is not a GUID: copy the \
                         Application (client) ID from the app registration's Overview page"
                    ),
                ),
            },
        }
        let tenant = match workload {
            Some(ids) => ids.tenant_id.clone(),
            None => non_blank(self.tenant_id.as_deref()).map(str::to_owned),
        };
        match tenant {
            None => problem(problems, "tenant_id", tenant_id_required(when)),
            Some(tenant) => {
                if let Some(message) = tenant_problem(&tenant) {
                    problem(problems, "tenant_id", message);
                }
            }
        }
    }

    /// A certificate needs both files, and both must exist.
    fn certificate_problems(&self, problems: &mut Vec<SettingsProblem>) {
        let files = [
            (
                "client_certificate_file",
                "Client certificate",
                &self.client_certificate_file,
            ),
            (
                "client_private_key_file",
                "Client private key",
                &self.client_private_key_file,
            ),
        ];
        for (field, label, path) in files {
            if let Some(path) = path {
                file_problem(problems, field, label, path);
            }
        }
        match (&self.client_certificate_file, &self.client_private_key_file) {
            (Some(_), None) => problem(
                problems,
                "client_private_key_file",
                "Client private key (`client_private_key_file`) is required with \
                 `client_certificate_file`: the PEM private key of that certificate",
            ),
            (None, Some(_)) => problem(
                problems,
                "client_certificate_file",
                "Client certificate (`client_certificate_file`) is required with \
                 `client_private_key_file`: the PEM certificate uploaded to the app registration",
            ),
            (None, None) => problem(
                problems,
                "client_certificate_file",
                "Client certificate (`client_certificate_file`) and private key \
                 (`client_private_key_file`) are required with `oauth_credential = \
                 \"certificate\"`: the PEM certificate uploaded to the app registration and its key",
            ),
            (Some(_), Some(_)) => {}
        }
    }
}

fn file_problem(problems: &mut Vec<SettingsProblem>, field: &str, label: &str, path: &Path) {
    if !path.is_file() {
        problem(
            problems,
            field,
            format!(
                "{label} (`{field}`) `{}` does not exist or is not a file",
                path.display()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_identity_takes_what_the_settings_lack_from_the_environment() {
        let settings = ConnectorSettings {
            tenant_id: Some("contoso.onmicrosoft.com".into()),
            ..ConnectorSettings::default()
        };
        let env = |name: &str| match name {
            "AZURE_TENANT_ID" => Some("from-env-tenant".to_owned()),
            "AZURE_CLIENT_ID" => Some("00000000-0000-0000-0000-000000000002".to_owned()),
            "AZURE_FEDERATED_TOKEN_FILE" => Some("/var/run/secrets/token".to_owned()),
            "AZURE_AUTHORITY_HOST" => Some("https://login.microsoftonline.com/".to_owned()),
            _ => None,
        };
        let ids = settings.workload_identity(env);
        assert_eq!(ids.tenant_id.as_deref(), Some("contoso.onmicrosoft.com"));
        assert_eq!(
            ids.client_id.as_deref(),
            Some("00000000-0000-0000-0000-000000000002")
        );
        assert_eq!(
            ids.token_file,
            Some(PathBuf::from("/var/run/secrets/token"))
        );
        assert_eq!(
            ids.authority_host.as_deref(),
            Some("https://login.microsoftonline.com/")
        );
    }

    #[test]
    fn the_kind_is_inferred_from_the_fields_set() {
        let mut settings = ConnectorSettings::default();
        assert_eq!(settings.oauth_credential_kind(), None);
        settings.managed_identity_client_id = Some("id".into());
        assert_eq!(
            settings.oauth_credential_kind(),
            Some(OAuthCredential::ManagedIdentity)
        );
        settings.federated_token_file = Some("token".into());
        assert_eq!(
            settings.oauth_credential_kind(),
            Some(OAuthCredential::WorkloadIdentity)
        );
        settings.client_secret_file = Some("secret".into());
        assert_eq!(
            settings.oauth_credential_kind(),
            Some(OAuthCredential::Secret)
        );
        settings.client_certificate_file = Some("cert.pem".into());
        assert_eq!(
            settings.oauth_credential_kind(),
            Some(OAuthCredential::Certificate)
        );
        settings.oauth_credential = Some(OAuthCredential::ManagedIdentity);
        assert_eq!(
            settings.oauth_credential_kind(),
            Some(OAuthCredential::ManagedIdentity)
        );
    }

    #[test]
    fn the_summary_names_the_credential_kind_and_source_never_its_value() {
        let mut settings = ConnectorSettings::from_toml_str(
            "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
             client_secret = \"s3cr3t-value-never-shown\"\n",
        )
        .unwrap();
        let summary = settings.summary();
        assert!(summary.contains("oauth (client secret)"), "{summary}");
        assert!(!summary.contains("s3cr3t"), "{summary}");
        settings.client_secret = None;
        settings.client_secret_file = Some("/run/secrets/mail".into());
        assert!(
            settings
                .summary()
                .contains("client secret from /run/secrets/mail")
        );
        settings.client_secret_file = None;
        settings.managed_identity_client_id = Some("5a5f1f5e-0000-0000-0000-000000000000".into());
        assert!(
            settings
                .summary()
                .contains("user-assigned managed identity 5a5f1f5e"),
            "{}",
            settings.summary()
        );
    }

    #[test]
    fn the_settings_cloud_wins_over_the_environments_login_host() {
        let settings = ConnectorSettings {
            cloud: super::super::Cloud::UsGov,
            ..ConnectorSettings::default()
        };
        let env = |name: &str| {
            (name == "AZURE_AUTHORITY_HOST").then(|| "https://login.microsoftonline.com".to_owned())
        };
        assert_eq!(
            settings.workload_identity(env).authority_host.as_deref(),
            Some("https://login.microsoftonline.us")
        );
        let global = ConnectorSettings::default();
        assert_eq!(
            global.workload_identity(env).authority_host.as_deref(),
            Some("https://login.microsoftonline.com")
        );
    }
}
