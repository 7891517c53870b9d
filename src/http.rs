//! The one place HTTP clients are made: rustls only, the settings' extra trusted roots,
//! timeouts, and bearer headers marked sensitive so they never show in logs or `Debug`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderValue;

use crate::error::{Error, Result, Transience};
use crate::retry::parse_retry_after;

/// What an HTTP client needs from the settings.
#[derive(Debug, Clone)]
pub(crate) struct HttpOptions {
    /// A PEM bundle of extra trusted root certificates (`tls_ca_file`).
    pub tls_ca_file: Option<PathBuf>,
    /// The longest a TCP + TLS connect may take.
    pub connect_timeout: Duration,
    /// The longest a whole request may take.
    pub request_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            tls_ca_file: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Builds an HTTP client trusting the platform's roots plus `tls_ca_file`.
///
/// # Errors
///
/// [`Error::Io`] when `tls_ca_file` cannot be read, [`Error::InvalidSettings`] naming
/// `tls_ca_file` when it holds no PEM certificate, or when the TLS stack cannot start.
pub(crate) fn http_client(options: &HttpOptions) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .user_agent(concat!("mail-connector/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &options.tls_ca_file {
        builder = builder.tls_certs_merge(read_ca_file(path)?);
    }
    builder
        .build()
        .map_err(|e| Error::settings("tls_ca_file", format!("cannot start the HTTPS client: {e}")))
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path).map_err(|e| Error::io("read the trusted CA file", path, e))?;
    let bad = |reason: String| {
        Error::settings(
            "tls_ca_file",
            format!(
                "Trusted CA file (`tls_ca_file`) `{}` {reason}",
                path.display()
            ),
        )
    };
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| bad(format!("is not a PEM certificate bundle: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no `BEGIN CERTIFICATE` block; it must be PEM".into()
        ));
    }
    Ok(certs)
}

/// Describes a request failure without reqwest's own message, which names the URL (an upload
/// session's URL carries a one-time credential): the kind of failure, then its causes.
pub(crate) fn describe_error(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the response was cut off"
    } else {
        "the connection failed"
    }
    .to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The response's `Retry-After`, read as [`parse_retry_after`] reads it.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// `Bearer {token}` as a header value marked sensitive, so HTTP/2 never indexes it and
/// `Debug` output of requests does not show it.
///
/// # Errors
///
/// [`Error::Transport`] when the token holds characters a header cannot carry.
#[cfg_attr(not(test), allow(dead_code))] // used by the Graph transport
pub(crate) fn bearer_header(token: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
        Error::transport(
            "credentials",
            "the access token holds characters an HTTP header cannot carry",
            Transience::Permanent,
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_is_sensitive_and_redacted_in_debug() {
        let value = bearer_header("tok-SECRET-123").unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("tok-SECRET-123"));
    }

    #[test]
    fn ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let options = HttpOptions {
            tls_ca_file: Some(path),
            ..HttpOptions::default()
        };
        let error = http_client(&options).unwrap_err();
        assert!(error.to_string().contains("tls_ca_file"), "{error}");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-client.pem");
        let options = HttpOptions {
            tls_ca_file: Some(fixture),
            ..HttpOptions::default()
        };
        http_client(&options).unwrap();
    }
}
