//! Redacting wrappers for credentials.
//!
//! Client secrets, passwords, access tokens and private keys are held in [`Secret`]. Its
//! `Debug` and `Display` print `[redacted]`, it has no `PartialEq` (so it cannot be compared
//! in a way that leaks timing or ends up in an assertion message), and its value is read only
//! through [`Secret::expose_secret`] — a name that stands out in review. Every struct that
//! holds a `Secret` can therefore derive `Debug` safely.
//!
//! It serializes as `[redacted]` too, so settings written back to a file or shown in an
//! admin API never carry it; only [`ConnectorSettings::to_toml_string`] and its siblings
//! with [`SecretsIn::Plain`] write the values. Read back, `[redacted]` is known as the
//! placeholder it is: the settings refuse it unless a `MAIL_CONNECTOR_<KEY>` variable
//! replaces it.
//!
//! [`ConnectorSettings::to_toml_string`]: crate::ConnectorSettings::to_toml_string
//! [`SecretsIn::Plain`]: crate::settings::SecretsIn::Plain

use std::cell::Cell;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The text printed instead of a secret value.
pub(crate) const REDACTED: &str = "[redacted]";

/// A secret string: a client secret, a password, an access token or a private key.
///
/// ```
/// use mail_connector::Secret;
///
/// let secret = Secret::new("s3cr3t~value");
/// assert_eq!(format!("{secret:?}"), "Secret([redacted])");
/// assert_eq!(secret.to_string(), "[redacted]");
/// assert_eq!(secret.expose_secret(), "s3cr3t~value");
/// ```
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret value. Call it only where the value goes on the wire.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Whether this is the `[redacted]` placeholder of settings written without their
    /// secrets, not a secret.
    pub(crate) fn is_placeholder(&self) -> bool {
        self.0.trim() == REDACTED
    }

    /// Whether the secret is empty (an unset field in a settings file).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

thread_local! {
    /// Set only while [`with_values_exposed`] runs: secrets then serialize as their values.
    static EXPOSE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`Secret`] serialized by this thread as its value instead of
/// `[redacted]`; the previous mode is restored afterwards, even if `f` panics.
pub(crate) fn with_values_exposed<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            EXPOSE.with(|expose| expose.set(self.0));
        }
    }
    let _restore = Restore(EXPOSE.with(|expose| expose.replace(true)));
    f()
}

/// Whether this thread is inside [`with_values_exposed`]: for other settings that hide a
/// part of themselves when written redacted (a `user:password@` in a host).
pub(crate) fn values_exposed() -> bool {
    EXPOSE.with(Cell::get)
}

/// `[redacted]`, except while `with_values_exposed` runs.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match EXPOSE.with(Cell::get) {
            true => serializer.serialize_str(&self.0),
            false => serializer.serialize_str(REDACTED),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

/// Accepts a string — or a bare number, as a password written without quotes — and never
/// quotes the value in an error: serde's own messages would echo it ("invalid type: integer
/// `98765432`").
struct SecretVisitor;

impl Visitor<'_> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quoted string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Secret, E> {
        self.visit_string(value.to_owned())
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Secret, E> {
        // Settings written with secrets redacted, read back: the placeholder is kept, for
        // the environment to replace; the settings refuse one left (`is_placeholder`).
        Ok(Secret(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Secret, E> {
        Ok(Secret(value.to_string()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Secret, E> {
        Ok(Secret(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(E::invalid_type(de::Unexpected::Other("a number"), &self))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(E::invalid_type(de::Unexpected::Other("a boolean"), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2-very-secret");
        let printed = format!("{secret:?} {secret} {secret:#?} {:?}", Some(&secret));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains(REDACTED));
    }

    #[test]
    fn deserializes_from_a_string() {
        let secret: Secret = serde_json::from_str("\"abc~123\"").unwrap();
        assert_eq!(secret.expose_secret(), "abc~123");
    }

    #[test]
    fn numbers_are_taken_as_text_and_errors_never_quote_the_value() {
        let secret: Secret = serde_json::from_str("98765432").unwrap();
        assert_eq!(secret.expose_secret(), "98765432");
        let secret: Secret = toml::from_str::<toml::Table>("p = 12345678")
            .unwrap()
            .remove("p")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(secret.expose_secret(), "12345678");
        let error = serde_json::from_str::<Secret>("3.14159265").unwrap_err();
        assert!(!error.to_string().contains("3.14159265"), "{error}");
        let error = serde_json::from_str::<Secret>("[\"hunter2\"]").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn serializes_redacted_unless_exposed_and_knows_the_placeholder() {
        let secret = Secret::new("hunter2-very-secret");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"[redacted]\"");
        let plain = with_values_exposed(|| serde_json::to_string(&secret).unwrap());
        assert_eq!(plain, "\"hunter2-very-secret\"");
        // The mode ends with the call.
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"[redacted]\"");
        // Read back, the placeholder is known for what it is (the settings refuse it).
        let placeholder = serde_json::from_str::<Secret>("\" [redacted]\"").unwrap();
        assert!(placeholder.is_placeholder());
        assert!(!secret.is_placeholder());
    }

    #[test]
    fn blank_counts_as_empty() {
        assert!(Secret::new("  ").is_empty());
        assert!(!Secret::new("x").is_empty());
    }
}
