//! [`ConnectorSettings`]: the mail connector's admin screen as one settings value.
//!
//! The keys mirror the screen (Enable/Disable, Authentication Mode, User Name, OAuth Client ID,
//! client secret, Tenant ID, Use SSL, Recipient Limit) plus the server and cloud details. They
//! load from TOML or JSON with these exact snake_case keys, or from environment variables
//! `MAIL_CONNECTOR_<KEY>`. [`ConnectorSettings::build`] validates them for the chosen mode —
//! fields are required only when the connector is enabled — and returns a ready
//! [`MailTransport`].
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
//! | `oauth_scope` | an explicit token scope (`{resource}/.default`); default: the cloud's Graph resource, or Exchange's for SMTP |
//! | `client_secret_expires` | `YYYY-MM-DD` the secret expires; `check` warns within 30 days, fails after |
//! | `password` | the mailbox password, for `basic` |
//! | `use_ssl` | Use SSL; default `true`. Maps to an SMTP TLS mode in [`ConnectorSettings::smtp_tls_mode`] |
//! | `smtp_host`, `smtp_port`, `smtp_tls` | SMTP server (host default: `smtp.office365.com` for OAuth and Basic in the global cloud); `smtp_tls` = `starttls`, `implicit` or `none` overrides `use_ssl` |
//! | `smtp_allow_plaintext_credentials_dangerous` | default `false`. `true` lets a password or token go **unencrypted** to an SMTP host other than localhost (TLS mode `none`) |
//! | `recipient_limit` | Recipient Limit; 0 = none. Larger emails are split (see [`RecipientLimit`]) |
//! | `cloud` | `global`, `us-gov` (GCC High), `us-dod`, `china`: the login and Graph hosts together |
//! | `authority_host`, `graph_endpoint` | explicit overrides of those hosts (proxies, tests) |
//! | `tls_ca_file` | a PEM file of extra trusted root certificates, for HTTPS and SMTP |
//! | `outbox_dir` | write `.eml` files into this folder instead of sending |
//! | `save_to_sent_items` | Graph: keep a copy in the mailbox's Sent Items; default `true` |
//! | `allow_send_as` | let emails name another From address than `user_name` (needs Exchange Send As rights), for Graph and SMTP; default `false` |

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result, SettingsProblem};
use crate::message::{Email, Mailbox};
use crate::outbox::OutboxTransport;
use crate::secret::Secret;
use crate::transport::{CheckReport, MailTransport, RecipientLimit, SendReport};

/// The prefix of the environment variables read by [`ConnectorSettings::from_env`].
pub const ENV_PREFIX: &str = "MAIL_CONNECTOR_";

/// The mail connector's settings, as an admin screen shows them.
///
/// Build one from a file or the environment, or start from `Default` and set fields:
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
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ConnectorSettings {
    /// Enable/Disable. Default `true`.
    pub enabled: bool,
    /// Authentication Mode: OAuth, Basic or None.
    pub auth_mode: Option<AuthMode>,
    /// Graph or SMTP; by default Graph for OAuth and SMTP otherwise.
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
    pub client_certificate_file: Option<PathBuf>,
    /// The PEM private key (PKCS#8 or PKCS#1 RSA) of `client_certificate_file`.
    pub client_private_key_file: Option<PathBuf>,
    /// An explicit OAuth scope, overriding the one derived from the cloud.
    pub oauth_scope: Option<String>,
    /// When the client secret expires.
    pub client_secret_expires: Option<ExpiryDate>,
    /// The mailbox password, for Basic.
    pub password: Option<Secret>,
    /// Use SSL. `None` means `true`.
    pub use_ssl: Option<bool>,
    /// SMTP server host name.
    pub smtp_host: Option<String>,
    /// SMTP port; by default 465 for implicit TLS, 587 otherwise.
    pub smtp_port: Option<u16>,
    /// SMTP TLS mode; overrides what `use_ssl` implies.
    pub smtp_tls: Option<SmtpTls>,
    /// Allow sending SMTP credentials without TLS to a host other than loopback. Default
    /// `false`; anyone on the network path can read them.
    pub smtp_allow_plaintext_credentials_dangerous: bool,
    /// Recipient Limit: the most recipients one message may carry; 0 = no limit.
    pub recipient_limit: u32,
    /// The Microsoft cloud: picks the login and Graph hosts together.
    pub cloud: Cloud,
    /// Overrides the cloud's login host, e.g. `https://login.microsoftonline.com`.
    pub authority_host: Option<String>,
    /// Overrides the cloud's Graph host, e.g. `https://graph.microsoft.com`.
    pub graph_endpoint: Option<String>,
    /// A PEM file of extra trusted root certificates, for both HTTPS and SMTP TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// Write messages as `.eml` files into this folder instead of sending them.
    pub outbox_dir: Option<PathBuf>,
    /// Graph: keep a copy of each message in the mailbox's Sent Items. Default `true`.
    pub save_to_sent_items: bool,
    /// Let an email name a From address other than `user_name` (Graph and SMTP). Default `false`.
    pub allow_send_as: bool,
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
        }
    }
}

/// The kind of value a settings key holds, for reading it from an environment variable.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Bool,
    /// A whole number up to this maximum.
    Number(u64),
}

/// Every settings key, in the order of the settings table.
const KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("auth_mode", Kind::Text),
    ("transport", Kind::Text),
    ("user_name", Kind::Text),
    ("oauth_client_id", Kind::Text),
    ("client_secret", Kind::Text),
    ("tenant_id", Kind::Text),
    ("client_certificate_file", Kind::Text),
    ("client_private_key_file", Kind::Text),
    ("oauth_scope", Kind::Text),
    ("client_secret_expires", Kind::Text),
    ("password", Kind::Text),
    ("use_ssl", Kind::Bool),
    ("smtp_host", Kind::Text),
    ("smtp_port", Kind::Number(u16::MAX as u64)),
    ("smtp_tls", Kind::Text),
    ("smtp_allow_plaintext_credentials_dangerous", Kind::Bool),
    ("recipient_limit", Kind::Number(u32::MAX as u64)),
    ("cloud", Kind::Text),
    ("authority_host", Kind::Text),
    ("graph_endpoint", Kind::Text),
    ("tls_ca_file", Kind::Text),
    ("outbox_dir", Kind::Text),
    ("save_to_sent_items", Kind::Bool),
    ("allow_send_as", Kind::Bool),
];

/// Environment variables with the prefix that are not settings keys but are allowed.
const OTHER_ENV: &[&str] = &["CONFIG"];

/// A settings file or value that cannot be read. The parser's text is passed through
/// [`redact_quoted`]: it may quote a value, and any value may be a secret.
fn parse_problem(source: &str, error: impl fmt::Display) -> Error {
    Error::InvalidSettings {
        problems: vec![SettingsProblem {
            field: "settings".into(),
            message: format!(
                "cannot read the settings from {source}: {}",
                redact_quoted(&error.to_string())
            ),
        }],
    }
}

/// Replaces every quoted part (`` `…` `` or `"…"`) of a parser's message with `…`, except
/// settings key names, single characters and short punctuation (``expected `=` ``) and, after "unknown field" or
/// "duplicate key", a name shaped like a key (`tennant_id`). Parsers quote the values they
/// found (`invalid type: integer `123`` ) and any value may be a secret.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().unwrap_or('`');
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        // The closing quote; inside `"…"` (Rust's escaped form) skipping backslash escapes.
        let mut close = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quote == '"' => escaped = true,
                c if c == quote => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            // An unmatched quote: nothing after it is shown.
            out.push(quote);
            out.push('…');
            return out;
        };
        let inner = &after[..close];
        out.push(quote);
        if quoted_part_is_safe(inner, &out[..out.len() - 1]) {
            out.push_str(inner);
        } else {
            out.push('…');
        }
        out.push(quote);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

fn quoted_part_is_safe(inner: &str, before: &str) -> bool {
    let key_like = !inner.is_empty()
        && inner.len() <= 64
        && inner.starts_with(|c: char| c.is_ascii_lowercase())
        && inner
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let names_a_key = ["unknown field ", "duplicate key ", "duplicate field "]
        .iter()
        .any(|p| before.ends_with(p));
    KEYS.iter().any(|(key, _)| *key == inner)
        || (inner.len() == 1 && inner.is_ascii())
        || (!inner.is_empty()
            && inner.len() <= 3
            && inner.chars().all(|c| c.is_ascii_punctuation()))
        || (names_a_key && key_like)
}

impl ConnectorSettings {
    /// Reads settings from TOML text.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] for malformed TOML, an unknown key or a value of the wrong
    /// type; the message names the key.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| parse_problem("TOML", toml_error(text, &e)))
    }

    /// Reads settings from JSON text.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] for malformed JSON, an unknown key or a wrongly typed value.
    pub fn from_json_str(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| parse_problem("JSON", e))
    }

    /// Reads a settings file: JSON when its name ends in `.json`, TOML otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::InvalidSettings`] as for
    /// [`ConnectorSettings::from_toml_str`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_file_text(path, &read_settings_file(path)?)
    }

    /// Parses a settings file's text, JSON or TOML by the file's extension.
    fn from_file_text(path: &Path, text: &str) -> Result<Self> {
        let parsed = if is_json_file(path) {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            toml::from_str(text).map_err(|e| toml_error(text, &e))
        };
        parsed.map_err(|e| parse_problem(&format!("`{}`", path.display()), e))
    }

    /// Reads settings from the process environment: `MAIL_CONNECTOR_<KEY>` for each key
    /// (e.g. `MAIL_CONNECTOR_CLIENT_SECRET`). `MAIL_CONNECTOR_CONFIG` is left to callers
    /// that load a file.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::from_env_vars`].
    pub fn from_env() -> Result<Self> {
        Self::from_env_vars(std::env::vars())
    }

    /// Reads settings from `(name, value)` pairs shaped like environment variables; pairs
    /// without the `MAIL_CONNECTOR_` prefix are ignored.
    ///
    /// ```
    /// let settings = mail_connector::ConnectorSettings::from_env_vars([
    ///     ("MAIL_CONNECTOR_AUTH_MODE", "basic"),
    ///     ("MAIL_CONNECTOR_RECIPIENT_LIMIT", "10"),
    ///     ("MAIL_CONNECTOR_USE_SSL", "true"),
    ///     ("PATH", "/usr/bin"),
    /// ])?;
    /// assert_eq!(settings.recipient_limit, 10);
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] naming the variable for an unknown `MAIL_CONNECTOR_` key,
    /// a value that is not a boolean or number where one is needed, or an invalid value.
    pub fn from_env_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut map = serde_json::Map::new();
        env_overlay(&mut map, vars)?;
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| parse_problem("the environment", e))
    }

    /// Reads a settings file, then lets `MAIL_CONNECTOR_<KEY>` environment variables override
    /// its values — a common way to keep the secret out of the file.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::from_file`] and [`ConnectorSettings::from_env_vars`].
    pub fn from_file_with_env(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file_and_vars(path.as_ref(), std::env::vars())
    }

    fn from_file_and_vars<K: AsRef<str>, V: AsRef<str>>(
        path: &Path,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let text = read_settings_file(path)?;
        // The file on its own first: its errors name the line and key.
        let from_file = Self::from_file_text(path, &text)?;
        let mut overrides = serde_json::Map::new();
        env_overlay(&mut overrides, vars)?;
        if overrides.is_empty() {
            return Ok(from_file);
        }
        let file_value: serde_json::Value = if is_json_file(path) {
            serde_json::from_str(&text).map_err(|e| parse_problem("the settings file", e))?
        } else {
            let mut table: toml::Table = toml::from_str(&text)
                .map_err(|e| parse_problem("the settings file", toml_error(&text, &e)))?;
            // A bare TOML date has no JSON form: carry it as the text it is.
            for (_, value) in table.iter_mut() {
                if let toml::Value::Datetime(date) = &*value {
                    *value = toml::Value::String(date.to_string());
                }
            }
            serde_json::to_value(table).map_err(|e| parse_problem("the settings file", e))?
        };
        let serde_json::Value::Object(mut map) = file_value else {
            return Err(parse_problem(
                "the settings file",
                "expected a table of keys",
            ));
        };
        map.extend(overrides);
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| parse_problem("the settings file and environment", e))
    }

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
        self.smtp_port.unwrap_or(match self.smtp_tls_mode() {
            SmtpTls::Implicit => 465,
            SmtpTls::Starttls | SmtpTls::None => 587,
        })
    }

    /// The SMTP host: `smtp_host`, else Exchange Online's submission host
    /// (`smtp.office365.com`) for OAuth and Basic in the global cloud.
    #[must_use]
    pub fn smtp_host(&self) -> Option<&str> {
        match non_blank(self.smtp_host.as_deref()) {
            Some(host) => Some(host),
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
        let mode = self
            .auth_mode
            .map_or_else(|| "(no auth_mode)".to_owned(), |m| m.to_string());
        match self.transport_kind() {
            TransportKind::Graph => format!(
                "Microsoft Graph at {} as {sender}, authentication {mode}",
                self.graph_endpoint()
            ),
            TransportKind::Smtp => format!(
                "SMTP {}:{} ({}) as {sender}, authentication {mode}",
                self.smtp_host().unwrap_or("(no smtp_host)"),
                self.smtp_port(),
                self.smtp_tls_mode()
            ),
        }
    }

    /// Checks that every field the chosen mode needs is present and consistent. Nothing is
    /// required when the connector is disabled; only the outbox needs nothing else when
    /// `outbox_dir` is set.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] listing every problem at once, each naming the field as the
    /// admin screen shows it and its settings key.
    pub fn validate(&self) -> Result<()> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidSettings { problems })
        }
    }

    fn problems(&self) -> Vec<SettingsProblem> {
        let mut problems = Vec::new();
        if !self.enabled {
            return problems;
        }
        if let Some(dir) = &self.outbox_dir {
            if dir.as_os_str().is_empty() {
                problem(
                    &mut problems,
                    "outbox_dir",
                    "Outbox folder (`outbox_dir`) is empty; remove it to send mail, or name a folder",
                );
            }
            if non_blank(self.user_name.as_deref()).is_some() {
                self.check_sender(&mut problems, "");
            }
            return problems;
        }
        let Some(mode) = self.auth_mode else {
            problem(
                &mut problems,
                "auth_mode",
                "Authentication Mode (`auth_mode`) is required when the connector is enabled: \
                 choose `oauth`, `basic` or `none`",
            );
            return problems;
        };
        let transport = self.transport_kind();
        self.check_sender(
            &mut problems,
            &format!("when Authentication Mode is {mode}"),
        );

        match mode {
            AuthMode::OAuth => {
                let when = "when Authentication Mode is OAuth";
                match non_blank(self.oauth_client_id.as_deref()) {
                    None => problem(
                        &mut problems,
                        "oauth_client_id",
                        format!(
                            "OAuth Client ID (`oauth_client_id`) is required {when}: copy the Application (client) ID from the app registration's Overview page"
                        ),
                    ),
                    Some(id) if uuid::Uuid::parse_str(id).is_err() => problem(
                        &mut problems,
                        "oauth_client_id",
                        format!(
                            "OAuth Client ID (`oauth_client_id`) `{id}` is not a GUID: copy the Application (client) ID from the app registration's Overview page"
                        ),
                    ),
                    Some(_) => {}
                }
                match non_blank(self.tenant_id.as_deref()) {
                    None => problem(
                        &mut problems,
                        "tenant_id",
                        format!(
                            "Tenant ID (`tenant_id`) is required {when}: copy the Directory (tenant) ID from the app registration's Overview page"
                        ),
                    ),
                    Some(tenant) => {
                        if let Some(message) = tenant_problem(tenant) {
                            problem(&mut problems, "tenant_id", message);
                        }
                    }
                }
                self.check_oauth_credential(&mut problems, when);
            }
            AuthMode::Basic => {
                if self.password.as_ref().is_none_or(Secret::is_empty) {
                    problem(
                        &mut problems,
                        "password",
                        "Password (`password`) is required when Authentication Mode is Basic",
                    );
                }
                if transport == TransportKind::Graph {
                    problem(
                        &mut problems,
                        "transport",
                        "Transport `graph` needs Authentication Mode OAuth: set `transport = \"smtp\"` for Basic, or switch `auth_mode` to `oauth`",
                    );
                }
            }
            AuthMode::None => {
                if transport == TransportKind::Graph {
                    problem(
                        &mut problems,
                        "transport",
                        "Transport `graph` needs Authentication Mode OAuth: an anonymous relay (`auth_mode = \"none\"`) uses `transport = \"smtp\"`",
                    );
                }
            }
        }

        match transport {
            TransportKind::Graph => {
                check_url(
                    &mut problems,
                    "authority_host",
                    "Authority host",
                    self.authority_host.as_deref(),
                );
                check_url(
                    &mut problems,
                    "graph_endpoint",
                    "Graph endpoint",
                    self.graph_endpoint.as_deref(),
                );
            }
            TransportKind::Smtp => {
                if mode == AuthMode::OAuth {
                    check_url(
                        &mut problems,
                        "authority_host",
                        "Authority host",
                        self.authority_host.as_deref(),
                    );
                }
                match self.smtp_host() {
                    None => problem(
                        &mut problems,
                        "smtp_host",
                        format!(
                            "SMTP host (`smtp_host`) is required when Authentication Mode is {mode}"
                        ),
                    ),
                    Some(host) if host.contains(['/', ':', ' ']) => problem(
                        &mut problems,
                        "smtp_host",
                        format!(
                            "SMTP host (`smtp_host`) `{host}` must be a host name only, e.g. `smtp.office365.com`; put the port in `smtp_port`"
                        ),
                    ),
                    Some(host) => {
                        if mode != AuthMode::None
                            && self.smtp_tls_mode() == SmtpTls::None
                            && !self.smtp_allow_plaintext_credentials_dangerous
                            && !is_loopback_host(host)
                        {
                            problem(
                                &mut problems,
                                "smtp_allow_plaintext_credentials_dangerous",
                                format!(
                                    "SMTP without TLS (`use_ssl = false` or `smtp_tls = \"none\"`) would send the {mode} credentials unencrypted to `{host}`: turn Use SSL (`use_ssl`) on, or set `smtp_allow_plaintext_credentials_dangerous = true` only on a network you trust"
                                ),
                            );
                        }
                    }
                }
                if self.smtp_port == Some(0) {
                    problem(
                        &mut problems,
                        "smtp_port",
                        "SMTP port (`smtp_port`) must not be 0; Exchange Online uses 587",
                    );
                }
            }
        }
        if let Some(path) = &self.tls_ca_file
            && !path.is_file()
        {
            problem(
                &mut problems,
                "tls_ca_file",
                format!(
                    "Trusted CA file (`tls_ca_file`) `{}` does not exist or is not a file",
                    path.display()
                ),
            );
        }
        problems
    }

    /// OAuth needs a client secret, or a certificate and its key.
    fn check_oauth_credential(&self, problems: &mut Vec<SettingsProblem>, when: &str) {
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
            if let Some(path) = path
                && !path.is_file()
            {
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
        match (&self.client_certificate_file, &self.client_private_key_file) {
            (Some(_), Some(_)) => {}
            (Some(_), None) => problem(
                problems,
                "client_private_key_file",
                "Client private key (`client_private_key_file`) is required with `client_certificate_file`: the PEM private key of that certificate",
            ),
            (None, Some(_)) => problem(
                problems,
                "client_certificate_file",
                "Client certificate (`client_certificate_file`) is required with `client_private_key_file`: the PEM certificate uploaded to the app registration",
            ),
            (None, None) if self.client_secret.as_ref().is_none_or(Secret::is_empty) => problem(
                problems,
                "client_secret",
                format!(
                    "Client secret (`client_secret`) — or both `client_certificate_file` and `client_private_key_file` — is required {when}: create a secret under Certificates & secrets and copy its Value (not its Secret ID)"
                ),
            ),
            (None, None) => {}
        }
    }

    fn check_sender(&self, problems: &mut Vec<SettingsProblem>, when: &str) -> Option<Mailbox> {
        match non_blank(self.user_name.as_deref()) {
            None => {
                problem(
                    problems,
                    "user_name",
                    format!(
                        "User Name (`user_name`) is required {when}: it is the sender mailbox, e.g. `no-reply@contoso.com`"
                    ),
                );
                None
            }
            Some(name) => match Mailbox::parse(name) {
                Ok(mailbox) => Some(mailbox),
                Err(_) => {
                    problem(
                        problems,
                        "user_name",
                        format!(
                            "User Name (`user_name`) `{name}` is not an email address; use the sender mailbox, e.g. `no-reply@contoso.com`"
                        ),
                    );
                    None
                }
            },
        }
    }

    /// Validates the settings and returns the transport they describe: the outbox when
    /// `outbox_dir` is set, otherwise Graph or SMTP, wrapped in [`RecipientLimit`] when
    /// `recipient_limit` is not 0. A disabled connector builds a transport whose `send` fails
    /// with [`Error::Disabled`].
    ///
    /// ```
    /// use mail_connector::{ConnectorSettings, Email, MailTransport};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = std::env::temp_dir().join("mail-connector-doc-build");
    /// let mut settings = ConnectorSettings::default();
    /// settings.outbox_dir = Some(dir.clone());
    /// settings.user_name = Some("no-reply@example.org".into());
    /// let transport = settings.build()?;
    /// let email = Email::builder().to("ann@example.org").subject("Hi").build()?;
    /// transport.send(&email).await?;
    /// # std::fs::remove_dir_all(dir).unwrap();
    /// # Ok::<(), mail_connector::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] listing every missing or contradictory field;
    /// [`Error::NotAvailable`] for a transport whose crate feature (`graph`, `smtp`) is off.
    pub fn build(&self) -> Result<Arc<dyn MailTransport>> {
        if !self.enabled {
            return Ok(Arc::new(DisabledTransport));
        }
        self.validate()?;
        let transport: Arc<dyn MailTransport> = if let Some(dir) = &self.outbox_dir {
            let mut outbox = OutboxTransport::new(dir);
            if non_blank(self.user_name.as_deref()).is_some() {
                outbox = outbox.with_sender(self.sender()?);
            }
            Arc::new(outbox)
        } else {
            match self.transport_kind() {
                #[cfg(feature = "graph")]
                TransportKind::Graph => {
                    Arc::new(crate::graph::GraphTransport::from_settings(self)?)
                }
                #[cfg(not(feature = "graph"))]
                TransportKind::Graph => {
                    return Err(Error::NotAvailable {
                        transport: "graph",
                        reason: "this build of mail-connector has no `graph` feature; enable it in Cargo.toml",
                    });
                }
                #[cfg(feature = "smtp")]
                TransportKind::Smtp => Arc::new(crate::smtp::SmtpTransport::from_settings(self)?),
                #[cfg(not(feature = "smtp"))]
                TransportKind::Smtp => {
                    return Err(Error::NotAvailable {
                        transport: "smtp",
                        reason: "this build of mail-connector has no `smtp` feature; enable it in Cargo.toml",
                    });
                }
            }
        };
        Ok(self.limited(transport))
    }

    /// Wraps `transport` in [`RecipientLimit`] when `recipient_limit` is not 0.
    fn limited(&self, transport: Arc<dyn MailTransport>) -> Arc<dyn MailTransport> {
        match self.recipient_limit {
            0 => transport,
            limit => Arc::new(RecipientLimit::new(
                transport,
                usize::try_from(limit).unwrap_or(usize::MAX),
            )),
        }
    }
}

fn read_settings_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("read the settings file", path, e))
}

fn is_json_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Describes a TOML error by line, column and the key whose value it is in, without quoting
/// any of the text: a line may hold a secret (in a multi-line `password`, a line's `a=b` is
/// part of the password, not a key). Only known key names are named.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    let Some(span) = error.span() else {
        return message.to_owned();
    };
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line_no = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    match owning_key(text, line_no) {
        Some((key, true)) => format!("line {line_no}, column {column}, key `{key}`: {message}"),
        Some((key, false)) => {
            format!("line {line_no}, column {column}, in the value of `{key}`: {message}")
        }
        None => format!("line {line_no}, column {column}: {message}"),
    }
}

/// The known key assigned on line `line_no` or the nearest line above it (a multi-line value
/// belongs to it), and whether it is on that very line.
fn owning_key(text: &str, line_no: usize) -> Option<(&'static str, bool)> {
    let lines: Vec<&str> = text.lines().take(line_no).collect();
    for (index, line) in lines.iter().enumerate().rev() {
        let line = line.trim_start();
        if line.starts_with('[') {
            return None;
        }
        let unquoted = line.trim_start_matches(['"', '\'']);
        let found = KEYS.iter().find(|(key, _)| {
            unquoted.strip_prefix(key).is_some_and(|rest| {
                rest.trim_start_matches(['"', '\''])
                    .trim_start()
                    .starts_with('=')
            })
        });
        if let Some((key, _)) = found {
            return Some((key, index + 1 == line_no));
        }
    }
    None
}

/// The trimmed value, or `None` when it is missing or blank (an empty field on the screen).
pub(crate) fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn problem(problems: &mut Vec<SettingsProblem>, field: &str, message: impl Into<String>) {
    problems.push(SettingsProblem {
        field: field.to_owned(),
        message: message.into(),
    });
}

fn tenant_problem(tenant: &str) -> Option<String> {
    let lower = tenant.to_ascii_lowercase();
    if matches!(lower.as_str(), "common" | "organizations" | "consumers") {
        return Some(format!(
            "Tenant ID (`tenant_id`) `{tenant}` cannot be used for app-only sign-in: use the Directory (tenant) ID GUID or the tenant's domain"
        ));
    }
    let is_guid = uuid::Uuid::parse_str(tenant).is_ok();
    let is_domain = tenant.contains('.')
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    (!is_guid && !is_domain).then(|| {
        format!(
            "Tenant ID (`tenant_id`) `{tenant}` is neither a GUID nor a domain name: copy the Directory (tenant) ID from the app registration's Overview page"
        )
    })
}

fn check_url(problems: &mut Vec<SettingsProblem>, field: &str, label: &str, value: Option<&str>) {
    let Some(value) = non_blank(value) else {
        return;
    };
    match url::Url::parse(value) {
        Ok(url) if url.scheme() == "https" => {}
        Ok(url) if url.scheme() == "http" && is_loopback(&url) => {}
        Ok(_) => problem(
            problems,
            field,
            format!(
                "{label} (`{field}`) `{value}` must use https (plain http is allowed only for localhost)"
            ),
        ),
        Err(e) => problem(
            problems,
            field,
            format!(
                "{label} (`{field}`) `{value}` is not a URL ({e}); write e.g. `https://host.example`"
            ),
        ),
    }
}

/// Whether an SMTP host name is this machine: `localhost` or a loopback address.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn env_overlay<K: AsRef<str>, V: AsRef<str>>(
    map: &mut serde_json::Map<String, serde_json::Value>,
    vars: impl IntoIterator<Item = (K, V)>,
) -> Result<()> {
    let mut problems = Vec::new();
    for (name, value) in vars {
        let (name, value) = (name.as_ref(), value.as_ref());
        let Some(suffix) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if OTHER_ENV.contains(&suffix) {
            continue;
        }
        let key = suffix.to_ascii_lowercase();
        let Some(&(key, kind)) = KEYS.iter().find(|(k, _)| *k == key) else {
            problem(
                &mut problems,
                "settings",
                format!(
                    "`{name}` is not a mail connector setting; known variables are {}",
                    KEYS.iter()
                        .map(|(k, _)| format!("{ENV_PREFIX}{}", k.to_ascii_uppercase()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            continue;
        };
        let trimmed = value.trim();
        let parsed = match kind {
            Kind::Text => Some(serde_json::Value::String(value.to_owned())),
            Kind::Bool => parse_bool(trimmed).map(serde_json::Value::Bool),
            Kind::Number(max) => trimmed
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .map(serde_json::Value::from),
        };
        match parsed {
            Some(parsed) => {
                map.insert(key.to_owned(), parsed);
            }
            None => problem(
                &mut problems,
                key,
                format!(
                    "`{name}` must be {}, not `{trimmed}`",
                    match kind {
                        Kind::Bool => "true or false".to_owned(),
                        Kind::Number(max) => format!("a whole number from 0 to {max}"),
                        Kind::Text => "text".to_owned(),
                    }
                ),
            ),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidSettings { problems })
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Lower-cases and drops spaces, `-`, `_` and `.`, so `OAuth 2.0`, `oauth2` and `OAUTH`
/// compare alike.
fn normalize(value: &str) -> String {
    value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Defines a settings enum that parses case-insensitively with aliases.
macro_rules! settings_enum {
    (
        $(#[$meta:meta])* $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $canonical:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// The canonical settings value.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $canonical, )+ }
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(value: &str) -> Result<Self> {
                let n = normalize(value);
                $( if n == normalize($canonical) $(|| n == normalize($alias))* {
                    return Ok(Self::$variant);
                } )+
                Err(Error::InvalidSettings {
                    problems: vec![SettingsProblem {
                        field: $what.into(),
                        message: format!(
                            "`{value}` is not a valid `{}`; use one of: {}",
                            $what,
                            [$($canonical),+].join(", ")
                        ),
                    }],
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(|e: Error| serde::de::Error::custom(e.to_string().trim_start_matches("invalid mail connector settings: ").to_owned()))
            }
        }
    };
}

settings_enum! {
    /// The screen's Authentication Mode.
    AuthMode, "auth_mode" {
        /// OAuth 2.0 client credentials from an Entra ID app registration.
        OAuth => "oauth" | "oauth2" | "oauth20" | "modern",
        /// User name and password (SMTP AUTH LOGIN/PLAIN).
        Basic => "basic" | "password",
        /// No authentication: an anonymous SMTP relay.
        None => "none" | "anonymous" | "relay",
    }
}

settings_enum! {
    /// Which protocol sends the mail.
    TransportKind, "transport" {
        /// Microsoft Graph `sendMail`.
        Graph => "graph" | "msgraph" | "microsoft graph",
        /// SMTP submission.
        Smtp => "smtp",
    }
}

settings_enum! {
    /// How the SMTP connection is encrypted.
    SmtpTls, "smtp_tls" {
        /// Plain connection upgraded with STARTTLS, which is required (port 587).
        Starttls => "starttls" | "start tls",
        /// TLS from the first byte (port 465, "SMTPS").
        Implicit => "implicit" | "ssl" | "tls" | "smtps",
        /// No encryption.
        None => "none" | "plain" | "plaintext" | "off",
    }
}

settings_enum! {
    /// The Microsoft cloud the tenant lives in.
    Cloud, "cloud" {
        /// The global cloud (including GCC moderate).
        Global => "global" | "public" | "commercial" | "gcc",
        /// US Government L4 (GCC High).
        UsGov => "us-gov" | "gcc high" | "usgovernment" | "l4",
        /// US Government L5 (DoD).
        UsDod => "us-dod" | "dod" | "l5",
        /// China, operated by 21Vianet.
        China => "china" | "21vianet",
    }
}

impl Cloud {
    /// The login (authority) host.
    #[must_use]
    pub fn authority_host(self) -> &'static str {
        match self {
            Self::Global => "https://login.microsoftonline.com",
            Self::UsGov | Self::UsDod => "https://login.microsoftonline.us",
            Self::China => "https://login.partner.microsoftonline.cn",
        }
    }

    /// The Microsoft Graph host, which is also the resource the Graph token's scope names.
    #[must_use]
    pub fn graph_endpoint(self) -> &'static str {
        match self {
            Self::Global => "https://graph.microsoft.com",
            Self::UsGov => "https://graph.microsoft.us",
            Self::UsDod => "https://dod-graph.microsoft.us",
            Self::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

// The enum comes from a macro, so `#[derive(Default)]` cannot mark the variant.
#[allow(clippy::derivable_impls)]
impl Default for Cloud {
    fn default() -> Self {
        Self::Global
    }
}

/// A calendar date (`YYYY-MM-DD`), used for `client_secret_expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExpiryDate(time::Date);

impl ExpiryDate {
    /// Days from `today` (UTC) until this date: negative once it has passed.
    #[must_use]
    pub fn days_left(self) -> i64 {
        (self.0 - time::OffsetDateTime::now_utc().date()).whole_days()
    }
}

impl FromStr for ExpiryDate {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(value.trim(), format)
            .map(Self)
            .map_err(|_| Error::InvalidSettings {
                problems: vec![SettingsProblem {
                    field: "client_secret_expires".into(),
                    message: format!(
                        "Client secret expiry (`client_secret_expires`) `{value}` is not a date written YYYY-MM-DD"
                    ),
                }],
            })
    }
}

impl fmt::Display for ExpiryDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            u8::from(self.0.month()),
            self.0.day()
        )
    }
}

impl<'de> Deserialize<'de> for ExpiryDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        // TOML may hold a bare date (`2027-01-31`) rather than a string.
        let value = toml::Value::deserialize(deserializer)?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Datetime(d) => d.to_string(),
            other => other.to_string(),
        };
        text.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.to_string()))
    }
}

/// What a disabled connector builds: it sends nothing and says why.
#[derive(Debug)]
struct DisabledTransport;

#[async_trait]
impl MailTransport for DisabledTransport {
    async fn send(&self, _email: &Email) -> Result<SendReport> {
        tracing::warn!("mail connector is disabled; email not sent");
        Err(Error::Disabled)
    }

    async fn check(&self) -> Result<CheckReport> {
        Err(Error::Disabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_a_file_with_a_bare_date() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mail.toml");
        std::fs::write(
            &path,
            "client_secret_expires = 2027-06-30\nrecipient_limit = 5\nuser_name = \"a@example.org\"\n",
        )
        .unwrap();
        let s = ConnectorSettings::from_file_and_vars(
            &path,
            [("MAIL_CONNECTOR_RECIPIENT_LIMIT", "9"), ("OTHER", "x")],
        )
        .unwrap();
        assert_eq!(s.recipient_limit, 9);
        assert_eq!(s.user_name.as_deref(), Some("a@example.org"));
        assert_eq!(s.client_secret_expires.unwrap().to_string(), "2027-06-30");
        let none: [(&str, &str); 0] = [];
        let s = ConnectorSettings::from_file_and_vars(&path, none).unwrap();
        assert_eq!(s.recipient_limit, 5);
    }

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

    #[test]
    fn enums_accept_aliases_in_any_case() {
        assert_eq!("OAuth 2.0".parse::<AuthMode>().unwrap(), AuthMode::OAuth);
        assert_eq!("GCC-High".parse::<Cloud>().unwrap(), Cloud::UsGov);
        assert_eq!("SSL".parse::<SmtpTls>().unwrap(), SmtpTls::Implicit);
        let error = "kerberos".parse::<AuthMode>().unwrap_err().to_string();
        assert!(error.contains("oauth, basic, none"), "{error}");
    }

    #[test]
    fn clouds_pick_hosts_together() {
        assert_eq!(
            Cloud::UsDod.graph_endpoint(),
            "https://dod-graph.microsoft.us"
        );
        assert_eq!(
            Cloud::UsDod.authority_host(),
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            Cloud::China.authority_host(),
            "https://login.partner.microsoftonline.cn"
        );
    }

    #[test]
    fn loopback_detection() {
        for (url, expected) in [
            ("http://localhost:1", true),
            ("http://127.0.0.1", true),
            ("http://[::1]:80", true),
            ("http://example.org", false),
        ] {
            assert_eq!(
                is_loopback(&url::Url::parse(url).unwrap()),
                expected,
                "{url}"
            );
        }
    }
}
