//! An upload session is resumed where it stands after a range's outcome is unknown (or the
//! session holds the range already), fails within bounds when it never moves forward, and is
//! renewed once when it is gone; its URL, a credential, never reaches an error or a log.
//!
//! An answer that never came is a mock whose delay outlasts the transport's request timeout.

use std::time::Duration;

use httpmock::{Method::DELETE, Method::GET, Method::POST, Method::PUT, Mock, MockServer};
use mail_connector::graph::UPLOAD_CHUNK_SIZE;
use mail_connector::{Attachment, Delivery, Email, GraphTransport, MailTransport};
use serde_json::json;

use super::helpers::*;
use crate::support;
use crate::support::*;

pub(super) const CHUNK: usize = UPLOAD_CHUNK_SIZE;
/// The credential in the upload URL's query, as Graph's carry one.
const UPLOAD_SECRET: &str = "FAKE-upload-session-credential-4f9c";
/// Longer than any test waits: an answer that never comes.
const NEVER: Duration = Duration::from_secs(30);

/// Bytes whose ranges all differ, so that a range read from the wrong offset does not match.
pub(super) fn file_bytes(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

pub(super) fn email_with(attachment: Attachment) -> Email {
    Email::builder()
        .to("ann@example.org")
        .subject("Big")
        .attachment(attachment)
        .build()
        .unwrap()
}

/// A transport whose requests time out after two seconds, the mock servers' delays standing
/// for answers that never came.
fn impatient_transport(server: &MockServer, mailbox: &str) -> GraphTransport {
    settings_for(server, mailbox)
        .graph_builder()
        .unwrap()
        .request_timeout(Duration::from_secs(2))
        .retry_policy(fast_retry(3))
        .build()
        .unwrap()
}

/// The upload URL at `path`, its credential in the query.
fn upload_url(server: &MockServer, path: &str) -> String {
    server.url(format!("{path}?authtoken={UPLOAD_SECRET}"))
}

/// Draft `d1` in `mailbox`, whose upload session is at `/upload/s1`, its `/send` and its
/// deletion: the session, send and delete mocks.
pub(super) fn mock_draft_and_session<'a>(
    server: &'a MockServer,
    mailbox: &str,
) -> (Mock<'a>, Mock<'a>, Mock<'a>) {
    mock_draft_in(server, mailbox);
    let messages = messages(mailbox);
    let url = upload_url(server, "/upload/s1");
    let session = server.mock(|when, then| {
        when.method(POST)
            .path(format!("{messages}/d1/attachments/createUploadSession"));
        then.status(201).json_body(json!({"uploadUrl": url,
            "expirationDateTime": "2026-11-28T12:00:00Z", "nextExpectedRanges": ["0-"]}));
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(format!("{messages}/d1/send"));
        then.status(202);
    });
    let delete = server.mock(|when, then| {
        when.method(DELETE).path(format!("{messages}/d1"));
        then.status(204);
    });
    (session, send, delete)
}

/// The `PUT` of `bytes[start..=end]` (the bytes checked) to the session at `path`, without
/// `Authorization`, answered by `answer`.
pub(super) fn mock_range<'a>(
    server: &'a MockServer,
    path: &str,
    bytes: &[u8],
    (start, end): (usize, usize),
    answer: impl FnOnce(httpmock::Then) -> httpmock::Then,
) -> Mock<'a> {
    let expected = bytes[start..=end].to_vec();
    let total = bytes.len();
    server.mock(|when, then| {
        when.method(PUT)
            .path(path)
            .query_param("authtoken", UPLOAD_SECRET)
            .header("content-range", format!("bytes {start}-{end}/{total}"))
            .header_missing("authorization")
            .is_true(move |request| request.body_ref() == expected.as_slice());
        answer(then);
    })
}

/// A session's answer that it expects the bytes from `start` on (Outlook's form).
pub(super) fn expects(then: httpmock::Then, start: usize) -> httpmock::Then {
    then.status(200)
        .json_body(json!({"expirationDateTime": "2026-11-28T12:00:00Z",
        "nextExpectedRanges": [start.to_string()]}))
}

/// The session's status (`GET` on the upload URL at `path`, without `Authorization`).
pub(super) fn mock_status<'a>(
    server: &'a MockServer,
    path: &str,
    answer: impl FnOnce(httpmock::Then) -> httpmock::Then,
) -> Mock<'a> {
    server.mock(|when, then| {
        when.method(GET)
            .path(path)
            .query_param("authtoken", UPLOAD_SECRET)
            .header_missing("authorization");
        answer(then);
    })
}

/// Neither the error nor the logs quote the upload URL's credential; the logs hold this
/// test's token and the upload's `event`, each in a send from this test's own `mailbox`, so
/// that the check is not vacuous.
#[track_caller]
fn assert_upload_url_unsaid(
    error: Option<&mail_connector::Error>,
    (mailbox, event): (&str, &str),
    logs: &support::LogBuffer,
) {
    let printed = match error {
        Some(error) => format!("{error}\n{error:?}\n{:?}", error.remedy()),
        None => String::new(),
    };
    logged_line(logs, &[&sent_from(mailbox), "access token issued"]);
    logged_line(logs, &[&sent_from(mailbox), event]);
    assert_no_secrets(&format!("{printed}\n{}", logs.text()), &[UPLOAD_SECRET]);
}

/// A send whose upload failed: nothing sent, the draft deleted, the error transient and not
/// sent, its text naming the attachment (`which`) and what happened (`what`), and neither it
/// nor the logs (which hold the upload's `event`, logged in a send from the test's own
/// mailbox) quoting the upload URL's credential.
#[track_caller]
pub(super) fn assert_upload_failed(
    error: &mail_connector::Error,
    (send, delete): (&Mock<'_>, &Mock<'_>),
    which: &str,
    what: &str,
    logged: ((&str, &str), &support::LogBuffer),
) {
    send.assert_calls(0);
    delete.assert_calls(1);
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient(), "{error}");
    let text = error.to_string();
    assert!(text.contains(which) && text.contains(what), "{text}");
    assert_upload_url_unsaid(Some(error), logged.0, logged.1);
}

/// The session took range 0, but its answer never came: the upload asks where the session
/// stands and goes on from range 1. Range 0 is not sent again (the session would refuse it
/// with 416, as here).
#[tokio::test]
async fn a_range_taken_before_its_answer_timed_out_is_not_sent_again() {
    let (logs, _guard) = support::capture_logs();
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let dir = tempfile::tempdir().unwrap();
    let bytes = file_bytes(2 * CHUNK + 1000);
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &bytes).unwrap();
    let mailbox = own_mailbox("upload");
    let (session, send, delete) = mock_draft_and_session(&server, &mailbox);
    let s1 = "/upload/s1";
    let taken = mock_range(&server, s1, &bytes, (0, CHUNK - 1), |then| {
        expects(then, CHUNK).delay(NEVER)
    });
    taken.up_to_n_times(1);
    let again = mock_range(&server, s1, &bytes, (0, CHUNK - 1), |then| {
        then.status(416)
            .json_body(graph_error("InvalidRange", "range not satisfiable"))
    });
    let status = mock_status(&server, s1, |then| expects(then, CHUNK));
    let second = mock_range(&server, s1, &bytes, (CHUNK, 2 * CHUNK - 1), |then| {
        expects(then, 2 * CHUNK)
    });
    let last = mock_range(&server, s1, &bytes, (2 * CHUNK, bytes.len() - 1), |then| {
        then.status(201)
    });

    let email = email_with(Attachment::from_path(&path).unwrap());
    let report = impatient_transport(&server, &mailbox)
        .send(&email)
        .await
        .unwrap();

    assert_eq!(report.messages[0].id.as_deref(), Some("d1"));
    session.assert_calls(1);
    taken.assert_calls(1);
    again.assert_calls(0);
    status.assert_calls(1);
    second.assert_calls(1);
    last.assert_calls(1);
    send.assert_calls(1);
    delete.assert_calls(0);
    assert_upload_url_unsaid(
        None,
        (&mailbox, "an upload range went without a clear answer"),
        &logs,
    );
}

/// A range the session refuses as held already (416): the upload asks where it stands and
/// goes on from there, each byte sent once.
#[tokio::test]
async fn a_range_the_session_holds_already_resumes_from_where_it_stands() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let bytes = file_bytes(2 * CHUNK + 1000);
    let mailbox = own_mailbox("upload");
    let (session, send, _) = mock_draft_and_session(&server, &mailbox);
    let s1 = "/upload/s1";
    let first = mock_range(&server, s1, &bytes, (0, CHUNK - 1), |then| {
        expects(then, CHUNK)
    });
    let held = mock_range(&server, s1, &bytes, (CHUNK, 2 * CHUNK - 1), |then| {
        then.status(416)
            .json_body(graph_error("InvalidRange", "range not satisfiable"))
    });
    let status = mock_status(&server, s1, |then| expects(then, 2 * CHUNK));
    let last = mock_range(&server, s1, &bytes, (2 * CHUNK, bytes.len() - 1), |then| {
        then.status(201)
    });

    let email = email_with(Attachment::from_bytes("big.bin", bytes.clone()));
    transport(&settings_for(&server, &mailbox))
        .send(&email)
        .await
        .unwrap();

    session.assert_calls(1);
    first.assert_calls(1);
    held.assert_calls(1);
    status.assert_calls(1);
    last.assert_calls(1);
    send.assert_calls(1);
}

/// The only range went unanswered, and the session says it expects nothing more: it holds
/// the whole file, and the mail is sent without sending the range again.
#[tokio::test]
async fn a_session_that_expects_nothing_more_is_done() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let bytes = file_bytes(3 * 1024 * 1024 + 1);
    let mailbox = own_mailbox("upload");
    let (session, send, delete) = mock_draft_and_session(&server, &mailbox);
    let s1 = "/upload/s1";
    let unanswered = mock_range(&server, s1, &bytes, (0, bytes.len() - 1), |then| {
        then.status(201).delay(NEVER)
    });
    unanswered.up_to_n_times(1);
    let again = mock_range(&server, s1, &bytes, (0, bytes.len() - 1), |then| {
        then.status(416)
    });
    let status = mock_status(&server, s1, |then| {
        then.status(200).json_body(
            json!({"expirationDateTime": "2026-11-28T12:00:00Z", "nextExpectedRanges": []}),
        )
    });

    let email = email_with(Attachment::from_bytes("big.bin", bytes.clone()));
    impatient_transport(&server, &mailbox)
        .send(&email)
        .await
        .unwrap();

    session.assert_calls(1);
    unanswered.assert_calls(1);
    again.assert_calls(0);
    status.assert_calls(1);
    send.assert_calls(1);
    delete.assert_calls(0);
}

/// A session that keeps asking for byte 0: each resume is a retry under the retry policy
/// (three here), then the send fails, transient, naming the attachment, and the draft is
/// deleted.
#[tokio::test]
async fn a_session_that_never_moves_forward_fails_within_the_retry_policy() {
    let (logs, _guard) = support::capture_logs();
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let bytes = file_bytes(3 * 1024 * 1024 + 1);
    let mailbox = own_mailbox("upload");
    let (session, send, delete) = mock_draft_and_session(&server, &mailbox);
    let s1 = "/upload/s1";
    let refused = mock_range(&server, s1, &bytes, (0, bytes.len() - 1), |then| {
        then.status(416)
            .json_body(graph_error("InvalidRange", "range not satisfiable"))
    });
    let status = mock_status(&server, s1, |then| expects(then, 0));

    let email = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_bytes("note.txt", "hi"))
        .attachment(Attachment::from_bytes("big.bin", bytes.clone()))
        .build()
        .unwrap();
    server.mock(|when, then| {
        when.method(POST)
            .path(format!("{}/d1/attachments", messages(&mailbox)));
        then.status(201).json_body(json!({"id": "a"}));
    });
    let error = transport(&settings_for(&server, &mailbox))
        .send(&email)
        .await
        .unwrap_err();

    // The first attempt and three retries (`fast_retry(3)`), each after asking.
    refused.assert_calls(4);
    status.assert_calls(4);
    session.assert_calls(1);
    assert_upload_failed(
        &error,
        (&send, &delete),
        "attachment 2 (`big.bin`)",
        "asked for byte 0 after 4 resume(s) without moving past byte 0",
        ((&mailbox, "the upload session did not move forward"), &logs),
    );
    let remedy = error.remedy().unwrap();
    assert!(
        remedy.contains("kept asking for bytes it had been sent")
            && remedy.contains("send it again"),
        "{remedy}"
    );
}

/// A session that is gone (404) gets one new session, and the file is uploaded to it.
#[tokio::test]
async fn a_session_gone_gets_one_new_session() {
    for gone_twice in [false, true] {
        let (logs, _guard) = support::capture_logs();
        let server = MockServer::start_async().await;
        mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
        let bytes = file_bytes(3 * 1024 * 1024 + 1);
        let mailbox = own_mailbox("upload");
        mock_draft_in(&server, &mailbox);
        let messages = messages(&mailbox);
        let session = server.mock(|when, then| {
            when.method(POST)
                .path(format!("{messages}/d1/attachments/createUploadSession"));
            then.respond_with(in_sequence(vec![
                json_response(
                    201,
                    &json!({"uploadUrl": upload_url(&server, "/upload/s1")}),
                ),
                json_response(
                    201,
                    &json!({"uploadUrl": upload_url(&server, "/upload/s2")}),
                ),
            ]));
        });
        let send = server.mock(|when, then| {
            when.method(POST).path(format!("{messages}/d1/send"));
            then.status(202);
        });
        let delete = server.mock(|when, then| {
            when.method(DELETE).path(format!("{messages}/d1"));
            then.status(204);
        });
        let whole = (0, bytes.len() - 1);
        let expired = mock_range(&server, "/upload/s1", &bytes, whole, |then| {
            then.status(404).json_body(graph_error(
                "ErrorItemNotFound",
                "The upload session was not found.",
            ))
        });
        let renewed = mock_range(
            &server,
            "/upload/s2",
            &bytes,
            whole,
            |then| match gone_twice {
                false => then.status(201),
                true => then.status(404),
            },
        );

        let email = email_with(Attachment::from_bytes("big.bin", bytes.clone()));
        let sent = transport(&settings_for(&server, &mailbox))
            .send(&email)
            .await;

        session.assert_calls(2);
        expired.assert_calls(1);
        renewed.assert_calls(1);
        match gone_twice {
            false => {
                sent.unwrap();
                send.assert_calls(1);
                delete.assert_calls(0);
            }
            true => {
                assert_upload_failed(
                    &sent.unwrap_err(),
                    (&send, &delete),
                    "attachment 1 (`big.bin`)",
                    "gone twice",
                    ((&mailbox, "the upload session is gone"), &logs),
                );
            }
        }
    }
}

/// The range that completes the file went unanswered and the session is gone: it may have
/// completed (the attachment made), so no second session attaches the file twice; the send
/// fails, transient, and the draft is deleted with whatever it holds.
#[tokio::test]
async fn a_session_gone_after_its_last_range_went_unanswered_is_not_renewed() {
    let (logs, _guard) = support::capture_logs();
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let bytes = file_bytes(3 * 1024 * 1024 + 1);
    let mailbox = own_mailbox("upload");
    let (session, send, delete) = mock_draft_and_session(&server, &mailbox);
    let s1 = "/upload/s1";
    let unanswered = mock_range(&server, s1, &bytes, (0, bytes.len() - 1), |then| {
        then.status(201).delay(NEVER)
    });
    let status = mock_status(&server, s1, |then| {
        then.status(404).json_body(graph_error(
            "ErrorItemNotFound",
            "The upload session was not found.",
        ))
    });

    let email = email_with(Attachment::from_bytes("big.bin", bytes.clone()));
    let error = impatient_transport(&server, &mailbox)
        .send(&email)
        .await
        .unwrap_err();

    session.assert_calls(1);
    unanswered.assert_calls(1);
    status.assert_calls(1);
    assert_upload_failed(
        &error,
        (&send, &delete),
        "attachment 1 (`big.bin`)",
        "could attach it twice",
        (
            (&mailbox, "an upload range went without a clear answer"),
            &logs,
        ),
    );
}
