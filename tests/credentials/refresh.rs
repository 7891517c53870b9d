//! Tokens are refreshed ahead of expiry, with a cooldown, and after a 401.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use httpmock::Method::POST;
use httpmock::MockServer;
use mail_connector::credentials::SMTP_SCOPE;
use mail_connector::{AccessToken, Error, TokenProvider, Transience};

use super::helpers::*;
use crate::support::*;

#[tokio::test]
async fn a_token_inside_the_refresh_margin_is_fetched_anew() {
    // Hour-long tokens with two minutes left: inside the default 5-minute margin.
    let source = NumberedSource::new(Duration::from_secs(120), Duration::from_secs(3480));
    let credentials = from_source(source.clone()).build().unwrap();
    assert_eq!(
        credentials
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "t0"
    );
    assert_eq!(
        credentials
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "t1"
    );
    assert_eq!(source.fetches(), 2);

    // With a smaller margin the same token is fresh enough.
    let source = NumberedSource::new(Duration::from_secs(120), Duration::from_secs(3480));
    let credentials = from_source(source.clone())
        .refresh_margin(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(credentials.refresh_margin(), Some(Duration::from_secs(60)));
    let first = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    let second = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(first.expose_secret(), second.expose_secret());
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn short_lived_tokens_are_reused_although_the_margin_is_longer() {
    // Five-minute tokens: the default 5-minute margin is capped at half their lifetime.
    let source = NumberedSource::new(Duration::from_secs(300), Duration::ZERO);
    let credentials = from_source(source.clone()).build().unwrap();
    for _ in 0..10 {
        assert_eq!(
            credentials
                .access_token(GRAPH_SCOPE)
                .await
                .unwrap()
                .expose_secret(),
            "t0"
        );
    }
    assert_eq!(source.fetches(), 1);

    // A margin longer than the lifetime is capped the same way.
    let source = NumberedSource::new(Duration::from_secs(240), Duration::ZERO);
    let credentials = from_source(source.clone())
        .refresh_margin(Duration::from_secs(600))
        .build()
        .unwrap();
    for _ in 0..10 {
        credentials.access_token(SMTP_SCOPE).await.unwrap();
    }
    assert_eq!(source.fetches(), 1);

    // From the token endpoint too: its tokens are timed from the request.
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200).json_body(token_body("five-minutes", 300));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    for _ in 0..10 {
        credentials.access_token(GRAPH_SCOPE).await.unwrap();
    }
    assert_eq!(mock.calls_async().await, 1);
}

#[tokio::test]
async fn refresh_in_hint_triggers_an_early_refresh() {
    let server = MockServer::start_async().await;
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(move |_| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                json_response(
                    200,
                    &serde_json::json!({"token_type":"Bearer","expires_in":3599,"refresh_in":0,"access_token":format!("t{n}")}),
                )
            });
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_refresh_falls_back_to_the_still_valid_token() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(in_sequence(vec![
                json_response(200, &due_token_body("still-valid", 200)),
                json_response(400, &entra_error("invalid_client", 7_000_222)),
                json_response(200, &token_body("after-invalidate", 3599)),
            ]));
        })
        .await;
    // A cooldown of an hour: the test, however slow the machine, stays inside it.
    let credentials = secret_settings(&server, TENANT)
        .credentials_builder()
        .unwrap()
        .refresh_cooldown(Duration::from_secs(3600))
        .build()
        .unwrap();
    let first = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    let second = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(second.expose_secret(), first.expose_secret());
    assert_eq!(mock.calls_async().await, 2, "the refresh was attempted");

    // Inside the cooldown the still-valid token is served without asking, and without
    // waiting the cooldown out (the guard is far below the hour, far above any machine).
    for _ in 0..2 {
        let token = tokio::time::timeout(
            Duration::from_secs(120),
            credentials.access_token(GRAPH_SCOPE),
        )
        .await
        .expect("the still-valid token waited for the cooldown")
        .unwrap();
        assert_eq!(token.expose_secret(), "still-valid");
    }
    assert_eq!(
        mock.calls_async().await,
        2,
        "no request during the cooldown"
    );

    // A rejected token is fetched anew at once: the cooldown does not hold that back.
    credentials.invalidate(&first);
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), "after-invalidate");
    assert_eq!(mock.calls_async().await, 3);
}

#[tokio::test]
async fn a_refresh_is_one_request_that_does_not_wait_out_retry_after() {
    let server = MockServer::start_async().await;
    let unavailable = httpmock::HttpMockResponse::builder()
        .status(503)
        .header("retry-after", "3600")
        .body("busy")
        .build();
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(in_sequence(vec![
                json_response(200, &due_token_body("still-valid", 200)),
                unavailable,
            ]));
        })
        .await;
    // The default retry policy would retry the 503 after the hour it asks for; the guard is
    // far below that hour and far above any machine's time for one refused request.
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    let token = tokio::time::timeout(
        Duration::from_secs(120),
        credentials.access_token(GRAPH_SCOPE),
    )
    .await
    .expect("the refresh waited out the Retry-After")
    .unwrap();
    assert_eq!(token.expose_secret(), "still-valid");
    assert_eq!(
        mock.calls_async().await,
        2,
        "one refresh request, no retries"
    );
}

#[tokio::test]
async fn the_cooldown_follows_retry_after_when_the_endpoint_sends_one() {
    for (retry_after, cooldown, calls_after_third) in [
        // The server says "now": try again at once despite a long configured cooldown.
        ("0", Duration::from_secs(3600), 3),
        // The server says "in an hour": wait despite a configured cooldown of zero.
        ("3600", Duration::ZERO, 2),
    ] {
        let server = MockServer::start_async().await;
        let throttled = httpmock::HttpMockResponse::builder()
            .status(429)
            .header("retry-after", retry_after)
            .body("slow down")
            .build();
        let mock = server
            .mock_async(|when, then| {
                when.method(POST).path(token_path(TENANT));
                then.respond_with(in_sequence(vec![
                    json_response(200, &due_token_body("still-valid", 200)),
                    throttled,
                ]));
            })
            .await;
        let credentials = secret_settings(&server, TENANT)
            .credentials_builder()
            .unwrap()
            .refresh_cooldown(cooldown)
            .build()
            .unwrap();
        for _ in 0..3 {
            let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
            assert_eq!(token.expose_secret(), "still-valid");
        }
        assert_eq!(
            mock.calls_async().await,
            calls_after_third,
            "Retry-After: {retry_after}"
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_fetched_despite_the_cooldown() {
    /// A token valid for one second and due at once; then a failure; then a good token.
    #[derive(Debug, Default)]
    struct Flaky(AtomicUsize);

    #[async_trait::async_trait]
    impl TokenProvider for Flaky {
        async fn token(&self, _scope: &str) -> mail_connector::Result<AccessToken> {
            let now = SystemTime::now();
            match self.0.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(
                    AccessToken::new("short", now + Duration::from_secs(1)).with_refresh_at(now)
                ),
                1 => Err(Error::transport(
                    "sidecar",
                    "not ready",
                    Transience::Transient,
                )),
                _ => Ok(AccessToken::new("renewed", now + Duration::from_secs(3600))),
            }
        }
    }
    let source = Arc::new(Flaky::default());
    let credentials = from_source(source.clone()).build().unwrap();
    let first = credentials.access_token(SMTP_SCOPE).await.unwrap();
    assert_eq!(first.expose_secret(), "short");
    // The refresh fails: the still-valid token is served, and a 30 s cooldown starts.
    assert_eq!(
        credentials
            .access_token(SMTP_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "short"
    );
    assert_eq!(source.0.load(Ordering::SeqCst), 2);
    // Wait for the token to expire (the clock has to pass; nothing is synchronised here).
    let wait = first
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    assert_eq!(
        credentials
            .access_token(SMTP_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "renewed"
    );
    assert_eq!(source.0.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn only_an_expired_token_makes_callers_fail() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(in_sequence(vec![
                json_response(200, &token_body("expired-at-once", 0)),
                json_response(400, &entra_error("invalid_client", 7_000_222)),
            ]));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    // A token that expires as it arrives (`expires_in: 0`) is refused, not served.
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(error.to_string().contains("already expired"), "{error}");
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(
        matches!(error, Error::TokenRequest { status: 400, .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalidation_after_401_refetches_once_for_many_reporters() {
    let server = MockServer::start_async().await;
    let (count, responder) = numbered_tokens(3599);
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(responder);
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let rejected = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(rejected.expose_secret(), "token-1");

    // 100 senders got 401 for the same token, and each reports it, then asks again.
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let credentials = credentials.clone();
            let rejected = rejected.clone();
            tokio::spawn(async move {
                credentials.invalidate(&rejected);
                credentials.access_token(GRAPH_SCOPE).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().expose_secret(), "token-2");
    }
    assert_eq!(count.load(Ordering::SeqCst), 2);

    // A late report of the old token does not drop the new one.
    credentials.invalidate(&rejected);
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
    // Nor does a token that was never issued.
    credentials.invalidate(&AccessToken::new("other", SystemTime::now()));
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

/// Callers waiting for one fetch that brings an already-expired token share its error: one
/// request to the token endpoint, not one per caller.
///
/// On one thread, so that all eight are waiting before the fetch can finish: each is polled
/// once, in order, before the response (which wakes the first) is read. On several threads a
/// caller that came late, after the fetch failed, rightly fetches again — under load that
/// made two requests now and then.
#[tokio::test]
async fn callers_waiting_for_an_expired_token_share_one_fetch() {
    let server = MockServer::start_async().await;
    let endpoint = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200).json_body(token_body("expired-at-once", 0));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let credentials = credentials.clone();
            tokio::spawn(async move { credentials.access_token(GRAPH_SCOPE).await })
        })
        .collect();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert!(error.to_string().contains("already expired"), "{error}");
    }
    assert_eq!(endpoint.calls_async().await, 1);
}
