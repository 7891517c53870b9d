//! The idle reaper: a background task that says goodbye (`QUIT`) to pooled connections
//! soon after they pass the idle timeout, so that they do not stay open until the next send
//! looks into the pool or the server times them out. Exchange Online allows 3 concurrent
//! sessions per mailbox, shared by every replica of a service: one left open is one fewer
//! for the others.
//!
//! At most one per pool, started by the pool when a connection is put back and none is
//! running, on the runtime of that send. It holds the pool only weakly and ends when the
//! pool is empty, closed or dropped. It sleeps until the oldest idle connection is due, and
//! takes a connection out of the pool (under the pool's lock, never held across an await)
//! before saying goodbye to it, so a connection a send has taken is never touched. Each
//! goodbye happens under one of the transport's connection permits: the connection still
//! counts against the limit until it is closed, and `close` waits for it.

use std::sync::{Arc, Weak};

use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tracing::instrument::WithSubscriber as _;

use super::connect::Connection;
use super::pool::Shared;

/// Starts the reaper of the pool behind `shared` on `runtime`; the pool has marked it
/// running.
pub(super) fn spawn(
    runtime: &Handle,
    shared: Weak<Shared>,
    wake: Arc<Notify>,
    permits: Arc<Semaphore>,
) {
    let running = Running {
        shared,
        armed: true,
    };
    // The subscriber of the send that started it, as for a send's own task; no span, so
    // the send's span is not kept open for as long as the reaper runs.
    runtime.spawn(reap(running, wake, permits).with_current_subscriber());
}

async fn reap(mut running: Running, wake: Arc<Notify>, permits: Arc<Semaphore>) {
    loop {
        let Some(due) = running.next_due() else {
            return;
        };
        if Instant::now() < due {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = wake.notified() => {}
            }
            continue;
        }
        let mut closed: usize = 0;
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    // Closed by `close`: it says goodbye to the idle connections itself.
                    Err(_closed) => break,
                },
                // Closed or dropped meanwhile: `next_due` tells.
                () = wake.notified() => break,
            };
            let Some(conn) = running.take_expired() else {
                break;
            };
            // QUIT waits at most a second for a silent peer, then the socket is closed.
            conn.abort().await;
            closed += 1;
            drop(permit);
        }
        if closed > 0 {
            running.log_closed(closed);
        }
    }
}

/// The reaper's hold on its pool: weak, and marking the pool as having no reaper when the
/// task ends, also when it is dropped unfinished (its runtime shut down), so that the next
/// `put` starts another.
struct Running {
    shared: Weak<Shared>,
    /// Cleared once the task has marked the pool itself, under the pool's lock at the
    /// moment it saw nothing left to do: a `put` after that may have started a new reaper
    /// whose mark must stay.
    armed: bool,
}

impl Running {
    /// When the oldest idle connection expires; `None` when the reaper should end (the pool
    /// is empty, closed or gone), and then the pool is marked as having none.
    fn next_due(&mut self) -> Option<Instant> {
        let Some(shared) = self.shared.upgrade() else {
            self.armed = false;
            return None;
        };
        let mut idle = shared.lock();
        let oldest = match idle.conns.first() {
            Some(oldest) if !idle.closed => oldest.last_used,
            _ => {
                idle.reaper = false;
                self.armed = false;
                return None;
            }
        };
        Some(oldest + shared.idle_timeout)
    }

    fn log_closed(&self, closed: usize) {
        if let Some(shared) = self.shared.upgrade() {
            tracing::debug!(
                host = %shared.host,
                port = shared.port,
                closed,
                idle_timeout = ?shared.idle_timeout,
                "closed pooled SMTP connections left idle past the idle timeout"
            );
        }
    }

    /// The oldest idle connection, out of the pool, if it has expired.
    fn take_expired(&self) -> Option<Connection> {
        let shared = self.shared.upgrade()?;
        let mut idle = shared.lock();
        let oldest = idle.conns.first()?;
        if idle.closed || Instant::now() < oldest.last_used + shared.idle_timeout {
            return None;
        }
        Some(idle.conns.remove(0))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.armed
            && let Some(shared) = self.shared.upgrade()
        {
            shared.lock().reaper = false;
        }
    }
}
