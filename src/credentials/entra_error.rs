//! The token endpoint's error body, and the setup step each AADSTS code points to.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Advice, Error};

/// The error body Microsoft Entra ID returns from its token endpoint.
///
/// Its facts go into [`Error::TokenRequest`] (with the trace and correlation ids support asks
/// for) together with the remedy from this module's table of AADSTS codes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EntraError {
    /// The OAuth error, e.g. `invalid_client`.
    pub error: String,
    /// Human text starting `AADSTSnnnnn: …`, for people (never parsed for logic).
    pub error_description: String,
    /// The AADSTS numbers, e.g. `[7000215]`.
    pub error_codes: Vec<u64>,
    /// Entra's trace id (a GUID).
    pub trace_id: Option<String>,
    /// Entra's correlation id (a GUID).
    pub correlation_id: Option<String>,
    /// When Entra saw the request, e.g. `2025-01-31 10:00:00Z`.
    pub timestamp: Option<String>,
}

impl EntraError {
    /// Parses a token-endpoint error body; `None` when it is not Entra's JSON.
    #[must_use]
    pub fn from_body(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(body)
            .ok()
            .filter(|e| !e.error.is_empty() || !e.error_codes.is_empty())
    }

    /// The [`Error::TokenRequest`] for this body, with the remedy for the credential the
    /// request carried (`credential`, its setting: see [`remedy_for`](Self::remedy_for)).
    pub(crate) fn into_error(
        self,
        status: u16,
        retry_after: Option<Duration>,
        credential: &str,
    ) -> Error {
        let advice = Advice::remedy(Some(self.remedy_for(credential)))
            .with_auth(true)
            .with_retry_after(retry_after);
        Error::TokenRequest {
            status,
            summary: self.to_string(),
            transient: self.is_transient(),
            error: self.error,
            codes: self.error_codes.into_boxed_slice(),
            trace_id: self.trace_id.map(String::into_boxed_str),
            correlation_id: self.correlation_id.map(String::into_boxed_str),
            advice,
        }
    }

    /// This error with every form of `secrets` removed from its text fields: Entra does not
    /// echo the request, but a proxy or a hostile endpoint may.
    pub(crate) fn redacted(self, secrets: &[String]) -> Self {
        let clean = |text: String| crate::http::redact(&text, secrets);
        Self {
            error: clean(self.error),
            error_description: clean(self.error_description),
            error_codes: self.error_codes,
            trace_id: self.trace_id.map(clean),
            correlation_id: self.correlation_id.map(clean),
            timestamp: self.timestamp.map(clean),
        }
    }

    /// Whether `error_codes` holds `code`.
    #[must_use]
    pub fn has_code(&self, code: u64) -> bool {
        self.error_codes.contains(&code)
    }

    /// Whether retrying later may succeed: Entra says it is temporarily unavailable or
    /// throttling this tenant.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        self.error == "temporarily_unavailable" || self.has_code(90055) || self.has_code(50196)
    }

    /// [`remedy`](Self::remedy) for a request that carried the credential of `setting`
    /// (`client_secret`, `client_secret_file`, `client_certificate_file` or
    /// `federated_token_file`): where the table speaks of a client secret given in
    /// `client_secret`, or of a secret or certificate in general, a secret read from a file
    /// and a federated token are sent to their own setting instead.
    pub(crate) fn remedy_for(&self, setting: &str) -> String {
        let code = self
            .error_codes
            .iter()
            .copied()
            .find(|&code| remedy_for_code(code).is_some());
        let invalid_client = code.is_none() && self.error == "invalid_client";
        let own = match (setting, code) {
            (SECRET_FILE, Some(7_000_215)) => Some(
                "the client secret in `client_secret_file` is wrong — often the secret's ID was \
                 stored instead of its value: store the Value column (shown only when the secret \
                 is created, under Certificates & secrets) in the vault entry the file comes \
                 from, or create a new secret; the file is read again at the next token request",
            ),
            (SECRET_FILE, Some(7_000_222)) => Some(
                "the client secret in `client_secret_file` has expired: create a new secret under \
                 Certificates & secrets and store its Value in the vault entry the file comes \
                 from (the file is read again at the next token request), and update \
                 `client_secret_expires` if you set it",
            ),
            (SECRET_FILE, None) if invalid_client => Some(
                "check the credential: `client_secret_file` must hold the Value of a current \
                 client secret of this app registration (not its Secret ID)",
            ),
            (FEDERATED_TOKEN_FILE, None) if invalid_client => Some(
                "check the federated credential: in the app registration's Certificates & \
                 secrets → Federated credentials, the issuer, subject and audience must match \
                 the token in `federated_token_file` (audience `api://AzureADTokenExchange`), \
                 and the platform must keep that token fresh",
            ),
            _ => None,
        };
        own.map_or_else(|| self.remedy(), str::to_owned)
    }

    /// The setup step and setting that fix this error, chosen by AADSTS code first and by
    /// the `error` value otherwise.
    #[must_use]
    pub fn remedy(&self) -> String {
        for &code in &self.error_codes {
            if let Some(remedy) = remedy_for_code(code) {
                return remedy.to_owned();
            }
        }
        match self.error.as_str() {
            "temporarily_unavailable" => {
                "Entra ID is temporarily unavailable; the request is retried automatically, so try again later".to_owned()
            }
            // Entra's own failure (HTTP 500, e.g. AADSTS50000): no setting is at fault.
            "server_error" => {
                "Entra ID failed on its side while issuing the token; nothing in the settings is at fault: the request is retried automatically, so try again later".to_owned()
            }
            "invalid_client" => {
                "check the credential: `client_secret` must be the secret's Value, or `client_certificate_file`/`client_private_key_file` must match a certificate uploaded to the app registration".to_owned()
            }
            "unauthorized_client" => {
                "check `oauth_client_id` and `tenant_id` against the app registration's Overview page, and grant admin consent in that tenant".to_owned()
            }
            "invalid_scope" | "invalid_resource" => {
                "use a scope of the form `{resource}/.default` (set `oauth_scope` or leave it unset)".to_owned()
            }
            "invalid_tenant" => {
                "check `tenant_id` and `cloud`: the tenant was not found at this login host".to_owned()
            }
            "invalid_request" => {
                "check `tenant_id`, `oauth_client_id` and the credential settings against the app registration".to_owned()
            }
            other => format!(
                "Entra ID refused the token request (`{other}`); check the app registration and the settings `oauth_client_id`, `tenant_id`, `client_secret`"
            ),
        }
    }
}

/// The setting of a client secret read from a file at each token request.
pub(crate) const SECRET_FILE: &str = "client_secret_file";
/// The setting of a workload's federated token file.
pub(crate) const FEDERATED_TOKEN_FILE: &str = "federated_token_file";

fn remedy_for_code(code: u64) -> Option<&'static str> {
    Some(match code {
        7_000_215 => {
            "the client secret is wrong — often the secret's ID was pasted instead of its value: under Certificates & secrets copy the Value column (shown only when the secret is created) into `client_secret`, or create a new secret"
        }
        7_000_222 => {
            "the client secret has expired: create a new secret under Certificates & secrets, then update `client_secret` and `client_secret_expires` (or switch to a certificate)"
        }
        7_000_218 => {
            "no credential was sent: set `client_secret`, or `client_certificate_file` and `client_private_key_file`"
        }
        7_000_229 => {
            "the app registration has no service principal (Enterprise application) in this tenant — one made with `az ad app create`, Microsoft Graph or Terraform gets none by itself: create it for the Application (client) ID in `oauth_client_id` with `az ad sp create --id <client id>` (or `New-MgServicePrincipal -AppId <client id>`), or, for an app registered in another tenant, have an admin of this tenant grant admin consent; the credential itself is not at fault"
        }
        700_016 | 700_011 => {
            "the application was not found in this tenant: check `oauth_client_id` (the Application (client) ID) and `tenant_id` (the Directory (tenant) ID) on the app registration's Overview page, and admin-consent the app in that tenant"
        }
        90_002 | 900_023 => {
            "the tenant was not found: check `tenant_id` (the Directory (tenant) ID or the tenant's domain) and `cloud` (a US Government or China tenant needs `cloud = \"us-gov\"`, `\"us-dod\"` or `\"china\"`)"
        }
        90_038 => {
            "the tenant lives in another national cloud: set `cloud` to that cloud (`us-gov`, `us-dod` or `china`) instead of overriding `authority_host`"
        }
        70_011 | 1_002_012 => {
            "the scope is invalid for app-only sign-in: it must be `{resource}/.default`, e.g. `https://graph.microsoft.com/.default`; fix or remove `oauth_scope`"
        }
        700_022 => "request one resource per token: fix `oauth_scope` to name a single resource",
        700_027 | 50_012 => {
            "the certificate was not accepted: upload the certificate (`client_certificate_file`, as .cer/.pem) under Certificates & secrets of the app registration, and sign with its matching key (`client_private_key_file`)"
        }
        700_024 => {
            "the client assertion is outside its valid time range: with workload identity federation, the token in `federated_token_file` has expired — the platform that writes it is not rotating it (on AKS, check that the workload-identity webhook's projected token volume is mounted and the pod is running), or the Federated credentials entry was created for a token of another lifetime; with a certificate, correct this machine's clock (enable NTP time sync)"
        }
        70_021 => {
            "no federated credential matches the workload's token: in the app registration (or user-assigned managed identity) open Certificates & secrets → Federated credentials and add one whose issuer, subject and audience equal the token's `iss`, `sub` and `aud` (on AKS: the cluster's OIDC issuer URL, `system:serviceaccount:{namespace}:{service account}` and `api://AzureADTokenExchange`)"
        }
        700_211 => {
            "the workload's token has an issuer no federated credential trusts: in the app registration's Certificates & secrets → Federated credentials, set the Issuer to the token's `iss` exactly (on AKS, the cluster's OIDC issuer URL from `az aks show --query oidcIssuerProfile.issuerUrl`, trailing slash included)"
        }
        700_212 => {
            "the workload's token has the wrong audience: in the app registration's Certificates & secrets → Federated credentials the Audience must be `api://AzureADTokenExchange`, and the platform must issue the token for that audience (on AKS the workload-identity webhook does)"
        }
        700_213 => {
            "the workload's token has a subject no federated credential matches: in the app registration's Certificates & secrets → Federated credentials, set the Subject identifier to the token's `sub` exactly (on AKS `system:serviceaccount:{namespace}:{service account}`)"
        }
        65_001 | 650_056 | 650_057 => {
            "admin consent is missing: under API permissions add the Application permission (Mail.Send) and click Grant admin consent"
        }
        500_011 => {
            "the resource's service principal was not found in this tenant: check the scope's resource (`oauth_scope`; for SMTP it is the Office 365 Exchange Online resource, `https://outlook.office365.com/.default`), and that `tenant_id` and `cloud` name the tenant and its cloud"
        }
        500_014 => {
            "the resource's service principal (Microsoft Graph, or Office 365 Exchange Online for SMTP) is disabled in this tenant: an admin must re-enable it in Enterprise applications"
        }
        7_000_112 => "the application is disabled: re-enable it in Enterprise applications",
        53_003 => {
            "a Conditional Access policy blocked the sign-in: ask the tenant admin to exclude this app's service principal"
        }
        9_001_023 => {
            "`tenant_id` must name one tenant (its Directory (tenant) ID), not `common` or `consumers`"
        }
        90_055 => "Entra ID is throttling this tenant; requests are retried automatically",
        50_196 => {
            "Entra ID saw a loop of identical token requests: tokens are not being reused — build one `Credentials` per app and share it (clone it) between transports and requests, or give every instance one shared `TokenCacheStore` (`CredentialsBuilder::cache_store`)"
        }
        _ => return None,
    })
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let error = if self.error.is_empty() {
            "error"
        } else {
            &self.error
        };
        f.write_str(error)?;
        // The description's first line is the AADSTS summary; trace lines follow it.
        if let Some(summary) = self
            .error_description
            .lines()
            .next()
            .filter(|l| !l.is_empty())
        {
            write!(f, ": {}", summary.trim())?;
        } else if let Some(code) = self.error_codes.first() {
            write!(f, ": AADSTS{code}")?;
        }
        if let Some(trace) = &self.trace_id {
            write!(f, " (trace ID {trace}")?;
            if let Some(correlation) = &self.correlation_id {
                write!(f, ", correlation ID {correlation}")?;
            }
            if let Some(timestamp) = &self.timestamp {
                write!(f, ", at {timestamp}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_body() {
        let body = br#"{"error":"invalid_scope","error_description":"AADSTS70011: The provided value for the input parameter 'scope' is not valid.\r\nTrace ID: 255d1aef-8c98-452f-ac51-23d051240864\r\nCorrelation ID: fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7\r\nTimestamp: 2016-01-09 02:02:12Z","error_codes":[70011],"timestamp":"2016-01-09 02:02:12Z","trace_id":"255d1aef-8c98-452f-ac51-23d051240864","correlation_id":"fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7"}"#;
        let error = EntraError::from_body(body).unwrap();
        assert!(error.has_code(70011));
        let text = error.to_string();
        assert!(
            text.starts_with("invalid_scope: AADSTS70011: The provided"),
            "{text}"
        );
        assert!(text.contains("trace ID 255d1aef") && text.contains("correlation ID fb3d2015"));
        assert!(!text.contains("\r\nTrace ID"), "{text}");
        assert!(error.remedy().contains("/.default"));
        assert!(EntraError::from_body(b"<html>").is_none());
        assert!(EntraError::from_body(b"{}").is_none());
    }

    /// An AADSTS code's own step wins over the general one its `error` would give.
    #[test]
    fn the_aadsts_code_names_its_own_step() {
        for (code, error, words) in [
            (7_000_218, "invalid_request", "no credential was sent"),
            (90_002, "invalid_tenant", "US Government or China tenant"),
            (900_023, "invalid_request", "US Government or China tenant"),
            (70_011, "invalid_scope", "app-only sign-in"),
            (1_002_012, "invalid_scope", "app-only sign-in"),
            (700_022, "invalid_scope", "one resource per token"),
            (70_021, "invalid_client", "no federated credential matches"),
            (
                7_000_112,
                "unauthorized_client",
                "the application is disabled",
            ),
            (53_003, "access_denied", "Conditional Access policy"),
            (9_001_023, "invalid_request", "not `common` or `consumers`"),
        ] {
            let entra = EntraError {
                error: error.into(),
                error_codes: vec![code],
                ..EntraError::default()
            };
            let remedy = entra.remedy_for("client_secret");
            assert!(remedy.contains(words), "AADSTS{code}: {remedy}");
        }
    }

    /// The steps of a secret file or a federated token file are for a refused credential
    /// (`invalid_client`); another refusal keeps its own step.
    #[test]
    fn a_file_credentials_step_is_only_for_a_refused_credential() {
        let refused = |error: &str| EntraError {
            error: error.into(),
            ..EntraError::default()
        };
        for setting in [SECRET_FILE, FEDERATED_TOKEN_FILE] {
            let remedy = refused("invalid_client").remedy_for(setting);
            assert!(remedy.contains(setting), "{setting}: {remedy}");
            let remedy = refused("unauthorized_client").remedy_for(setting);
            assert!(!remedy.contains(setting), "{setting}: {remedy}");
            assert!(remedy.contains("`oauth_client_id`"), "{setting}: {remedy}");
        }
    }

    /// A body with Entra's `error` but no AADSTS codes (or codes but no `error`) is still
    /// Entra's answer: its `error` decides whether it is retried and what to fix.
    #[test]
    fn a_body_with_only_an_error_or_only_codes_is_entras() {
        let unavailable = EntraError::from_body(br#"{"error":"temporarily_unavailable"}"#).unwrap();
        assert!(unavailable.is_transient());
        assert!(unavailable.remedy().contains("try again later"));
        let client = EntraError::from_body(br#"{"error":"invalid_client"}"#).unwrap();
        assert!(!client.is_transient());
        assert!(client.remedy().contains("`client_secret`"));
        let looping = EntraError::from_body(br#"{"error_codes":[50196]}"#).unwrap();
        assert!(looping.is_transient());
    }
}
