//! Graph's answers as large as they really come are read whole: a created draft echoes the
//! whole message, its body included, and an upload session's URL carries a token of a
//! kilobyte or more.

use httpmock::{Method::POST, Method::PUT, Mock, MockServer};
use mail_connector::{Attachment, Email, MailTransport};
use serde_json::json;

use super::helpers::*;

/// The upload session of draft `d1` at `upload_url` (Graph's answer whole, with its
/// `@odata.context`), the range that completes the file (to a URL carrying `authtoken`),
/// and the draft's send: the mocks of those two.
fn mock_session_and_send<'a>(
    server: &'a MockServer,
    upload_url: &str,
    authtoken: &str,
) -> (Mock<'a>, Mock<'a>) {
    server.mock(|when, then| {
        when.method(POST)
            .path(format!("{MESSAGES}/d1/attachments/createUploadSession"));
        then.status(201).json_body(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.uploadSession",
            "uploadUrl": upload_url,
            "expirationDateTime": "2026-11-28T12:00:00Z",
            "nextExpectedRanges": ["0-"]
        }));
    });
    let range = server.mock(|when, then| {
        when.method(PUT)
            .path("/upload/s")
            .query_param("authtoken", authtoken)
            .header_missing("authorization");
        then.status(201)
            .header("location", "https://graph/attachments/a1");
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(format!("{MESSAGES}/d1/send"));
        then.status(202);
    });
    (range, send)
}

/// An upload URL as Outlook gives it, with a token of a few kilobytes in it: the session's
/// answer is read whole, and the attachment goes to that URL.
#[tokio::test]
async fn an_upload_session_with_a_long_url_is_used() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    mock_draft(&server);
    let authtoken = "eyJ0eXAiOiJKV1Qi".repeat(256);
    let upload_url = server.url(format!("/upload/s?authtoken={authtoken}"));
    let (range, send) = mock_session_and_send(&server, &upload_url, &authtoken);
    transport(&settings(&server))
        .send(&large_email())
        .await
        .unwrap();
    range.assert_calls(1);
    send.assert_calls(1);
}

/// A draft with a 2 MB text body: Graph's answer to its creation echoes the message, body
/// and all. It is read whole, and the draft gets its attachment and is sent.
#[tokio::test]
async fn a_draft_whose_answer_echoes_a_large_body_is_sent() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let text = "All work and no play. ".repeat(100_000);
    let echo = json!({
        "id": "d1",
        "subject": "Big",
        "body": {"contentType": "text", "content": text},
        "toRecipients": [{"emailAddress": {"address": "ann@example.org"}}]
    });
    let create = server.mock(|when, then| {
        when.method(POST).path(MESSAGES);
        then.status(201).json_body(echo);
    });
    let authtoken = "pre";
    let upload_url = server.url(format!("/upload/s?authtoken={authtoken}"));
    let (range, send) = mock_session_and_send(&server, &upload_url, authtoken);
    let email = Email::builder()
        .to("ann@example.org")
        .subject("Big")
        .text(text)
        .attachment(Attachment::from_bytes(
            "big.bin",
            vec![7u8; 3 * 1024 * 1024 + 1],
        ))
        .build()
        .unwrap();
    transport(&settings(&server)).send(&email).await.unwrap();
    create.assert_calls(1);
    range.assert_calls(1);
    send.assert_calls(1);
}
