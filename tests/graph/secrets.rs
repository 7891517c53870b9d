//! Secrets, tokens and upload URLs never reach `Debug`, errors or logs.

use httpmock::{Method::POST, Method::PUT, MockServer};
use mail_connector::{Attachment, Email, MailTransport};
use serde_json::json;

use super::helpers::*;
use crate::support;
use crate::support::*;

#[tokio::test]
async fn secrets_and_tokens_never_reach_debug_or_errors() {
    let server = MockServer::start_async().await;
    let token = token_for(&["Mail.Send"]);
    mock_token(&server, &token);
    server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(403)
            .json_body(graph_error("ErrorAccessDenied", "Access is denied."));
    });
    let graph = transport(&settings(&server));
    let error = graph.send(&simple_email()).await.unwrap_err();
    let report = graph.check().await.unwrap();
    let printed = format!(
        "{graph:?} {error} {error:?} {:?} {report} {report:?}",
        error.remedy()
    );
    assert_no_secrets(&printed, &[SECRET, &token]);
}

#[tokio::test]
async fn logs_never_hold_the_token_the_secret_or_the_upload_url() {
    let (logs, _guard) = support::capture_logs();
    let server = MockServer::start_async().await;
    // The send span names this mailbox on every line these sends log, and no other test's.
    let mailbox = own_mailbox("never-logged");
    let (_, responder) = numbered_tokens(3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.respond_with(responder);
    });
    // A refused token, throttling, then success; and a large message through an upload URL.
    server.mock(|when, then| {
        when.method(POST)
            .path(format!("/v1.0/users/{mailbox}/sendMail"));
        then.respond_with(in_sequence(vec![
            httpmock::HttpMockResponse::builder()
                .status(401)
                .body(graph_error("InvalidAuthenticationToken", "expired").to_string())
                .build(),
            httpmock::HttpMockResponse::builder()
                .status(429)
                .header("retry-after", "0")
                .build(),
            httpmock::HttpMockResponse::builder().status(202).build(),
        ]));
    });
    let upload_url = server.url("/upload/s?authtoken=UPLOAD-CREDENTIAL-never-log");
    let (_, delete) = draft_mocks_in(&server, &mailbox, 202, None);
    server.mock(|when, then| {
        when.method(POST).path(format!(
            "/v1.0/users/{mailbox}/messages/d2/attachments/createUploadSession"
        ));
        then.status(201).json_body(json!({"uploadUrl": upload_url}));
    });
    server.mock(|when, then| {
        when.method(PUT).path("/upload/s");
        then.status(500);
    });
    let graph = transport(&settings_for(&server, &mailbox));
    graph.send(&simple_email()).await.unwrap();
    let big = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_bytes(
            "big.bin",
            vec![1u8; 3 * 1024 * 1024 + 5],
        ))
        .build()
        .unwrap();
    let error = graph.send(&big).await.unwrap_err();
    delete.assert_calls(1);

    // This test's own events (other tests log the same words from other mailboxes).
    let sent_from = sent_from(&mailbox);
    logged_line(&logs, &[&sent_from, "access token issued"]);
    logged_line(&logs, &[&sent_from, "Graph refused the access token"]);
    logged_line(&logs, &[&sent_from, "Graph asked to retry later"]);
    let deleted =
        |line: &str| line.contains("could not delete") || line.contains("deleted the draft");
    let text = logs.text();
    assert!(
        text.lines()
            .any(|line| line.contains(&sent_from) && deleted(line)),
        "no line of a send from {mailbox} says what became of its draft:\n{text}"
    );
    let printed = format!("{text}\n{error}\n{error:?}");
    assert_no_secrets(
        &printed,
        &[SECRET, "token-1", "token-2", "UPLOAD-CREDENTIAL-never-log"],
    );
}
