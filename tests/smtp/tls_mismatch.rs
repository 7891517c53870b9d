//! A TLS mode that does not match the port: implicit TLS against a port that speaks SMTP in
//! plain text first (STARTTLS, 587), and STARTTLS or no TLS against an implicit-TLS port (465),
//! are permanent errors, after one attempt, whose remedy says which `smtp_tls` to use.

use std::sync::Arc;
use std::time::Duration;

use mail_connector::{
    CheckStatus, Error, FailureKind, MailTransport, RetryPolicy, Secret, SmtpStage, SmtpTransport,
};

use mail_connector::smtp::SmtpTransportBuilder;

use super::helpers::*;
use crate::support::smtp_server::{ServerOptions, ServerTls, TestServer};

fn assert_permanent_tls_error(error: &Error, remedy_names: &str) {
    assert_eq!(stage_of(error), Some(SmtpStage::Tls), "{error:?}");
    assert!(!error.is_transient(), "{error:?}");
    assert!(!error.is_auth(), "{error:?}");
    // Only the settings (`smtp_tls`, `smtp_port`) can fix it.
    assert!(error.is_settings(), "{error:?}");
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains(remedy_names), "{remedy}");
    assert!(
        !remedy.contains("cannot reach"),
        "not an unreachable server: {remedy}"
    );
}

#[tokio::test]
async fn implicit_tls_against_a_starttls_port_is_permanent_and_names_starttls() {
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = SmtpTransport::implicit_tls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    let error = bounded(transport.send(&simple_email("ann@example.org")))
        .await
        .unwrap_err();
    assert_permanent_tls_error(&error, "smtp_tls = \"starttls\"");
    assert!(error.to_string().contains("plain text"), "{error}");
    assert_eq!(server.connections(), 1, "a permanent error was retried");
    assert!(server.auths().is_empty());
}

/// STARTTLS against an implicit-TLS port, the wait for a greeting ended by `timeouts`: a
/// permanent error naming implicit TLS, after one attempt and one TLS question, no retry.
async fn starttls_names_the_implicit_port(
    timeouts: impl FnOnce(SmtpTransportBuilder) -> SmtpTransportBuilder,
) {
    let server = TestServer::start(ServerOptions {
        tls: ServerTls::Implicit,
        ..ServerOptions::default()
    })
    .await;
    let transport = timeouts(logged_in(&server)).build().unwrap();
    let error = bounded(transport.send(&simple_email("ann@example.org")))
        .await
        .unwrap_err();
    assert_permanent_tls_error(&error, "smtp_tls = \"implicit\"");
    assert!(error.to_string().contains("speaks implicit TLS"), "{error}");
    assert_eq!(
        server.connections(),
        2,
        "one attempt and one TLS question, no retry"
    );
    assert!(server.auths().is_empty() && server.messages().is_empty());
}

#[tokio::test]
async fn starttls_against_an_implicit_tls_port_is_permanent_and_names_implicit() {
    // The server waits for a TLS hello and the client for a greeting: only the connect
    // timeout ends that wait.
    starttls_names_the_implicit_port(|b| b.connect_timeout(Duration::from_millis(300))).await;
}

#[tokio::test]
async fn a_send_deadline_shorter_than_the_connect_timeout_still_names_the_implicit_port() {
    // The deadline ends the wait for a greeting before the connect timeout would: the
    // question whether the port speaks TLS still gets its share of the time.
    starttls_names_the_implicit_port(|b| {
        b.connect_timeout(Duration::from_secs(10))
            .send_deadline(Duration::from_millis(800))
    })
    .await;
}

/// Over implicit TLS the handshake already said the port speaks TLS, so no question follows
/// a missing greeting: a slow greeting is waited for until the send deadline (here shorter
/// than the connect timeout), none of it kept back for a question.
#[tokio::test]
async fn a_slow_greeting_over_implicit_tls_is_waited_for_until_the_send_deadline() {
    let server = TestServer::start(ServerOptions {
        tls: ServerTls::Implicit,
        // The behaviour under test (a slow server): past half the deadline, the time a
        // question would have had, and well before the deadline.
        greeting_delay: Some(Duration::from_millis(3500)),
        ..ServerOptions::default()
    })
    .await;
    let transport = SmtpTransport::implicit_tls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(USER, Secret::new(PASSWORD))
        .connect_timeout(Duration::from_secs(60))
        .send_deadline(Duration::from_secs(6))
        .build()
        .unwrap();
    bounded(transport.send(&simple_email("ann@example.org")))
        .await
        .unwrap();
    assert_eq!(server.connections(), 1, "one attempt, no retry");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn no_tls_against_an_implicit_tls_port_is_told_so_by_check() {
    let server = TestServer::start(ServerOptions {
        tls: ServerTls::Implicit,
        mechanisms: vec![],
        ..ServerOptions::default()
    })
    .await;
    // No TLS settings at all: the question is asked with the public roots, and the test
    // CA's certificate refused by them is still an answer in TLS.
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let report = bounded(transport.check()).await.unwrap();
    assert_eq!(report.status(), CheckStatus::Failed, "{report}");
    let step = report.steps.iter().find(|s| s.name == "tls").unwrap();
    assert!(step.detail.contains("plain SMTP"), "{report}");
    assert_eq!(step.kind, Some(FailureKind::Settings), "{report}");
    let remedy = step.remedy.as_deref().unwrap();
    assert!(remedy.contains("smtp_tls = \"implicit\""), "{report}");
    // The mode in use is `none`: there is no STARTTLS to keep.
    assert!(!remedy.contains("keep"), "{remedy}");
}

#[tokio::test]
async fn check_names_the_mismatch_for_implicit_tls_on_a_starttls_port() {
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = settings_toml(
        &server,
        &format!("auth_mode = \"basic\"\npassword = \"{PASSWORD}\"\nsmtp_tls = \"implicit\"\n"),
    )
    .build()
    .unwrap();
    let report = bounded(transport.check()).await.unwrap();
    let step = report.steps.iter().find(|s| s.name == "tls").unwrap();
    assert_eq!(step.status, CheckStatus::Failed, "{report}");
    assert!(
        step.remedy
            .as_deref()
            .unwrap()
            .contains("smtp_tls = \"starttls\""),
        "{report}"
    );
}

/// One send, through the STARTTLS transport `configure` makes, to a server that never
/// greets: the server, to count its connections, and the send's error, a transient one.
async fn send_to_a_silent_server(
    configure: impl FnOnce(SmtpTransportBuilder) -> SmtpTransportBuilder,
) -> (TestServer, Error) {
    let server = TestServer::start(ServerOptions {
        no_greeting: true,
        ..ServerOptions::default()
    })
    .await;
    let transport = configure(logged_in(&server)).build().unwrap();
    let error = bounded(transport.send(&simple_email("ann@example.org")))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    (server, error)
}

#[tokio::test]
async fn a_silent_server_is_asked_the_tls_question_once_per_send() {
    // Every attempt waits out the connect timeout; the deadline is far off, so only the
    // retry policy ends the send: 1 attempt + 2 retries.
    let (server, error) = send_to_a_silent_server(|builder| {
        builder
            .connect_timeout(Duration::from_millis(200))
            .retry_policy(RetryPolicy {
                max_retries: 2,
                ..fast_retry()
            })
    })
    .await;
    assert!(!error.is_settings(), "{error:?}");
    assert_eq!(
        server.connections(),
        3 + 1,
        "three attempts and one TLS question, not one per attempt"
    );
}

/// A retry after the TLS question was asked keeps no time back for it: when the deadline is
/// nearer than the connect timeout, the wait for a greeting lasts until the deadline, and
/// no further attempt is squeezed into time kept for a question that is not asked again.
#[tokio::test]
async fn a_retry_after_the_tls_question_waits_for_a_greeting_until_the_deadline() {
    // The first attempt waits out the connect timeout, then the question as long: 4 s of
    // the 5 s deadline. The second has the remaining 1 s, less than the connect timeout, and
    // a loaded machine a second to start it.
    let (server, error) = send_to_a_silent_server(|builder| {
        builder
            .connect_timeout(Duration::from_secs(2))
            .send_deadline(Duration::from_secs(5))
    })
    .await;
    assert!(!error.to_string().contains(IMPLICIT), "{error}");
    assert_eq!(
        server.connections(),
        2 + 1,
        "two attempts and one TLS question"
    );
}

#[tokio::test]
async fn a_plaintext_server_that_greets_too_late_stays_a_transient_error() {
    // It greets in plain text, but only long after the client's connect timeout and the TLS
    // question's (which is no longer), so neither sees the greeting: a port that stays silent
    // and does not answer a TLS hello either is slow, not a server that speaks implicit TLS.
    // (A greeting just after the timeout could beat a client scheduled late on a loaded
    // machine.)
    let server = TestServer::start(ServerOptions {
        greeting_delay: Some(Duration::from_secs(60)),
        ..ServerOptions::default()
    })
    .await;
    let timeout = Duration::from_millis(300);
    let starttls = logged_in(&server).connect_timeout(timeout).build().unwrap();
    let plain = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .connect_timeout(timeout)
        .build()
        .unwrap();
    for (tls, transport) in [("starttls", &starttls), ("none", &plain)] {
        let report = bounded(transport.check()).await.unwrap();
        let step = report
            .steps
            .iter()
            .find(|s| s.status == CheckStatus::Failed);
        let step = step.unwrap_or_else(|| panic!("{tls}: {report}"));
        assert_eq!(step.kind, Some(FailureKind::Transient), "{tls}: {report}");
        assert!(!report.to_string().contains(IMPLICIT), "{tls}: {report}");
    }
    let transport = logged_in(&server)
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    fails_for_now_not_for_tls(&transport).await;
}

const IMPLICIT: &str = "speaks implicit TLS";

/// A send through `transport` fails as a transient failure to retry: not one of the
/// settings, and not blamed on a port that speaks implicit TLS.
async fn fails_for_now_not_for_tls(transport: &SmtpTransport) {
    let error = bounded(transport.send(&simple_email("ann@example.org")))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(!error.is_settings(), "{error:?}");
    assert!(!error.to_string().contains(IMPLICIT), "{error}");
}

/// A port that accepts each connection and closes it at once, without a greeting (a proxy
/// with no server behind it, a server shedding load): the TLS question gets no TLS answer
/// either, so this is a transient failure to retry, not a port that speaks implicit TLS.
#[tokio::test]
async fn a_port_that_closes_every_connection_at_once_is_not_an_implicit_tls_port() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let closer = tokio::spawn({
        let accepted = Arc::clone(&accepted);
        async move {
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(socket);
            }
        }
    });
    let transport = SmtpTransport::starttls("127.0.0.1")
        .port(port)
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(RetryPolicy {
            max_retries: 0,
            ..mail_connector::smtp::default_retry_policy()
        })
        .build()
        .unwrap();
    fails_for_now_not_for_tls(&transport).await;
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    closer.abort();
}
