//! [`MailboxState`]: what every request of one transport (one mailbox) shares — the
//! `Retry-After` pause and the memory of a refused fresh token.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// After a token fetched anew because of a 401 was refused too, 401s are not answered with
/// new token requests for this long: the app is revoked or blocked, and asking Entra again
/// for every send would be a loop Entra itself throttles.
const REFUSED_TOKEN_BACKOFF: Duration = Duration::from_secs(60);

/// State shared by every request of one transport (one mailbox).
#[derive(Debug, Default)]
pub(crate) struct MailboxState {
    /// A server's `Retry-After` pauses every request until this instant.
    paused_until: Mutex<Option<Instant>>,
    /// When a freshly fetched token was refused too (see [`REFUSED_TOKEN_BACKOFF`]).
    token_refused_after_refresh: Mutex<Option<Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MailboxState {
    /// Pauses every request until `wait` from now (a longer pause already set stays).
    pub(crate) fn pause_for(&self, wait: Duration) {
        let Some(until) = Instant::now().checked_add(wait) else {
            return;
        };
        let mut paused = lock(&self.paused_until);
        if paused.is_none_or(|at| at < until) {
            *paused = Some(until);
        }
    }

    /// The end of the current pause, if one is running.
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        (*lock(&self.paused_until)).filter(|at| *at > Instant::now())
    }

    /// Whether a 401 may be answered by fetching a new token.
    pub(crate) fn refresh_allowed(&self) -> bool {
        (*lock(&self.token_refused_after_refresh))
            .is_none_or(|at| at.elapsed() >= REFUSED_TOKEN_BACKOFF)
    }

    /// Records that a freshly fetched token was refused too.
    pub(crate) fn token_refused_after_refresh(&self) {
        *lock(&self.token_refused_after_refresh) = Some(Instant::now());
    }

    /// Records that Graph accepted a token.
    pub(crate) fn token_accepted(&self) {
        *lock(&self.token_refused_after_refresh) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pauses_only_grow_and_never_overflow() {
        let state = MailboxState::default();
        assert!(state.paused_until().is_none());
        state.pause_for(Duration::from_secs(60));
        let first = state.paused_until().unwrap();
        state.pause_for(Duration::from_secs(1));
        assert_eq!(
            state.paused_until(),
            Some(first),
            "a shorter pause does not cut it"
        );
        state.pause_for(Duration::MAX);
        assert_eq!(state.paused_until(), Some(first));
        assert!(state.refresh_allowed());
        state.token_refused_after_refresh();
        assert!(!state.refresh_allowed());
        state.token_accepted();
        assert!(state.refresh_allowed());
    }
}
