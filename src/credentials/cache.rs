//! The token cache: a pluggable store, plus the single-flight refresh logic in front of it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::credentials::token::AccessToken;
use crate::error::{Error, Result};

/// Where cached tokens are kept, by key. The default is [`InMemoryTokenCache`]; implement
/// this to share tokens between processes (and keep them out of Entra ID's throttling).
///
/// Keys look like `{authority}|{tenant}|{client_id}|{scope}`; values are tokens, so a shared
/// store must be protected like any secret store.
#[async_trait]
pub trait TokenCacheStore: Send + Sync + std::fmt::Debug {
    /// The token stored under `key`, if any (it may have expired).
    async fn get(&self, key: &str) -> Option<AccessToken>;
    /// Stores `token` under `key`, replacing any previous one.
    async fn put(&self, key: &str, token: AccessToken);
    /// Removes the token under `key`.
    async fn remove(&self, key: &str);
}

/// The default [`TokenCacheStore`]: a map in this process's memory.
#[derive(Debug, Default)]
pub struct InMemoryTokenCache {
    tokens: Mutex<HashMap<String, AccessToken>>,
}

impl InMemoryTokenCache {
    /// An empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl TokenCacheStore for InMemoryTokenCache {
    async fn get(&self, key: &str) -> Option<AccessToken> {
        lock(&self.tokens).get(key).cloned()
    }

    async fn put(&self, key: &str, token: AccessToken) {
        lock(&self.tokens).insert(key.to_owned(), token);
    }

    async fn remove(&self, key: &str) {
        lock(&self.tokens).remove(key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data stays consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-key state: the last token seen (so fresh reads need no await), and the outcome of the
/// latest fetch, which callers that waited for it share.
#[derive(Default)]
struct Slot {
    fetch: tokio::sync::Mutex<()>,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    token: Option<AccessToken>,
    /// Incremented after every fetch attempt, successful or not.
    generation: u64,
    last_error: Option<Error>,
    /// A token reported as rejected; the store's copy is ignored and removed.
    revoked: Option<AccessToken>,
}

/// Caches tokens per key in front of a [`TokenCacheStore`]: hands out fresh tokens, lets
/// one caller fetch while the others wait, falls back to a still-valid token when a refresh
/// fails, and forgets tokens a server rejected.
#[derive(Debug)]
pub(crate) struct TokenCache {
    store: Arc<dyn TokenCacheStore>,
    refresh_margin: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl TokenCache {
    pub(crate) fn new(store: Arc<dyn TokenCacheStore>, refresh_margin: Duration) -> Self {
        Self {
            store,
            refresh_margin,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn refresh_margin(&self) -> Duration {
        self.refresh_margin
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        Arc::clone(lock(&self.slots).entry(key.to_owned()).or_default())
    }

    /// A fresh token for `key`, fetching one with `fetch` when there is none or it is due.
    pub(crate) async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<AccessToken>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken>>,
    {
        let slot = self.slot(key);
        let seen_generation = {
            let state = lock(&slot.state);
            if let Some(token) = &state.token
                && token.is_fresh_at(SystemTime::now(), self.refresh_margin)
            {
                return Ok(token.clone());
            }
            state.generation
        };

        let _single_flight = slot.fetch.lock().await;
        {
            let state = lock(&slot.state);
            let now = SystemTime::now();
            if let Some(token) = &state.token
                && token.is_fresh_at(now, self.refresh_margin)
            {
                return Ok(token.clone());
            }
            if state.generation != seen_generation {
                // Someone fetched while this caller waited: share that outcome.
                if let Some(token) = state.token.as_ref().filter(|t| t.is_valid_at(now)) {
                    return Ok(token.clone());
                }
                if let Some(error) = &state.last_error {
                    return Err(error.duplicate());
                }
            }
        }

        // Another process may have refreshed a shared store.
        let stored = self.store.get(key).await;
        let stored = {
            let mut state = lock(&slot.state);
            match stored {
                Some(token) if state.revoked.as_ref().is_some_and(|r| r.same_value(&token)) => None,
                Some(token) if token.is_fresh_at(SystemTime::now(), self.refresh_margin) => {
                    state.token = Some(token.clone());
                    return Ok(token);
                }
                other => other,
            }
        };
        let revoked = lock(&slot.state).revoked.take();
        if revoked.is_some() {
            self.store.remove(key).await;
        }

        let outcome = fetch().await;
        let (result, to_store) = {
            let mut state = lock(&slot.state);
            state.generation += 1;
            match outcome {
                Ok(token) => {
                    state.token = Some(token.clone());
                    state.last_error = None;
                    (Ok(token.clone()), Some(token))
                }
                Err(error) => {
                    let now = SystemTime::now();
                    let fallback = state
                        .token
                        .clone()
                        .or(stored)
                        .filter(|t| t.is_valid_at(now));
                    state.last_error = Some(error.duplicate());
                    match fallback {
                        Some(token) => {
                            let left = token.expires_at().duration_since(now).unwrap_or_default();
                            tracing::warn!(
                                error = %error,
                                valid_for_s = left.as_secs(),
                                "token refresh failed; using the cached token while it is still valid"
                            );
                            state.token = Some(token.clone());
                            (Ok(token), None)
                        }
                        None => (Err(error), None),
                    }
                }
            }
        };
        if let Some(token) = to_store {
            self.store.put(key, token).await;
        }
        result
    }

    /// Forgets `token` wherever it is still the cached one, so the next call fetches anew.
    /// Reports of a token that was already replaced change nothing.
    pub(crate) fn invalidate(&self, token: &AccessToken) {
        let slots: Vec<Arc<Slot>> = lock(&self.slots).values().cloned().collect();
        for slot in slots {
            let mut state = lock(&slot.state);
            if state.token.as_ref().is_some_and(|t| t.same_value(token)) {
                tracing::debug!("access token rejected by a server; it will be fetched anew");
                state.token = None;
                state.revoked = Some(token.clone());
                state.last_error = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn token(value: &str, secs: u64) -> AccessToken {
        AccessToken::new(value, SystemTime::now() + Duration::from_secs(secs))
    }

    #[tokio::test]
    async fn store_holds_what_was_fetched_and_revoked_tokens_are_ignored() {
        let store = Arc::new(InMemoryTokenCache::new());
        let cache = TokenCache::new(store.clone(), Duration::from_secs(60));
        let first = cache
            .get_or_fetch("k", || async { Ok(token("one", 3600)) })
            .await
            .unwrap();
        assert_eq!(store.get("k").await.unwrap().expose_secret(), "one");
        cache.invalidate(&first);
        let fetches = AtomicUsize::new(0);
        let second = cache
            .get_or_fetch("k", || async {
                fetches.fetch_add(1, Ordering::SeqCst);
                Ok(token("two", 3600))
            })
            .await
            .unwrap();
        assert_eq!(second.expose_secret(), "two");
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_fresh_token_in_the_store_is_used_without_fetching() {
        let store = Arc::new(InMemoryTokenCache::new());
        store.put("k", token("shared", 3600)).await;
        let cache = TokenCache::new(store, Duration::from_secs(60));
        let got = cache
            .get_or_fetch("k", || async { panic!("must not fetch") })
            .await
            .unwrap();
        assert_eq!(got.expose_secret(), "shared");
    }
}
