//! Throttling: Retry-After is honoured, 503 retried, the deadline respected.

use std::time::{Duration, Instant};

use httpmock::{Method::POST, MockServer};
use mail_connector::{Delivery, MailTransport};

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
