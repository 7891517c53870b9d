//! Settings as part of a host's own configuration: read from a table of the host's file
//! (`[mail]` in `app.toml`, `"mail": {…}` in JSON), overridden by `MAIL_CONNECTOR_*`
//! environment variables, and written back (`Serialize`) with the secrets redacted unless
//! asked for in plain.

use super::ConnectorSettings;
use super::load::{KEYS, env_overlay, parse_problem, redact_quoted, toml_to_json};
use crate::error::{Error, Result};

/// How [`ConnectorSettings::to_toml_string`] and its siblings write secrets
/// (`client_secret`, `password`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretsIn {
    /// As `[redacted]`: safe to show, log or store next to the code. Reading such a file
    /// back fails on the placeholder, naming the key.
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
    /// [`Error::InvalidSettings`](crate::Error::InvalidSettings) when a path is not valid
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
    /// [`Error::InvalidSettings`](crate::Error::InvalidSettings) for an unknown key (with
    /// the nearest known one) or a wrongly typed value; the message names the key and
    /// never quotes a value.
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
        serde_json::from_value(value).map_err(|e| parse_problem(source, e))
    }

    /// These settings with the process's `MAIL_CONNECTOR_<KEY>` environment variables
    /// applied on top: a variable that is set replaces the key's value. Unknown
    /// `MAIL_CONNECTOR_*` variables are ignored with a warning (logged through `tracing`,
    /// with the nearest known name), so a stray variable cannot stop a service.
    ///
    /// Works with settings from anywhere: a file, [`ConnectorSettings::from_toml_value`], or
    /// a `ConnectorSettings` field the host deserialized as part of its own configuration.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::with_env_vars`].
    pub fn with_env(self) -> Result<Self> {
        self.with_env_vars(std::env::vars())
    }

    /// As [`ConnectorSettings::with_env`], with `(name, value)` pairs shaped like
    /// environment variables; pairs without the `MAIL_CONNECTOR_` prefix are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`](crate::Error::InvalidSettings) naming the variable for a
    /// value that is not a boolean or number where one is needed, or an invalid value.
    pub fn with_env_vars<K, V>(self, vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut overrides = serde_json::Map::new();
        env_overlay(&mut overrides, vars)?;
        if overrides.is_empty() {
            return Ok(self);
        }
        let serde_json::Value::Object(mut map) = self.to_json_value(SecretsIn::Plain)? else {
            return Err(parse_problem("the settings", "expected a table of keys"));
        };
        map.extend(overrides);
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| parse_problem("the environment", e))
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
