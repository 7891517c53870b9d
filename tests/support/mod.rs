//! Helpers shared by the integration tests: sample emails, a mock Entra ID token endpoint
//! and settings pointing at it.
#![allow(dead_code)] // each test file uses a different subset

pub mod hostile;
pub mod hostile_smtp;
pub mod loopback;
pub mod random_email;
pub mod smtp_server;
pub mod tls_sink;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use mail_connector::{AuthMode, ConnectorSettings, RetryPolicy};

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "00000000-0000-0000-0000-000000000001";
/// A client secret that must never appear in any printed output.
pub const SECRET: &str = "Zx8Q~SUPER-SECRET-VALUE-do-not-print";
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Every environment variable the workload-identity and managed-identity constructors read
/// (the AKS webhook's and App Service's): a child process that must see only those its
/// test sets has these removed.
pub const IDENTITY_ENV_VARS: [&str; 6] = [
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
];

/// Runs `test`, an ignored test of this test binary (`module::child`), alone in a new process
/// whose environment `env` sets: tests run in parallel, so one that needs the process
/// environment changed changes its child's. Panics with the child's output, headed by
/// `label`, unless its one test passed.
pub fn run_child_test(test: &str, label: &str, env: impl FnOnce(&mut std::process::Command)) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", test, "--ignored", "--test-threads=1"]);
    env(&mut command);
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{label}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The token endpoint path for a tenant.
pub fn token_path(tenant: &str) -> String {
    format!("/{tenant}/oauth2/v2.0/token")
}

/// OAuth settings with a client secret, against `server` as the login host.
pub fn secret_settings(server: &MockServer, tenant: &str) -> ConnectorSettings {
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(AuthMode::OAuth);
    settings.user_name = Some("no-reply@contoso.com".into());
    settings.oauth_client_id = Some(CLIENT_ID.into());
    settings.tenant_id = Some(tenant.into());
    settings.client_secret = Some(SECRET.into());
    settings.authority_host = Some(server.base_url());
    settings
}

/// The path of a test fixture.
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// OAuth settings with the fixture certificate and key, against `server`.
pub fn certificate_settings(server: &MockServer, tenant: &str) -> ConnectorSettings {
    let mut settings = secret_settings(server, tenant);
    settings.client_secret = None;
    settings.client_certificate_file = Some(fixture("test-client.pem"));
    settings.client_private_key_file = Some(fixture("test-client.key"));
    settings
}

/// Quick retries so tests do not wait on backoff (Retry-After still applies).
pub fn fast_retry(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        multiplier: 2.0,
        deadline: Some(Duration::from_secs(30)),
    }
}

/// An unsigned JWT with these claims, shaped like an Entra access token.
pub fn jwt(claims: serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

/// A token response body.
pub fn token_body(access_token: &str, expires_in: u64) -> serde_json::Value {
    serde_json::json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
    })
}

/// A JSON response.
pub fn json_response(status: u16, body: &serde_json::Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

/// A responder that hands out `token-1`, `token-2`, … (valid `expires_in` seconds), so
/// tests can tell fetches apart.
pub fn numbered_tokens(
    expires_in: u64,
) -> (
    Arc<AtomicUsize>,
    impl Fn(&HttpMockRequest) -> HttpMockResponse + Send + Sync + 'static,
) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let responder = move |_: &HttpMockRequest| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        json_response(200, &token_body(&format!("token-{n}"), expires_in))
    };
    (count, responder)
}

/// A responder that answers with `responses` in order, repeating the last one.
pub fn in_sequence(
    responses: Vec<HttpMockResponse>,
) -> impl Fn(&HttpMockRequest) -> HttpMockResponse + Send + Sync + 'static {
    let next = AtomicUsize::new(0);
    move |_: &HttpMockRequest| {
        let i = next.fetch_add(1, Ordering::SeqCst).min(responses.len() - 1);
        responses[i].clone()
    }
}

/// Entra's error body for an AADSTS code.
pub fn entra_error(error: &str, code: u64) -> serde_json::Value {
    serde_json::json!({
        "error": error,
        "error_description": format!("AADSTS{code}: something is wrong.\r\nTrace ID: 0b6f6a4c-1d2e-4f3a-9b8c-7d6e5f4a3b2c\r\nCorrelation ID: 9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a\r\nTimestamp: 2025-01-31 10:00:00Z"),
        "error_codes": [code],
        "timestamp": "2025-01-31 10:00:00Z",
        "trace_id": "0b6f6a4c-1d2e-4f3a-9b8c-7d6e5f4a3b2c",
        "correlation_id": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
    })
}

use mail_connector::{Attachment, Email};

/// A secret value that must never show up in any output.
pub const KNOWN_SECRET: &str = "Zq8~known-secret-value-7f3a";

/// An email exercising most of the model: names, all roles, both bodies, attachments.
pub fn rich_email() -> Email {
    Email::builder()
        .to("Ann Example <ann@example.org>")
        .to("bob@example.org")
        .cc("\"Doe, Jane\" <jane@example.org>")
        .bcc("audit@example.org")
        .reply_to("support@example.org")
        .subject("Grüße aus Köln — report ✅")
        .text("Hello,\nthe report is attached.\n")
        .html("<p>Hello,</p><p>the report is attached.</p><img src=\"cid:logo\">")
        .attachment(Attachment::from_bytes("report.csv", "id,total\n1,42\n"))
        .attachment(Attachment::from_bytes("logo.png", png_bytes()).inline("logo"))
        .header("X-Report-Id", "42")
        .build()
        .expect("valid email")
}

/// Some bytes that are not valid UTF-8, to prove attachments survive encoding.
pub fn png_bytes() -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    bytes.extend((0..=255u8).cycle().take(3000));
    bytes
}

/// An email to `n` recipients split across To, Cc and Bcc.
pub fn email_to_many(to: usize, cc: usize, bcc: usize) -> Email {
    let mut builder = Email::builder().subject("many").text("hi");
    for i in 0..to {
        builder = builder.to(format!("to{i}@example.org"));
    }
    for i in 0..cc {
        builder = builder.cc(format!("cc{i}@example.org"));
    }
    for i in 0..bcc {
        builder = builder.bcc(format!("bcc{i}@example.org"));
    }
    builder.build().expect("valid email")
}

// ---- SMTP helpers ----

#[cfg(feature = "oauth")]
#[allow(unused_imports)] // each test binary uses a different subset
pub use fake_tokens::FakeTokens;

#[cfg(feature = "oauth")]
mod fake_tokens {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use mail_connector::{AccessToken, Result, TokenProvider};

    /// A token provider that hands out tokens from a queue (the last one repeats) and records
    /// invalidations, like a credentials cache would.
    #[derive(Debug, Default)]
    pub struct FakeTokens {
        queue: Mutex<VecDeque<String>>,
        current: Mutex<Option<String>>,
        pub fetches: Mutex<usize>,
        pub invalidated: Mutex<Vec<String>>,
    }

    impl FakeTokens {
        pub fn new(tokens: &[&str]) -> Self {
            Self {
                queue: Mutex::new(tokens.iter().map(|t| (*t).to_owned()).collect()),
                ..Self::default()
            }
        }

        /// The token `token` would give now without fetching, if it holds one.
        pub fn current(&self) -> Option<String> {
            self.current.lock().unwrap().clone()
        }

        /// Replaces the cached token, as a refresh ahead of expiry would.
        pub fn rotate(&self, token: &str) {
            *self.current.lock().unwrap() = Some(token.to_owned());
        }

        pub fn invalidated(&self) -> Vec<String> {
            self.invalidated.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl TokenProvider for FakeTokens {
        async fn token(&self, _scope: &str) -> Result<AccessToken> {
            *self.fetches.lock().unwrap() += 1;
            let mut current = self.current.lock().unwrap();
            if current.is_none() {
                let mut queue = self.queue.lock().unwrap();
                let next = if queue.len() > 1 {
                    queue.pop_front()
                } else {
                    queue.front().cloned()
                };
                *current = next;
            }
            Ok(AccessToken::new(
                current.clone().unwrap_or_default(),
                std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
            ))
        }

        fn invalidate(&self, token: &AccessToken) {
            self.invalidated
                .lock()
                .unwrap()
                .push(token.expose_secret().to_owned());
            let mut current = self.current.lock().unwrap();
            if current.as_deref() == Some(token.expose_secret()) {
                *current = None;
            }
        }
    }
}

/// A `tracing` writer into a shared buffer, to check what would be logged; it tells waiters
/// ([`logged_line_within`]) of each write.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>, Arc<tokio::sync::Notify>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        self.1.notify_waiters();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        self.text_since(0)
    }

    /// How much was logged so far: a mark for [`LogBuffer::text_since`].
    pub fn written(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// What was logged after `mark` (from [`LogBuffer::written`]).
    pub fn text_since(&self, mark: usize) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()[mark..]).into_owned()
    }
}

/// The first line captured after `mark` (from [`LogBuffer::written`]; 0 for all) that holds
/// every one of `parts` (as [`logged_line`]), waiting for it to be logged: by a task the test
/// cannot join, say. Panics after `limit`, an outer bound against a hang, with the logs.
pub async fn logged_line_within(
    limit: Duration,
    logs: &LogBuffer,
    mark: usize,
    parts: &[&str],
) -> String {
    let find = || {
        logs.text_since(mark)
            .lines()
            .find(|line| parts.iter().all(|part| line.contains(part)))
            .map(str::to_owned)
    };
    let wait = async {
        loop {
            let written = logs.1.notified();
            if let Some(line) = find() {
                return line;
            }
            written.await;
        }
    };
    match tokio::time::timeout(limit, wait).await {
        Ok(line) => line,
        Err(_) => panic!(
            "no line holding all of {parts:?} was logged within {limit:?}; the logs:\n{}",
            logs.text()
        ),
    }
}

/// A number no other caller in this test binary gets: for names (a mailbox, a tenant) that
/// only one test uses, so that a captured line that carries one is that test's own.
pub fn unique_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Tasks alive on the calling test's runtime (spawned and not yet finished): the fixtures'
/// and the transport's. On a current-thread runtime (plain `#[tokio::test]`), other tasks run
/// only while the test's own future waits: one that a call spawned after its last wait is
/// still counted when the call returns.
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// A tenant ID only the calling test uses: its token endpoint's URL (`token_path`) is then
/// the test's own, whichever pooled httpmock server (and port) the test was handed.
pub fn own_tenant() -> String {
    format!("7e570000-0000-4000-8000-{:012}", unique_number())
}

/// The first captured line that holds every one of `parts`, or a panic that shows the logs.
///
/// A check that a secret was never logged proves nothing if the capture missed the events it
/// is about (a level filtered, the wrong subscriber, a span never entered): such a test pairs
/// it with this one. The buffer holds every test's logs, so `parts` should name something only
/// this test logs (a mailbox or tenant from [`unique_number`], a port, a Message-ID) with the
/// event's own words. An httpmock server's address is not enough on its own: httpmock hands
/// its servers, ports and all, from one test to the next.
#[track_caller]
pub fn logged_line(logs: &LogBuffer, parts: &[&str]) -> String {
    let text = logs.text();
    text.lines()
        .find(|line| parts.iter().all(|part| line.contains(part)))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no captured line holds all of {parts:?}; the logs:\n{text}"))
}

/// Held by a test while it reads [`capture_logs`]' buffer; dropping it changes nothing.
pub struct LogGuard;

/// Captures this crate's `tracing` events at every level, and lettre's (which the SMTP
/// transport must keep from ever reaching a subscriber), from every thread of this test
/// binary, into one buffer (httpmock's own events are left out: it logs the requests it
/// receives, secrets included). One global subscriber, installed on first use, rather than
/// one per test: per-thread subscribers race with other tests' threads over tracing's
/// callsite interest and maximum level, and then silently drop events. The buffer also holds
/// other tests' logs, which only makes "this secret was never logged" checks stronger.
///
/// tracing caches, per callsite, whether any subscriber wants its events. With one
/// registered dispatcher it works that out against the dispatcher current on the thread that
/// meets the callsite first — and a send's task carries the dispatcher current when it was
/// spawned (`with_current_subscriber`), the no-op one for a send another test started before
/// this subscriber was installed. Such a task meeting a callsite first cached "never" for
/// every thread, and a later test's events there were dropped (one run in six of
/// `refusal_replies` lost its "recipient refused"). So a second, identical dispatcher is
/// registered and kept, never installed anywhere: with more than one, tracing asks every
/// registered dispatcher instead of the thread's. It receives no events; events on a thread
/// whose current dispatcher is the no-op one (lettre's code, quieted) still reach nothing.
pub fn capture_logs() -> (LogBuffer, LogGuard) {
    static LOGS: std::sync::OnceLock<(LogBuffer, tracing::Dispatch)> = std::sync::OnceLock::new();
    let (logs, _registered) = LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let registered = tracing::Dispatch::new(log_subscriber(&logs));
        tracing::subscriber::set_global_default(log_subscriber(&logs))
            .expect("no other global subscriber in the test binaries");
        (logs, registered)
    });
    // A callsite another test's thread met first while the subscriber was being installed
    // may have cached "no subscriber wants this" (its interest worked out against the
    // dispatcher before): ask every callsite again, so that none of this test's own events
    // is dropped.
    tracing::callsite::rebuild_interest_cache();
    (logs.clone(), LogGuard)
}

/// The subscriber [`capture_logs`] installs: this crate's and lettre's events into `logs`.
fn log_subscriber(logs: &LogBuffer) -> impl tracing::Subscriber + Send + Sync + 'static {
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "mail_connector=trace,lettre=trace",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish()
}

/// Secrets shorter than this are only looked for as given: their encoded forms are too short
/// not to turn up by chance.
const MIN_ENCODED_SECRET: usize = 8;

/// The forms in which `secret` could leak: as given and, if it is long enough, base64 (standard
/// and URL-safe, padded or not) and URL-encoded (form and percent encoding).
fn leak_forms(secret: &str) -> Vec<(&'static str, String)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
    let mut forms = vec![("as given", secret.to_owned())];
    if secret.len() >= MIN_ENCODED_SECRET {
        forms.push(("base64", STANDARD.encode(secret)));
        forms.push(("base64 without padding", STANDARD_NO_PAD.encode(secret)));
        forms.push(("URL-safe base64", URL_SAFE.encode(secret)));
        forms.push((
            "URL-safe base64 without padding",
            URL_SAFE_NO_PAD.encode(secret),
        ));
        let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        forms.push(("percent-encoded", form.replace('+', "%20")));
        forms.push(("form-encoded", form));
    }
    let mut seen = std::collections::HashSet::new();
    forms.retain(|(_, form)| seen.insert(form.clone()));
    forms
}

/// `secret` cut to its first three characters, to name it in a failure without printing it.
fn redacted(secret: &str) -> String {
    let head: String = secret.chars().take(3).collect();
    format!("`{head}…`")
}

/// Asserts that none of `secrets` appears in `text`, neither as given nor (for secrets of at
/// least 8 bytes) base64- or URL-encoded. On failure it names the secret (cut to its first three
/// characters), the form it was found in and where (line and column), and shows `text` with
/// every secret redacted, so the failure never prints one.
#[track_caller]
pub fn assert_no_secrets(text: &str, secrets: &[&str]) {
    assert!(
        secrets.iter().all(|secret| !secret.is_empty()),
        "an empty secret is in every text"
    );
    let found = secrets.iter().find_map(|secret| {
        leak_forms(secret)
            .into_iter()
            .find_map(|(form, value)| text.find(&value).map(|at| (*secret, form, at)))
    });
    let Some((secret, form, at)) = found else {
        return;
    };
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |newline| newline + 1) + 1;
    let mut shown = text.to_owned();
    for secret in secrets {
        for (_, value) in leak_forms(secret) {
            shown = shown.replace(&value, &format!("<secret {}>", redacted(secret)));
        }
    }
    panic!(
        "secret {} appears in the text ({form}) at line {line}, column {column} (byte {at}); the text, \
         shown with every secret redacted:\n{shown}",
        redacted(secret)
    );
}
