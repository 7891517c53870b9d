//! Callers cancelled mid-fetch neither strand waiters nor break later calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use httpmock::Method::POST;
use httpmock::MockServer;
use mail_connector::credentials::SMTP_SCOPE;
use mail_connector::{AccessToken, Error, TokenProvider, Transience};

use super::helpers::*;
use crate::support::*;

/// A shared store whose `remove` can be made to hang, to cancel a caller inside it.
#[derive(Debug, Default)]
struct StallingStore {
    inner: mail_connector::credentials::InMemoryTokenCache,
    stall_remove: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl mail_connector::credentials::TokenCacheStore for StallingStore {
    async fn get(&self, key: &str) -> Option<AccessToken> {
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, token: AccessToken) {
        self.inner.put(key, token).await;
    }

    async fn remove(&self, key: &str) {
        if self.stall_remove.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.remove(key).await;
    }
}

#[tokio::test]
async fn a_caller_cancelled_while_the_store_forgets_a_rejected_token_leaves_it_rejected() {
    let store = Arc::new(StallingStore::default());
    let source = NumberedSource::new(Duration::from_secs(3600), Duration::ZERO);
    let credentials = from_source(source.clone())
        .app(TENANT, CLIENT_ID)
        .cache_store(store.clone())
        .build()
        .unwrap();
    let rejected = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    credentials.invalidate(&rejected);

    // The caller is cancelled while the store removes the rejected token: `remove` never
    // completes, so the timeout drops the call right there.
    store.stall_remove.store(true, Ordering::SeqCst);
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        credentials.access_token(GRAPH_SCOPE),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the call should have been stuck in `remove`"
    );
    store.stall_remove.store(false, Ordering::SeqCst);

    // The store still holds the rejected token, but it is not handed out again.
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), "t1");
    assert_eq!(source.fetches(), 2);
    // …and the store now holds the new one (under the app it named).
    let key = format!("token-source|{TENANT}|{CLIENT_ID}|{GRAPH_SCOPE}");
    let stored = mail_connector::credentials::TokenCacheStore::get(&*store, &key).await;
    assert_eq!(stored.unwrap().expose_secret(), "t1");
}

#[tokio::test]
async fn a_cancelled_fetch_neither_strands_waiters_nor_breaks_later_calls() {
    let server = MockServer::start_async().await;
    // The first request hangs (the caller will be gone long before it answers).
    let slow = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200)
                .delay(Duration::from_secs(30))
                .json_body(token_body("too-late", 3599))
                .up_to_n_times(1);
        })
        .await;
    let fast = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200).json_body(token_body("fresh", 3599));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();

    let fetcher = {
        let credentials = credentials.clone();
        tokio::spawn(async move { credentials.access_token(GRAPH_SCOPE).await })
    };
    // Wait until the fetcher's request reached the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.calls_async().await == 0 {
        assert!(Instant::now() < deadline, "the first request never arrived");
        tokio::task::yield_now().await;
    }
    // A second caller queues behind it (it counts itself in the poll that queues it).
    let queued = Arc::new(AtomicUsize::new(0));
    let waiter = {
        let credentials = credentials.clone();
        let queued = Arc::clone(&queued);
        tokio::spawn(async move {
            queued.fetch_add(1, Ordering::SeqCst);
            credentials.access_token(GRAPH_SCOPE).await
        })
    };
    while queued.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }

    fetcher.abort();
    assert!(fetcher.await.unwrap_err().is_cancelled());
    let token = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter hung after the fetcher was cancelled")
        .unwrap()
        .unwrap();
    assert_eq!(token.expose_secret(), "fresh");
    assert_eq!(fast.calls_async().await, 1);

    // Later calls use that token, and fetch normally after it is rejected.
    assert_eq!(
        credentials
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "fresh"
    );
    credentials.invalidate(&token);
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(fast.calls_async().await, 2);
}

#[tokio::test]
async fn waiters_get_the_same_error_as_the_caller_that_fetched() {
    /// Fails once released, with its own error as the source; counts its calls.
    #[derive(Debug, Default)]
    struct Refusing {
        calls: AtomicUsize,
        release: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl TokenProvider for Refusing {
        async fn token(&self, _scope: &str) -> mail_connector::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.release.notified().await;
            Err(Error::transport_source(
                "workload identity",
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the workload identity was refused",
                ),
                Transience::Permanent,
            ))
        }
    }
    const CALLERS: usize = 6;
    let source = Arc::new(Refusing::default());
    let credentials = from_source(source.clone()).build().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let credentials = credentials.clone();
            let started = Arc::clone(&started);
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                credentials.access_token(SMTP_SCOPE).await
            })
        })
        .collect();
    // Every caller is queued (it counts itself in the poll that queues it) and the first
    // one is inside the source.
    while started.load(Ordering::SeqCst) < CALLERS || source.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    source.release.notify_one();
    let mut texts = Vec::new();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert!(matches!(error, Error::Transport { .. }), "{error:?}");
        assert!(!error.is_transient(), "{error}");
        // Every waiter gets the whole error, its source chain included.
        let source = std::error::Error::source(&error).expect("the source is kept");
        assert_eq!(source.to_string(), "the workload identity was refused");
        texts.push(error.to_string());
    }
    assert_eq!(
        source.calls.load(Ordering::SeqCst),
        1,
        "waiters shared the fetch"
    );
    assert!(texts.iter().all(|t| t == &texts[0]), "{texts:?}");
}
