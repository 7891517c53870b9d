//! One token request serves many callers: tokens are cached per scope and shared.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use httpmock::Method::POST;
use httpmock::MockServer;
use mail_connector::credentials::SMTP_SCOPE;
use mail_connector::{AccessToken, Credentials, Error};

use crate::support::*;

#[tokio::test]
async fn one_token_request_serves_many_sends_and_scopes_are_cached_apart() {
    let server = MockServer::start_async().await;
    let graph = server
        .mock_async(|when, then| {
            when.method(POST)
                .form_urlencoded_tuple("scope", GRAPH_SCOPE);
            then.status(200).json_body(token_body("graph", 3599));
        })
        .await;
    let smtp = server
        .mock_async(|when, then| {
            when.method(POST).form_urlencoded_tuple("scope", SMTP_SCOPE);
            then.status(200).json_body(token_body("smtp", 3599));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    for _ in 0..50 {
        let clone = credentials.clone();
        assert_eq!(
            clone
                .access_token(GRAPH_SCOPE)
                .await
                .unwrap()
                .expose_secret(),
            "graph"
        );
        assert_eq!(
            clone
                .access_token(SMTP_SCOPE)
                .await
                .unwrap()
                .expose_secret(),
            "smtp"
        );
    }
    assert_eq!(graph.calls_async().await, 1);
    assert_eq!(smtp.calls_async().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_callers_cause_one_token_request() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            // Slow enough that the callers pile up behind the first.
            then.status(200)
                .delay(Duration::from_millis(200))
                .json_body(token_body("shared", 3599));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let credentials = credentials.clone();
            tokio::spawn(async move { credentials.access_token(GRAPH_SCOPE).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().expose_secret(), "shared");
    }
    assert_eq!(mock.calls_async().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_failure() {
    const CALLERS: usize = 200;
    let server = MockServer::start_async().await;
    // The endpoint answers only once every caller is queued behind the first one's fetch
    // (a caller counts itself just before asking; it queues in that same poll).
    let started = Arc::new(AtomicUsize::new(0));
    let queued = Arc::clone(&started);
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(move |_| {
                let deadline = Instant::now() + Duration::from_secs(20);
                while queued.load(Ordering::SeqCst) < CALLERS && Instant::now() < deadline {
                    std::thread::yield_now();
                }
                json_response(401, &entra_error("invalid_client", 7_000_215))
            });
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let credentials = credentials.clone();
            let started = Arc::clone(&started);
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                credentials.access_token(GRAPH_SCOPE).await
            })
        })
        .collect();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert!(error.is_auth(), "{error}");
        assert!(
            matches!(error, Error::TokenRequest { status: 401, .. }),
            "{error:?}"
        );
    }
    // Every caller queued behind the failing fetch and got its error without asking again.
    assert_eq!(mock.calls_async().await, 1);
}

#[tokio::test]
async fn a_custom_token_source_is_cached_too() {
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl mail_connector::TokenProvider for Counting {
        async fn token(&self, scope: &str) -> mail_connector::Result<AccessToken> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken::new(
                format!("{scope}#{n}"),
                SystemTime::now() + Duration::from_secs(3600),
            ))
        }
    }
    let credentials = Credentials::from_token_provider(Counting::default());
    assert!(credentials.is_oauth());
    for _ in 0..3 {
        let token = credentials.access_token(SMTP_SCOPE).await.unwrap();
        assert_eq!(token.expose_secret(), format!("{SMTP_SCOPE}#0"));
    }
}
