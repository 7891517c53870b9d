//! The one place HTTP clients are made: rustls only, the settings' extra trusted roots,
//! timeouts, no redirects, and bearer headers marked sensitive so they never show in logs or
//! `Debug`. Also the guards every server answer passes through: bodies are read in chunks up
//! to a cap, and server text is redacted of the request's secrets before it can reach an
//! error or a log.

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
    /// Never use a proxy from the environment (`HTTP_PROXY`, …): for endpoints on this
    /// machine or a link-local address, which a proxy must not see.
    pub no_proxy: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            tls_ca_file: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            no_proxy: false,
        }
    }
}

pub(crate) use crate::retry::capped;

/// Builds an HTTP client trusting the platform's roots plus `tls_ca_file`.
///
/// It follows no redirects: a token request carries the client secret or assertion, and a
/// Graph request the bearer token, and a redirect (to `http://` or another host) would
/// re-send them there. A 3xx answer is reported as an error naming the setting instead.
///
/// # Errors
///
/// [`Error::Io`] when `tls_ca_file` cannot be read, [`Error::InvalidSettings`] naming
/// `tls_ca_file` when it holds no PEM certificate, or when the TLS stack cannot start.
pub(crate) fn http_client(options: &HttpOptions) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(capped(options.connect_timeout))
        .timeout(capped(options.request_timeout))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mail-connector/", env!("CARGO_PKG_VERSION")));
    if options.no_proxy {
        builder = builder.no_proxy();
    }
    if let Some(path) = &options.tls_ca_file {
        builder = builder.tls_certs_merge(read_ca_file(path)?);
    }
    builder
        .build()
        .map_err(|e| Error::settings("tls_ca_file", format!("cannot start the HTTPS client: {e}")))
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::settings_file("tls_ca_file", "read the trusted CA file", path, e))?;
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

/// Whether a request failed because the server's TLS certificate was refused (wrong host
/// name, expired, self-signed, unknown issuer) or the TLS handshake was refused: retrying
/// cannot help, the settings or the server must change.
pub(crate) fn is_tls_failure(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        // rustls's own wording for a refused certificate or a failed handshake.
        if is_tls_text(&cause.to_string()) {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Whether an error text (from [`describe_error`]) says a TLS certificate was refused.
pub(crate) fn is_tls_text(text: &str) -> bool {
    text.contains("invalid peer certificate")
        || text.contains("received fatal alert")
        || text.contains("peer is incompatible")
        || text.contains("peer misbehaved")
}

/// The remedy for a refused TLS certificate of the server `setting` names.
pub(crate) fn tls_remedy(setting: &str) -> String {
    format!(
        "the server's TLS certificate was refused (not retried): check that `{setting}` names \
         the host the certificate is issued for, that a private CA's certificate is in \
         `tls_ca_file` (PEM), and that this machine's clock is correct (an expired or \
         not-yet-valid certificate)"
    )
}

/// The host (and port) of `url`, for messages; the URL itself when it does not parse.
pub(crate) fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port()) {
            // `host_str` has an IPv6 address in brackets already.
            (Some(host), Some(port)) => crate::net::host_port(host, port),
            (Some(host), None) => host.to_owned(),
            _ => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// The response's `Retry-After`, read as [`parse_retry_after`] reads it, capped at
/// [`MAX_WAIT`](crate::retry::MAX_WAIT) (a server's absurd value must not overflow a deadline).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
        .map(capped)
}

/// The most bytes of an error body read from any server (Graph's and Entra's are a few KB).
pub(crate) const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Why a body could not be read whole.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// It is larger than the limit; reading stopped there and the connection is dropped.
    TooLarge(usize),
    /// The connection failed while reading.
    Failed(reqwest::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(limit) => write!(
                f,
                "the server's answer is larger than {limit} bytes, more than this request's \
                 answer can be; it was not read"
            ),
            Self::Failed(error) => f.write_str(&describe_error(error)),
        }
    }
}

/// Reads `response`'s body chunk by chunk, stopping with [`BodyError::TooLarge`] as soon as
/// it passes `limit` bytes (a declared `Content-Length` over it is refused before reading).
///
/// Not an `async fn`, which would hold the response twice (as its argument and as a local).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn holds the response twice"
)]
pub(crate) fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> impl Future<Output = std::result::Result<Vec<u8>, BodyError>> + Send {
    async move {
        match response.content_length() {
            Some(len) if len > limit as u64 => return Err(BodyError::TooLarge(limit)),
            // Nothing to read (`202 Accepted` to a sendMail): the body is already at its end.
            Some(0) => return Ok(Vec::new()),
            _ => {}
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(BodyError::Failed)? {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(BodyError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The forms a secret can take in a server's echo: as is, form-encoded (`+` or `%20` for a
/// space, upper- or lower-case hex) and percent-encoded. Blank secrets give nothing.
pub(crate) fn secret_forms(secret: &str) -> Vec<String> {
    if secret.trim().is_empty() {
        return Vec::new();
    }
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut forms = vec![
        secret.to_owned(),
        form.clone(),
        form.replace('+', "%20"),
        lower_hex(&form),
        lower_hex(&form.replace('+', "%20")),
    ];
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
}

/// `text` with every form of every secret replaced by `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), crate::secret::REDACTED);
        }
    }
    text
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
        .with_remedy(
            "the token provider returned something that is not an access token: check a \
             token provider of your own, or the endpoint `authority_host` names",
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
    fn every_form_of_a_secret_is_redacted() {
        let secret = "a~b c+d/é";
        let forms = secret_forms(secret);
        let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let text = format!(
            "raw {secret} form {form} pct {} lower {}",
            form.replace('+', "%20"),
            form.to_ascii_lowercase()
        );
        let clean = redact(&text, &forms);
        assert!(!clean.contains("a~b"), "{clean}");
        assert!(
            !clean.contains("a%7Eb") && !clean.contains("a%7eb"),
            "{clean}"
        );
        assert_eq!(clean.matches(crate::secret::REDACTED).count(), 4, "{clean}");
        assert!(secret_forms("  ").is_empty());
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
