//! [`AccessToken`] and the token endpoint's success response.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer};

use crate::credentials::claims::TokenClaims;
use crate::secret::{REDACTED, Secret};

/// An OAuth access token with its expiry.
///
/// Times are wall-clock [`SystemTime`]s rather than `Instant`s so that a token can be kept in a
/// cache shared between processes. `Debug` prints `[redacted]` for the token. Cloning it
/// copies no token text (the value is shared), so handing out a cached token allocates nothing.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use mail_connector::AccessToken;
///
/// let token = AccessToken::new("eyJ0.example", SystemTime::now() + Duration::from_secs(3600));
/// assert_eq!(token.expose_secret(), "eyJ0.example");
/// assert!(!format!("{token:?}").contains("eyJ0"));
/// ```
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<Secret>,
    issued_at: SystemTime,
    expires_at: SystemTime,
    refresh_at: Option<SystemTime>,
}

impl AccessToken {
    /// A token valid until `expires_at`, obtained now (see [`AccessToken::with_issued_at`]).
    #[must_use]
    pub fn new(token: impl Into<Secret>, expires_at: SystemTime) -> Self {
        Self {
            secret: Arc::new(token.into()),
            issued_at: SystemTime::now(),
            expires_at,
            refresh_at: None,
        }
    }

    /// Sets when the token was obtained (default: when [`AccessToken::new`] was called).
    /// With the expiry it gives the token's lifetime, which caps the refresh margin; a
    /// [`TokenCacheStore`](crate::credentials::TokenCacheStore) that serializes tokens should keep it.
    #[must_use]
    pub fn with_issued_at(mut self, issued_at: SystemTime) -> Self {
        self.issued_at = issued_at;
        self
    }

    /// Asks the cache to fetch a new token from `refresh_at` on (Entra's `refresh_in` hint),
    /// even if the refresh margin has not been reached.
    #[must_use]
    pub fn with_refresh_at(mut self, refresh_at: SystemTime) -> Self {
        self.refresh_at = Some(refresh_at);
        self
    }

    /// The token value. Call it only where the token goes on the wire.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        self.secret.expose_secret()
    }

    /// When the token was obtained (wall-clock time).
    #[must_use]
    pub fn issued_at(&self) -> SystemTime {
        self.issued_at
    }

    /// When the token stops being valid (wall-clock time).
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// When the issuer suggested refreshing it, if it did (`refresh_in`).
    #[must_use]
    pub fn refresh_at(&self) -> Option<SystemTime> {
        self.refresh_at
    }

    /// Whether the token is still valid at `now`.
    #[must_use]
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        now < self.expires_at
    }

    /// Whether the token is still good to hand out at `now` without refreshing: valid for
    /// longer than `margin`, and not past the issuer's refresh hint.
    ///
    /// The margin is capped at half the token's lifetime (from [`AccessToken::issued_at`] to
    /// [`AccessToken::expires_at`]): a margin as long as the lifetime (5-minute tokens with
    /// the default 5-minute margin) would otherwise make every token due the moment it
    /// arrives, and every call fetch a new one.
    #[must_use]
    pub fn is_fresh_at(&self, now: SystemTime, margin: Duration) -> bool {
        let lifetime = self
            .expires_at
            .duration_since(self.issued_at)
            .unwrap_or_default();
        let margin = margin.min(lifetime / 2);
        now.checked_add(margin)
            .is_some_and(|due| due < self.expires_at)
            && self.refresh_at.is_none_or(|at| now < at)
    }

    /// The end of the time in which [`is_fresh_at`](Self::is_fresh_at) holds: it is fresh
    /// at `now` exactly when `now` is before this. Worked out once when the token is cached,
    /// so that a cached read compares two times instead.
    pub(crate) fn fresh_until(&self, margin: Duration) -> Option<SystemTime> {
        let lifetime = self
            .expires_at
            .duration_since(self.issued_at)
            .unwrap_or_default();
        let until = self.expires_at.checked_sub(margin.min(lifetime / 2))?;
        Some(match self.refresh_at {
            Some(at) => until.min(at),
            None => until,
        })
    }

    /// The token's claims, decoded **without verifying** the signature — for diagnostics
    /// only (which roles were granted, which tenant issued it). `None` when the token is
    /// not a JWT.
    #[must_use]
    pub fn claims(&self) -> Option<TokenClaims> {
        TokenClaims::decode_unverified(self.expose_secret())
    }

    /// Whether two tokens hold the same value.
    pub(crate) fn same_value(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.secret, &other.secret) || self.expose_secret() == other.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &REDACTED)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

/// The longest lifetime taken from a token response: Entra's tokens live 60–90 minutes, so a
/// longer `expires_in` (or `refresh_in`) is a broken or hostile endpoint's; it is capped to a
/// day rather than trusted (a value near `u64::MAX` seconds cannot even be added to a time).
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The token endpoint's success response.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: Secret,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(deserialize_with = "seconds")]
    expires_in: u64,
    #[serde(default, deserialize_with = "optional_seconds")]
    refresh_in: Option<u64>,
    #[serde(default, deserialize_with = "optional_seconds")]
    #[allow(dead_code)] // parsed so that a malformed value is noticed; not used for caching
    ext_expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token, timed from `issued` (when the request was sent, so the expiry errs early).
    pub(crate) fn into_token(self, issued: SystemTime) -> Result<AccessToken, String> {
        usable(self.token_type.as_deref(), &self.access_token)?;
        let lifetime = Duration::from_secs(self.expires_in).min(MAX_TOKEN_LIFETIME);
        let at = |after: Duration| {
            issued
                .checked_add(after)
                .ok_or_else(|| "the token's expiry is past the end of time".to_owned())
        };
        let token =
            AccessToken::new(self.access_token, expiry(issued, lifetime)?).with_issued_at(issued);
        Ok(match self.refresh_in.map(Duration::from_secs) {
            Some(refresh_in) if refresh_in < lifetime => token.with_refresh_at(at(refresh_in)?),
            _ => token,
        })
    }
}

/// When a token issued at `issued` (when its request was sent) for `lifetime` expires; an
/// error for a zero lifetime (`expires_in: 0`, or an `expires_on` already past): such a token
/// had expired when it arrived, it is no token, and asking again at once would not help (nor
/// should every caller waiting for it ask again).
fn expiry(issued: SystemTime, lifetime: Duration) -> Result<SystemTime, String> {
    if lifetime.is_zero() {
        return Err(
            "the token had already expired when it arrived (a lifetime of 0 s); \
                    check this machine's clock, and any proxy between it and the token \
                    endpoint"
                .into(),
        );
    }
    issued
        .checked_add(lifetime)
        .ok_or_else(|| "the token's expiry is past the end of time".to_owned())
}

/// What every token response must be: a bearer token, not empty.
fn usable(token_type: Option<&str>, access_token: &Secret) -> Result<(), String> {
    if let Some(kind) = token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(format!("unsupported token_type `{kind}`; expected Bearer"));
    }
    if access_token.is_empty() {
        return Err("the response holds an empty access_token".into());
    }
    Ok(())
}

/// A managed-identity endpoint's success response (the numbers are often strings).
#[derive(Deserialize)]
pub(crate) struct IdentityToken {
    access_token: Secret,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "optional_seconds")]
    expires_in: Option<u64>,
    /// Unix seconds.
    #[serde(default, deserialize_with = "optional_seconds")]
    expires_on: Option<u64>,
}

impl IdentityToken {
    pub(crate) fn into_token(self, issued: SystemTime) -> Result<AccessToken, String> {
        usable(self.token_type.as_deref(), &self.access_token)?;
        let lifetime = match (self.expires_in, self.expires_on) {
            (Some(seconds), _) => Duration::from_secs(seconds),
            (None, Some(on)) => {
                let now = issued
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                Duration::from_secs(on).saturating_sub(now)
            }
            (None, None) => return Err("the response has neither expires_in nor expires_on".into()),
        };
        let expires = expiry(issued, lifetime.min(MAX_TOKEN_LIFETIME))?;
        Ok(AccessToken::new(self.access_token, expires).with_issued_at(issued))
    }
}

/// Seconds as a JSON number or a numeric string (v1 endpoints and some proxies send strings).
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Float(f64),
    Text(String),
}

impl Seconds {
    fn get<E: serde::de::Error>(self) -> Result<u64, E> {
        match self {
            Self::Number(n) => Ok(n),
            // `as` saturates: 1e300 becomes u64::MAX, which `into_token` caps.
            Self::Float(f) if f.is_finite() && f >= 0.0 => Ok(f as u64),
            Self::Float(f) => Err(E::custom(format!("invalid seconds {f}"))),
            Self::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| E::custom(format!("`{s}` is not a number of seconds"))),
        }
    }
}

fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    Seconds::deserialize(deserializer)?.get()
}

fn optional_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Option::<Seconds>::deserialize(deserializer)?
        .map(Seconds::get)
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> AccessToken {
        let response: TokenResponse = serde_json::from_str(json).unwrap();
        response.into_token(SystemTime::UNIX_EPOCH).unwrap()
    }

    /// `Debug` shows the times a token is judged by, and `[redacted]` for its value.
    #[test]
    fn debug_shows_the_times_but_not_the_token() {
        let token = AccessToken::new("eyJ0.secret-value", SystemTime::UNIX_EPOCH)
            .with_refresh_at(SystemTime::UNIX_EPOCH);
        let shown = format!("{token:?}");
        assert!(shown.starts_with("AccessToken {"), "{shown}");
        assert!(
            shown.contains("[redacted]") && shown.contains("refresh_at: Some("),
            "{shown}"
        );
        assert!(!shown.contains("secret-value"), "{shown}");
    }

    #[test]
    fn a_token_that_expires_at_once_is_refused() {
        let response: TokenResponse =
            serde_json::from_str(r#"{"token_type":"Bearer","expires_in":0,"access_token":"a"}"#)
                .unwrap();
        let error = response.into_token(SystemTime::now()).unwrap_err();
        assert!(error.contains("already expired"), "{error}");
    }

    #[test]
    fn expires_in_as_number_or_string() {
        let t = parse(
            r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"a"}"#,
        );
        assert_eq!(
            t.expires_at(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(3599)
        );
        let t = parse(
            r#"{"token_type":"Bearer","expires_in":"3599","ext_expires_in":"3599","access_token":"a"}"#,
        );
        assert_eq!(
            t.expires_at(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(3599)
        );
        assert_eq!(t.refresh_at(), None);
        let t = parse(r#"{"expires_in":3600,"refresh_in":1800,"access_token":"a"}"#);
        assert_eq!(
            t.refresh_at(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1800))
        );
        assert!(
            serde_json::from_str::<TokenResponse>(r#"{"expires_in":"soon","access_token":"a"}"#)
                .is_err()
        );
    }

    #[test]
    fn absurd_lifetimes_are_capped_to_a_day() {
        for value in [
            u64::MAX.to_string(),
            i64::MAX.to_string(),
            "1e19".to_owned(),
            "1e300".to_owned(),
            format!("\"{}\"", u64::MAX),
        ] {
            let now = SystemTime::now();
            let json = format!(
                r#"{{"expires_in":{value},"ext_expires_in":{value},"refresh_in":{value},"access_token":"a"}}"#
            );
            let response: TokenResponse = serde_json::from_str(&json).unwrap();
            let token = response.into_token(now).unwrap();
            assert_eq!(token.expires_at(), now + MAX_TOKEN_LIFETIME, "{value}");
            assert!(token.is_fresh_at(now, Duration::MAX));
        }
    }

    /// Entra's tokens live 60 to 90 minutes: such a lifetime (anything up to the day's cap)
    /// is taken as given, not cut short.
    #[test]
    fn a_ninety_minute_token_keeps_its_lifetime() {
        for seconds in [5399, 86_399] {
            let t = parse(&format!(r#"{{"expires_in":{seconds},"access_token":"a"}}"#));
            assert_eq!(
                t.expires_at(),
                SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
                "{seconds}"
            );
        }
    }

    /// A negative number of seconds is a malformed response, refused when it is read (it is
    /// not taken as 0: a `refresh_in` of -1.5 would otherwise pass as "refresh at once").
    #[test]
    fn negative_seconds_are_refused() {
        for json in [
            r#"{"expires_in":-1.5,"access_token":"a"}"#,
            r#"{"expires_in":3600,"refresh_in":-1.5,"access_token":"a"}"#,
            r#"{"expires_in":3600,"ext_expires_in":-0.5,"access_token":"a"}"#,
        ] {
            let error = serde_json::from_str::<TokenResponse>(json)
                .err()
                .unwrap_or_else(|| panic!("accepted {json}"));
            assert!(error.to_string().contains("invalid seconds"), "{error}");
        }
    }

    #[test]
    fn rejects_other_token_types_and_empty_tokens() {
        let r: TokenResponse =
            serde_json::from_str(r#"{"token_type":"mac","expires_in":1,"access_token":"a"}"#)
                .unwrap();
        assert!(r.into_token(SystemTime::now()).is_err());
        let r: TokenResponse =
            serde_json::from_str(r#"{"expires_in":1,"access_token":""}"#).unwrap();
        assert!(r.into_token(SystemTime::now()).is_err());
    }

    #[test]
    fn freshness_honours_margin_and_refresh_hint() {
        let now = SystemTime::now();
        let margin = Duration::from_secs(300);
        let token = AccessToken::new("a", now + Duration::from_secs(600));
        assert!(token.is_fresh_at(now, margin));
        assert!(!token.is_fresh_at(now + Duration::from_secs(301), margin));
        assert!(token.is_valid_at(now + Duration::from_secs(301)));
        let hinted = token.with_refresh_at(now + Duration::from_secs(10));
        assert!(!hinted.is_fresh_at(now + Duration::from_secs(11), margin));
    }

    #[test]
    fn fresh_until_agrees_with_is_fresh_at() {
        let now = SystemTime::now();
        let margin = Duration::from_secs(300);
        let tokens = [
            AccessToken::new("a", now + Duration::from_secs(600)).with_issued_at(now),
            AccessToken::new("b", now + Duration::from_secs(300)).with_issued_at(now),
            AccessToken::new("c", now + Duration::from_secs(3600))
                .with_issued_at(now)
                .with_refresh_at(now + Duration::from_secs(100)),
            AccessToken::new("d", now).with_issued_at(now),
        ];
        for token in &tokens {
            let until = token.fresh_until(margin);
            for offset in [
                0, 1, 99, 100, 101, 149, 150, 151, 299, 300, 301, 3299, 3300, 3301,
            ] {
                for nanos in [0, 1, 999_999_999] {
                    let at = now + Duration::new(offset, nanos);
                    assert_eq!(
                        until.is_some_and(|u| at < u),
                        token.is_fresh_at(at, margin),
                        "{token:?} at +{offset}s {nanos}ns"
                    );
                }
            }
        }
    }

    #[test]
    fn the_margin_is_capped_at_half_the_lifetime() {
        let now = SystemTime::now();
        let margin = Duration::from_secs(300);
        // A 5-minute token with a 5-minute margin: fresh for its first half.
        let short = AccessToken::new("a", now + Duration::from_secs(300)).with_issued_at(now);
        assert!(short.is_fresh_at(now, margin));
        assert!(short.is_fresh_at(now + Duration::from_secs(149), margin));
        assert!(!short.is_fresh_at(now + Duration::from_secs(151), margin));
        // A long-lived token near its end is due as before.
        let long = AccessToken::new("b", now + Duration::from_secs(120))
            .with_issued_at(now - Duration::from_secs(3480));
        assert!(!long.is_fresh_at(now, margin));
        // A token issued already expired is never fresh.
        let dead = AccessToken::new("c", now).with_issued_at(now);
        assert!(!dead.is_fresh_at(now, margin));
    }

    #[test]
    fn expiry_from_expires_in_or_expires_on_as_strings() {
        let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let parse = |json: &str| {
            serde_json::from_str::<IdentityToken>(json)
                .unwrap()
                .into_token(issued)
        };
        let token = parse(r#"{"access_token":"a","expires_in":"3599","expires_on":"1"}"#).unwrap();
        assert_eq!(token.expires_at(), issued + Duration::from_secs(3599));
        let token = parse(r#"{"access_token":"a","expires_on":"1003600"}"#).unwrap();
        assert_eq!(token.expires_at(), issued + Duration::from_secs(3600));
        let token = parse(r#"{"access_token":"a","expires_on":99999999999}"#).unwrap();
        assert_eq!(token.expires_at(), issued + MAX_TOKEN_LIFETIME);
        assert!(parse(r#"{"access_token":"a"}"#).is_err());
        assert!(parse(r#"{"access_token":"","expires_in":1}"#).is_err());
    }
}
