//! The `mail_connector.send` span of every transport ends with its outcome, message id,
//! attempts and duration, as a subscriber sees them (the captured log output).

use httpmock::{HttpMockResponse, Method::POST, MockServer};
use mail_connector::{MailTransport, OutboxTransport};

use crate::record::{email, smtp_to};
use crate::support::smtp_server::{ServerOptions, TestServer};
use crate::support::*;

/// The "send finished" line of the span that `marker` identifies, once it is logged.
fn finished_line(logs: &LogBuffer, marker: &str) -> String {
    let text = logs.text();
    text.lines()
        .find(|line| line.contains("send finished") && line.contains(marker))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no finished send span with {marker} in:\n{text}"))
}

fn graph_for(server: &MockServer, mailbox: &str) -> mail_connector::GraphTransport {
    let mut settings = secret_settings(server, TENANT);
    settings.user_name = Some(mailbox.to_owned());
    settings.graph_endpoint = Some(server.base_url());
    settings
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .build()
        .unwrap()
}

fn mock_token(server: &MockServer) {
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.status(200)
            .json_body(token_body("the-access-token", 3600));
    });
}

#[tokio::test]
async fn a_graph_send_records_outcome_id_attempts_and_duration() {
    let (logs, _guard) = capture_logs();
    let server = MockServer::start_async().await;
    mock_token(&server);
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/spans-graph@contoso.com/sendMail");
        then.respond_with(in_sequence(vec![
            HttpMockResponse::builder()
                .status(503)
                .header("retry-after", "0")
                .build(),
            HttpMockResponse::builder()
                .status(202)
                .header("request-id", "req-span-1")
                .build(),
        ]));
    });
    graph_for(&server, "spans-graph@contoso.com")
        .send(&email())
        .await
        .unwrap();
    let line = finished_line(&logs, "mailbox=spans-graph@contoso.com");
    for field in [
        "transport=\"graph\"",
        "outcome=\"sent\"",
        "message_id=\"req-span-1\"",
        "attempts=2",
        "duration_ms=",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    assert_no_secrets(&logs.text(), &[SECRET, "the-access-token"]);
}

#[tokio::test]
async fn an_uncertain_graph_send_says_so_without_an_id() {
    let (logs, _guard) = capture_logs();
    let server = MockServer::start_async().await;
    mock_token(&server);
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/spans-uncertain@contoso.com/sendMail");
        then.status(504);
    });
    let error = graph_for(&server, "spans-uncertain@contoso.com")
        .send(&email())
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), mail_connector::Delivery::Uncertain);
    let line = finished_line(&logs, "mailbox=spans-uncertain@contoso.com");
    assert!(line.contains("outcome=\"uncertain\""), "{line}");
    assert!(line.contains("attempts=1"), "{line}");
    assert!(!line.contains("message_id="), "{line}");
}

#[tokio::test]
async fn an_smtp_send_records_the_message_id_and_its_retry() {
    let (logs, _guard) = capture_logs();
    let server = TestServer::start(ServerOptions {
        transient_mail_failures: 1,
        ..ServerOptions::default()
    })
    .await;
    let report = smtp_to(&server, "no-reply@example.org", "correct horse")
        .send(&email())
        .await
        .unwrap();
    let id = report.messages[0].id.clone().unwrap();
    let line = finished_line(&logs, &format!("port={}", server.port()));
    assert!(line.contains("outcome=\"sent\""), "{line}");
    assert!(line.contains(&format!("message_id=\"{id}\"")), "{line}");
    assert!(line.contains("attempts=2"), "{line}");
    assert!(line.contains("duration_ms="), "{line}");
}

#[tokio::test]
async fn an_outbox_send_records_the_file_as_its_id() {
    let (logs, _guard) = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let report = OutboxTransport::new(dir.path())
        .with_sender("no-reply@example.org".parse().unwrap())
        .send(&email())
        .await
        .unwrap();
    let path = report.messages[0].id.clone().unwrap();
    let line = finished_line(&logs, &path);
    assert!(line.contains("transport=\"outbox\""), "{line}");
    assert!(line.contains("outcome=\"sent\""), "{line}");
    assert!(line.contains("attempts=1"), "{line}");
}
