//! [`InFlight`]: a request future that finishes even when its caller stops waiting.
//!
//! A Graph request holds a concurrency permit until its answer is read, because Graph keeps
//! working on it (and counts it against the mailbox) whatever the caller does. Running each
//! request in a task of its own guarantees that, at the price of a task per request. This
//! polls the request in the caller's task instead, and only when the caller drops it
//! unfinished is the rest of it (permit included) handed to a task of its own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// `future`, polled where it is awaited; when dropped unfinished, spawned to finish.
pub(crate) struct InFlight<F: Future<Output: Send + 'static> + Send + 'static> {
    /// `None` once finished.
    future: Option<Pin<Box<F>>>,
}

impl<F: Future<Output: Send + 'static> + Send + 'static> InFlight<F> {
    pub(crate) fn new(future: F) -> Self {
        Self {
            future: Some(Box::pin(future)),
        }
    }
}

impl<F: Future<Output: Send + 'static> + Send + 'static> Future for InFlight<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Polled again after it finished (a caller's bug): it never finishes again.
        let Some(future) = self.future.as_mut() else {
            return Poll::Pending;
        };
        let output = future.as_mut().poll(cx);
        if output.is_ready() {
            self.future = None;
        }
        output
    }
}

impl<F: Future<Output: Send + 'static> + Send + 'static> Drop for InFlight<F> {
    fn drop(&mut self) {
        // Outside a runtime (it is shutting down) nothing can finish it: it is dropped, and
        // its permit with it.
        if let (Some(future), Ok(runtime)) =
            (self.future.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(future);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_request_still_finishes() {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let mut request = InFlight::new(async move {
            let _ = started_tx.send(());
            let _ = go_rx.await;
            let _ = done_tx.send(());
        });
        // Poll it until it waits, then give up on it.
        tokio::select! {
            _ = &mut request => unreachable!("it waits for `go`"),
            _ = started_rx => {}
        }
        drop(request);
        go_tx.send(()).unwrap();
        done_rx.await.expect("the dropped request ran to its end");
    }

    #[tokio::test]
    async fn a_finished_request_gives_its_output() {
        assert_eq!(InFlight::new(async { 7 }).await, 7);
    }
}
