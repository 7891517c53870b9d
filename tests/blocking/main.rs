//! Issue 13: the blocking API (feature `blocking`) — from plain threads against the outbox,
//! the loopback SMTP server and Graph through httpmock; and from inside a runtime, where it
//! must return an error rather than block or panic.

#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;

use httpmock::{Method::POST, MockServer};
use mail_connector::blocking::Transport;
use mail_connector::{
    AuthMode, CheckStatus, ConnectorSettings, Delivery, Email, MailTransport, StubOutcome,
    StubTransport,
};

use support::smtp_server::{ServerOptions, TestServer};
use support::*;

fn email(to: &str) -> Email {
    Email::builder()
        .to(to)
        .subject("From synchronous code")
        .text("Hello")
        .build()
        .unwrap()
}

#[test]
fn sends_to_the_outbox_from_a_plain_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ConnectorSettings::default();
    settings.user_name = Some("no-reply@example.org".into());
    settings.outbox_dir = Some(dir.path().to_owned());
    let transport = Transport::from_settings(&settings).unwrap();
    let report = transport.send(&email("ann@example.org")).unwrap();
    let path = report.messages[0].id.clone().unwrap();
    let written = std::fs::read_to_string(path).unwrap();
    assert!(
        written.contains("Subject: From synchronous code"),
        "{written}"
    );
    let check = transport.check().unwrap();
    assert!(check.is_ok(), "{check:?}");
    assert_eq!(check.status(), CheckStatus::Ok);
}

#[test]
fn sends_through_the_loopback_smtp_server_from_many_threads() {
    // The server runs on a runtime of the test's own; the test's threads are outside it.
    let server_runtime = tokio::runtime::Runtime::new().unwrap();
    let server = server_runtime.block_on(TestServer::start(ServerOptions::default()));
    let mut settings = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"basic\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
         tls_ca_file = {:?}\nuser_name = \"no-reply@example.org\"\npassword = \"correct horse\"\n",
        server.port(),
        server.ca_file.path().display().to_string(),
    ))
    .unwrap();
    settings.auth_mode = Some(AuthMode::Basic);
    let transport = Transport::from_settings(&settings).unwrap();
    std::thread::scope(|scope| {
        for i in 0..3 {
            let transport = transport.clone();
            scope.spawn(move || {
                transport
                    .send(&email(&format!("user{i}@example.org")))
                    .unwrap();
            });
        }
    });
    assert_eq!(server.messages().len(), 3);
    drop(transport);
    drop(server_runtime);
}

#[test]
fn sends_through_graph_from_a_plain_thread() {
    let server = MockServer::start();
    let token = server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.status(200).json_body(token_body("the-token", 3600));
    });
    let send = server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/sendMail")
            .header("authorization", "Bearer the-token")
            .body_excludes("refuse@");
        then.status(202).header("request-id", "req-blocking");
    });
    let mut settings = secret_settings(&server, TENANT);
    settings.graph_endpoint = Some(server.base_url());
    let transport = Transport::from_settings(&settings).unwrap();
    let report = transport.send(&email("ann@example.org")).unwrap();
    assert_eq!(report.messages[0].id.as_deref(), Some("req-blocking"));
    assert_eq!(send.calls(), 1);
    assert_eq!(token.calls(), 1);
    // The error of a failed send arrives as it is.
    let bad = server.mock(|when, then| {
        when.method(POST).path("/v1.0/users/no-reply@contoso.com/sendMail").body_includes("refuse@");
        then.status(403).json_body(serde_json::json!({"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}}));
    });
    let error = transport.send(&email("refuse@example.org")).unwrap_err();
    assert!(error.is_auth(), "{error:?}");
    assert_eq!(bad.calls(), 1);
}

#[test]
fn wraps_any_transport_and_keeps_its_errors() {
    let stub = StubTransport::new().then(StubOutcome::Uncertain);
    let transport = Transport::new(stub.clone()).unwrap();
    let error = transport.send(&email("ann@example.org")).unwrap_err();
    assert_eq!(error.delivery(), Delivery::Uncertain);
    transport.send(&email("ann@example.org")).unwrap();
    assert_eq!(stub.sent(), vec![email("ann@example.org")]);
    // Invalid settings: the settings' error, naming the field.
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(AuthMode::OAuth);
    let error = Transport::from_settings(&settings).unwrap_err().to_string();
    assert!(error.contains("oauth_client_id"), "{error}");
}

#[tokio::test]
async fn inside_a_runtime_it_refuses_instead_of_blocking_or_panicking() {
    let stub = StubTransport::new();
    // Making one (and dropping it) inside a runtime is fine; only the calls must not block.
    let transport = Transport::new(stub.clone()).unwrap();
    let error = transport.send(&email("ann@example.org")).unwrap_err();
    assert!(!error.is_transient());
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(
        error.to_string().contains("inside a tokio runtime"),
        "{error}"
    );
    assert!(transport.check().is_err());
    assert_eq!(stub.attempts(), 0, "nothing was sent");

    // In `spawn_blocking` too: that thread belongs to the runtime. The error says what to
    // do there instead, and that works.
    let inner = transport.clone();
    let error = tokio::task::spawn_blocking(move || inner.send(&email("bob@example.org")))
        .await
        .unwrap()
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("inside a tokio runtime"), "{text}");
    assert!(text.contains("spawn_blocking"), "{text}");
    // What to do is the error's remedy, as for the crate's other errors.
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("Handle::current().block_on"), "{remedy}");
    let shared = transport.transport();
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Handle::current().block_on(shared.send(&email("erin@example.org")))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(stub.sent().len(), 1);

    // The async transport it runs is there for async code.
    let shared: Arc<dyn MailTransport> = transport.transport();
    shared.send(&email("carol@example.org")).await.unwrap();
    assert_eq!(stub.sent().len(), 2);

    // A plain thread of this process may still use it, while the runtime runs.
    let from_thread = transport.clone();
    std::thread::spawn(move || from_thread.send(&email("dave@example.org")))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(stub.sent().len(), 3);
    drop(transport);
}

/// A transport that panics: the caller gets an error (delivery unknown), not a panic, and
/// the runtime goes on serving later calls.
#[test]
fn a_panicking_transport_is_an_error_and_the_runtime_survives() {
    #[derive(Debug)]
    struct Panics(StubTransport);

    #[mail_connector::async_trait]
    impl MailTransport for Panics {
        async fn send(&self, email: &Email) -> mail_connector::Result<mail_connector::SendReport> {
            if email.subject() == "panic" {
                panic!("a bug in a transport");
            }
            self.0.send(email).await
        }
        async fn check(&self) -> mail_connector::Result<mail_connector::CheckReport> {
            self.0.check().await
        }
    }

    let stub = StubTransport::new();
    let transport = Transport::new(Panics(stub.clone())).unwrap();
    let boom = Email::builder()
        .to("ann@example.org")
        .subject("panic")
        .build()
        .unwrap();
    let error = transport.send(&boom).unwrap_err();
    assert_eq!(error.delivery(), Delivery::Uncertain);
    assert!(error.to_string().contains("panicked"), "{error}");
    transport.send(&email("ann@example.org")).unwrap();
    assert_eq!(stub.sent().len(), 1);
}
