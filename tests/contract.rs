//! One contract, run on every transport: what any `MailTransport` built by this crate
//! promises its callers, whatever carries the mail.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
#[cfg(any(feature = "graph", feature = "smtp"))]
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(feature = "graph")]
use httpmock::{Method::POST, MockServer};
use mail_connector::{CheckStatus, ConnectorSettings, MailTransport, Recipient, StubTransport};

/// How many messages the backend behind a transport has received so far.
type Delivered = Box<dyn Fn() -> usize + Send + Sync>;

/// The contract: sends report every recipient exactly once with its role, the recipient limit
/// splits, and `check` passes on a healthy setup.
async fn contract(
    name: &str,
    plain: Arc<dyn MailTransport>,
    limited: Arc<dyn MailTransport>,
    delivered: Delivered,
) {
    let email = support::email_to_many(3, 1, 1);
    let expected: Vec<Recipient> = email.recipients().collect();

    let report = plain
        .send(&email)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(report.messages.len(), 1, "{name}");
    let got: Vec<Recipient> = report.recipients().cloned().collect();
    assert_eq!(
        got, expected,
        "{name}: every recipient once, in order, with its role"
    );
    assert_eq!(delivered(), 1, "{name}");

    let report = limited
        .send(&email)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        report.messages.len(),
        3,
        "{name}: 5 recipients, at most 2 per message"
    );
    assert!(
        report.messages.iter().all(|m| m.recipients.len() <= 2),
        "{name}"
    );
    let unique: HashSet<&Recipient> = report.recipients().collect();
    assert_eq!(unique.len(), 5, "{name}");
    assert_eq!(delivered(), 4, "{name}");

    let check = plain
        .check()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(check.status(), CheckStatus::Ok, "{name}:\n{check}");
    assert!(!check.steps.is_empty(), "{name}");
}

#[tokio::test]
async fn stub_transport_keeps_the_contract() {
    let stub = StubTransport::new();
    let sent = stub.clone();
    contract(
        "stub",
        Arc::new(stub.clone()),
        Arc::new(mail_connector::RecipientLimit::new(stub, 2)),
        Box::new(move || sent.sent().len()),
    )
    .await;
}

#[tokio::test]
async fn outbox_transport_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ConnectorSettings::default();
    settings.outbox_dir = Some(dir.path().to_owned());
    settings.user_name = Some("no-reply@contoso.com".into());
    let plain = settings.build().unwrap();
    settings.recipient_limit = 2;
    let limited = settings.build().unwrap();
    let path = dir.path().to_owned();
    contract(
        "outbox",
        plain,
        limited,
        Box::new(move || std::fs::read_dir(&path).unwrap().count()),
    )
    .await;
}

#[cfg(feature = "graph")]
#[tokio::test]
async fn graph_transport_keeps_the_contract() {
    let server = MockServer::start_async().await;
    let token = support::jwt(serde_json::json!({"roles": ["Mail.Send", "Mail.ReadWrite"]}));
    let body = support::token_body(&token, 3600);
    server.mock(|when, then| {
        when.method(POST).path(support::token_path(support::TENANT));
        then.status(200).json_body(body);
    });
    let probe = server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/sendMail")
            .json_body_includes(r#"{"saveToSentItems":false}"#);
        then.status(400).json_body(
            serde_json::json!({"error": {"code": "ErrorInvalidRecipients", "message": "none"}}),
        );
    });
    let sends = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sends);
    server.mock(move |when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/sendMail");
        then.respond_with(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            httpmock::HttpMockResponse::builder().status(202).build()
        });
    });
    let mut settings = support::secret_settings(&server, support::TENANT);
    settings.graph_endpoint = Some(server.base_url());
    settings.client_secret_expires = Some("2099-12-31".parse().unwrap());
    let plain = settings.build().unwrap();
    settings.recipient_limit = 2;
    let limited = settings.build().unwrap();
    contract(
        "graph",
        plain,
        limited,
        Box::new(move || sends.load(Ordering::SeqCst)),
    )
    .await;
    probe.assert_calls(1);
}

#[cfg(feature = "smtp")]
#[tokio::test]
async fn smtp_transport_keeps_the_contract() {
    use support::smtp_server::{ServerOptions, TestServer};
    let server = Arc::new(TestServer::start(ServerOptions::default()).await);
    let mut settings = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"basic\"\nuser_name = \"no-reply@example.org\"\npassword = \"correct horse\"\n\
         smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls_ca_file = {:?}\n",
        server.port(),
        server.ca_file.path().display().to_string()
    ))
    .unwrap();
    let plain = settings.build().unwrap();
    settings.recipient_limit = 2;
    let limited = settings.build().unwrap();
    let seen = Arc::clone(&server);
    contract(
        "smtp",
        plain,
        limited,
        Box::new(move || seen.messages().len()),
    )
    .await;
}
