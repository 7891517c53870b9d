//! [`ConnectorSettings`]: the mail connector's admin screen as one settings value.
//!
//! The keys mirror the screen (Enable/Disable, Authentication Mode, User Name, OAuth Client ID,
//! client secret, Tenant ID, Use SSL, Recipient Limit) plus the server and cloud details. They
//! load from TOML or JSON with these exact snake_case keys, or from environment variables
//! `MAIL_CONNECTOR_<KEY>` (an empty variable, like a choice left `""` in a file, is unset).
//! [`ConnectorSettings::build`] validates them for the chosen mode —
//! fields are required only when the connector is enabled — and returns a ready
//! [`MailTransport`](crate::MailTransport).
//!
//! | key | meaning |
//! |---|---|
//! | `enabled` | Enable/Disable; default `true`. Disabled: nothing is sent and no other field is required |
//! | `auth_mode` | `oauth`, `basic` or `none` (anonymous relay): the screen's Authentication Mode |
//! | `transport` | `graph` or `smtp`; default `graph` for `oauth`, `smtp` otherwise |
//! | `user_name` | the sender mailbox (and the SMTP login for `basic`) |
//! | `oauth_client_id` | the app registration's Application (client) ID |
//! | `client_secret` | the client secret's *value* (not its ID) |
//! | `tenant_id` | the Directory (tenant) ID, or the tenant's domain |
//! | `client_certificate_file`, `client_private_key_file` | instead of `client_secret`: the PEM certificate uploaded to the app registration and its PEM private key |
//! | `oauth_credential` | `secret`, `certificate`, `managed_identity` or `workload_identity`; inferred from the fields set when omitted |
//! | `client_secret_file` | instead of `client_secret`: a file holding the secret, read at every token request (a secret a vault rotates) |
//! | `managed_identity_client_id`, `managed_identity_endpoint` | managed identity: a user-assigned identity's client id; an override of the identity endpoint (plain `http` only to loopback or link-local addresses) |
//! | `federated_token_file` | workload identity federation: the workload's token file (default `AZURE_FEDERATED_TOKEN_FILE`) |
//! | `oauth_scope` | an explicit token scope (`{resource}/.default`); default: the cloud's Graph resource, or Exchange's for SMTP |
//! | `client_secret_expires` | `YYYY-MM-DD` the secret expires; `check` warns within 30 days, fails after |
//! | `password` | the mailbox password, for `basic` |
//! | `use_ssl` | Use SSL; default `true`. Maps to an SMTP TLS mode in [`ConnectorSettings::smtp_tls_mode`] |
//! | `smtp_host`, `smtp_port`, `smtp_tls` | SMTP server (host default: `smtp.office365.com` for OAuth and Basic in the global cloud); `smtp_tls` = `starttls`, `implicit` or `none` overrides `use_ssl` |
//! | `smtp_allow_plaintext_credentials_dangerous` | default `false`. `true` lets a password or token go **unencrypted** to an SMTP host other than loopback (`127.0.0.0/8`, `::1`, `localhost`) with TLS mode `none` |
//! | `recipient_limit` | Recipient Limit; default 0 = none. Larger emails are split (see [`RecipientLimit`](crate::RecipientLimit)) |
//! | `cloud` | `global` (default), `us-gov` (GCC High), `us-dod`, `china`: the login and Graph hosts together |
//! | `authority_host`, `graph_endpoint` | explicit overrides of those hosts (proxies, tests); plain `http` only for loopback (`127.0.0.0/8`, `::1`, `localhost`) |
//! | `tls_ca_file` | a PEM file of extra trusted root certificates, for HTTPS and SMTP |
//! | `outbox_dir` | write `.eml` files into this folder instead of sending |
//! | `save_to_sent_items` | Graph: keep a copy in the mailbox's Sent Items; default `true` (`false` applies to the JSON form only: MIME-form and large-attachment mail is always kept) |
//! | `allow_send_as` | let emails name another From address than `user_name` (needs Exchange Send As rights), for Graph and SMTP; default `false` |
//! | `dkim_domain`, `dkim_selector`, `dkim_private_key_file` | DKIM-sign SMTP and outbox messages (feature `dkim`; all three together; see the `dkim` module). Graph messages are signed by Exchange Online, so these are refused with `transport = "graph"` |
//! | `queue_url` | `sqlite://PATH` or `postgres://…`: [`build`](ConnectorSettings::build) then gives a transport that enqueues, and `queue_worker` the worker that delivers (features `queue-sqlite`, `queue-postgres`; see the `queue` module) |
//! | `queue_max_attempts` | delivery attempts before a message fails; default 10; at least 1 (0 is refused: there is no "no limit") |
//! | `queue_max_in_flight` | deliveries in flight per sender mailbox, across all workers; default 4 for Graph, 3 for SMTP (Exchange's limits); at least 1 |
//! | `queue_rate_per_minute` | deliveries started per sender mailbox and minute, across all workers; default 30 (Exchange's limit); 0 = none |
//! | `queue_retention_days` | days the bodies of sent messages are kept; default 7; 0 = until the worker's next purge (at its start, then every 10 minutes) |
//!
//! # Inside a host's own configuration
//!
//! The settings can be a table of the host's own file: [`ConnectorSettings::from_toml_value`]
//! (`[mail]` in `app.toml`), [`ConnectorSettings::from_json_value`], or a `ConnectorSettings`
//! field the host deserializes itself. [`ConnectorSettings::with_env`] then applies the
//! `MAIL_CONNECTOR_<KEY>` variables on top. An unknown key in a file or table is refused with
//! the nearest known key ("did you mean `tenant_id`?"); an unknown `MAIL_CONNECTOR_*`
//! variable is only warned about (through `tracing`), so that it cannot stop a service.
//!
//! `ConnectorSettings` implements `Serialize` with the secrets written as `[redacted]`;
//! [`ConnectorSettings::to_toml_string`], [`to_json_string`](ConnectorSettings::to_json_string)
//! and [`to_json_value`](ConnectorSettings::to_json_value) write them in plain only with
//! [`SecretsIn::Plain`]. A `[redacted]` placeholder read back is kept for the
//! `MAIL_CONNECTOR_<KEY>` variable to replace; one left is refused, naming the variable.
//!
//! The module is split along its seams: the struct and its derived values here, reading
//! (`load`), a host's configuration and writing back (`compose`), did-you-mean (`suggest`),
//! validation (`validate`), the value enums (`values`), the sign-in (`credentials`) and
//! `build`, which makes the transport these settings describe.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::message::Mailbox;
use crate::secret::Secret;

mod build;
mod compose;
#[cfg(feature = "oauth")]
mod credentials;
mod dkim;
mod env;
mod load;
mod oauth;
#[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
mod queue;
mod suggest;
mod validate;
mod values;

pub use crate::expiry::ExpiryDate;
pub use build::TransportBuilder;
pub use compose::SecretsIn;
pub use env::ENV_PREFIX;
pub use values::{AuthMode, Cloud, OAuthCredential, SmtpTls, TransportKind};

/// The mail connector's settings, as an admin screen shows them.
///
/// Build one from a file or the environment, or start from `Default` and set fields. It
/// serializes with its secrets as `[redacted]` (see [`SecretsIn`] for the plain form):
///
/// ```
/// use mail_connector::{AuthMode, ConnectorSettings, Secret};
///
/// let settings = ConnectorSettings::from_toml_str(r#"
///     auth_mode = "oauth"
///     user_name = "no-reply@contoso.com"
///     oauth_client_id = "00000000-0000-0000-0000-000000000001"
///     client_secret = "value-from-the-portal"
///     tenant_id = "contoso.onmicrosoft.com"
///     recipient_limit = 50
/// "#)?;
/// assert_eq!(settings.auth_mode, Some(AuthMode::OAuth));
/// assert!(format!("{settings:?}").contains("[redacted]"));
///
/// let mut settings = ConnectorSettings::default();
/// settings.enabled = false;
/// assert!(settings.validate().is_ok()); // nothing is required when disabled
/// # Ok::<(), mail_connector::Error>(())
/// ```
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ConnectorSettings {
    /// Enable/Disable. Default `true`.
    pub enabled: bool,
    /// Authentication Mode: OAuth, Basic or None.
    #[serde(deserialize_with = "values::blank_is_unset")]
    pub auth_mode: Option<AuthMode>,
    /// Graph or SMTP; by default Graph for OAuth and SMTP otherwise.
    #[serde(deserialize_with = "values::blank_is_unset")]
    pub transport: Option<TransportKind>,
    /// User Name: the sender mailbox, and the SMTP login for Basic.
    pub user_name: Option<String>,
    /// OAuth Client ID: the app registration's Application (client) ID.
    pub oauth_client_id: Option<String>,
    /// The client secret's value.
    pub client_secret: Option<Secret>,
    /// Tenant ID: the Directory (tenant) ID or the tenant's domain name.
    pub tenant_id: Option<String>,
    /// Instead of a client secret: the PEM certificate uploaded to the app registration.
    #[serde(deserialize_with = "values::blank_is_unset")]
    pub client_certificate_file: Option<PathBuf>,
    /// The PEM private key (PKCS#8 or PKCS#1 RSA) of `client_certificate_file`.
    #[serde(deserialize_with = "values::blank_is_unset")]
    pub client_private_key_file: Option<PathBuf>,
    /// How the app signs in to Entra ID for OAuth; inferred from the other fields when unset.
    #[serde(deserialize_with = "values::blank_is_unset")]
    pub oauth_credential: Option<OAuthCredential>,
    /// Instead of `client_secret`: a file holding the secret, read at every token request so
    /// that a secret a vault rotates is picked up without a restart.
    #[serde(deserialize_with = "values::blank_is_unset")]
    pub client_secret_file: Option<PathBuf>,
    /// Managed identity: the client id of a user-assigned identity; unset for the
    /// system-assigned one.
    #[serde(deserialize_with = "values::blank_is_unset")]
    pub managed_identity_client_id: Option<String>,
    /// Managed identity: an override of the identity endpoint (tests, unusual hosts).
    #[serde(
        serialize_with = "compose::host_without_userinfo",
        deserialize_with = "values::blank_is_unset"
    )]
    pub managed_identity_endpoint: Option<String>,
    /// Workload identity federation: the file holding the workload's own token (default
    /// `AZURE_FEDERATED_TOKEN_FILE`), read at every token request.
    #[serde(deserialize_with = "values::blank_is_unset")]
    pub federated_token_file: Option<PathBuf>,
    /// An explicit OAuth scope, overriding the one derived from the cloud.
    pub oauth_scope: Option<String>,
    /// When the client secret expires.
    pub client_secret_expires: Option<ExpiryDate>,
    /// The mailbox password, for Basic.
    pub password: Option<Secret>,
    /// Use SSL. `None` means `true`.
    pub use_ssl: Option<bool>,
    /// SMTP server host name.
    #[serde(serialize_with = "compose::host_without_userinfo")]
    pub smtp_host: Option<String>,
    /// SMTP port; by default 465 for implicit TLS, 587 otherwise.
    pub smtp_port: Option<u16>,
    /// SMTP TLS mode; overrides what `use_ssl` implies.
    #[serde(deserialize_with = "values::blank_is_unset")]
    pub smtp_tls: Option<SmtpTls>,
    /// Allow sending SMTP credentials without TLS to a host other than loopback. Default
    /// `false`; anyone on the network path can read them.
    pub smtp_allow_plaintext_credentials_dangerous: bool,
    /// Recipient Limit: the most recipients one message may carry; 0 = no limit.
    pub recipient_limit: u32,
    /// The Microsoft cloud: picks the login and Graph hosts together.
    pub cloud: Cloud,
    /// Overrides the cloud's login host, e.g. `https://login.microsoftonline.com`: the host
    /// only, without the tenant or token path (refused), or a proxy's URL with its own
    /// path prefix (`https://egress.example/login.microsoftonline.com`).
    #[serde(serialize_with = "compose::host_without_userinfo")]
    pub authority_host: Option<String>,
    /// Overrides the cloud's Graph host, e.g. `https://graph.microsoft.com`: the host only,
    /// without `/v1.0` (refused; the crate adds it), or a proxy's URL with its own path
    /// prefix.
    #[serde(serialize_with = "compose::host_without_userinfo")]
    pub graph_endpoint: Option<String>,
    /// A PEM file of extra trusted root certificates, for both HTTPS and SMTP TLS.
    #[serde(deserialize_with = "values::blank_is_unset")]
    pub tls_ca_file: Option<PathBuf>,
    /// Write messages as `.eml` files into this folder instead of sending them.
    pub outbox_dir: Option<PathBuf>,
    /// Graph: keep a copy of each message in the mailbox's Sent Items. Default `true`. `false`
    /// applies to Graph's JSON form only: a message sent in MIME form or through a draft
    /// (large attachments) is always kept there.
    pub save_to_sent_items: bool,
    /// Let an email name a From address other than `user_name` (Graph and SMTP). Default `false`.
    pub allow_send_as: bool,
    /// DKIM (feature `dkim`, SMTP and the outbox): the signing domain, the `d=` tag.
    pub dkim_domain: Option<String>,
    /// DKIM: the selector, the `s=` tag (the key is published at
    /// `{selector}._domainkey.{domain}`).
    pub dkim_selector: Option<String>,
    /// DKIM: the private key file (RSA PEM, or Ed25519 PKCS#8 PEM).
    #[serde(deserialize_with = "values::blank_is_unset")]
    pub dkim_private_key_file: Option<PathBuf>,
    /// The durable queue: `sqlite://PATH` or `postgres://user:password@host/db`. When set,
    /// `build` gives a transport that enqueues. It may hold a password: never printed.
    pub queue_url: Option<Secret>,
    /// Delivery attempts before a queued message fails; `None` means 10.
    pub queue_max_attempts: Option<u32>,
    /// Deliveries in flight per sender mailbox; `None` means 4 for Graph, 3 for SMTP.
    pub queue_max_in_flight: Option<u32>,
    /// Deliveries started per sender mailbox and minute; `None` means 30; 0 means no limit.
    pub queue_rate_per_minute: Option<u32>,
    /// Days the bodies of sent messages are kept; `None` means 7.
    pub queue_retention_days: Option<u32>,
}

impl Default for ConnectorSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            auth_mode: None,
            transport: None,
            user_name: None,
            oauth_client_id: None,
            client_secret: None,
            tenant_id: None,
            client_certificate_file: None,
            client_private_key_file: None,
            oauth_credential: None,
            client_secret_file: None,
            managed_identity_client_id: None,
            managed_identity_endpoint: None,
            federated_token_file: None,
            oauth_scope: None,
            client_secret_expires: None,
            password: None,
            use_ssl: None,
            smtp_host: None,
            smtp_port: None,
            smtp_tls: None,
            smtp_allow_plaintext_credentials_dangerous: false,
            recipient_limit: 0,
            cloud: Cloud::Global,
            authority_host: None,
            graph_endpoint: None,
            tls_ca_file: None,
            outbox_dir: None,
            save_to_sent_items: true,
            allow_send_as: false,
            dkim_domain: None,
            dkim_selector: None,
            dkim_private_key_file: None,
            queue_url: None,
            queue_max_attempts: None,
            queue_max_in_flight: None,
            queue_rate_per_minute: None,
            queue_retention_days: None,
        }
    }
}

impl ConnectorSettings {
    /// The transport these settings select: explicit, or Graph for OAuth and SMTP otherwise.
    #[must_use]
    pub fn transport_kind(&self) -> TransportKind {
        self.transport.unwrap_or(match self.auth_mode {
            Some(AuthMode::OAuth) | None => TransportKind::Graph,
            Some(AuthMode::Basic | AuthMode::None) => TransportKind::Smtp,
        })
    }

    /// The SMTP TLS mode: the one place where the screen's "Use SSL" becomes a TLS mode.
    ///
    /// `smtp_tls`, when set, wins. Otherwise `use_ssl = true` (the default) requires TLS:
    /// implicit TLS when the port is 465, STARTTLS (required, never opportunistic) on any
    /// other port; `use_ssl = false` means no TLS.
    #[must_use]
    pub fn smtp_tls_mode(&self) -> SmtpTls {
        if let Some(mode) = self.smtp_tls {
            return mode;
        }
        match (self.use_ssl.unwrap_or(true), self.smtp_port) {
            (true, Some(465)) => SmtpTls::Implicit,
            (true, _) => SmtpTls::Starttls,
            (false, _) => SmtpTls::None,
        }
    }

    /// The SMTP port: `smtp_port`, else 465 for implicit TLS and 587 otherwise.
    #[must_use]
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port.unwrap_or_else(|| {
            crate::net::default_smtp_port(self.smtp_tls_mode() == SmtpTls::Implicit)
        })
    }

    /// The SMTP host: `smtp_host` (an IPv6 address without the brackets it may be written
    /// in), else Exchange Online's submission host (`smtp.office365.com`) for OAuth and
    /// Basic in the global cloud.
    #[must_use]
    pub fn smtp_host(&self) -> Option<&str> {
        match non_blank(self.smtp_host.as_deref()) {
            Some(host) => Some(crate::net::ipv6_host(host).unwrap_or(host)),
            None if self.cloud == Cloud::Global
                && matches!(self.auth_mode, Some(AuthMode::OAuth | AuthMode::Basic)) =>
            {
                Some("smtp.office365.com")
            }
            None => None,
        }
    }

    /// The login host: `authority_host`, else the cloud's.
    #[must_use]
    pub fn authority_host(&self) -> &str {
        non_blank(self.authority_host.as_deref())
            .unwrap_or(self.cloud.authority_host())
            .trim_end_matches('/')
    }

    /// The Graph host: `graph_endpoint`, else the cloud's.
    #[must_use]
    pub fn graph_endpoint(&self) -> &str {
        non_blank(self.graph_endpoint.as_deref())
            .unwrap_or(self.cloud.graph_endpoint())
            .trim_end_matches('/')
    }

    /// The scope of Microsoft Graph tokens: `oauth_scope` when set, otherwise the cloud's
    /// Graph resource with `/.default` (e.g. `https://graph.microsoft.us/.default` for
    /// `us-gov`). Overriding `graph_endpoint` does not change it: a proxy or test server in
    /// front of Graph still needs tokens for Graph itself.
    #[must_use]
    #[cfg(feature = "oauth")]
    pub fn graph_scope(&self) -> String {
        self.explicit_scope().unwrap_or_else(|| {
            format!(
                "{}{}",
                self.cloud.graph_endpoint(),
                crate::credentials::GRAPH_SCOPE_SUFFIX
            )
        })
    }

    /// The scope of SMTP XOAUTH2 tokens: `oauth_scope` when set, otherwise Exchange
    /// Online's, [`SMTP_SCOPE`](crate::credentials::SMTP_SCOPE). (Exchange's resource in
    /// national clouds is not documented; set `oauth_scope` there.)
    #[must_use]
    #[cfg(feature = "oauth")]
    pub fn smtp_scope(&self) -> String {
        self.explicit_scope()
            .unwrap_or_else(|| crate::credentials::SMTP_SCOPE.to_owned())
    }

    #[cfg(feature = "oauth")]
    fn explicit_scope(&self) -> Option<String> {
        non_blank(self.oauth_scope.as_deref()).map(str::to_owned)
    }

    /// The sender mailbox from `user_name`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] naming `user_name` when it is missing or not an address.
    pub fn sender(&self) -> Result<Mailbox> {
        let mut problems = Vec::new();
        let sender = self.check_sender(&mut problems, "to send mail");
        sender.ok_or(Error::InvalidSettings { problems })
    }

    /// A one-line description of what [`ConnectorSettings::build`] will make, for logs and
    /// command-line tools. Never contains a secret.
    #[must_use]
    pub fn summary(&self) -> String {
        let sender = non_blank(self.user_name.as_deref()).unwrap_or("(no user_name)");
        if !self.enabled {
            return "disabled (enabled = false): nothing is sent".to_owned();
        }
        if let Some(dir) = &self.outbox_dir {
            return format!("outbox: .eml files in {}", dir.display());
        }
        let mode = match self.auth_mode {
            None => "(no auth_mode)".to_owned(),
            // Which credential signs in, and where it comes from — never its value.
            Some(AuthMode::OAuth) => match self.oauth_credential_kind() {
                Some(OAuthCredential::Secret) => match &self.client_secret_file {
                    Some(path) => format!("oauth (client secret from {})", path.display()),
                    None => "oauth (client secret)".to_owned(),
                },
                Some(OAuthCredential::Certificate) => "oauth (certificate)".to_owned(),
                Some(OAuthCredential::ManagedIdentity) => {
                    match non_blank(self.managed_identity_client_id.as_deref()) {
                        Some(id) => format!("oauth (user-assigned managed identity {id})"),
                        None => "oauth (system-assigned managed identity)".to_owned(),
                    }
                }
                Some(OAuthCredential::WorkloadIdentity) => {
                    let ids = self.workload_identity(|name| std::env::var(name).ok());
                    match ids.token_file {
                        Some(path) => format!(
                            "oauth (workload identity federation, token from {})",
                            path.display()
                        ),
                        None => "oauth (workload identity federation)".to_owned(),
                    }
                }
                None => "oauth (no credential)".to_owned(),
            },
            Some(mode) => mode.to_string(),
        };
        match self.transport_kind() {
            // Hosts as the settings hold them may carry a `user:password@` (refused by
            // validation, which may not have run yet): never shown.
            TransportKind::Graph => format!(
                "Microsoft Graph at {} as {sender}, authentication {mode}",
                crate::net::without_userinfo(self.graph_endpoint())
            ),
            TransportKind::Smtp => format!(
                "SMTP {} ({}) as {sender}, authentication {mode}",
                crate::net::host_port(
                    &self
                        .smtp_host()
                        .map_or_else(|| "(no smtp_host)".to_owned(), crate::net::without_userinfo),
                    self.smtp_port()
                ),
                self.smtp_tls_mode()
            ),
        }
    }
}

/// The trimmed value, or `None` when it is missing or blank (an empty field on the screen).
pub(crate) fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_ssl_maps_to_one_tls_mode() {
        let mut s = ConnectorSettings::default();
        assert_eq!(s.smtp_tls_mode(), SmtpTls::Starttls);
        assert_eq!(s.smtp_port(), 587);
        s.smtp_port = Some(465);
        assert_eq!(s.smtp_tls_mode(), SmtpTls::Implicit);
        s.use_ssl = Some(false);
        assert_eq!(s.smtp_tls_mode(), SmtpTls::None);
        s.smtp_tls = Some(SmtpTls::Starttls);
        assert_eq!(s.smtp_tls_mode(), SmtpTls::Starttls);
        s.smtp_port = None;
        s.smtp_tls = Some(SmtpTls::Implicit);
        assert_eq!(s.smtp_port(), 465);
    }
}
