//! Throttling: Retry-After is honoured, 503 retried, the deadline respected.

use std::time::{Duration, Instant};

use httpmock::{Method::POST, MockServer};
use mail_connector::{Delivery, MailTransport, RetryPolicy};

use super::helpers::*;
use crate::support::*;

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
    let send = mock_throttled_send(&server, "3600");
    // Graph's wait (an hour) is past the deadline (two minutes) however fast or slow the
    // machine: only the 429 can make the send give up, never the time the test takes.
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .retry_policy(RetryPolicy {
            deadline: None,
            ..fast_retry(5)
        })
        .send_deadline(Duration::from_secs(120))
        .build()
        .unwrap();
    // Only a guard against a send that sleeps Graph's hour: it never decides a passing run.
    let error = tokio::time::timeout(Duration::from_secs(300), graph.send(&simple_email()))
        .await
        .expect("the send slept through Graph's hour instead of giving up on the deadline")
        .unwrap_err();
    send.assert_calls(1);
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    assert_eq!(error.status(), Some(429));
    // A caller scheduling its own retry learns how long Graph asked it to wait.
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3600)));
    let text = error.to_string();
    assert!(
        text.contains("the mail was not sent") && text.contains("req-429"),
        "{text}"
    );
    // The deadline stopped it, so the remedy names the deadline's setter.
    let remedy = error.remedy().unwrap();
    assert!(
        remedy.contains("throttling") && remedy.contains("`send_deadline`"),
        "{remedy}"
    );
}

/// A mailbox still throttled when the retry policy's retries run out (3 by default, long
/// before the 2-minute send deadline) fails saying so: a remedy that said "raise the send
/// deadline" sent an author to a setting that changes nothing.
#[tokio::test]
async fn throttling_past_the_retries_names_max_retries_in_the_remedy() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = mock_throttled_send(&server, "0");
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(2))
        .build()
        .unwrap();
    let error = graph.send(&simple_email()).await.unwrap_err();
    send.assert_calls(3);
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    let remedy = error.remedy().unwrap();
    assert!(
        remedy.contains("after 2 retries") && remedy.contains("`max_retries`"),
        "{remedy}"
    );
    assert!(!remedy.contains("deadline"), "{remedy}");
}

/// Requests waiting out a mailbox's pause hold no request slot: a draft's deletion (which
/// never waits for the pause) still finds one. Two slots: the large send's upload holds
/// one; two sends paused by another's 429 wait; the upload fails and its draft is deleted
/// at once, rather than after those sends took both slots to sleep in.
#[tokio::test]
async fn sends_waiting_out_a_pause_leave_the_slots_to_a_drafts_deletion() {
    use httpmock::Method::DELETE;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let messages = "/v1.0/users/no-reply@contoso.com/messages";
    server.mock(|when, then| {
        when.method(POST).path(messages);
        then.status(201).json_body(serde_json::json!({"id": "d1"}));
    });
    let upload_host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upload_url = format!("http://{}/upload/s", upload_host.local_addr().unwrap());
    server.mock(|when, then| {
        when.method(POST)
            .path(format!("{messages}/d1/attachments/createUploadSession"));
        then.status(201)
            .json_body(serde_json::json!({"uploadUrl": upload_url}));
    });
    server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(429).header("retry-after", "20");
    });
    let delete = server.mock(|when, then| {
        when.method(DELETE).path(format!("{messages}/d1"));
        then.status(204);
    });
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(0))
        .max_concurrency(2)
        .build()
        .unwrap();
    let large = large_email();

    // The large send's upload arrives, and is held unanswered: it keeps one slot.
    let sending = graph.clone();
    let large_send = tokio::spawn(async move { sending.send(&large).await });
    // Bounded: a send that never starts the upload fails the test rather than hanging it.
    let (mut upload, _) =
        tokio::time::timeout(std::time::Duration::from_secs(20), upload_host.accept())
            .await
            .expect("the upload of the attachment never started")
            .unwrap();
    let mut request = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let body_length = loop {
        let read = upload.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the upload connection closed");
        request.extend_from_slice(&buffer[..read]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            break end + 4 + length;
        }
    };
    while request.len() < body_length {
        let read = upload.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the upload connection closed");
        request.extend_from_slice(&buffer[..read]);
    }

    // Another send's 429 pauses the mailbox for 20 s; two more sends wait it out.
    let error = graph.send(&simple_email()).await.unwrap_err();
    assert_eq!(error.status(), Some(429), "{error}");
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let graph = graph.clone();
            tokio::spawn(async move { graph.send(&simple_email()).await })
        })
        .collect();
    // On this one-thread runtime each runs up to its wait before this task goes on.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }

    // The upload is refused: the draft is deleted through a free slot.
    let refusal = r#"{"error":{"code":"ErrorInvalidRequest","message":"bad range"}}"#;
    upload
        .write_all(
            format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{refusal}",
                refusal.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let error = large_send.await.unwrap().unwrap_err();
    delete.assert_calls(1);
    assert!(
        error.to_string().contains("its draft was deleted"),
        "{error}"
    );
    for send in waiting {
        send.abort();
    }
}

/// The error of a send whose every attempt (the first and 3 retries) Graph answered 503 with
/// `code` and `message`, asking no wait.
async fn given_up_after_503s(code: &str, message: &str) -> mail_connector::Error {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(503)
            .header("retry-after", "0")
            .json_body(graph_error(code, message));
    });
    let error = transport(&settings(&server))
        .send(&simple_email())
        .await
        .unwrap_err();
    send.assert_calls(4);
    error
}

/// Graph's throttling codes on a 503 (its concurrency limit, say): once the retries run out,
/// the remedy names Graph's limits and the queue, as for a 429.
#[tokio::test]
async fn a_503_with_a_throttling_code_names_the_limits_when_retries_run_out() {
    for code in [
        "ApplicationThrottled",
        "MailboxConcurrency",
        "TooManyRequests",
    ] {
        let error =
            given_up_after_503s(code, "Application is over its MailBox concurrency limit.").await;
        let remedy = error.remedy().unwrap_or_default();
        assert!(
            remedy.contains("Graph is throttling this mailbox"),
            "{code}: {remedy}"
        );
        assert!(remedy.contains("`queue_url`"), "{code}: {remedy}");
    }
}

/// A 503 that is Graph unavailable, not throttling (no throttling code): once the retries
/// run out the send is not sent and may be tried later, and the error does not blame the
/// mailbox's sending rate, which sending less often would not fix.
#[tokio::test]
async fn a_503_without_a_throttling_code_is_not_called_throttling_when_retries_run_out() {
    let error = given_up_after_503s(
        "ServiceUnavailable",
        "The service is temporarily unavailable.",
    )
    .await;
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("ServiceUnavailable"), "{error}");
    let remedy = error.remedy().unwrap_or_default();
    assert!(!remedy.contains("throttling"), "{remedy}");
    assert!(!remedy.contains("`queue_url`"), "{remedy}");
}

/// A send that waited for the mailbox's one request slot while the request holding it was
/// answered 429 waits out the pause that answer set, before it sends anything: it does not
/// take the freed slot straight to Graph, to be refused again. Here the pause (an hour) is
/// past the send deadline, so it fails at once, not sent, saying how long Graph asked to
/// wait; Graph saw one request.
#[tokio::test]
async fn a_send_waiting_for_a_slot_waits_out_the_pause_the_slots_request_was_given() {
    use super::gate::{self, Held};

    let (logs, _guard) = capture_logs();
    // A mailbox of this test's own, so that the log line waited for below is its own.
    let mailbox = own_mailbox("slot-and-pause");
    let send_path = format!("/v1.0/users/{mailbox}/sendMail");
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = mock_throttled_send_to(&server, &send_path, "3600");
    let held = Held::new("POST", send_path.as_str());
    let mut settings = settings_for(&server, &mailbox);
    settings.graph_endpoint =
        Some(gate::start(server.base_url(), vec![std::sync::Arc::clone(&held)]).await);
    let graph = settings
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .max_concurrency(1)
        .build()
        .unwrap();

    // The first send has the slot, its request held at the gate.
    let first = tokio::spawn({
        let graph = graph.clone();
        async move { graph.send(&simple_email()).await }
    });
    held.arrived().await;
    // The second finds the mailbox not paused and waits for the slot (as it logs).
    let second = tokio::spawn({
        let graph = graph.clone();
        async move { graph.send(&simple_email()).await }
    });
    let ours = sent_from(&mailbox);
    logged_line_within(
        Duration::from_secs(60),
        &logs,
        0,
        &[&ours, "waiting for a free request slot"],
    )
    .await;
    // The first request's 429 pauses the mailbox, then frees the slot. A second release lets
    // a second request through the gate too, should one be sent: it then reaches Graph.
    held.release();
    held.release();

    let error = first.await.unwrap().unwrap_err();
    assert_eq!(error.status(), Some(429), "{error}");
    // Within a deadline: a send that sleeps through Graph's hour fails here rather than
    // hanging the test.
    let error = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .expect("the send waited out Graph's hour instead of failing at once")
        .unwrap()
        .unwrap_err();
    send.assert_calls(1);
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    assert!(error.is_transient(), "{error}");
    assert!(
        error.to_string().contains("past the send deadline"),
        "{error}"
    );
    assert_eq!(error.status(), Some(429), "{error}");
    // What is left of Graph's hour, for a caller that schedules the message again: more than
    // the two-minute send deadline (the test takes far less than the rest of the hour).
    let wait = error.retry_after().expect("the wait Graph asked for");
    assert!(
        wait > Duration::from_secs(600) && wait <= Duration::from_secs(3600),
        "{wait:?}"
    );
}

/// `sendMail` answered 429 `TooManyRequests` with this `Retry-After` (and `request-id`
/// `req-429`).
fn mock_throttled_send<'a>(server: &'a MockServer, retry_after: &str) -> httpmock::Mock<'a> {
    mock_throttled_send_to(server, SEND_PATH, retry_after)
}

/// As [`mock_throttled_send`], for the `sendMail` path `path` (another mailbox's).
fn mock_throttled_send_to<'a>(
    server: &'a MockServer,
    path: &str,
    retry_after: &str,
) -> httpmock::Mock<'a> {
    server.mock(|when, then| {
        when.method(POST).path(path);
        then.status(429)
            .header("retry-after", retry_after)
            .header("request-id", "req-429")
            .json_body(graph_error("TooManyRequests", "Please retry again later."));
    })
}
