//! Large attachments go through a draft and an upload session.

use std::sync::atomic::Ordering;
use std::time::Duration;

use httpmock::{Method::DELETE, Method::POST, Method::PUT, MockServer};
use mail_connector::graph::UPLOAD_CHUNK_SIZE;
use mail_connector::{Attachment, Delivery, Email, MailTransport};
use serde_json::json;

use super::helpers::*;
use crate::support;
use crate::support::*;

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
    // Graph's wait (an hour) is what passes the deadline, not the machine's speed: building
    // and uploading the 4 MB fit in the two minutes however loaded the machine is, so the
    // draft's `/send` is always tried and answered 429.
    let (send, delete) = draft_mocks(&server, 429, Some("3600"));
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .send_deadline(Duration::from_secs(120))
        .build()
        .unwrap();
    // Only a guard against a send that sleeps Graph's hour: it never decides a passing run.
    let error = tokio::time::timeout(
        Duration::from_secs(300),
        graph.send(&email_over_four_megabytes()),
    )
    .await
    .expect("the send slept through Graph's hour instead of giving up on the deadline")
    .unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    assert_eq!(error.status(), Some(429));
    send.assert_calls(1);
    delete.assert_calls(1);
}

/// Between 3,000,000 bytes and 3 MiB an attachment is "under 3 MB" by one reading and over
/// Graph's 4 MB request cap once base64-encoded: it goes to an upload session, and only when
/// Graph refuses that as too small is it added in one request.
#[tokio::test]
async fn an_attachment_too_large_for_one_request_uses_a_session_first() {
    for session_refused in [false, true] {
        let server = MockServer::start_async().await;
        mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
        let messages = "/v1.0/users/no-reply@contoso.com/messages";
        server.mock(|when, then| {
            when.method(POST).path(messages);
            then.status(201).json_body(json!({"id": "d3"}));
        });
        let session = server.mock(|when, then| {
            when.method(POST)
                .path(format!("{messages}/d3/attachments/createUploadSession"));
            match session_refused {
                false => then
                    .status(201)
                    .json_body(json!({"uploadUrl": server.url("/upload/d3")})),
                true => then.status(400).json_body(graph_error(
                    "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                    "Attachment size must be greater than the minimum size.",
                )),
            };
        });
        let upload = server.mock(|when, then| {
            when.method(PUT).path("/upload/d3");
            then.status(201);
        });
        let post = server.mock(|when, then| {
            when.method(POST).path(format!("{messages}/d3/attachments"));
            then.status(201).json_body(json!({"id": "a"}));
        });
        let send = server.mock(|when, then| {
            when.method(POST).path(format!("{messages}/d3/send"));
            then.status(202);
        });
        let email = Email::builder()
            .to("ann@example.org")
            .attachment(Attachment::from_bytes("mid.bin", vec![1u8; 3_100_000]))
            .build()
            .unwrap();
        transport(&settings(&server)).send(&email).await.unwrap();
        session.assert_calls(1);
        match session_refused {
            false => {
                upload.assert_calls(1);
                post.assert_calls(0);
            }
            true => {
                upload.assert_calls(0);
                post.assert_calls(1);
            }
        }
        send.assert_calls(1);
    }
}

/// A body too large for one request is refused before anything is sent, naming it: a draft
/// could not carry it either (only attachments are added to a draft apart).
#[tokio::test]
async fn a_body_too_large_for_any_request_is_refused_before_sending() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let posted = server.mock(|when, then| {
        when.method(POST).path_includes("/v1.0/users/");
        then.status(413);
    });
    let email = Email::builder()
        .to("ann@example.org")
        .subject("Big")
        .html(format!("<p>{}</p>", "x".repeat(4_500_000)))
        .build()
        .unwrap();
    let error = transport(&settings(&server))
        .send(&email)
        .await
        .unwrap_err();
    posted.assert_calls(0);
    assert!(
        matches!(error, mail_connector::Error::InvalidMessage { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("capped at about 4 MB"),
        "{error}"
    );
    assert_eq!(error.delivery(), Delivery::NotSent);
}

/// The draft without its attachments may be as large as one request (4,000,000 bytes of
/// JSON): it is made and sent; one byte more is refused before anything is sent, saying
/// how large it is.
#[tokio::test]
async fn a_draft_at_the_request_cap_is_made_and_one_byte_more_is_refused() {
    let email = |html_len: usize| {
        Email::builder()
            .to("ann@example.org")
            .subject("Big")
            .html("x".repeat(html_len))
            .attachment(Attachment::from_bytes("a.bin", vec![1u8; 1000]))
            .build()
            .unwrap()
    };
    // What the draft's JSON holds besides its HTML, read from the refusal of a larger one.
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let size = refused_size(&send_error(&server, &email(4_100_000)).await);
    let at_cap = 4_100_000 - (size - 4_000_000);

    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let drafts = server.mock(|when, then| {
        when.method(POST)
            .path(MESSAGES)
            .is_true(|request| request.body_ref().len() == 4_000_000);
        then.status(201).json_body(json!({"id": "d1"}));
    });
    server.mock(|when, then| {
        when.method(POST).path(format!("{MESSAGES}/d1/attachments"));
        then.status(201).json_body(json!({"id": "a"}));
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(format!("{MESSAGES}/d1/send"));
        then.status(202);
    });
    let graph = transport(&settings(&server));
    graph.send(&email(at_cap)).await.unwrap();
    drafts.assert_calls(1);
    send.assert_calls(1);

    let error = graph.send(&email(at_cap + 1)).await.unwrap_err();
    drafts.assert_calls(1);
    assert!(
        matches!(error, mail_connector::Error::InvalidMessage { .. })
            && error.to_string().contains("the message is 4000001 bytes"),
        "{error}"
    );
}
