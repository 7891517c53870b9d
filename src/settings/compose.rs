//! Settings as part of a host's own configuration: read from a table of the host's file
//! (`[mail]` in `app.toml`, `"mail": {…}` in JSON), overridden by `MAIL_CONNECTOR_*`
//! environment variables, and written back (`Serialize`) with the secrets redacted unless
//! asked for in plain.

use super::ConnectorSettings;
use super::env::{ENV_PREFIX, KEYS, env_overlay};
use super::load::{from_json, parse_problem, redact_quoted, toml_to_json};
use crate::error::{Error, Result, SettingsProblem};
use crate::secret::Secret;

/// How [`ConnectorSettings::to_toml_string`] and its siblings write secrets
/// (`client_secret`, `password`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretsIn {
    /// As `[redacted]`: safe to show, log or store next to the code, with the secrets
    /// supplied by `MAIL_CONNECTOR_<KEY>` environment variables. Such a file reads back with
    /// the placeholder kept; [`ConnectorSettings::with_env`] (and
    /// [`ConnectorSettings::from_file_with_env`]) replace it with the variable's value, and
    /// refuse one left without a variable, naming the key and the variable, as do
    /// [`ConnectorSettings::validate`] and [`ConnectorSettings::build`].
    ///
    /// User names and passwords in host settings (`https://user:password@host` in a URL,
    /// `user:password@host` in `smtp_host`, which [`ConnectorSettings::validate`] refuses)
    /// are written as `…@host` too, as they are by the derived `Serialize`.
    Redacted,
    /// As their values: for writing the settings where the secrets belong (a protected
    /// file, a vault). Anyone who can read the output has the credentials.
    Plain,
}

impl ConnectorSettings {
    /// The settings as TOML text, every key in the order of the settings table; unset
    /// optional keys are left out.
    ///
    /// ```
    /// use mail_connector::settings::SecretsIn;
    /// use mail_connector::{ConnectorSettings, Secret};
    ///
    /// let mut settings = ConnectorSettings::default();
    /// settings.user_name = Some("no-reply@contoso.com".into());
    /// settings.password = Some(Secret::new("app-password"));
    /// let shown = settings.to_toml_string(SecretsIn::Redacted)?;
    /// assert!(shown.contains("password = \"[redacted]\""));
    /// let stored = settings.to_toml_string(SecretsIn::Plain)?;
    /// let again = ConnectorSettings::from_toml_str(&stored)?;
    /// assert_eq!(again.password.unwrap().expose_secret(), "app-password");
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] when a path is not valid
    /// UTF-8 (TOML and JSON hold text only).
    pub fn to_toml_string(&self, secrets: SecretsIn) -> Result<String> {
        let value = self.to_json_value(secrets)?;
        toml::to_string(&InTableOrder(&value)).map_err(write_problem)
    }

    /// The settings as pretty-printed JSON text, keys in the order of the settings table;
    /// unset optional keys are left out.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::to_toml_string`].
    pub fn to_json_string(&self, secrets: SecretsIn) -> Result<String> {
        let value = self.to_json_value(secrets)?;
        serde_json::to_string_pretty(&InTableOrder(&value)).map_err(write_problem)
    }

    /// The settings as a JSON object, to embed in a host's own settings document; unset
    /// optional keys are left out.
    ///
    /// The derived `Serialize` of [`ConnectorSettings`] writes the same keys (with `null`
    /// for unset ones in formats that have it), always with the secrets redacted.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::to_toml_string`].
    pub fn to_json_value(&self, secrets: SecretsIn) -> Result<serde_json::Value> {
        let serialize = || serde_json::to_value(self);
        let value = match secrets {
            SecretsIn::Redacted => serialize(),
            SecretsIn::Plain => crate::secret::with_values_exposed(serialize),
        }
        .map_err(write_problem)?;
        Ok(match value {
            serde_json::Value::Object(mut map) => {
                map.retain(|_, v| !v.is_null());
                serde_json::Value::Object(map)
            }
            other => other,
        })
    }

    /// Reads settings from a table of a host's own TOML file, such as its `[mail]` table.
    /// Unknown keys are refused with a did-you-mean, as in a file of their own.
    ///
    /// ```
    /// use mail_connector::ConnectorSettings;
    ///
    /// let app: toml::Table = toml::from_str(r#"
    ///     [server]
    ///     port = 8080
    ///
    ///     [mail]
    ///     auth_mode = "basic"
    ///     user_name = "no-reply@example.org"
    ///     smtp_host = "smtp.example.org"
    /// "#).unwrap();
    /// let mail = app.get("mail").cloned().unwrap_or(toml::Value::Table(Default::default()));
    /// let settings = ConnectorSettings::from_toml_value(mail)?
    ///     // MAIL_CONNECTOR_PASSWORD and friends from the environment, on top:
    ///     .with_env_vars([("MAIL_CONNECTOR_PASSWORD", "from-the-environment")])?;
    /// assert_eq!(settings.smtp_host.as_deref(), Some("smtp.example.org"));
    /// assert!(settings.password.is_some());
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] for an unknown key (with
    /// the nearest known one) or a wrongly typed value; the message names the key and
    /// never quotes a value. A `[redacted]` placeholder (settings written with
    /// [`SecretsIn::Redacted`]) is not an error here: it is kept for
    /// [`ConnectorSettings::with_env`] to replace.
    pub fn from_toml_value(value: toml::Value) -> Result<Self> {
        let value = toml_to_json(value).map_err(|e| parse_problem("the TOML table", e))?;
        Self::from_value_in(value, "the TOML table")
    }

    /// Reads settings from an object of a host's own JSON document, such as its `"mail"`
    /// member.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::from_toml_value`].
    pub fn from_json_value(value: serde_json::Value) -> Result<Self> {
        Self::from_value_in(value, "the JSON object")
    }

    fn from_value_in(value: serde_json::Value, source: &str) -> Result<Self> {
        if !value.is_object() {
            return Err(parse_problem(source, "expected a table of settings keys"));
        }
        from_json(value).map_err(|e| parse_problem(source, e))
    }

    /// These settings with the process's `MAIL_CONNECTOR_<KEY>` environment variables
    /// applied on top: a variable that is set replaces the key's value. Unknown
    /// `MAIL_CONNECTOR_*` variables are ignored with a warning (logged through `tracing`,
    /// with the nearest known name), so a stray variable cannot stop a service.
    ///
    /// Works with settings from anywhere: a file, [`ConnectorSettings::from_toml_value`], or
    /// a `ConnectorSettings` field the host deserialized as part of its own configuration —
    /// also one written with [`SecretsIn::Redacted`], whose `[redacted]` placeholders the
    /// variables replace.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::with_env_vars`].
    pub fn with_env(self) -> Result<Self> {
        self.with_env_vars(super::env::process_env()?)
    }

    /// As [`ConnectorSettings::with_env`], with `(name, value)` pairs shaped like
    /// environment variables; pairs without the `MAIL_CONNECTOR_` prefix are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] naming the variable for a
    /// value that is not a boolean or number where one is needed, or an invalid value; and
    /// naming the key and its variable for a secret left as the `[redacted]` placeholder.
    pub fn with_env_vars<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut overrides = serde_json::Map::new();
        env_overlay(&mut overrides, vars)?;
        if !overrides.is_empty() {
            // The overrides alone, each typed by its field, then moved over: no round trip
            // through text, which a path that is not UTF-8 could not make.
            let keys: Vec<String> = overrides.keys().cloned().collect();
            let from: Self = serde_json::from_value(serde_json::Value::Object(overrides.clone()))
                .map_err(|e| variable_problems(overrides, e))?;
            for key in &keys {
                self.take_field(&from, key);
            }
        }
        // Only a connector that sends needs its secrets (as `validate` has it).
        if self.enabled {
            self.refuse_placeholders()?;
        }
        Ok(self)
    }

    /// Sets the field named `key` to `from`'s value; `false` for a name that is no field.
    fn take_field(&mut self, from: &Self, key: &str) -> bool {
        macro_rules! take {
            ($($field:ident),* $(,)?) => {
                match key {
                    $(stringify!($field) => self.$field = from.$field.clone(),)*
                    _ => return false,
                }
            };
        }
        take!(
            enabled,
            auth_mode,
            transport,
            user_name,
            oauth_client_id,
            client_secret,
            tenant_id,
            client_certificate_file,
            client_private_key_file,
            oauth_credential,
            client_secret_file,
            managed_identity_client_id,
            managed_identity_endpoint,
            federated_token_file,
            oauth_scope,
            client_secret_expires,
            password,
            use_ssl,
            smtp_host,
            smtp_port,
            smtp_tls,
            smtp_allow_plaintext_credentials_dangerous,
            recipient_limit,
            cloud,
            authority_host,
            graph_endpoint,
            tls_ca_file,
            outbox_dir,
            save_to_sent_items,
            allow_send_as,
            dkim_domain,
            dkim_selector,
            dkim_private_key_file,
            queue_url,
            queue_max_attempts,
            queue_max_in_flight,
            queue_rate_per_minute,
            queue_retention_days,
        );
        true
    }

    /// An error for each secret that is still the `[redacted]` placeholder of settings
    /// written with [`SecretsIn::Redacted`], naming its key and environment variable.
    pub(super) fn placeholder_problems(&self) -> Vec<SettingsProblem> {
        [
            ("client_secret", "Client Secret", &self.client_secret),
            ("password", "Password", &self.password),
            ("queue_url", "Queue URL", &self.queue_url),
        ]
        .into_iter()
        .filter(|(_, _, secret)| secret.as_ref().is_some_and(Secret::is_placeholder))
        .map(|(key, label, _)| SettingsProblem {
            field: key.to_owned(),
            message: format!(
                "{label} (`{key}`) is the placeholder `[redacted]` of settings written without \
                 their secrets: set the environment variable `{ENV_PREFIX}{}`, or put the real \
                 value in its place",
                key.to_ascii_uppercase()
            ),
        })
        .collect()
    }

    fn refuse_placeholders(&self) -> Result<()> {
        let problems = self.placeholder_problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidSettings { problems })
        }
    }
}

/// Every field, as a derived `Debug` would show it, except that secrets print as
/// `[redacted]` (their own `Debug`) and a `user:password@` in a URL setting as `…@`.
impl std::fmt::Debug for ConnectorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown_url = |url: &Option<String>| url.as_deref().map(crate::net::without_userinfo);
        f.debug_struct("ConnectorSettings")
            .field("enabled", &self.enabled)
            .field("auth_mode", &self.auth_mode)
            .field("transport", &self.transport)
            .field("user_name", &self.user_name)
            .field("oauth_client_id", &self.oauth_client_id)
            .field("client_secret", &self.client_secret)
            .field("tenant_id", &self.tenant_id)
            .field("client_certificate_file", &self.client_certificate_file)
            .field("client_private_key_file", &self.client_private_key_file)
            .field("oauth_credential", &self.oauth_credential)
            .field("client_secret_file", &self.client_secret_file)
            .field(
                "managed_identity_client_id",
                &self.managed_identity_client_id,
            )
            .field(
                "managed_identity_endpoint",
                &shown_url(&self.managed_identity_endpoint),
            )
            .field("federated_token_file", &self.federated_token_file)
            .field("oauth_scope", &self.oauth_scope)
            .field("client_secret_expires", &self.client_secret_expires)
            .field("password", &self.password)
            .field("use_ssl", &self.use_ssl)
            .field("smtp_host", &shown_url(&self.smtp_host))
            .field("smtp_port", &self.smtp_port)
            .field("smtp_tls", &self.smtp_tls)
            .field(
                "smtp_allow_plaintext_credentials_dangerous",
                &self.smtp_allow_plaintext_credentials_dangerous,
            )
            .field("recipient_limit", &self.recipient_limit)
            .field("cloud", &self.cloud)
            .field("authority_host", &shown_url(&self.authority_host))
            .field("graph_endpoint", &shown_url(&self.graph_endpoint))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("outbox_dir", &self.outbox_dir)
            .field("save_to_sent_items", &self.save_to_sent_items)
            .field("allow_send_as", &self.allow_send_as)
            .field("dkim_domain", &self.dkim_domain)
            .field("dkim_selector", &self.dkim_selector)
            .field("dkim_private_key_file", &self.dkim_private_key_file)
            .field("queue_url", &self.queue_url)
            .field("queue_max_attempts", &self.queue_max_attempts)
            .field("queue_max_in_flight", &self.queue_max_in_flight)
            .field("queue_rate_per_minute", &self.queue_rate_per_minute)
            .field("queue_retention_days", &self.queue_retention_days)
            .finish()
    }
}

/// A host setting (`smtp_host`, `authority_host`, `graph_endpoint`,
/// `managed_identity_endpoint`) as the derived `Serialize` writes it: a `user:password@` in
/// it as `…@`, unless the secrets are written in plain ([`SecretsIn::Plain`]). Validation
/// refuses such a host, but the settings may be written (a host's configuration dumped)
/// before they are validated, and `Debug` hides it too.
pub(super) fn host_without_userinfo<S: serde::Serializer>(
    host: &Option<String>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::Serialize;
    match host {
        Some(host) if !crate::secret::values_exposed() => {
            serializer.serialize_some(&crate::net::without_userinfo(host))
        }
        host => host.serialize(serializer),
    }
}

/// A settings object written with its keys in the order of the settings table (a JSON
/// object value sorts them by name), any others after them.
struct InTableOrder<'a>(&'a serde_json::Value);

impl serde::Serialize for InTableOrder<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let serde_json::Value::Object(map) = self.0 else {
            return self.0.serialize(serializer);
        };
        let known = KEYS.iter().map(|(key, _)| *key);
        let others = map
            .keys()
            .map(String::as_str)
            .filter(|k| !KEYS.iter().any(|(key, _)| key == k));
        let mut out = serializer.serialize_map(Some(map.len()))?;
        for key in known.chain(others) {
            if let Some(value) = map.get(key) {
                out.serialize_entry(key, value)?;
            }
        }
        out.end()
    }
}

/// Settings that cannot be written: a path that is not UTF-8. The serializer's text is
/// redacted like a parser's, in case it ever quotes a value.
fn write_problem(error: impl std::fmt::Display) -> Error {
    Error::settings(
        "settings",
        format!(
            "cannot write the settings: {}",
            redact_quoted(&error.to_string())
        ),
    )
}

/// The variables whose values the settings do not take (`MAIL_CONNECTOR_AUTH_MODE=kerberos`),
/// each named with its setting, so that the remedy says which one to correct rather than
/// pointing to a line and column the environment does not have. `whole` is the error of all
/// of them together, said as it is should no variable fail alone.
fn variable_problems(
    overrides: serde_json::Map<String, serde_json::Value>,
    whole: serde_json::Error,
) -> Error {
    let problems: Vec<SettingsProblem> = overrides
        .into_iter()
        .filter_map(|(key, value)| {
            let alone = serde_json::Map::from_iter([(key.clone(), value)]);
            let error = serde_json::from_value::<ConnectorSettings>(alone.into()).err()?;
            Some(SettingsProblem {
                message: format!(
                    "`{ENV_PREFIX}{}`: {}",
                    key.to_ascii_uppercase(),
                    redact_quoted(&error.to_string())
                ),
                field: key,
            })
        })
        .collect();
    if problems.is_empty() {
        parse_problem("the environment", whole)
    } else {
        Error::InvalidSettings { problems }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Debug` is written by hand: it must show every key.
    #[test]
    fn debug_shows_every_key_and_no_url_credentials() {
        let settings = ConnectorSettings {
            graph_endpoint: Some("https://admin:hunter2-pw@graph.example".into()),
            ..ConnectorSettings::default()
        };
        let shown = format!("{settings:?}");
        for (key, _) in KEYS {
            assert!(
                shown.contains(&format!("{key}: ")),
                "`{key}` missing from {shown}"
            );
        }
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("https://…@graph.example"), "{shown}");
    }

    /// `with_env_vars` moves each overridden field by name: every key must have its arm.
    #[test]
    fn every_key_can_be_overridden() {
        let from = ConnectorSettings::default();
        for (key, _) in KEYS {
            assert!(
                ConnectorSettings::default().take_field(&from, key),
                "`{key}` is missing from take_field"
            );
        }
    }
}
