//! The Graph transport against a mock Graph and a mock Entra ID: exact requests, large
//! attachments, throttling, token refresh, at-most-once, concurrency, errors and `check`.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use httpmock::{Method::DELETE, Method::POST, Method::PUT, Mock, MockServer};
use mail_connector::graph::UPLOAD_CHUNK_SIZE;
use mail_connector::{
    Attachment, CheckStatus, ConnectorSettings, Delivery, Email, Error, GraphTransport, Importance,
    MailTransport,
};
use serde_json::json;
use support::*;

const SEND_PATH: &str = "/v1.0/users/no-reply@contoso.com/sendMail";

fn token_for(roles: &[&str]) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jwt(json!({"roles": roles, "tid": TENANT, "aud": "https://graph.microsoft.com", "exp": exp}))
}

fn settings(server: &MockServer) -> ConnectorSettings {
    let mut settings = secret_settings(server, TENANT);
    settings.graph_endpoint = Some(server.base_url());
    settings
}

fn mock_token<'a>(server: &'a MockServer, token: &str) -> Mock<'a> {
    let body = token_body(token, 3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.status(200).json_body(body);
    })
}

fn transport(settings: &ConnectorSettings) -> GraphTransport {
    settings
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .build()
        .unwrap()
}

fn simple_email() -> Email {
    Email::builder()
        .to("Samantha Booth <samanthab@contoso.com>")
        .subject("Meet for lunch?")
        .text("The new cafeteria is open.")
        .build()
        .unwrap()
}

fn graph_error(code: &str, message: &str) -> serde_json::Value {
    json!({"error": {"code": code, "message": message,
        "innerError": {"date": "2026-11-28T10:00:00", "request-id": "req-from-body", "client-request-id": "c"}}})
}

#[tokio::test]
async fn sends_the_documented_json_with_a_bearer_token() {
    let server = MockServer::start_async().await;
    let token = token_for(&["Mail.Send"]);
    let token_mock = mock_token(&server, &token);
    let send = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header_exists("client-request-id")
            .json_body(json!({
                "message": {
                    "subject": "Meet for lunch?",
                    "body": {"contentType": "Text", "content": "The new cafeteria is open."},
                    "toRecipients": [{"emailAddress": {"address": "samanthab@contoso.com", "name": "Samantha Booth"}}]
                },
                "saveToSentItems": true
            }));
        then.status(202).header("request-id", "req-1");
    });
    let graph = transport(&settings(&server));
    let report = graph.send(&simple_email()).await.unwrap();
    assert_eq!(report.messages[0].id.as_deref(), Some("req-1"));
    assert_eq!(report.recipients().count(), 1);
    // A second send reuses the cached token.
    graph.send(&simple_email()).await.unwrap();
    send.assert_calls(2);
    token_mock.assert_calls(1);
}

#[tokio::test]
async fn every_property_uses_graphs_names() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let png = png_bytes();
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH).json_body(json!({
            "message": {
                "subject": "Grüße aus Köln — report ✅",
                "body": {"contentType": "HTML", "content": "<p>Hello,</p><p>the report is attached.</p><img src=\"cid:logo\">"},
                "toRecipients": [
                    {"emailAddress": {"address": "ann@example.org", "name": "Ann Example"}},
                    {"emailAddress": {"address": "bob@example.org"}}
                ],
                "ccRecipients": [{"emailAddress": {"address": "jane@example.org", "name": "Doe, Jane"}}],
                "bccRecipients": [{"emailAddress": {"address": "audit@example.org"}}],
                "replyTo": [{"emailAddress": {"address": "support@example.org"}}],
                "importance": "high",
                "internetMessageHeaders": [{"name": "X-Report-Id", "value": "42"}],
                "attachments": [
                    {"@odata.type": "#microsoft.graph.fileAttachment", "name": "report.csv",
                     "contentType": "text/csv", "contentBytes": "aWQsdG90YWwKMSw0Mgo=", "isInline": false},
                    {"@odata.type": "#microsoft.graph.fileAttachment", "name": "logo.png",
                     "contentType": "image/png", "contentBytes": base64_std(&png),
                     "isInline": true, "contentId": "logo"}
                ]
            },
            "saveToSentItems": false
        }));
        then.status(202);
    });
    let mut settings = settings(&server);
    settings.save_to_sent_items = false;
    let email = rebuild_with_importance(rich_email(), Importance::High);
    transport(&settings).send(&email).await.unwrap();
    send.assert();
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn rebuild_with_importance(email: Email, importance: Importance) -> Email {
    let mut builder = Email::builder()
        .subject(email.subject())
        .text(email.text().unwrap())
        .html(email.html().unwrap())
        .importance(importance);
    for m in email.to() {
        builder = builder.to(m);
    }
    for m in email.cc() {
        builder = builder.cc(m);
    }
    for m in email.bcc() {
        builder = builder.bcc(m);
    }
    for m in email.reply_to() {
        builder = builder.reply_to(m);
    }
    for (name, value) in email.headers() {
        builder = builder.header(name, value);
    }
    for a in email.attachments() {
        builder = builder.attachment(a.clone());
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn honours_retry_after_on_429_then_succeeds() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.respond_with(in_sequence(vec![
            httpmock::HttpMockResponse::builder()
                .status(429)
                .header("retry-after", "1.2")
                .body(
                    graph_error(
                        "ApplicationThrottled",
                        "Application is over its MailboxConcurrency limit.",
                    )
                    .to_string(),
                )
                .build(),
            httpmock::HttpMockResponse::builder().status(202).build(),
        ]));
    });
    let started = Instant::now();
    transport(&settings(&server))
        .send(&simple_email())
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1200),
        "waited only {waited:?}"
    );
    send.assert_calls(2);
}

#[tokio::test]
async fn retries_503_then_succeeds() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.respond_with(in_sequence(vec![
            httpmock::HttpMockResponse::builder().status(503).build(),
            httpmock::HttpMockResponse::builder()
                .status(503)
                .header("retry-after", "0")
                .build(),
            httpmock::HttpMockResponse::builder().status(202).build(),
        ]));
    });
    transport(&settings(&server))
        .send(&simple_email())
        .await
        .unwrap();
    send.assert_calls(3);
}

#[tokio::test]
async fn throttling_past_the_deadline_gives_up_saying_not_sent() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(429)
            .header("retry-after", "30")
            .header("request-id", "req-429")
            .json_body(graph_error("TooManyRequests", "Please retry again later."));
    });
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(5))
        .send_deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = graph.send(&simple_email()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "must not sleep past the deadline"
    );
    send.assert_calls(1);
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    assert_eq!(error.status(), Some(429));
    // A caller scheduling its own retry learns how long Graph asked it to wait.
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
    let text = error.to_string();
    assert!(
        text.contains("the mail was not sent") && text.contains("req-429"),
        "{text}"
    );
    assert!(
        error.remedy().unwrap().contains("throttling"),
        "{:?}",
        error.remedy()
    );
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once() {
    let server = MockServer::start_async().await;
    let (fetches, responder) = numbered_tokens(3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.respond_with(responder);
    });
    let refused = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer token-1");
        then.status(401).json_body(graph_error(
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ));
    });
    let accepted = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer token-2");
        then.status(202);
    });
    transport(&settings(&server))
        .send(&simple_email())
        .await
        .unwrap();
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "exactly two token requests"
    );
    refused.assert_calls(1);
    accepted.assert_calls(1);
}

#[tokio::test]
async fn a_second_401_fails_with_a_remedy() {
    let server = MockServer::start_async().await;
    let (fetches, responder) = numbered_tokens(3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.respond_with(responder);
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(401).json_body(graph_error(
            "InvalidAuthenticationToken",
            "CompactToken validation failed",
        ));
    });
    let error = transport(&settings(&server))
        .send(&simple_email())
        .await
        .unwrap_err();
    send.assert_calls(2);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert!(error.is_auth());
    assert!(
        error.remedy().unwrap().contains("`cloud`"),
        "{:?}",
        error.remedy()
    );
}

#[tokio::test]
async fn uncertain_outcomes_are_never_retried() {
    for status in [500u16, 502, 504] {
        let server = MockServer::start_async().await;
        mock_token(&server, &token_for(&["Mail.Send"]));
        let send = server.mock(|when, then| {
            when.method(POST).path(SEND_PATH);
            then.status(status);
        });
        let error = transport(&settings(&server))
            .send(&simple_email())
            .await
            .unwrap_err();
        send.assert_calls(1);
        assert_eq!(error.delivery(), Delivery::Uncertain, "{status}");
        assert!(
            error.to_string().contains("delivery is uncertain"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_timeout_after_the_request_was_written_is_uncertain() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202).delay(Duration::from_secs(3));
    });
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .request_timeout(Duration::from_millis(300))
        .retry_policy(fast_retry(3))
        .build()
        .unwrap();
    let error = graph.send(&simple_email()).await.unwrap_err();
    assert_eq!(error.delivery(), Delivery::Uncertain);
    assert!(error.to_string().contains("timed out"), "{error}");
    send.assert_calls(1);
}

#[tokio::test]
async fn an_unreachable_graph_is_not_sent_and_says_where_to_look() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let mut settings = settings(&server);
    // A port nothing listens on: bind one, then free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    settings.graph_endpoint = Some(format!("http://{closed}"));
    let error = transport(&settings)
        .send(&simple_email())
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(
        error.remedy().unwrap().contains("graph_endpoint"),
        "{:?}",
        error.remedy()
    );
}

#[tokio::test]
async fn mapped_graph_errors_give_their_remedies_and_keep_request_ids() {
    let cases = [
        (
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
            "Application permission",
        ),
        (
            403,
            "ErrorAccessDenied",
            "Access to OData is disabled: Blocked by tenant configured AppOnly AccessPolicy settings.",
            "application access policy",
        ),
        (
            404,
            "ErrorInvalidUser",
            "The requested user 'no-reply@contoso.com' is invalid.",
            "`user_name`",
        ),
        (
            404,
            "ResourceNotFound",
            "Resource could not be discovered.",
            "`user_name`",
        ),
        (
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            "Exchange Online licence",
        ),
        (
            403,
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.",
            "Send As",
        ),
        (
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid.",
            "recipient",
        ),
        (
            400,
            "ErrorMessageSizeExceeded",
            "The message exceeds the maximum supported size.",
            "MaxSendSize",
        ),
        (
            400,
            "InvalidInternetMessageHeader",
            "The internet message header name 'Foo' should start with 'x-' or 'X-'.",
            "X-",
        ),
        (
            401,
            "NoPermissionsInAccessToken",
            "The token contains no permissions, or permissions can not be understood.",
            "Grant admin consent",
        ),
    ];
    for (status, code, message, remedy) in cases {
        let server = MockServer::start_async().await;
        mock_token(&server, &token_for(&["Mail.Send"]));
        let send = server.mock(|when, then| {
            when.method(POST).path(SEND_PATH);
            then.status(status)
                .header("request-id", "req-42")
                .json_body(graph_error(code, message));
        });
        let error = transport(&settings(&server))
            .send(&simple_email())
            .await
            .unwrap_err();
        send.assert_calls(1);
        let Error::Graph {
            code: got,
            request_id,
            client_request_id,
            ..
        } = &error
        else {
            panic!("{code}: {error:?}");
        };
        assert_eq!(got.as_deref(), Some(code));
        assert_eq!(request_id.as_deref(), Some("req-42"));
        assert!(
            client_request_id
                .as_deref()
                .is_some_and(|id| id.len() == 36)
        );
        assert_eq!(error.delivery(), Delivery::NotSent, "{code}");
        assert!(!error.is_transient(), "{code}");
        let fix = error.remedy().unwrap_or_default();
        assert!(fix.contains(remedy), "{code}: {fix}");
        assert!(error.to_string().contains(code), "{error}");
    }
}

#[tokio::test]
async fn a_foreign_sender_is_refused_before_any_request_unless_send_as_is_allowed() {
    let server = MockServer::start_async().await;
    let token = mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH).json_body_includes(
            r#"{"message":{"from":{"emailAddress":{"address":"ceo@contoso.com"}}}}"#,
        );
        then.status(202);
    });
    let email = Email::builder()
        .from("ceo@contoso.com")
        .to("ann@example.org")
        .build()
        .unwrap();
    let error = transport(&settings(&server))
        .send(&email)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidMessage { field, .. } if field == "from"),
        "{error:?}"
    );
    assert!(error.to_string().contains("allow_send_as"), "{error}");
    token.assert_calls(0);
    send.assert_calls(0);

    let mut allowed = settings(&server);
    allowed.allow_send_as = true;
    transport(&allowed).send(&email).await.unwrap();
    send.assert_calls(1);
}

#[tokio::test]
async fn more_than_five_custom_headers_are_refused_before_sending() {
    let server = MockServer::start_async().await;
    let token = mock_token(&server, &token_for(&["Mail.Send"]));
    let mut builder = Email::builder().to("ann@example.org");
    for i in 0..6 {
        builder = builder.header(format!("X-H{i}"), "v");
    }
    let error = transport(&settings(&server))
        .send(&builder.build().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidMessage { field, .. } if field == "headers"),
        "{error:?}"
    );
    token.assert_calls(0);
}

fn large_file(dir: &std::path::Path, size: usize) -> (std::path::PathBuf, Vec<u8>) {
    let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let path = dir.join("big.bin");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[tokio::test]
async fn large_attachments_go_through_a_draft_and_an_upload_session() {
    let server = MockServer::start_async().await;
    let token = token_for(&["Mail.Send", "Mail.ReadWrite"]);
    mock_token(&server, &token);
    let dir = tempfile::tempdir().unwrap();
    let size = 2 * UPLOAD_CHUNK_SIZE + 12_345;
    let (path, bytes) = large_file(dir.path(), size);
    let draft_id = "AAMkAD=draft/1";
    let draft_path = "/v1.0/users/no-reply@contoso.com/messages/AAMkAD=draft%2F1";

    let create = server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages")
            .header("authorization", format!("Bearer {token}"))
            .json_body(json!({
                "subject": "Big",
                "body": {"contentType": "Text", "content": "see attached"},
                "toRecipients": [{"emailAddress": {"address": "ann@example.org"}}]
            }));
        then.status(201).json_body(json!({"id": draft_id}));
    });
    let small = server.mock(|when, then| {
        when.method(POST)
            .path(format!("{draft_path}/attachments"))
            .json_body(
                json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "note.txt",
                "contentType": "text/plain", "contentBytes": "aGk=", "isInline": false}),
            );
        then.status(201).json_body(json!({"id": "att-1"}));
    });
    let session = server.mock(|when, then| {
        when.method(POST)
            .path(format!("{draft_path}/attachments/createUploadSession"))
            .json_body(
                json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin",
                "size": size, "contentType": "application/octet-stream", "isInline": false}}),
            );
        then.status(201).json_body(
            json!({"uploadUrl": server.url("/upload/session-1?authtoken=pre"),
            "expirationDateTime": "2026-11-28T12:00:00Z", "nextExpectedRanges": ["0-"]}),
        );
    });
    let chunk = UPLOAD_CHUNK_SIZE;
    let ranges = [
        (0, chunk - 1, 200),
        (chunk, 2 * chunk - 1, 200),
        (2 * chunk, size - 1, 201),
    ];
    let puts: Vec<_> = ranges
        .iter()
        .map(|&(start, end, status)| {
            let expected = bytes[start..=end].to_vec();
            server.mock(move |when, then| {
                when.method(PUT)
                    .path("/upload/session-1")
                    .query_param("authtoken", "pre")
                    .header("content-range", format!("bytes {start}-{end}/{size}"))
                    .header("content-length", (end - start + 1).to_string())
                    .header("content-type", "application/octet-stream")
                    .header_missing("authorization")
                    .is_true(move |request| request.body_ref() == expected.as_slice());
                if status == 200 {
                    then.status(200)
                        .json_body(json!({"nextExpectedRanges": [format!("{}-", end + 1)]}));
                } else {
                    then.status(201)
                        .header("location", "https://graph/attachments/att-2");
                }
            })
        })
        .collect();
    let send = server.mock(|when, then| {
        when.method(POST)
            .path(format!("{draft_path}/send"))
            .header("content-length", "0");
        then.status(202);
    });
    let email = Email::builder()
        .to("ann@example.org")
        .subject("Big")
        .text("see attached")
        .attachment(Attachment::from_bytes("note.txt", "hi"))
        .attachment(Attachment::from_path(&path).unwrap())
        .build()
        .unwrap();
    let report = transport(&settings(&server)).send(&email).await.unwrap();
    assert_eq!(report.messages[0].id.as_deref(), Some(draft_id));
    create.assert_calls(1);
    small.assert_calls(1);
    session.assert_calls(1);
    for put in &puts {
        put.assert_calls(1);
    }
    send.assert_calls(1);
}

#[tokio::test]
async fn a_failed_draft_send_deletes_the_draft() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = large_file(dir.path(), 3 * 1024 * 1024 + 1);
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages");
        then.status(201).json_body(json!({"id": "d1"}));
    });
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages/d1/attachments/createUploadSession");
        then.status(201)
            .json_body(json!({"uploadUrl": server.url("/upload/s")}));
    });
    let upload = server.mock(|when, then| {
        when.method(PUT).path("/upload/s");
        then.status(400).json_body(graph_error(
            "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
            "too small",
        ));
    });
    let delete = server.mock(|when, then| {
        when.method(DELETE)
            .path("/v1.0/users/no-reply@contoso.com/messages/d1");
        then.status(204);
    });
    let email = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_path(&path).unwrap())
        .build()
        .unwrap();
    let error = transport(&settings(&server))
        .send(&email)
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent);
    upload.assert_calls(1);
    delete.assert_calls(1);
}

#[tokio::test]
async fn a_missing_mail_readwrite_permission_is_named() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages");
        then.status(403).json_body(graph_error(
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ));
    });
    let email = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_bytes(
            "big.bin",
            vec![7u8; 3 * 1024 * 1024],
        ))
        .build()
        .unwrap();
    let error = transport(&settings(&server))
        .send(&email)
        .await
        .unwrap_err();
    assert!(
        error.remedy().unwrap().contains("Mail.ReadWrite"),
        "{:?}",
        error.remedy()
    );
    assert_eq!(error.delivery(), Delivery::NotSent);
}

#[tokio::test]
async fn attachments_over_150_mb_are_refused_before_sending() {
    let server = MockServer::start_async().await;
    let token = mock_token(&server, &token_for(&["Mail.Send"]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.bin");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(151 * 1024 * 1024).unwrap(); // sparse: no disk used
    let email = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_path(&path).unwrap())
        .build()
        .unwrap();
    let error = transport(&settings(&server))
        .send(&email)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("150 MB"), "{error}");
    token.assert_calls(0);
}

#[tokio::test]
async fn the_recipient_limit_splits_over_graph() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    // The specific mock first: httpmock serves the first one that matches.
    let first = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH).json_body_includes(
            r#"{"message":{"toRecipients":[{"emailAddress":{"address":"to0@example.org"}},{"emailAddress":{"address":"to1@example.org"}}]}}"#,
        );
        then.status(202);
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let mut settings = settings(&server);
    settings.recipient_limit = 2;
    let transport = settings.build().unwrap();
    let report = transport.send(&email_to_many(3, 1, 1)).await.unwrap();
    assert_eq!(report.messages.len(), 3);
    assert_eq!(send.calls() + first.calls(), 3);
    first.assert_calls(1);
}

#[tokio::test]
async fn never_more_than_the_limit_in_flight_under_200_concurrent_sends() {
    let (base, stats) = support::loopback::start(Duration::from_millis(15)).await;
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let mut settings = settings(&server);
    settings.graph_endpoint = Some(base);
    let graph = Arc::new(transport(&settings));
    let email = simple_email();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let graph = Arc::clone(&graph);
            let email = email.clone();
            tokio::spawn(async move { graph.send(&email).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(stats.requests.load(Ordering::SeqCst), 200);
    let max = stats.max_in_flight.load(Ordering::SeqCst);
    assert_eq!(max, 4, "at most 4 in flight, and the limit is used");
}

#[tokio::test]
async fn a_sovereign_cloud_picks_its_scope_while_endpoints_are_overridden() {
    let server = MockServer::start_async().await;
    let token = token_for(&["Mail.Send"]);
    let body = token_body(&token, 3600);
    let token_mock = server.mock(|when, then| {
        when.method(POST)
            .path(token_path(TENANT))
            .form_urlencoded_tuple("scope", "https://graph.microsoft.us/.default");
        then.status(200).json_body(body);
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let mut settings = settings(&server);
    settings.cloud = mail_connector::Cloud::UsGov;
    transport(&settings).send(&simple_email()).await.unwrap();
    token_mock.assert_calls(1);
    send.assert_calls(1);
}

fn probe_mock<'a>(server: &'a MockServer, status: u16, code: &str) -> Mock<'a> {
    let body = graph_error(code, "probe");
    server.mock(move |when, then| {
        when.method(POST).path(SEND_PATH).json_body(
            json!({"message": {"subject": "mail-connector configuration check (never delivered)",
                "body": {"contentType": "Text", "content": ""}}, "saveToSentItems": false}),
        );
        then.status(status).json_body(body);
    })
}

fn step<'a>(report: &'a mail_connector::CheckReport, name: &str) -> &'a mail_connector::CheckStep {
    report
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} step in\n{report}"))
}

#[tokio::test]
async fn check_passes_for_a_complete_setup() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let probe = probe_mock(&server, 400, "ErrorInvalidRecipients");
    let mut settings = settings(&server);
    settings.client_secret_expires = Some("2099-01-01".parse().unwrap());
    let report = transport(&settings).check().await.unwrap();
    assert_eq!(report.status(), CheckStatus::Ok, "{report}");
    for name in ["token", "permission", "mailbox"] {
        assert_eq!(step(&report, name).status, CheckStatus::Ok, "{report}");
    }
    probe.assert_calls(1);
}

#[tokio::test]
async fn check_reports_a_missing_role_with_the_consent_url() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&[]));
    let probe = probe_mock(&server, 400, "ErrorInvalidRecipients");
    let report = transport(&settings(&server)).check().await.unwrap();
    let permission = step(&report, "permission");
    assert_eq!(permission.status, CheckStatus::Failed, "{report}");
    let remedy = permission.remedy.as_deref().unwrap();
    assert!(
        remedy.contains("Mail.Send") && remedy.contains("adminconsent?client_id="),
        "{remedy}"
    );
    probe.assert_calls(0);
}

#[tokio::test]
async fn check_reports_a_missing_mailbox_and_missing_mail_readwrite() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    probe_mock(&server, 404, "ErrorInvalidUser");
    let report = transport(&settings(&server)).check().await.unwrap();
    let mailbox = step(&report, "mailbox");
    assert_eq!(mailbox.status, CheckStatus::Failed, "{report}");
    assert!(
        mailbox.remedy.as_deref().unwrap().contains("`user_name`"),
        "{report}"
    );
    assert_eq!(
        step(&report, "large mail").status,
        CheckStatus::Warning,
        "{report}"
    );
}

#[tokio::test]
async fn check_fails_an_expired_secret() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    probe_mock(&server, 400, "ErrorInvalidRecipients");
    let mut settings = settings(&server);
    settings.client_secret_expires = Some("2020-01-31".parse().unwrap());
    let report = transport(&settings).check().await.unwrap();
    assert_eq!(report.status(), CheckStatus::Failed, "{report}");
    let expiry = report
        .steps
        .iter()
        .find(|s| s.status == CheckStatus::Failed)
        .unwrap();
    assert!(
        expiry.remedy.as_deref().unwrap().contains("client_secret"),
        "{report}"
    );
    assert_eq!(step(&report, "mailbox").status, CheckStatus::Ok, "{report}");
}

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
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(!printed.contains(&token), "{printed}");
}

#[tokio::test]
async fn a_file_attachment_is_streamed_whole_to_the_upload_url() {
    let (base, stats) = support::loopback::start(Duration::ZERO).await;
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let mut settings = settings(&server);
    settings.graph_endpoint = Some(base);
    let dir = tempfile::tempdir().unwrap();
    let size = 4 * UPLOAD_CHUNK_SIZE + 1;
    let (path, _) = large_file(dir.path(), size);
    let email = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_path(&path).unwrap())
        .build()
        .unwrap();
    transport(&settings).send(&email).await.unwrap();
    // draft, upload session, 5 PUTs, send
    assert_eq!(stats.requests.load(Ordering::SeqCst), 8);
    let received = stats.body_bytes.load(Ordering::SeqCst);
    assert!(
        received >= size as u64 && received < size as u64 + 4096,
        "{received}"
    );
}

/// Mocks a draft whose attachments upload fine, and returns the draft's send and delete mocks.
fn draft_mocks<'a>(
    server: &'a MockServer,
    send_status: u16,
    retry_after: Option<&str>,
) -> (Mock<'a>, Mock<'a>) {
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages");
        then.status(201).json_body(json!({"id": "d2"}));
    });
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages/d2/attachments");
        then.status(201).json_body(json!({"id": "a"}));
    });
    let send = server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages/d2/send");
        let then = then.status(send_status);
        if let Some(after) = retry_after {
            then.header("retry-after", after);
        }
    });
    let delete = server.mock(|when, then| {
        when.method(DELETE)
            .path("/v1.0/users/no-reply@contoso.com/messages/d2");
        then.status(204);
    });
    (send, delete)
}

/// Over 4 MB in small attachments: the draft path without upload sessions.
fn email_over_four_megabytes() -> Email {
    let mut builder = Email::builder().to("ann@example.org").subject("parts");
    for i in 0..3 {
        builder = builder.attachment(Attachment::from_bytes(
            format!("part{i}.bin"),
            vec![i as u8; 1_500_000],
        ));
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn an_uncertain_draft_send_is_not_repeated_and_the_draft_is_kept() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let (send, delete) = draft_mocks(&server, 500, None);
    let error = transport(&settings(&server))
        .send(&email_over_four_megabytes())
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::Uncertain);
    assert!(
        !error.is_transient(),
        "an uncertain send is not safe to retry"
    );
    send.assert_calls(1);
    // The draft may have become the sent message: deleting it could remove the sent copy.
    delete.assert_calls(0);
}

#[tokio::test]
async fn a_draft_send_throttled_past_the_deadline_is_not_sent_and_the_draft_deleted() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let (send, delete) = draft_mocks(&server, 429, Some("30"));
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .send_deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let error = graph.send(&email_over_four_megabytes()).await.unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    send.assert_calls(1);
    delete.assert_calls(1);
}

#[tokio::test]
async fn a_slow_login_host_cannot_overrun_the_send_deadline() {
    let server = MockServer::start_async().await;
    let body = token_body(&token_for(&["Mail.Send"]), 3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.status(200)
            .json_body(body)
            .delay(Duration::from_secs(4));
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .send_deadline(Duration::from_millis(800))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = graph.send(&simple_email()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.to_string().contains("deadline"), "{error}");
    send.assert_calls(0);
}

#[tokio::test]
async fn a_token_without_permissions_is_not_refetched_on_every_send() {
    let server = MockServer::start_async().await;
    let tokens = mock_token(&server, &token_for(&[]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(401).json_body(graph_error(
            "NoPermissionsInAccessToken",
            "The token contains no permissions, or permissions can not be understood.",
        ));
    });
    let graph = transport(&settings(&server));
    for _ in 0..3 {
        let error = graph.send(&simple_email()).await.unwrap_err();
        assert!(error.remedy().unwrap().contains("Grant admin consent"));
    }
    send.assert_calls(3);
    tokens.assert_calls(1);
}

#[tokio::test]
async fn logs_never_hold_the_token_the_secret_or_the_upload_url() {
    let (logs, _guard) = support::capture_logs();
    let server = MockServer::start_async().await;
    let (_, responder) = numbered_tokens(3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.respond_with(responder);
    });
    // A refused token, throttling, then success; and a large message through an upload URL.
    server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
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
    let (_, delete) = draft_mocks(&server, 202, None);
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages/d2/attachments/createUploadSession");
        then.status(201).json_body(json!({"uploadUrl": upload_url}));
    });
    server.mock(|when, then| {
        when.method(PUT).path("/upload/s");
        then.status(500);
    });
    let graph = transport(&settings(&server));
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

    let text = logs.text();
    assert!(text.contains("Graph refused the access token"), "{text}");
    assert!(text.contains("Graph asked to retry later"), "{text}");
    assert!(
        text.contains("could not delete") || text.contains("deleted the draft"),
        "{text}"
    );
    let printed = format!("{text}\n{error}\n{error:?}");
    for secret in [SECRET, "token-1", "token-2", "UPLOAD-CREDENTIAL-never-log"] {
        assert!(
            !printed.contains(secret),
            "{secret} was printed:\n{printed}"
        );
    }
}

/// A caller's own token source (a managed or workload identity) signs in: the settings need
/// no client id, tenant or secret, and no dummy values.
#[tokio::test]
async fn a_callers_token_provider_needs_no_app_registration_in_the_settings() {
    #[derive(Debug)]
    struct PlatformIdentity;

    #[mail_connector::async_trait]
    impl mail_connector::TokenProvider for PlatformIdentity {
        async fn token(&self, scope: &str) -> mail_connector::Result<mail_connector::AccessToken> {
            assert_eq!(scope, "https://graph.microsoft.com/.default");
            Ok(mail_connector::AccessToken::new(
                "platform-token",
                SystemTime::now() + Duration::from_secs(3600),
            ))
        }
    }

    let server = MockServer::start_async().await;
    let send = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer platform-token");
        then.status(202);
    });
    let settings = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\ngraph_endpoint = \"{}\"\n",
        server.base_url()
    ))
    .unwrap();
    // Without a provider the app registration is required, naming what is missing.
    let Err(error) = settings.build() else {
        panic!("built without credentials")
    };
    let error = error.to_string();
    assert!(
        error.contains("`oauth_client_id`") && error.contains("`client_secret`"),
        "{error}"
    );

    let transport = settings
        .builder()
        .token_provider(PlatformIdentity)
        .http_client(
            mail_connector::reqwest::Client::builder()
                .redirect(mail_connector::reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    transport.send(&simple_email()).await.unwrap();
    send.assert_calls(1);
}
