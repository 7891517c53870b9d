//! Reading settings: TOML, JSON, `MAIL_CONNECTOR_*` environment variables, and a file
//! overridden by the environment.

use std::fmt;
use std::path::Path;

use super::ConnectorSettings;
use super::env::{KEYS, process_env};
use super::suggest::suggest_for_unknown_field;
use crate::error::{Error, Result, WHOLE_SETTINGS, settings_file};

/// A settings file or value that cannot be read. The parser's text is passed through
/// [`redact_quoted`]: it may quote a value, and any value may be a secret. The did-you-mean
/// comes first, from the name as written: redacted, a key in another case or with `-`
/// (`Tenant_ID`, `smtp-host`) would have no name left to suggest a key for.
pub(super) fn parse_problem(source: &str, error: impl fmt::Display) -> Error {
    Error::settings(
        WHOLE_SETTINGS,
        format!(
            "cannot read the settings from {source}: {}",
            redact_quoted(&suggest_for_unknown_field(error.to_string()))
        ),
    )
}

/// Replaces every quoted part (`` `…` `` or `"…"`) of a parser's message with `…`, except
/// settings key names, single characters and short punctuation (``expected `=` ``) and, after "unknown field" or
/// "duplicate key", a name shaped like a key (`tennant_id`). Parsers quote the values they
/// found (`invalid type: integer `123`` ) and any value may be a secret.
pub(super) fn redact_quoted(message: &str) -> String {
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
    /// [`Error::InvalidSettings`] for malformed JSON, an unknown key or a wrongly typed value;
    /// the message names the key.
    pub fn from_json_str(text: &str) -> Result<Self> {
        json_text(text).map_err(|e| parse_problem("JSON", e))
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
            json_text(text)
        } else {
            toml::from_str(text).map_err(|e| toml_error(text, &e))
        };
        parsed.map_err(|e| parse_problem(&format!("`{}`", path.display()), e))
    }

    /// Reads settings from the process environment: `MAIL_CONNECTOR_<KEY>` for each key
    /// (e.g. `MAIL_CONNECTOR_CLIENT_SECRET`). `MAIL_CONNECTOR_CONFIG` is left to callers
    /// that load a file.
    ///
    /// A variable that is empty or blank counts as unset (as `KEY=${UNSET}` in a compose
    /// file leaves it). Values are trimmed of surrounding whitespace, but a secret
    /// (`client_secret`, `password`, `queue_url`) only of a line break at its end.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::from_env_vars`].
    pub fn from_env() -> Result<Self> {
        Self::from_env_vars(process_env()?)
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
    /// [`Error::InvalidSettings`] naming the variable for a value that is not a boolean or
    /// number where one is needed, or an invalid value. An unknown `MAIL_CONNECTOR_*`
    /// variable is not an error: it is ignored with a warning (through `tracing`) that names
    /// the nearest known variable.
    pub fn from_env_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self::default().with_env_vars(vars)
    }

    /// Reads a settings file, then lets `MAIL_CONNECTOR_<KEY>` environment variables override
    /// its values — a common way to keep the secret out of the file. The same as
    /// `from_file(path)?.with_env()` ([`ConnectorSettings::with_env`]).
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::from_file`] and [`ConnectorSettings::from_env_vars`].
    pub fn from_file_with_env(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file_and_vars(path.as_ref(), process_env()?)
    }

    fn from_file_and_vars<K: AsRef<str>, V: AsRef<str>>(
        path: &Path,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        // The file on its own first: its errors name the line and key. A `[redacted]`
        // placeholder passes, for the environment to replace (or to be refused after it).
        Self::from_file_text(path, &read_settings_file(path)?)?.with_env_vars(vars)
    }
}

/// A TOML value as JSON, for serde_json's deserializer. A bare TOML date stays in the form
/// TOML gives it to serde, as it does reading a file: the date field reads it
/// ([`ExpiryDate`](super::ExpiryDate)), and a text key refuses it alike.
pub(super) fn toml_to_json(value: toml::Value) -> Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// Deserializes settings with serde_json, naming the key whose value failed: serde_json's
/// own error says what it expected (and, reading text, the line and column), not which key.
pub(super) fn from_json<'de, D>(deserializer: D) -> Result<ConnectorSettings, String>
where
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().to_string();
        // An unknown key is named by the message itself (with the nearest known one).
        match key.as_str() {
            "" | "." => message,
            _ if message.starts_with("unknown field") => message,
            key => format!("key `{key}`: {message}"),
        }
    })
}

/// Settings from JSON text: as [`from_json`], and nothing but whitespace after the object.
fn json_text(text: &str) -> Result<ConnectorSettings, String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let settings = from_json(&mut deserializer)?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(settings)
}

fn read_settings_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::settings_file(WHOLE_SETTINGS, settings_file::SETTINGS, path, e))
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
    // An unknown key is where the span points: a key not known, so `owning_key` would look
    // above it and blame the value of the key before (perhaps a secret's).
    if message.starts_with("unknown field") {
        return format!("the key on line {line_no}, column {column}: {message}");
    }
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

    /// A parser's quotes keep key names, one character and punctuation of up to three
    /// (`=`, `]]`); any other part, however short, may be a value and is not shown.
    #[test]
    fn quotes_keep_names_and_punctuation_only() {
        assert_eq!(
            redact_quoted("expected `=`, `]]` or `a`, found `a1b` in `smtp_port`"),
            "expected `=`, `]]` or `a`, found `…` in `smtp_port`"
        );
    }

    /// The keys are listed in the struct, in `KEYS` (for environment variables), in the module
    /// docs and in the README: one list must not drift from the others.
    #[test]
    fn every_settings_field_is_a_known_and_documented_key() {
        // serde names every field of the struct when it meets an unknown one.
        let error = serde_json::from_str::<ConnectorSettings>(r#"{"not_a_key": 1}"#)
            .unwrap_err()
            .to_string();
        let expected = error
            .split_once("expected one of ")
            .map(|(_, list)| list)
            .unwrap_or_else(|| panic!("serde no longer lists the fields: {error}"));
        let fields: Vec<&str> = expected
            .split(", ")
            .map(|f| {
                f.trim_matches(|c| c == '`' || c == ' ')
                    .split('`')
                    .next()
                    .unwrap()
            })
            .collect();
        let keys: Vec<&str> = KEYS.iter().map(|(key, _)| *key).collect();
        assert_eq!(
            fields, keys,
            "KEYS must list every field, in the struct's order"
        );

        let module_docs = include_str!("mod.rs");
        let readme = include_str!("../../README.md");
        for key in keys {
            let quoted = format!("`{key}`");
            assert!(
                module_docs.contains(&quoted),
                "{key} is missing from the module docs' table"
            );
            assert!(
                readme.contains(&quoted),
                "{key} is missing from the README's settings table"
            );
        }
    }
}
