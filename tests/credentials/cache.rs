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

/// Always hands out its one token, and counts its fetches.
#[derive(Debug)]
struct Identity {
    token: &'static str,
    fetches: AtomicUsize,
}

#[async_trait::async_trait]
impl mail_connector::TokenProvider for Identity {
    async fn token(&self, _scope: &str) -> mail_connector::Result<AccessToken> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Ok(AccessToken::new(
            self.token,
            SystemTime::now() + Duration::from_secs(3600),
        ))
    }
}

impl Identity {
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn identity(token: &'static str) -> Arc<Identity> {
    Arc::new(Identity {
        token,
        fetches: AtomicUsize::new(0),
    })
}

/// Review finding: two token providers that do not say which app they sign in as, sharing
/// one cache store, each get their own tokens — never the other's (a send under the wrong
/// identity). Clones of one `Credentials` still share theirs.
#[tokio::test]
async fn token_providers_sharing_a_store_never_get_each_others_tokens() {
    let store = Arc::new(mail_connector::credentials::InMemoryTokenCache::new());
    let (alice, bob) = (identity("alice"), identity("bob"));
    let first = Credentials::token_provider(alice.clone())
        .cache_store(store.clone())
        .build()
        .unwrap();
    let second = Credentials::token_provider(bob.clone())
        .cache_store(store)
        .build()
        .unwrap();
    let token = |credentials: Credentials| async move {
        let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
        token.expose_secret().to_owned()
    };
    assert_eq!(token(first.clone()).await, "alice");
    assert_eq!(token(second.clone()).await, "bob");
    assert_eq!(token(first.clone()).await, "alice");
    assert_eq!((alice.fetches(), bob.fetches()), (1, 1));
}

/// Providers that name the same app share its tokens through a shared store, as the
/// built-in credentials of one app do across replicas; another app's are its own.
#[tokio::test]
async fn token_providers_naming_one_app_share_its_tokens_through_a_store() {
    let store = Arc::new(mail_connector::credentials::InMemoryTokenCache::new());
    let (replica_a, replica_b, other) = (identity("app"), identity("app-b"), identity("other"));
    let build = |source: Arc<Identity>, client: &str| {
        Credentials::token_provider(source)
            .app(TENANT, client)
            .cache_store(store.clone())
            .build()
            .unwrap()
    };
    let token = |credentials: Credentials| async move {
        let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
        token.expose_secret().to_owned()
    };
    assert_eq!(token(build(replica_a.clone(), CLIENT_ID)).await, "app");
    assert_eq!(token(build(replica_b.clone(), CLIENT_ID)).await, "app");
    assert_eq!(
        replica_b.fetches(),
        0,
        "the replica reused the stored token"
    );
    let another = "00000000-0000-0000-0000-000000000002";
    assert_eq!(token(build(other.clone(), another)).await, "other");
}
