//! SmtpTransport under faults on loopback (issue 8): sends cancelled mid-flight, refused
//! certificates, overlong replies, a login host that never answers, extreme builder values.

use std::sync::Arc;
use std::time::Duration;

use mail_connector::{
    CheckStatus, ConnectorSettings, Error, MailTransport, RetryPolicy, Secret, SmtpStage,
    SmtpTransport,
};

use super::helpers::*;
use crate::support;
use crate::support::FakeTokens;
use crate::support::hostile_smtp::{self, Cert};
use crate::support::smtp_server::{ServerOptions, TestServer};

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
        .max_concurrency(3)
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
    // Each refusal is named, with its own remedy, not the catch-all for a failed handshake.
    let name = ("not valid for this host name", "`smtp_host`) to the name");
    let time = ("expired or not yet valid", "clock");
    let issuer = ("not signed by a trusted CA", "add the CA that issued");
    // Any other refusal still says that it is the certificate, not the handshake.
    let other = ("the server's certificate was refused", "TLS failed");
    for (cert, trust_ca, (what, remedy)) in [
        (Cert::WrongName, true, name),
        (Cert::Expired, true, time),
        (Cert::SelfSigned, true, issuer),
        (Cert::Good, false, issuer),
        (Cert::ClientOnly, true, other),
    ] {
        let server = hostile_smtp::implicit_tls_with(cert).await;
        let mut builder = SmtpTransport::implicit_tls("localhost")
            .port(server.port())
            .basic_auth(USER, Secret::new(PASSWORD))
            .retry_policy(fast_retry());
        if trust_ca {
            builder = builder.tls_ca_pem(server.ca_pem.clone());
        }
        let error = bounded(builder.build().unwrap().send(&email()))
            .await
            .unwrap_err();
        assert!(!error.is_transient(), "{cert:?}: {error:?}");
        assert_eq!(
            stage_of(&error),
            Some(SmtpStage::Tls),
            "{cert:?}: {error:?}"
        );
        assert!(error.to_string().contains(what), "{cert:?}: {error}");
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
        .retry_policy(fast_retry())
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
    let settings = xoauth2_settings(&server, &format!("http://127.0.0.1:{}", login.port()), "");
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

/// The transport the settings describe, with a short send timeout (the check's deadline),
/// which the settings cannot set.
fn with_deadline(settings: &ConnectorSettings, deadline: Duration) -> SmtpTransport {
    settings
        .smtp_builder()
        .unwrap()
        .send_deadline(deadline)
        .build()
        .unwrap()
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
        .max_concurrency(usize::MAX)
        .send_deadline(Duration::MAX)
        .connect_timeout(Duration::MAX)
        .idle_timeout(Duration::MAX)
        .retry_policy(RetryPolicy {
            max_retries: u32::MAX,
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            ..mail_connector::smtp::default_retry_policy()
        })
        .build()
        .unwrap();
    // Kept as a year, as the builder documents: no limit in practice, and no overflow.
    let printed = format!("{transport:?}");
    assert!(printed.contains("send_deadline: 31536000s"), "{printed}");
    // The first MAIL FROM gets a 4xx; a backoff of Duration::MAX cannot be waited out, so
    // the transient error is returned at once instead of a panic.
    let error = bounded(transport.send(&email())).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    bounded(transport.send(&email())).await.unwrap();
    let report = bounded(transport.check()).await.unwrap();
    assert_eq!(report.status(), CheckStatus::Ok, "{report}");
}

/// A token provider that never answers, like a login host that accepts and hangs.
#[derive(Debug)]
struct SilentTokens;

#[async_trait::async_trait]
impl mail_connector::TokenProvider for SilentTokens {
    async fn token(&self, _scope: &str) -> mail_connector::Result<mail_connector::AccessToken> {
        std::future::pending().await
    }
}

/// A STARTTLS transport to `server` logging in with XOAUTH2 tokens from `tokens`.
fn xoauth2_with(
    server: &TestServer,
    tokens: Arc<dyn mail_connector::TokenProvider>,
) -> mail_connector::smtp::SmtpTransportBuilder {
    SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .xoauth2(USER, tokens)
}

/// A caller's own token provider is blamed as such: it may not ask the login host at all.
#[tokio::test]
async fn a_send_waiting_for_its_own_token_provider_blames_that_provider() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        ..ServerOptions::default()
    })
    .await;
    let transport = xoauth2_with(&server, Arc::new(SilentTokens))
        .send_deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let error = bounded(transport.send(&email())).await.unwrap_err();
    let text = format!("{error} {}", error.remedy().unwrap_or_default());
    assert!(text.contains("the token provider"), "{text}");
    assert!(!text.contains("login host"), "{text}");
    assert!(!text.contains("authority_host"), "{text}");
    assert!(text.contains("1s"), "names the deadline: {text}");
}

/// A token provider with a bug of its own: it panics.
#[derive(Debug)]
struct PanickingTokens;

#[async_trait::async_trait]
impl mail_connector::TokenProvider for PanickingTokens {
    async fn token(&self, _scope: &str) -> mail_connector::Result<mail_connector::AccessToken> {
        panic!("the token provider's own bug")
    }
}

/// Each attempt runs in a task of its own; a panic there (here, the caller's own token
/// provider) reaches the caller as that panic, not passed off as the runtime shutting down
/// (an error that would say the delivery is uncertain).
#[tokio::test]
async fn a_panic_in_the_token_provider_reaches_the_caller_as_that_panic() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        ..ServerOptions::default()
    })
    .await;
    let transport = xoauth2_with(&server, Arc::new(PanickingTokens))
        .build()
        .unwrap();
    let sent = tokio::spawn(async move { transport.send(&email()).await });
    let outcome = bounded(sent).await;
    let Err(joined) = outcome else {
        panic!("the send returned instead of panicking: {outcome:?}")
    };
    let payload = joined.into_panic();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"the token provider's own bug")
    );
    assert!(server.messages().is_empty());
}

/// A runtime shut down while its send waits for the server's answer to the data (the caller
/// polling the send from outside it, as `Handle::block_on` does) cancels the send's task:
/// the caller gets an error saying the delivery is uncertain, not a panic.
#[test]
fn a_runtime_shut_down_during_a_send_gives_an_uncertain_error_not_a_panic() {
    let servers = tokio::runtime::Runtime::new().unwrap();
    let never = Arc::new(tokio::sync::Semaphore::new(0));
    let server = servers.block_on(TestServer::start(ServerOptions {
        gated_data_end: Some(Arc::clone(&never)),
        ..ServerOptions::default()
    }));
    let sending = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = sending.handle().clone();
    let builder = logged_in(&server);
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let transport = handle.block_on(async move { builder.build().unwrap() });
            handle.block_on(transport.send(&simple_email("ann@example.org")))
        }));
        let _ = done.send(sent.map_err(|_| "the send panicked"));
    });
    servers.block_on(bounded(server.wait_for_data_ends(1)));
    sending.shutdown_background();
    let sent = outcome
        .recv_timeout(Duration::from_secs(30))
        .expect("the send must end when its runtime shuts down");
    let error = sent.unwrap().unwrap_err();
    assert_eq!(
        error.delivery(),
        mail_connector::Delivery::Uncertain,
        "{error:?}"
    );
    assert!(error.to_string().contains("runtime shut down"), "{error}");
}

/// An app registration's tokens come from the login host: it is named, with its settings.
#[tokio::test]
async fn a_send_waiting_for_a_silent_login_host_blames_the_login_host() {
    let login = hostile_smtp::silent().await;
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        ..ServerOptions::default()
    })
    .await;
    let settings = xoauth2_settings(&server, &format!("http://127.0.0.1:{}", login.port()), "");
    let transport = with_deadline(&settings, Duration::from_secs(1));
    let error = bounded(transport.send(&email())).await.unwrap_err();
    let remedy = error.remedy().unwrap_or_default();
    assert!(
        error
            .to_string()
            .contains(&format!("127.0.0.1:{}", login.port())),
        "names the token endpoint: {error}"
    );
    assert!(remedy.contains("login host"), "{remedy}");
    assert!(remedy.contains("`authority_host`"), "{remedy}");
    assert!(error.is_transient(), "{error}");
}

/// A managed identity's tokens come from its endpoint, not the login host.
#[tokio::test]
async fn a_send_waiting_for_a_silent_identity_endpoint_blames_that_endpoint() {
    let identity = hostile_smtp::silent().await;
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        ..ServerOptions::default()
    })
    .await;
    let endpoint = format!(
        "http://127.0.0.1:{}/metadata/identity/oauth2/token",
        identity.port()
    );
    let settings = settings_toml(
        &server,
        &format!(
            "auth_mode = \"oauth\"\ntransport = \"smtp\"\n\
             oauth_credential = \"managed_identity\"\nmanaged_identity_endpoint = \"{endpoint}\"\n"
        ),
    );
    let transport = with_deadline(&settings, Duration::from_secs(1));
    let error = bounded(transport.send(&email())).await.unwrap_err();
    let text = format!("{error} {}", error.remedy().unwrap_or_default());
    assert!(text.contains(&endpoint), "{text}");
    assert!(text.contains("`managed_identity_endpoint`"), "{text}");
    assert!(!text.contains("login host"), "{text}");
    assert!(!text.contains("authority_host"), "{text}");
}

/// Gives one token, then fails (a login host gone down), or with `hang` never answers.
#[derive(Debug, Default)]
struct OneToken {
    asked: std::sync::atomic::AtomicUsize,
    hang: bool,
}

#[async_trait::async_trait]
impl mail_connector::TokenProvider for OneToken {
    async fn token(&self, _scope: &str) -> mail_connector::Result<mail_connector::AccessToken> {
        match self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Ok(mail_connector::AccessToken::new(
                "token-1",
                std::time::SystemTime::now() + Duration::from_secs(3600),
            )),
            _ if self.hang => std::future::pending().await,
            _ => Err(mail_connector::Error::transport(
                "tokens",
                "login host unreachable (test)",
                mail_connector::Transience::Transient,
            )),
        }
    }
}

/// With the login host down (refusing, or hanging: the wait for it is bounded by the
/// connect timeout), a pooled XOAUTH2 connection that logged in before still carries mail:
/// only a new connection needs a token.
#[tokio::test]
async fn a_pooled_xoauth2_connection_outlives_the_login_host() {
    for hang in [false, true] {
        let server = TestServer::start(ServerOptions {
            mechanisms: vec!["XOAUTH2"],
            tokens: vec!["token-1".into()],
            ..ServerOptions::default()
        })
        .await;
        let transport = SmtpTransport::starttls("127.0.0.1")
            .port(server.port())
            .tls_ca_pem(server.ca_pem.clone())
            .xoauth2(
                USER,
                Arc::new(OneToken {
                    hang,
                    ..OneToken::default()
                }),
            )
            .connect_timeout(Duration::from_secs(1))
            .send_deadline(Duration::from_secs(20))
            .build()
            .unwrap();
        for _ in 0..2 {
            bounded(transport.send(&email())).await.unwrap();
        }
        assert_eq!(server.messages().len(), 2, "hang: {hang}");
        assert_eq!(transport.connections_opened(), 1, "hang: {hang}");
    }
}
