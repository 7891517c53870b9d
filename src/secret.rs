//! Redacting wrappers for credentials.
//!
//! Client secrets, passwords, access tokens and private keys are held in [`Secret`]. Its
//! `Debug` and `Display` print `[redacted]`, it has no `PartialEq` (so it cannot be compared
//! in a way that leaks timing or ends up in an assertion message), and its value is read only
//! through [`Secret::expose_secret`] — a name that stands out in review. Every struct that
//! holds a `Secret` can therefore derive `Debug` safely.

use std::fmt;

use serde::{Deserialize, Deserializer};

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

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
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
    fn blank_counts_as_empty() {
        assert!(Secret::new("  ").is_empty());
        assert!(!Secret::new("x").is_empty());
    }
}
