//! An upload range counts as taken only when the session's answer says so: the range that
//! completes the file by Graph's 201 Created, any range by the `nextExpectedRanges` it
//! still expects. Any other success (a proxy's page, an answer cut off) says nothing of the
//! session: the upload asks it where it stands, as after a range that went unanswered, and
//! the draft is never sent without its whole attachment. A status that is refused (not
//! gone) fails the send.

use httpmock::MockServer;
use mail_connector::{Attachment, Delivery, MailTransport};

use super::helpers::*;
use super::upload_resume::{
    CHUNK, assert_upload_failed, email_with, expects, file_bytes, mock_draft_and_session,
    mock_range, mock_status,
};
use crate::support;

/// A proxy's page in place of the session's answer: a success that says nothing.
fn proxy_page(then: httpmock::Then) -> httpmock::Then {
    then.status(200)
        .header("content-type", "text/html")
        .body("<html>Signed in</html>")
}

/// The range that completes the file answered 200 without `nextExpectedRanges`: the session
/// says it still expects that range, which goes again and is answered 201 Created; only
/// then is the draft sent.
#[tokio::test]
async fn a_last_range_answered_200_without_ranges_is_not_taken_as_complete() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let bytes = file_bytes(2 * CHUNK + 1000);
    let mailbox = own_mailbox("upload");
    let (session, send, delete) = mock_draft_and_session(&server, &mailbox);
    let s1 = "/upload/s1";
    let first = mock_range(&server, s1, &bytes, (0, CHUNK - 1), |then| {
        expects(then, CHUNK)
    });
    let second = mock_range(&server, s1, &bytes, (CHUNK, 2 * CHUNK - 1), |then| {
        expects(then, 2 * CHUNK)
    });
    let last = (2 * CHUNK, bytes.len() - 1);
    let unclear = mock_range(&server, s1, &bytes, last, proxy_page);
    unclear.up_to_n_times(1);
    let created = mock_range(&server, s1, &bytes, last, |then| then.status(201));
    let status = mock_status(&server, s1, |then| expects(then, 2 * CHUNK));

    let email = email_with(Attachment::from_bytes("big.bin", bytes.clone()));
    transport(&settings_for(&server, &mailbox))
        .send(&email)
        .await
        .unwrap();

    session.assert_calls(1);
    first.assert_calls(1);
    second.assert_calls(1);
    unclear.assert_calls(1);
    status.assert_calls(1);
    created.assert_calls(1);
    send.assert_calls(1);
    delete.assert_calls(0);
}

/// The only range answered 200 without ranges, and the session gone when asked: it may
/// have completed and closed (the answer cut off) or never had the file. Not sent, the
/// draft deleted, and no second session that could attach the file twice.
#[tokio::test]
async fn a_last_range_answered_200_without_ranges_and_a_session_gone_is_not_sent() {
    let (logs, _guard) = support::capture_logs();
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let bytes = file_bytes(3 * 1024 * 1024 + 1);
    let mailbox = own_mailbox("upload");
    let (session, send, delete) = mock_draft_and_session(&server, &mailbox);
    let s1 = "/upload/s1";
    let unclear = mock_range(&server, s1, &bytes, (0, bytes.len() - 1), |then| {
        then.status(200)
    });
    let status = mock_status(&server, s1, |then| {
        then.status(404).json_body(graph_error(
            "ErrorItemNotFound",
            "The upload session was not found.",
        ))
    });

    let email = email_with(Attachment::from_bytes("big.bin", bytes.clone()));
    let error = transport(&settings_for(&server, &mailbox))
        .send(&email)
        .await
        .unwrap_err();

    session.assert_calls(1);
    unclear.assert_calls(1);
    status.assert_calls(1);
    assert_upload_failed(
        &error,
        (&send, &delete),
        "attachment 1 (`big.bin`)",
        "could attach it twice",
        (
            (&mailbox, "does not say where the upload session stands"),
            &logs,
        ),
    );
}

/// An intermediate range answered 200 without ranges is no more taken than the last: the
/// session says it never got the range, which goes again before the next. From a file, the
/// range sent again is read again from where the session stands, not from where the file
/// was left (each range's bytes are checked).
#[tokio::test]
async fn an_intermediate_range_answered_without_ranges_asks_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = file_bytes(CHUNK + 1000);
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &bytes).unwrap();
    for attachment in [
        Attachment::from_bytes("big.bin", bytes.clone()),
        Attachment::from_path(&path).unwrap(),
    ] {
        resends_an_unclear_intermediate_range(attachment, &bytes).await;
    }
}

async fn resends_an_unclear_intermediate_range(attachment: Attachment, bytes: &[u8]) {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let mailbox = own_mailbox("upload");
    let (_, send, _) = mock_draft_and_session(&server, &mailbox);
    let s1 = "/upload/s1";
    let unclear = mock_range(&server, s1, bytes, (0, CHUNK - 1), proxy_page);
    unclear.up_to_n_times(1);
    let taken = mock_range(&server, s1, bytes, (0, CHUNK - 1), |then| {
        expects(then, CHUNK)
    });
    let status = mock_status(&server, s1, |then| expects(then, 0));
    let last = mock_range(&server, s1, bytes, (CHUNK, bytes.len() - 1), |then| {
        then.status(201)
    });

    transport(&settings_for(&server, &mailbox))
        .send(&email_with(attachment))
        .await
        .unwrap();

    unclear.assert_calls(1);
    status.assert_calls(1);
    taken.assert_calls(1);
    last.assert_calls(1);
    send.assert_calls(1);
}

/// A range other than the last answered 200 with a `nextExpectedRanges` at the file's end
/// (nothing within the file) does not complete the upload: the session is asked, says it
/// expects the rest, and the rest goes before the draft is sent.
#[tokio::test]
async fn a_range_answered_with_an_offset_at_the_files_end_asks_the_session() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let bytes = file_bytes(CHUNK + 1000);
    let mailbox = own_mailbox("upload");
    let (_, send, delete) = mock_draft_and_session(&server, &mailbox);
    let s1 = "/upload/s1";
    let first = mock_range(&server, s1, &bytes, (0, CHUNK - 1), |then| {
        expects(then, bytes.len())
    });
    let status = mock_status(&server, s1, |then| expects(then, CHUNK));
    let last = mock_range(&server, s1, &bytes, (CHUNK, bytes.len() - 1), |then| {
        then.status(201)
    });

    let email = email_with(Attachment::from_bytes("big.bin", bytes.clone()));
    transport(&settings_for(&server, &mailbox))
        .send(&email)
        .await
        .unwrap();

    first.assert_calls(1);
    status.assert_calls(1);
    last.assert_calls(1);
    send.assert_calls(1);
    delete.assert_calls(0);
}

/// The session's status refused (403: not gone, which is 404) after an unclear range: the
/// send fails, not sent, naming the attachment, and its draft is deleted. No new session
/// is opened: only a session known to be gone is replaced.
#[tokio::test]
async fn a_refused_status_fails_the_send_without_a_new_session() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let bytes = file_bytes(CHUNK + 1000);
    let mailbox = own_mailbox("upload");
    let (session, send, delete) = mock_draft_and_session(&server, &mailbox);
    let s1 = "/upload/s1";
    let unclear = mock_range(&server, s1, &bytes, (0, CHUNK - 1), proxy_page);
    let status = mock_status(&server, s1, |then| {
        then.status(403)
            .json_body(graph_error("ErrorAccessDenied", "Access is denied."))
    });

    let email = email_with(Attachment::from_bytes("big.bin", bytes.clone()));
    let error = transport(&settings_for(&server, &mailbox))
        .send(&email)
        .await
        .unwrap_err();

    session.assert_calls(1);
    unclear.assert_calls(1);
    status.assert_calls(1);
    send.assert_calls(0);
    delete.assert_calls(1);
    assert_eq!(error.delivery(), Delivery::NotSent);
    let text = error.to_string();
    assert!(
        text.contains("attachment 1 (`big.bin`)")
            && text.contains("Access is denied.")
            && !text.contains("gone"),
        "{text}"
    );
}
