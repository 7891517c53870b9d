//! The token cache: a pluggable store, plus the single-flight refresh logic in front of it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;

use crate::credentials::source::{Attempts, FetchFailure};
use crate::credentials::token::AccessToken;
use crate::error::{Error, Result};

/// Where cached tokens are kept, by key. The default is [`InMemoryTokenCache`]; implement
/// this to share tokens between processes (and keep them out of Entra ID's throttling).
///
/// Keys look like `{kind}|{authority}|{tenant}|{client_id}|{scope}`: credentials of one app
/// and kind share tokens through a shared store, across replicas (see
/// [`CredentialsBuilder::cache_store`](crate::credentials::CredentialsBuilder::cache_store)
/// for which do). Values are tokens, so a shared store must be protected like any secret
/// store.
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

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// The slot of `scope` in `slots`.
fn find<'a>(slots: &'a [(Box<str>, Arc<Slot>)], scope: &str) -> Option<&'a Arc<Slot>> {
    slots
        .iter()
        .find(|(name, _)| **name == *scope)
        .map(|(_, slot)| slot)
}

/// Per-key state: the last token seen (so fresh reads need no await), and the outcome of the
/// latest fetch, which callers that waited for it share.
#[derive(Default)]
struct Slot {
    fetch: tokio::sync::Mutex<()>,
    /// Read on every token request, written only when a fetch or a refusal changes it:
    /// readers never wait for one another.
    state: RwLock<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// Set through [`SlotState::set_token`], which keeps `fresh_until` in step.
    token: Option<AccessToken>,
    /// Until when `token` is fresh ([`AccessToken::fresh_until`]): one comparison per read.
    fresh_until: Option<SystemTime>,
    /// Incremented after every fetch attempt, successful or not.
    generation: u64,
    /// The latest fetch's error; callers that waited for that fetch get a copy
    /// ([`Error::duplicate`]).
    last_error: Option<Error>,
    /// A token reported as rejected; the store's copy is ignored and removed.
    revoked: Option<AccessToken>,
    /// After a failed refresh: no new attempt before this, while `token` is still valid.
    next_attempt_at: Option<Instant>,
}

impl SlotState {
    /// The cached token, if it may be handed out without fetching: it is fresh, or it is
    /// still valid while a failed refresh cools down.
    fn servable(&self, now: SystemTime) -> Option<AccessToken> {
        let token = self.token.as_ref()?;
        if self.fresh_until.is_some_and(|until| now < until) {
            return Some(token.clone());
        }
        let cooling_down = self.next_attempt_at.is_some_and(|at| Instant::now() < at);
        (cooling_down && token.is_valid_at(now)).then(|| token.clone())
    }

    /// Caches `token` (or none), with the time until which it is fresh under `margin`.
    fn set_token(&mut self, token: Option<AccessToken>, margin: Duration) {
        self.fresh_until = token.as_ref().and_then(|t| t.fresh_until(margin));
        self.token = token;
    }

    /// The cached token, if it is still valid (fresh or not).
    fn valid(&self, now: SystemTime) -> Option<AccessToken> {
        self.token.clone().filter(|t| t.is_valid_at(now))
    }
}

/// Caches tokens per key in front of a [`TokenCacheStore`]: hands out fresh tokens, lets
/// one caller fetch while the others wait, falls back to a still-valid token when a refresh
/// fails (and then waits out a cooldown before trying again), and forgets tokens a server
/// rejected.
///
/// Its slots are kept by scope (a credential asks for one or two: Graph's, SMTP's) in a
/// list read under a shared lock, so that a cached read builds no key, allocates nothing and
/// takes no exclusive lock but its slot's, for the few nanoseconds it copies the token out.
/// The store is keyed by `{prefix}{scope}`, a key built only when the store is asked.
#[derive(Debug)]
pub(crate) struct TokenCache {
    store: Arc<dyn TokenCacheStore>,
    refresh_margin: Duration,
    refresh_cooldown: Duration,
    slots: RwLock<Vec<(Box<str>, Arc<Slot>)>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl TokenCache {
    pub(crate) fn new(
        store: Arc<dyn TokenCacheStore>,
        refresh_margin: Duration,
        refresh_cooldown: Duration,
    ) -> Self {
        Self {
            store,
            refresh_margin,
            refresh_cooldown,
            slots: RwLock::new(Vec::new()),
        }
    }

    pub(crate) fn refresh_margin(&self) -> Duration {
        self.refresh_margin
    }

    /// The slot of `scope`, made on first use.
    fn slot(&self, scope: &str) -> Arc<Slot> {
        if let Some(slot) = find(&read(&self.slots), scope) {
            return Arc::clone(slot);
        }
        let mut slots = write(&self.slots);
        if let Some(slot) = find(&slots, scope) {
            return Arc::clone(slot);
        }
        let slot = Arc::new(Slot::default());
        slots.push((scope.into(), Arc::clone(&slot)));
        slot
    }

    /// The cached token for `scope` when it may be handed out without fetching: the fast
    /// path of [`get_or_fetch`](Self::get_or_fetch), with no await, no key and no allocation.
    pub(crate) fn cached(&self, scope: &str) -> Option<AccessToken> {
        let slots = read(&self.slots);
        let slot = find(&slots, scope)?;
        read(&slot.state).servable(SystemTime::now())
    }

    /// A fresh token for `key`, fetching one with `fetch` when there is none or it is due.
    ///
    /// `fetch` is told [`Attempts::Once`] when a still-valid token can be served if it
    /// fails, and [`Attempts::Retry`] when there is nothing to fall back on. After a failed
    /// refresh the still-valid token is served without fetching until the server's
    /// `Retry-After` (or the cooldown) has passed.
    ///
    /// The store's key is `{prefix}{scope}`.
    pub(crate) async fn get_or_fetch<F, Fut>(
        &self,
        prefix: &str,
        scope: &str,
        fetch: F,
    ) -> Result<AccessToken>
    where
        F: FnOnce(Attempts) -> Fut,
        Fut: Future<Output = Result<AccessToken, FetchFailure>>,
    {
        if let Some(token) = self.cached(scope) {
            return Ok(token);
        }
        let slot = self.slot(scope);
        let (seen_generation, valid) = {
            let state = read(&slot.state);
            let now = SystemTime::now();
            if let Some(token) = state.servable(now) {
                return Ok(token);
            }
            (state.generation, state.valid(now))
        };

        let _single_flight = match (slot.fetch.try_lock(), valid) {
            (Ok(guard), _) => guard,
            // Another caller is refreshing and this token still works: no need to wait.
            (Err(_), Some(token)) => return Ok(token),
            (Err(_), None) => slot.fetch.lock().await,
        };
        {
            let state = read(&slot.state);
            let now = SystemTime::now();
            if let Some(token) = state.servable(now) {
                return Ok(token);
            }
            if state.generation != seen_generation {
                // Someone fetched while this caller waited: share that outcome.
                if let Some(token) = state.valid(now) {
                    return Ok(token);
                }
                if let Some(error) = &state.last_error {
                    return Err(error.clone());
                }
            }
        }

        // Another process may have refreshed a shared store.
        let key = format!("{prefix}{scope}");
        let key = key.as_str();
        let stored = self.store.get(key).await;
        let stored = {
            let mut state = write(&slot.state);
            match stored {
                Some(token) if state.revoked.as_ref().is_some_and(|r| r.same_value(&token)) => None,
                Some(token) if token.is_fresh_at(SystemTime::now(), self.refresh_margin) => {
                    state.set_token(Some(token.clone()), self.refresh_margin);
                    state.next_attempt_at = None;
                    return Ok(token);
                }
                other => other,
            }
        };
        // `revoked` is cleared only once the store has forgotten the token: if this task is
        // cancelled during `remove`, the next caller still ignores (and removes) that copy.
        let revoked = read(&slot.state).revoked.clone();
        if let Some(revoked) = revoked {
            self.store.remove(key).await;
            let mut state = write(&slot.state);
            if state
                .revoked
                .as_ref()
                .is_some_and(|r| r.same_value(&revoked))
            {
                state.revoked = None;
            }
        }

        let has_fallback = {
            let now = SystemTime::now();
            let state = read(&slot.state);
            state.valid(now).is_some() || stored.as_ref().is_some_and(|t| t.is_valid_at(now))
        };
        let attempts = if has_fallback {
            Attempts::Once
        } else {
            Attempts::Retry
        };
        let outcome = fetch(attempts).await;
        let (result, to_store) = {
            let mut state = write(&slot.state);
            state.generation += 1;
            match outcome {
                Ok(token) => {
                    state.set_token(Some(token.clone()), self.refresh_margin);
                    state.last_error = None;
                    state.next_attempt_at = None;
                    (Ok(token.clone()), Some(token))
                }
                Err(FetchFailure { error, retry_after }) => {
                    let now = SystemTime::now();
                    // Never a token a server refused while this fetch ran (`stored` was read
                    // before): it would be handed out again through the cooldown.
                    let refused =
                        |t: &AccessToken| state.revoked.as_ref().is_some_and(|r| r.same_value(t));
                    let fallback = state
                        .token
                        .clone()
                        .or(stored)
                        .filter(|t| t.is_valid_at(now) && !refused(t));
                    state.last_error = Some(error.clone());
                    match fallback {
                        Some(token) => {
                            let left = token.expires_at().duration_since(now).unwrap_or_default();
                            let cooldown = retry_after.unwrap_or(self.refresh_cooldown);
                            tracing::warn!(
                                error = %error,
                                valid_for_s = left.as_secs(),
                                retry_in_s = cooldown.as_secs(),
                                "token refresh failed; using the cached token while it is still valid"
                            );
                            state.next_attempt_at = Instant::now().checked_add(cooldown);
                            state.set_token(Some(token.clone()), self.refresh_margin);
                            (Ok(token), None)
                        }
                        None => {
                            state.next_attempt_at = None;
                            (Err(error), None)
                        }
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
        let slots: Vec<Arc<Slot>> = read(&self.slots)
            .iter()
            .map(|(_, slot)| Arc::clone(slot))
            .collect();
        for slot in slots {
            let mut state = write(&slot.state);
            if state.token.as_ref().is_some_and(|t| t.same_value(token)) {
                tracing::debug!("access token rejected by a server; it will be fetched anew");
                state.set_token(None, Duration::ZERO);
                state.revoked = Some(token.clone());
                state.last_error = None;
                state.next_attempt_at = None;
            }
        }
    }
}

#[cfg(test)]
mod tests;
