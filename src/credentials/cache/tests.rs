//! The cache's rules, with fetches that are closures: what is fetched, served and stored.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

fn token(value: &str, secs: u64) -> AccessToken {
    AccessToken::new(value, SystemTime::now() + Duration::from_secs(secs))
}

/// A cache over `store` that refreshes a token in its last minute and, after a failed
/// refresh, lets 30 s pass before the next.
fn cache_over(store: Arc<dyn TokenCacheStore>) -> TokenCache {
    TokenCache::new(store, Duration::from_secs(60), Duration::from_secs(30))
}

/// Puts `value` in `cache` under key `k` as a token issued an hour ago and valid for 30 s
/// more: inside the 60 s margin, so the next call refreshes it. Returns it as cached.
async fn due(cache: &TokenCache, value: &str) -> AccessToken {
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    cache
        .get_or_fetch("p|", "k", |_| async {
            Ok(token(value, 30).with_issued_at(an_hour_ago))
        })
        .await
        .unwrap()
}

/// What `cache` gives for key `k` when a fetch would give `value` for an hour.
async fn fetched(cache: &TokenCache, value: &str) -> AccessToken {
    cache
        .get_or_fetch("p|", "k", |_| async { Ok(token(value, 3600)) })
        .await
        .unwrap()
}

/// What `cache` gives for key `k` when a fetch would give `value` for an hour, and how
/// many fetches that took (0 or 1).
async fn get_counting(cache: &TokenCache, value: &str) -> (String, usize) {
    let fetches = AtomicUsize::new(0);
    let got = cache
        .get_or_fetch("p|", "k", |_| async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(token(value, 3600))
        })
        .await
        .unwrap();
    (
        got.expose_secret().to_owned(),
        fetches.load(Ordering::SeqCst),
    )
}

#[tokio::test]
async fn store_holds_what_was_fetched_and_revoked_tokens_are_ignored() {
    let store = Arc::new(InMemoryTokenCache::new());
    let cache = cache_over(store.clone());
    let first = fetched(&cache, "one").await;
    assert_eq!(store.get("p|k").await.unwrap().expose_secret(), "one");
    cache.invalidate(&first);
    assert_eq!(get_counting(&cache, "two").await, ("two".to_owned(), 1));
}

/// A token refused while its refresh was on the way is not served again when that
/// refresh fails (it was still valid, so it would have been the fallback).
#[tokio::test]
async fn a_token_refused_during_a_failed_refresh_is_not_served_again() {
    let store = Arc::new(InMemoryTokenCache::new());
    let cache = cache_over(store);
    let refused = due(&cache, "refused").await;
    let fetching = tokio::sync::Notify::new();
    let fail = tokio::sync::Notify::new();
    let refresh = cache.get_or_fetch("p|", "k", |attempts| {
        let once = matches!(attempts, Attempts::Once);
        let (fetching, fail) = (&fetching, &fail);
        async move {
            assert!(once, "a valid token to fall back on");
            fetching.notify_one();
            fail.notified().await;
            Err(FetchFailure {
                error: crate::Error::transport(
                    "test",
                    "login host down",
                    crate::Transience::Transient,
                ),
                retry_after: None,
            })
        }
    });
    let refuse = async {
        fetching.notified().await;
        cache.invalidate(&refused);
        fail.notify_one();
    };
    let (result, ()) = tokio::join!(refresh, refuse);
    assert!(result.is_err(), "the refused token came back");
    assert!(cache.cached("k").is_none());
}

#[tokio::test]
async fn a_fresh_token_in_the_store_is_used_without_fetching() {
    let store = Arc::new(InMemoryTokenCache::new());
    store.put("p|k", token("shared", 3600)).await;
    let cache = cache_over(store);
    let got = cache
        .get_or_fetch("p|", "k", |_| async { panic!("must not fetch") })
        .await
        .unwrap();
    assert_eq!(got.expose_secret(), "shared");
}

/// A failure of the kind a login host that is down gives, with the server's wait if any.
fn down(retry_after: Option<Duration>) -> FetchFailure {
    FetchFailure {
        error: crate::Error::transport("test", "login host down", crate::Transience::Transient),
        retry_after,
    }
}

/// A cache holding `old`: valid for 30 s more of its hour, so inside the 60 s margin and
/// due for refresh, whose first refresh has failed (and which was served as the fallback).
async fn after_a_failed_refresh(cooldown: Duration, retry_after: Option<Duration>) -> TokenCache {
    let cache = TokenCache::new(
        Arc::new(InMemoryTokenCache::new()),
        Duration::from_secs(60),
        cooldown,
    );
    due(&cache, "old").await;
    let served = cache
        .get_or_fetch("p|", "k", |attempts| async move {
            assert!(
                matches!(attempts, Attempts::Once),
                "a valid token to fall back on"
            );
            Err(down(retry_after))
        })
        .await
        .expect("the still-valid token is served when its refresh fails");
    assert_eq!(served.expose_secret(), "old");
    cache
}

/// After a failed refresh the still-valid token is handed out without asking the login
/// host again until the cooldown (or the server's `Retry-After`) is over: a host that is
/// down is not asked on every send.
#[tokio::test]
async fn after_a_failed_refresh_the_valid_token_is_served_without_fetching_during_the_cooldown() {
    for (cooldown, retry_after) in [
        (Duration::from_secs(3600), None),
        (Duration::ZERO, Some(Duration::from_secs(3600))),
    ] {
        let cache = after_a_failed_refresh(cooldown, retry_after).await;
        for _ in 0..3 {
            let served = cache
                .get_or_fetch("p|", "k", |_| async {
                    panic!("fetched during the cooldown ({cooldown:?}, {retry_after:?})")
                })
                .await
                .unwrap();
            assert_eq!(served.expose_secret(), "old");
        }
        assert_eq!(cache.cached("k").unwrap().expose_secret(), "old");
    }
}

/// Once the cooldown is over (here: none at all) the due token is refreshed again: a
/// valid token is no reason to stop refreshing it.
#[tokio::test]
async fn once_the_cooldown_is_over_the_due_token_is_refreshed_again() {
    let cache = after_a_failed_refresh(Duration::ZERO, None).await;
    assert!(cache.cached("k").is_none(), "due and not cooling down");
    assert_eq!(get_counting(&cache, "new").await, ("new".to_owned(), 1));
}

/// A token a server refused is removed from the store too, even when fetching its
/// replacement fails: the next caller fetches anew instead of finding the refused token in
/// the store and sending it again.
#[tokio::test]
async fn a_refused_token_leaves_the_store_even_when_its_replacement_cannot_be_fetched() {
    let store = Arc::new(InMemoryTokenCache::new());
    let cache = cache_over(store.clone());
    let refused = fetched(&cache, "refused").await;
    cache.invalidate(&refused);
    let failed = cache
        .get_or_fetch("p|", "k", |attempts| async move {
            assert!(
                matches!(attempts, Attempts::Retry),
                "nothing to fall back on"
            );
            Err(down(None))
        })
        .await;
    assert!(failed.is_err(), "the refused token was served");
    assert!(
        store.get("p|k").await.is_none(),
        "the refused token is still stored"
    );
    assert_eq!(get_counting(&cache, "new").await, ("new".to_owned(), 1));
}

/// A store that keeps nothing (a shared store that is down, say).
#[derive(Debug)]
struct Forgetful;

#[async_trait]
impl TokenCacheStore for Forgetful {
    async fn get(&self, _: &str) -> Option<AccessToken> {
        None
    }
    async fn put(&self, _: &str, _: AccessToken) {}
    async fn remove(&self, _: &str) {}
}

/// The cache hands out its own fresh copy: a store that keeps nothing costs no token
/// requests.
#[tokio::test]
async fn a_fresh_token_is_reused_when_the_store_keeps_nothing() {
    let cache = cache_over(Arc::new(Forgetful));
    assert_eq!(get_counting(&cache, "one").await, ("one".to_owned(), 1));
    for _ in 0..2 {
        let again = get_counting(&cache, "one").await;
        assert_eq!(again, ("one".to_owned(), 0), "fetched again");
    }
}

/// While one caller refreshes a due token, the others are handed the still-valid one at
/// once instead of waiting for the login host.
#[tokio::test]
async fn callers_get_the_valid_token_at_once_while_another_refreshes_it() {
    let cache = cache_over(Arc::new(InMemoryTokenCache::new()));
    due(&cache, "old").await;
    let fetching = tokio::sync::Notify::new();
    let release = tokio::sync::Notify::new();
    let refresh = cache.get_or_fetch("p|", "k", |_| async {
        fetching.notify_one();
        release.notified().await;
        Ok(token("new", 3600))
    });
    let other = async {
        fetching.notified().await;
        // Polled once: a caller that waited for the refresh would be pending here.
        let mut call =
            std::pin::pin!(cache.get_or_fetch("p|", "k", |_| async { panic!("a second fetch") }));
        let polled = call
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
        release.notify_one();
        match polled {
            std::task::Poll::Ready(token) => token.unwrap(),
            std::task::Poll::Pending => panic!("the caller waited for the refresh"),
        }
    };
    let (refreshed, served) = tokio::join!(refresh, other);
    assert_eq!(served.expose_secret(), "old");
    assert_eq!(refreshed.unwrap().expose_secret(), "new");
}

/// A due token still valid in the cache is a fallback even when the store keeps nothing:
/// its refresh is one attempt, never retries that would hold the caller up.
#[tokio::test]
async fn a_refresh_is_one_attempt_when_only_the_cache_holds_the_valid_token() {
    let cache = cache_over(Arc::new(Forgetful));
    due(&cache, "old").await;
    let served = cache
        .get_or_fetch("p|", "k", |attempts| async move {
            assert!(matches!(attempts, Attempts::Once), "told to retry");
            Err(down(None))
        })
        .await
        .unwrap();
    assert_eq!(served.expose_secret(), "old");
}

/// A report of a token that was already replaced changes nothing: the new token stays
/// cached (many sends that failed with the old token report it after the refetch).
#[tokio::test]
async fn a_report_of_a_replaced_token_keeps_the_new_one() {
    let cache = cache_over(Arc::new(InMemoryTokenCache::new()));
    let old = fetched(&cache, "old").await;
    cache.invalidate(&old);
    let new = fetched(&cache, "new").await;
    assert_eq!(new.expose_secret(), "new");
    cache.invalidate(&old);
    let again = cache
        .get_or_fetch("p|", "k", |_| async { panic!("the new token was dropped") })
        .await
        .unwrap();
    assert_eq!(again.expose_secret(), "new");
}

/// A store that hands back copies, as one that serializes tokens (Redis, a database) does.
#[derive(Debug, Default)]
struct Copying(InMemoryTokenCache);

#[async_trait]
impl TokenCacheStore for Copying {
    async fn get(&self, key: &str) -> Option<AccessToken> {
        let token = self.0.get(key).await?;
        Some(
            AccessToken::new(token.expose_secret().to_owned(), token.expires_at())
                .with_issued_at(token.issued_at()),
        )
    }
    async fn put(&self, key: &str, token: AccessToken) {
        self.0.put(key, token).await;
    }
    async fn remove(&self, key: &str) {
        self.0.remove(key).await;
    }
}

/// A refused token is known by its value: a store's copy of it is not handed out again.
#[tokio::test]
async fn a_refused_token_is_not_served_again_from_a_store_of_copies() {
    let cache = cache_over(Arc::new(Copying::default()));
    let refused = fetched(&cache, "refused").await;
    cache.invalidate(&refused);
    let next = fetched(&cache, "new").await;
    assert_eq!(next.expose_secret(), "new");
}
