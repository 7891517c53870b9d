//! SmtpTransport against hostile and broken servers on loopback (issue 8): STARTTLS
//! injection, endless replies, echoed credentials, lettre's own logs, cancellation, TLS
//! failures, a login host that never answers, extreme builder values.

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_connector::{
    CheckStatus, ConnectorSettings, Email, Error, MailTransport, Secret, SmtpRetry, SmtpStage,
    SmtpTransport,
};
use support::FakeTokens;
use support::hostile_smtp::{self, Cert, INJECTED_CAPABILITY};
use support::smtp_server::{ServerOptions, TestServer};

const USER: &str = "no-reply@example.org";
const PASSWORD: &str = "correct horse";

fn email() -> Email {
    Email::builder()
        .to("ann@example.org")
        .subject("Hello")
        .text("Body text 7d1e0c: never in a log")
        .build()
        .unwrap()
}

fn retry() -> SmtpRetry {
    SmtpRetry {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

/// A generous bound that only catches a hang.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("must not hang")
}

// ---- item 1: STARTTLS response injection ----

#[tokio::test]
async fn bytes_injected_after_the_starttls_reply_abort_the_send() {
    let server = hostile_smtp::starttls_injector().await;
    let transport = SmtpTransport::starttls("localhost")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry(retry())
        .build()
        .unwrap();
    let result = bounded(transport.send(&email())).await;
    let error = result.expect_err("the real server refused everything over TLS");
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Tls,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("STARTTLS"), "{error}");
    assert_eq!(server.seen.connections(), 1, "an attack is not retried");
    // Nothing was sent after the plaintext STARTTLS: no AUTH, no MAIL.
    assert!(
        !server
            .seen
            .lines()
            .iter()
            .any(|l| l.starts_with("AUTH") || l.starts_with("MAIL")),
        "{:?}",
        server.seen.lines()
    );
}

#[tokio::test]
async fn check_never_shows_capabilities_injected_before_tls() {
    let server = hostile_smtp::starttls_injector().await;
    let transport = SmtpTransport::starttls("localhost")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .build()
        .unwrap();
    let report = bounded(transport.check()).await.unwrap();
    let printed = report.to_string();
    assert!(!printed.contains(INJECTED_CAPABILITY), "{printed}");
    assert_eq!(report.status(), CheckStatus::Failed, "{printed}");
    let tls = report.steps.iter().find(|s| s.name == "tls").unwrap();
    assert_eq!(tls.status, CheckStatus::Failed, "{printed}");
}

// ---- item 5: an endless reply line ----

#[tokio::test]
async fn an_endless_reply_line_is_cut_off_early() {
    // Without a cap the client reads all 64 MiB the server offers.
    let server = hostile_smtp::endless_greeting(64 * 1024 * 1024).await;
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .sender(mail_connector::Mailbox::parse(USER).unwrap())
        .retry(retry())
        .build()
        .unwrap();
    let error = bounded(transport.send(&email())).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("too long"), "{error}");
    assert_eq!(server.seen.connections(), 1, "not retried");
    // What the client accepted, plus what the loopback socket buffers held when it closed.
    let written = server.seen.bytes_written();
    assert!(
        written < 16 * 1024 * 1024,
        "the server wrote {written} bytes"
    );
}

#[tokio::test]
async fn an_endless_reply_line_over_implicit_tls_is_cut_off_early() {
    let server = hostile_smtp::endless_greeting_over_tls(64 * 1024 * 1024).await;
    let transport = SmtpTransport::implicit_tls("localhost")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .sender(mail_connector::Mailbox::parse(USER).unwrap())
        .retry(retry())
        .build()
        .unwrap();
    let error = bounded(transport.send(&email())).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("too long"), "{error}");
    assert_eq!(server.seen.connections(), 1, "not retried");
    let written = server.seen.bytes_written();
    assert!(
        written < 16 * 1024 * 1024,
        "the server wrote {written} bytes"
    );
}

// ---- item 6: credentials echoed over several reply lines ----

/// A multi-line 535 reply that echoes the AUTH line in pieces of `size` characters.
fn echo_in_pieces(size: usize) -> impl Fn(&str) -> String + Send + Sync + 'static {
    move |auth: &str| {
        let chars: Vec<char> = auth.chars().collect();
        let mut reply = String::new();
        for piece in chars.chunks(size) {
            reply.push_str(&format!(
                "535-5.7.8 {}\r\n",
                piece.iter().collect::<String>()
            ));
        }
        reply.push_str("535 5.7.8 Authentication credentials invalid\r\n");
        reply
    }
}

/// Every 12-character window of `encoded`, which must not survive in `text`.
fn assert_no_window(text: &str, encoded: &str, what: &str) {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = encoded.as_bytes();
    for window in bytes.windows(12) {
        let window = std::str::from_utf8(window).unwrap();
        assert!(
            !compact.contains(window),
            "{what} leaked ({window}): {text}"
        );
    }
}

fn printed(error: &Error) -> String {
    format!("{error} {error:?} {}", error.remedy().unwrap_or_default())
}

#[tokio::test]
async fn basic_credentials_echoed_over_several_lines_are_redacted() {
    for size in [3, 5, 7, 11] {
        let server = hostile_smtp::auth_replier(echo_in_pieces(size)).await;
        let password = "pw-7c3a9e-never-print-41";
        let transport = SmtpTransport::builder_dangerous("127.0.0.1")
            .port(server.port())
            .basic_auth(USER, Secret::new(password))
            .build()
            .unwrap();
        let error = bounded(transport.send(&email())).await.unwrap_err();
        let text = printed(&error);
        let blob = STANDARD.encode(format!("\0{USER}\0{password}"));
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(!compact.contains("never-print"), "{text}");
        // The password's part of the PLAIN blob (the user name's part is not secret).
        assert_no_window(&text, &blob[blob.len() - 28..], "PLAIN blob");
        assert_no_window(&text, &STANDARD.encode(password), "password");
    }
}

#[tokio::test]
async fn an_xoauth2_token_echoed_over_several_lines_is_redacted() {
    for size in [4, 7, 10] {
        let server = hostile_smtp::auth_replier(echo_in_pieces(size)).await;
        let token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.tok-SECRET-payload-5531.sig";
        let transport = SmtpTransport::builder_dangerous("127.0.0.1")
            .port(server.port())
            .xoauth2(USER, Arc::new(FakeTokens::new(&[token])))
            .build()
            .unwrap();
        let error = bounded(transport.send(&email())).await.unwrap_err();
        let text = printed(&error);
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(!compact.contains("tok-SECRET"), "{text}");
        let blob = STANDARD.encode(format!("user={USER}\x01auth=Bearer {token}\x01\x01"));
        assert_no_window(&text, &blob[40..], "XOAUTH2 blob");
    }
}

#[tokio::test]
async fn credentials_echoed_after_auth_are_redacted_too() {
    // The server accepts the login, then echoes the AUTH line, in pieces, in its refusal of
    // MAIL FROM.
    let server = hostile_smtp::replier(|command, auth| {
        command
            .to_ascii_uppercase()
            .starts_with("MAIL")
            .then(|| echo_in_pieces(5)(auth).replace("535", "550"))
    })
    .await;
    let password = "pw-3b9d1f-never-print-77";
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .basic_auth(USER, Secret::new(password))
        .build()
        .unwrap();
    let error = bounded(transport.send(&email())).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Mail,
                code: Some(550),
                ..
            }
        ),
        "{error:?}"
    );
    let text = printed(&error);
    let blob = STANDARD.encode(format!("\0{USER}\0{password}"));
    assert_no_window(&text, &blob[blob.len() - 28..], "PLAIN blob");
}

// ---- item 7: lettre's own logs ----

#[tokio::test]
async fn lettre_never_logs_credentials_or_messages() {
    let (logs, _guard) = hostile_smtp::capture_all_logs();
    let password = "pw-Logged-9f2b";
    let token = "tok-Logged-4a7c";
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["PLAIN", "XOAUTH2"],
        users: vec![(USER.into(), password.into())],
        tokens: vec![token.into()],
        ..ServerOptions::default()
    })
    .await;
    let basic = SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(USER, Secret::new(password))
        .build()
        .unwrap();
    basic.send(&email()).await.unwrap();
    let oauth = SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .xoauth2(USER, Arc::new(FakeTokens::new(&[token])))
        .build()
        .unwrap();
    oauth.send(&email()).await.unwrap();
    assert_eq!(server.messages().len(), 2);
    let text = logs.text();
    assert!(
        text.contains("message submitted"),
        "our own events stay: {text}"
    );
    for secret in [
        password.to_owned(),
        token.to_owned(),
        STANDARD.encode(format!("\0{USER}\0{password}")),
        STANDARD.encode(format!("user={USER}\x01auth=Bearer {token}\x01\x01")),
        "Body text 7d1e0c".to_owned(),
    ] {
        assert!(!text.contains(&secret), "{secret} logged:\n{text}");
    }
}

// ---- item 10: cancelled sends keep the connection cap ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_cancelled_mid_flight_keep_the_connection_cap() {
    let server = TestServer::start(ServerOptions {
        hold_replies: Some(Duration::from_millis(15)),
        ..ServerOptions::default()
    })
    .await;
    let transport = SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(USER, Secret::new(PASSWORD))
        .max_connections(3)
        .build()
        .unwrap();
    // Three pooled connections, so that sends go straight into a transaction.
    let warm: Vec<_> = (0..3)
        .map(|_| {
            let transport = transport.clone();
            tokio::spawn(async move { transport.send(&email()).await })
        })
        .collect();
    for task in warm {
        bounded(task).await.unwrap().unwrap();
    }
    // A few callers at a time, each giving up at a different point of the transaction.
    let callers = Arc::new(tokio::sync::Semaphore::new(6));
    let mut tasks = Vec::new();
    for i in 0..300u64 {
        let caller = Arc::clone(&callers).acquire_owned().await.unwrap();
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            let _caller = caller;
            let patience = Duration::from_millis(2 + (i * 7) % 40);
            let _ = tokio::time::timeout(patience, transport.send(&email())).await;
        }));
    }
    for task in tasks {
        bounded(task).await.unwrap();
    }
    // Let the sends still finishing at the server end: one more send gets a permit only
    // when every abandoned session has released its own.
    let report = bounded(transport.send(&email())).await;
    assert!(report.is_ok(), "{report:?}");
    let max = server.max_in_transaction();
    println!(
        "max sessions in a transaction at once: {max} ({} transactions started, {} messages)",
        server.mail_from_commands(),
        server.messages().len()
    );
    // Enough transactions were cut short for the measure to mean something.
    assert!(
        server.mail_from_commands() >= 30,
        "{}",
        server.mail_from_commands()
    );
    assert!(
        max <= 3,
        "{max} sessions were in a transaction at once (cap 3)"
    );
}

// ---- item 12: TLS failures and overlong replies are permanent ----

#[tokio::test]
async fn certificate_failures_are_permanent_and_not_retried() {
    for (cert, trust_ca, remedy) in [
        (Cert::WrongName, true, "smtp_host"),
        (Cert::Expired, true, "clock"),
        (Cert::SelfSigned, true, "tls_ca_file"),
        (Cert::Good, false, "tls_ca_file"),
    ] {
        let server = hostile_smtp::implicit_tls_with(cert).await;
        let mut builder = SmtpTransport::implicit_tls("localhost")
            .port(server.port())
            .basic_auth(USER, Secret::new(PASSWORD))
            .retry(retry());
        if trust_ca {
            builder = builder.tls_ca_pem(server.ca_pem.clone());
        }
        let error = bounded(builder.build().unwrap().send(&email()))
            .await
            .unwrap_err();
        assert!(!error.is_transient(), "{cert:?}: {error:?}");
        assert!(
            matches!(
                error,
                Error::Smtp {
                    stage: SmtpStage::Tls,
                    ..
                }
            ),
            "{cert:?}: {error:?}"
        );
        let fix = error.remedy().unwrap_or_default();
        assert!(fix.contains(remedy), "{cert:?}: {error} -> {fix}");
        assert_eq!(server.seen.connections(), 1, "{cert:?} was retried");
    }
}

#[tokio::test]
async fn an_overlong_auth_reply_is_permanent_and_the_token_is_sent_once() {
    let server =
        hostile_smtp::auth_replier(|_| format!("535 5.7.8 {}\r\n", "x".repeat(3000))).await;
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .xoauth2(USER, Arc::new(FakeTokens::new(&["tok-once"])))
        .retry(retry())
        .build()
        .unwrap();
    let error = bounded(transport.send(&email())).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    assert_eq!(server.seen.connections(), 1, "{error}");
    let auths = server
        .seen
        .lines()
        .iter()
        .filter(|l| l.starts_with("AUTH"))
        .count();
    assert_eq!(auths, 1, "the token was sent {auths} times");
}

#[test]
fn a_tls_ca_file_without_certificates_is_refused_at_build_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let error = SmtpTransport::starttls("smtp.example.org")
        .tls_ca_file(&path)
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::InvalidSettings { .. }), "{error:?}");
    assert!(error.to_string().contains("tls_ca_file"), "{error}");
    // A private key is not a certificate either.
    let key = support::fixture("test-client.key");
    let error = SmtpTransport::starttls("smtp.example.org")
        .tls_ca_file(key)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("tls_ca_file"), "{error}");
    SmtpTransport::starttls("smtp.example.org")
        .tls_ca_file(support::fixture("test-client.pem"))
        .build()
        .unwrap();
}

// ---- item 13: one deadline bounds the whole check ----

#[tokio::test]
async fn an_xoauth2_check_against_a_silent_login_host_stops_at_the_deadline() {
    let login = hostile_smtp::silent().await;
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        ..ServerOptions::default()
    })
    .await;
    let settings = ConnectorSettings::from_toml_str(&format!(
        "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls_ca_file = {:?}\nuser_name = \"{USER}\"\n\
         auth_mode = \"oauth\"\ntransport = \"smtp\"\noauth_client_id = \"{}\"\n\
         client_secret = \"{}\"\ntenant_id = \"{}\"\nauthority_host = \"http://127.0.0.1:{}\"\n",
        server.port(),
        server.ca_file.path().display().to_string(),
        support::CLIENT_ID,
        support::SECRET,
        support::TENANT,
        login.port(),
    ))
    .unwrap();
    let transport = with_deadline(&settings, Duration::from_secs(2));
    let report = bounded(transport.check()).await.unwrap();
    let printed = report.to_string();
    assert_eq!(report.status(), CheckStatus::Failed, "{printed}");
    assert!(!printed.contains("0ns"), "{printed}");
    let failed = report
        .steps
        .iter()
        .find(|s| s.status == CheckStatus::Failed)
        .unwrap();
    let text = format!(
        "{} {}",
        failed.detail,
        failed.remedy.as_deref().unwrap_or("")
    );
    assert!(text.contains("login host"), "{printed}");
    assert!(text.contains("2s"), "names the deadline: {printed}");
    assert!(login.seen.connections() >= 1);
}

/// The transport `SmtpTransport::from_settings` builds, with a short send timeout (the
/// check's deadline), which the settings cannot set.
fn with_deadline(settings: &ConnectorSettings, deadline: Duration) -> SmtpTransport {
    let credentials = mail_connector::Credentials::from_settings(settings).unwrap();
    mail_connector::SmtpTransportBuilder::from_settings(settings)
        .token_provider(Arc::new(CredentialTokens(credentials)))
        .send_timeout(deadline)
        .build()
        .unwrap()
}

#[derive(Debug)]
struct CredentialTokens(mail_connector::Credentials);

#[async_trait::async_trait]
impl mail_connector::SmtpTokenProvider for CredentialTokens {
    async fn smtp_token(&self) -> mail_connector::Result<Secret> {
        let token = self
            .0
            .access_token("https://outlook.office365.com/.default")
            .await?;
        Ok(Secret::new(token.expose_secret()))
    }

    fn invalidate_smtp_token(&self, _token: &Secret) {}

    async fn check_steps(&self) -> Vec<mail_connector::CheckStep> {
        self.0
            .check_steps("https://outlook.office365.com/.default", &[])
            .await
    }
}

// ---- item 4: extreme builder values ----

#[tokio::test]
async fn extreme_builder_values_neither_panic_nor_hang() {
    let server = TestServer::start(ServerOptions {
        transient_mail_failures: 1,
        ..ServerOptions::default()
    })
    .await;
    let transport = SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(USER, Secret::new(PASSWORD))
        .max_connections(usize::MAX)
        .send_timeout(Duration::MAX)
        .connect_timeout(Duration::MAX)
        .idle_timeout(Duration::MAX)
        .retry(SmtpRetry {
            max_attempts: u32::MAX,
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
        })
        .build()
        .unwrap();
    // The first MAIL FROM gets a 4xx; a backoff of Duration::MAX cannot be waited out, so
    // the transient error is returned at once instead of a panic.
    let error = bounded(transport.send(&email())).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    bounded(transport.send(&email())).await.unwrap();
    let report = bounded(transport.check()).await.unwrap();
    assert_eq!(report.status(), CheckStatus::Ok, "{report}");
}
