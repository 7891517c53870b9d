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

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::auth::Auth;
use super::connect::{Connection, Connector, Deadline};
use crate::error::Result;

/// Idle connections, most recently used last.
pub(super) struct Pool {
    idle: Mutex<Vec<Connection>>,
    idle_timeout: Duration,
}

impl Pool {
    pub(super) fn new(idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            idle_timeout,
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
            if conn.last_used.elapsed() > self.idle_timeout {
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
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        drop(idle);
    }

    /// Removes the most recently used idle connection, if any, whatever its state.
    pub(super) fn pop(&self) -> Option<Connection> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// Returns a connection for reuse; broken ones are dropped.
    pub(super) fn put(&self, mut conn: Connection) {
        if conn.is_broken() {
            return;
        }
        conn.last_used = Instant::now();
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}
