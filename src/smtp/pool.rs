//! The pool of idle connections, reused while fresh and, for XOAUTH2, logged in with the
//! provider's current token.
//!
//! Why our own pool rather than lettre's `AsyncSmtpTransport` pool: lettre's pool
//! authenticates every connection with one fixed `Credentials` value, so an XOAUTH2 token
//! that expires would keep being used; its size does not cap concurrent connections; and its
//! `send` stops at the first refused `RCPT TO`. Here each connection remembers the token it
//! logged in with and is replaced when the provider's token changes, a semaphore in
//! [`SmtpTransport`](super::SmtpTransport) caps connections, and MAIL/RCPT/DATA are issued
//! with lettre's command types so refused recipients can be reported one by one.
//!
//! Connections idle past the idle timeout are said goodbye to by a background task, the
//! [reaper](super::reaper), so that a service that sends a burst and then nothing does not
//! hold its sessions open until the server times them out.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::auth::Auth;
use super::connect::{Connection, Connector, Deadline};
use super::reaper;
use crate::error::Result;

/// Idle connections, and what the reaper needs to close them.
pub(super) struct Pool {
    /// The only strong reference: the reaper holds a weak one, so it keeps nothing alive.
    shared: Arc<Shared>,
    /// Wakes the reaper when the pool is closed or dropped.
    wake: Arc<Notify>,
    /// The transport's connection limit, shared with the reaper: a connection being said
    /// goodbye to still counts, and `close` waits for it.
    permits: Arc<Semaphore>,
}

/// What the pool and its reaper share.
pub(super) struct Shared {
    idle: Mutex<Idle>,
    pub(super) idle_timeout: Duration,
    /// The server's host and port, for the reaper's log.
    pub(super) host: String,
    pub(super) port: u16,
}

/// The pool's state, all under one lock so that the reaper's "nothing left, I end" and a
/// `put`'s "no reaper, I start one" cannot pass each other.
pub(super) struct Idle {
    /// Most recently used last.
    pub(super) conns: Vec<Connection>,
    /// Whether a reaper task is running (at most one per pool).
    pub(super) reaper: bool,
    /// Set by `close`: no reaper is started any more, a running one ends.
    pub(super) closed: bool,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pool {
    pub(super) fn new(
        idle_timeout: Duration,
        permits: Arc<Semaphore>,
        host: String,
        port: u16,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                idle: Mutex::new(Idle {
                    conns: Vec::new(),
                    reaper: false,
                    closed: false,
                }),
                idle_timeout,
                host,
                port,
            }),
            wake: Arc::new(Notify::new()),
            permits,
        }
    }

    /// The most recently used idle connection that is still fresh and, for XOAUTH2, logged in
    /// with the provider's current token (or any, when the provider has none to give just
    /// now); stale ones are closed.
    pub(super) async fn take(
        &self,
        connector: &Connector,
        deadline: Deadline,
    ) -> Result<Option<Connection>> {
        loop {
            let Some(conn) = self.pop() else {
                return Ok(None);
            };
            if conn.last_used.elapsed() > self.shared.idle_timeout {
                // Likely closed by the server already, or gone silent: dropped, not said
                // goodbye to (a QUIT to a silent peer would hold this send for a second).
                drop(conn);
                continue;
            }
            if let Auth::Xoauth2 {
                provider, scope, ..
            } = &connector.auth
            {
                // The token at hand, or one fetched within a new connection's own time: a
                // login host that hangs must not hold a connection that is ready.
                let current = match provider.ready_token(scope) {
                    Some(token) => Ok(token),
                    None => {
                        let short = Deadline {
                            at: deadline.at.min(Instant::now() + connector.connect_timeout),
                            ..deadline
                        };
                        connector.token(provider.as_ref(), scope, short).await
                    }
                };
                let current = match current {
                    Ok(current) => current,
                    // No token to compare with (the login host is down): this connection
                    // logged in before and its session stays so, where a new one could not
                    // log in at all.
                    Err(error) => {
                        tracing::warn!(
                            error = %error,
                            "no current token; reusing a pooled SMTP connection logged in before"
                        );
                        return Ok(Some(conn));
                    }
                };
                let same = conn
                    .token
                    .as_ref()
                    .is_some_and(|t| t.expose_secret() == current.expose_secret());
                if !same {
                    tracing::debug!("token changed; replacing a pooled SMTP connection");
                    conn.abort().await;
                    continue;
                }
            }
            return Ok(Some(conn));
        }
    }

    /// Drops every idle connection: one of them turned out dead, and the others have been
    /// idle at least as long.
    pub(super) fn clear(&self) {
        let idle = std::mem::take(&mut self.shared.lock().conns);
        drop(idle);
    }

    /// Removes the most recently used idle connection, if any, whatever its state.
    pub(super) fn pop(&self) -> Option<Connection> {
        self.shared.lock().conns.pop()
    }

    /// Returns a connection for reuse; broken ones are dropped. Starts the reaper, on the
    /// runtime this runs on, when none is running.
    pub(super) fn put(&self, mut conn: Connection) {
        if conn.is_broken() {
            return;
        }
        let mut idle = self.shared.lock();
        // Stamped under the lock, so that the first connection is always the oldest.
        conn.last_used = Instant::now();
        idle.conns.push(conn);
        if idle.reaper || idle.closed {
            return;
        }
        // Always inside a runtime (a send's task); without one the next send's `take`
        // still drops what has expired.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        idle.reaper = true;
        drop(idle);
        reaper::spawn(
            &runtime,
            Arc::downgrade(&self.shared),
            Arc::clone(&self.wake),
            Arc::clone(&self.permits),
        );
    }

    /// Ends the reaper, for [`SmtpTransport::close`](super::SmtpTransport::close): the
    /// caller says goodbye to the idle connections itself.
    pub(super) fn close(&self) {
        self.shared.lock().closed = true;
        self.wake.notify_one();
    }
}

impl Drop for Pool {
    /// The reaper holds only a weak reference; woken, it finds the pool closed (or gone)
    /// and ends rather than sleeping out the idle timeout. Closed first: on another thread
    /// it may wake before the last strong reference is gone.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.wake.notify_one();
    }
}
