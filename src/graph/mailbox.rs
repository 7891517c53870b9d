//! [`MailboxState`]: what every request of one transport (one mailbox) shares — the
//! `Retry-After` pause, the memory of a refused fresh token, and whether Graph answers over
//! HTTP/2.

use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Whether `paused_until` may hold a pause, written only under its lock: every request
    /// reads it, and takes the lock only when it is set.
    may_be_paused: AtomicBool,
    /// When a freshly fetched token was refused too (see [`REFUSED_TOKEN_BACKOFF`]).
    token_refused_after_refresh: Mutex<Option<Instant>>,
    /// Whether `token_refused_after_refresh` is set, written only under its lock: every
    /// accepted request reads it, and takes the lock only to clear it.
    token_refused: AtomicBool,
    /// Whether the last answer came over HTTP/2, whose one connection carries every request
    /// at once: no request waits for a connection to come back to the pool.
    http2: AtomicBool,
    /// Whether a `client-request-id` was let into HTTP/2's header table yet (see
    /// [`MailboxState::request_id_enters_table`]).
    request_id_named: AtomicBool,
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
            self.may_be_paused.store(true, Ordering::Release);
        }
    }

    /// The end of the current pause, if one is running.
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        if !self.may_be_paused.load(Ordering::Acquire) {
            return None;
        }
        let mut paused = lock(&self.paused_until);
        match *paused {
            Some(at) if at > Instant::now() => Some(at),
            _ => {
                *paused = None;
                self.may_be_paused.store(false, Ordering::Release);
                None
            }
        }
    }

    /// Whether a 401 may be answered by fetching a new token.
    pub(crate) fn refresh_allowed(&self) -> bool {
        (*lock(&self.token_refused_after_refresh))
            .is_none_or(|at| at.elapsed() >= REFUSED_TOKEN_BACKOFF)
    }

    /// Records that a freshly fetched token was refused too.
    pub(crate) fn token_refused_after_refresh(&self) {
        let mut refused = lock(&self.token_refused_after_refresh);
        *refused = Some(Instant::now());
        self.token_refused.store(true, Ordering::Release);
    }

    /// Records the HTTP version of an answer.
    pub(crate) fn answered_over(&self, version: reqwest::Version) {
        let http2 = version == reqwest::Version::HTTP_2;
        // Written only when it changes: every request reads it, and a write would take the
        // cache line from the other cores each time.
        if self.http2.load(Ordering::Relaxed) != http2 {
            self.http2.store(http2, Ordering::Relaxed);
        }
    }

    /// Whether a request should let a just-finished request's connection go back to the
    /// HTTP client's pool before it is sent, so that it reuses that connection rather than
    /// dial another: over HTTP/1.1 (or before any answer) yes; over HTTP/2 there is nothing
    /// to wait for.
    pub(crate) fn let_connection_return_first(&self) -> bool {
        !self.http2.load(Ordering::Relaxed)
    }

    /// Whether this request's `client-request-id` may enter HTTP/2's header table: only the
    /// transport's first request's.
    ///
    /// An id is used once, so its value has no place in the table: the others are marked
    /// never to enter it. But with an entry of that name in a connection's table, each later
    /// id goes with its name as a table index, and only its value is sent in full,
    /// Huffman-coded by the client and decoded by the server.
    ///
    /// Only one, because each entry of that name stays until the table is full, and the
    /// encoder compares every later id with every such entry (four cost about 0.5 k
    /// instructions per request more than one): more would cost each request more than the
    /// name saves, and would push out the headers every request repeats. So only the
    /// connection that carried the first request learns the name. Any other sends it in
    /// full, as every request did before: one opened later (after Graph closed an idle
    /// one), or the one the HTTP client keeps of those a cold start opened at once to a
    /// Graph host apart from the login host, when the first request went over another.
    /// Over HTTP/1.1 this changes nothing.
    pub(crate) fn request_id_enters_table(&self) -> bool {
        // Read by every request, written once.
        !self.request_id_named.load(Ordering::Relaxed)
            && !self.request_id_named.swap(true, Ordering::Relaxed)
    }

    /// Records that Graph accepted a token.
    pub(crate) fn token_accepted(&self) {
        if self.token_refused.load(Ordering::Acquire) {
            let mut refused = lock(&self.token_refused_after_refresh);
            *refused = None;
            self.token_refused.store(false, Ordering::Release);
        }
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

    /// A longer `Retry-After` than the pause running extends it: every request waits for
    /// the later end.
    #[tokio::test]
    async fn a_longer_pause_extends_the_one_running() {
        let state = MailboxState::default();
        state.pause_for(Duration::from_secs(30));
        let first = state.paused_until().unwrap();
        state.pause_for(Duration::from_secs(60));
        let later = state.paused_until().unwrap();
        assert!(later > first, "the longer pause replaces the shorter one");
    }

    /// A pause that has run out is forgotten, and a later one is seen again.
    #[tokio::test]
    async fn a_pause_ends_and_a_later_one_is_seen() {
        let state = MailboxState::default();
        // A pause of nothing has run out as soon as it is set.
        state.pause_for(Duration::ZERO);
        assert!(state.paused_until().is_none(), "the pause has run out");
        assert!(state.paused_until().is_none());
        state.pause_for(Duration::from_secs(60));
        let until = state.paused_until().expect("the new pause is seen");
        assert!(until > Instant::now());
    }

    /// A refusal after a refresh stops refreshes until a token is accepted again, however
    /// often that happens.
    #[test]
    fn an_accepted_token_ends_the_refresh_backoff() {
        let state = MailboxState::default();
        state.token_accepted();
        assert!(state.refresh_allowed());
        state.token_refused_after_refresh();
        state.token_refused_after_refresh();
        assert!(!state.refresh_allowed());
        state.token_accepted();
        assert!(state.refresh_allowed());
        state.token_refused_after_refresh();
        assert!(!state.refresh_allowed(), "a second refusal counts again");
    }

    /// Only the first id enters the table: one entry of that name teaches the connection the
    /// name, and more would only cost.
    #[test]
    fn only_the_first_request_id_enters_the_header_table() {
        let state = MailboxState::default();
        assert!(state.request_id_enters_table(), "the first one");
        assert!((0..1_000).all(|_| !state.request_id_enters_table()));
        assert!(
            MailboxState::default().request_id_enters_table(),
            "each transport's own first"
        );
    }

    #[test]
    fn requests_wait_for_the_pool_until_an_answer_comes_over_http2() {
        let state = MailboxState::default();
        assert!(
            state.let_connection_return_first(),
            "before any answer, as for HTTP/1.1"
        );
        state.answered_over(reqwest::Version::HTTP_11);
        assert!(state.let_connection_return_first());
        state.answered_over(reqwest::Version::HTTP_2);
        assert!(!state.let_connection_return_first());
        state.answered_over(reqwest::Version::HTTP_2);
        assert!(!state.let_connection_return_first());
        // A proxy or a new endpoint may go back to HTTP/1.1.
        state.answered_over(reqwest::Version::HTTP_11);
        assert!(state.let_connection_return_first());
    }
}
