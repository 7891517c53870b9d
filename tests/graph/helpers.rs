//! Helpers shared by the Graph tests: a mock Entra ID token, settings, a transport.

use std::time::{SystemTime, UNIX_EPOCH};

use httpmock::{Method::DELETE, Method::POST, Mock, MockServer};
use mail_connector::{ConnectorSettings, Email, GraphTransport, MailTransport};
use serde_json::json;

use crate::support::*;

pub(crate) const SEND_PATH: &str = "/v1.0/users/no-reply@contoso.com/sendMail";

pub(crate) fn token_for(roles: &[&str]) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jwt(json!({"roles": roles, "tid": TENANT, "aud": "https://graph.microsoft.com", "exp": exp}))
}

pub(crate) fn settings(server: &MockServer) -> ConnectorSettings {
    let mut settings = secret_settings(server, TENANT);
    settings.graph_endpoint = Some(server.base_url());
    settings
}

/// A mailbox only the calling test sends from, named `name` and a number. Every event of a
/// send is logged in a span that names its mailbox, so a captured line that carries this
/// one (see [`sent_from`]) is the test's own: an httpmock server's address is not, as
/// httpmock hands its servers from one test to the next.
pub(crate) fn own_mailbox(name: &str) -> String {
    format!("{name}-{}@contoso.com", unique_number())
}

/// What a logged line of a send from `mailbox` holds: its span's field.
pub(crate) fn sent_from(mailbox: &str) -> String {
    format!("mailbox={mailbox} ")
}

/// Settings for `server`'s mocks, sending from `mailbox`.
pub(crate) fn settings_for(server: &MockServer, mailbox: &str) -> ConnectorSettings {
    let mut settings = settings(server);
    settings.user_name = Some(mailbox.to_owned());
    settings
}

pub(crate) fn mock_token<'a>(server: &'a MockServer, token: &str) -> Mock<'a> {
    let body = token_body(token, 3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.status(200).json_body(body);
    })
}

pub(crate) fn transport(settings: &ConnectorSettings) -> GraphTransport {
    settings
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .build()
        .unwrap()
}

pub(crate) fn simple_email() -> Email {
    Email::builder()
        .to("Samantha Booth <samanthab@contoso.com>")
        .subject("Meet for lunch?")
        .text("The new cafeteria is open.")
        .build()
        .unwrap()
}

pub(crate) fn graph_error(code: &str, message: &str) -> serde_json::Value {
    json!({"error": {"code": code, "message": message,
        "innerError": {"date": "2026-11-28T10:00:00", "request-id": "req-from-body", "client-request-id": "c"}}})
}

/// Mocks a draft whose attachments upload fine, and returns the draft's send and delete mocks.
pub(crate) fn draft_mocks<'a>(
    server: &'a MockServer,
    send_status: u16,
    retry_after: Option<&str>,
) -> (Mock<'a>, Mock<'a>) {
    draft_mocks_in(server, "no-reply@contoso.com", send_status, retry_after)
}

/// [`draft_mocks`] for a draft `d2` in `mailbox`.
pub(crate) fn draft_mocks_in<'a>(
    server: &'a MockServer,
    mailbox: &str,
    send_status: u16,
    retry_after: Option<&str>,
) -> (Mock<'a>, Mock<'a>) {
    let messages = format!("/v1.0/users/{mailbox}/messages");
    server.mock(|when, then| {
        when.method(POST).path(&messages);
        then.status(201).json_body(json!({"id": "d2"}));
    });
    server.mock(|when, then| {
        when.method(POST).path(format!("{messages}/d2/attachments"));
        then.status(201).json_body(json!({"id": "a"}));
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(format!("{messages}/d2/send"));
        let then = then.status(send_status);
        if let Some(after) = retry_after {
            then.header("retry-after", after);
        }
    });
    let delete = server.mock(|when, then| {
        when.method(DELETE).path(format!("{messages}/d2"));
        then.status(204);
    });
    (send, delete)
}

/// One attachment over 3 MiB: a draft and an upload session.
pub(crate) fn large_email() -> Email {
    Email::builder()
        .to("ann@example.org")
        .attachment(mail_connector::Attachment::from_bytes(
            "big.bin",
            vec![7u8; 3 * 1024 * 1024 + 1],
        ))
        .build()
        .unwrap()
}

/// The error of sending `email` through a transport for `server`'s mocks.
pub(crate) async fn send_error(server: &MockServer, email: &Email) -> mail_connector::Error {
    transport(&settings(server))
        .send(email)
        .await
        .expect_err("the send succeeded")
}

/// The mailbox's messages, where drafts are made.
pub(crate) const MESSAGES: &str = "/v1.0/users/no-reply@contoso.com/messages";

/// Graph making a draft with id `d1`.
pub(crate) fn mock_draft(server: &MockServer) {
    server.mock(|when, then| {
        when.method(POST).path(MESSAGES);
        then.status(201).json_body(json!({"id": "d1"}));
    });
}

/// Graph opening an upload session at `upload_url` for draft `d1`'s attachment.
pub(crate) fn mock_upload_session(server: &MockServer, upload_url: &str) {
    server.mock(|when, then| {
        when.method(POST)
            .path(format!("{MESSAGES}/d1/attachments/createUploadSession"));
        then.status(201).json_body(json!({"uploadUrl": upload_url}));
    });
}

/// Draft `d1`, its upload session at `upload_url`, and the deletion of the draft when it is
/// not sent.
pub(crate) fn mock_draft_uploading_to(server: &MockServer, upload_url: &str) {
    mock_draft(server);
    mock_upload_session(server, upload_url);
    server.mock(|when, then| {
        when.method(httpmock::Method::DELETE)
            .path(format!("{MESSAGES}/d1"));
        then.status(204);
    });
}

/// Draft `d1`, its upload session at `/upload/s`, and the session refusing the upload with
/// `status`: the draft is then to be deleted.
pub(crate) fn mock_refused_upload(server: &MockServer, status: u16) {
    mock_draft(server);
    mock_upload_session(server, &server.url("/upload/s"));
    server.mock(|when, then| {
        when.method(httpmock::Method::PUT).path("/upload/s");
        then.status(status)
            .json_body(graph_error("ErrorInvalidRequest", "bad range"));
    });
}

/// Graph settings for `server`'s token endpoint with Graph at a host that takes connections
/// and never answers the TLS handshake; the host's listener, to hand to [`send_unanswered`].
pub(crate) async fn settings_with_silent_graph(
    server: &MockServer,
) -> (ConnectorSettings, tokio::net::TcpListener) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut settings = settings(server);
    settings.graph_endpoint = Some(format!("https://{}", silent.local_addr().unwrap()));
    (settings, silent)
}

/// The error of a send through `graph` to the silent host, whose connection is held open
/// (unanswered) until the send has given up.
pub(crate) async fn send_unanswered(
    graph: &GraphTransport,
    silent: &tokio::net::TcpListener,
) -> mail_connector::Error {
    let (error, accepted) = tokio::join!(
        async { graph.send(&simple_email()).await.unwrap_err() },
        silent.accept()
    );
    let _connection = accepted.unwrap();
    error
}

/// Waits, up to 20 seconds, until `done` holds, checking it again every few milliseconds.
pub(crate) async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what} never came");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The path of `mailbox`'s messages (where drafts are made).
pub(crate) fn messages(mailbox: &str) -> String {
    format!("/v1.0/users/{mailbox}/messages")
}

/// Graph making draft `d1` in `mailbox`.
pub(crate) fn mock_draft_in(server: &MockServer, mailbox: &str) {
    server.mock(|when, then| {
        when.method(POST).path(messages(mailbox));
        then.status(201).json_body(json!({"id": "d1"}));
    });
}

/// The size a refusal of a too large message gives ("the message is {n} bytes …").
pub(crate) fn refused_size(error: &mail_connector::Error) -> usize {
    let text = error.to_string();
    text.split("the message is ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {text}"))
}
