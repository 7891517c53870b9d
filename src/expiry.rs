//! [`ExpiryDate`]: the day a credential expires, so `check` can warn before it does.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A calendar date (`YYYY-MM-DD`): the day a client secret expires (`client_secret_expires`).
///
/// ```
/// let date: mail_connector::ExpiryDate = "2027-01-31".parse()?;
/// assert_eq!(date.to_string(), "2027-01-31");
/// # Ok::<(), mail_connector::Error>(())
/// ```
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
            .map_err(|_| Error::settings("client_secret_expires", format!(
                        "Client secret expiry (`client_secret_expires`) `{value}` is not a date written YYYY-MM-DD"
                    )))
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

/// As `YYYY-MM-DD` text.
impl Serialize for ExpiryDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
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
