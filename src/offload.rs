//! Blocking work (reading a file, encoding a large message) kept off the async workers: on
//! Tokio's blocking pool inside a Tokio runtime, inline outside one — so that the message
//! model ([`Email::to_mime`](crate::Email::to_mime), attachments) also serves a downstream
//! transport running on another executor, rather than panicking there.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs `work` where blocking is allowed; `Err` with the reason when it panicked.
///
/// The work is handed over (or done) when this is called, not when the future is first
/// polled: the future holds a handle, never the work and what it captured — it is kept in
/// every send's future, which is allocated whole.
pub(crate) fn blocking<T: Send + Unpin + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Blocking<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => Blocking::Spawned(runtime.spawn_blocking(work)),
        Err(_) => Blocking::Done(Some(work())),
    }
}

/// The outcome of [`blocking`] work.
pub(crate) enum Blocking<T> {
    /// Running on Tokio's blocking pool.
    Spawned(tokio::task::JoinHandle<T>),
    /// Done where it was called (no runtime); `None` once taken.
    Done(Option<T>),
}

impl<T: Unpin> Future for Blocking<T> {
    type Output = Result<T, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Spawned(handle) => Pin::new(handle).poll(cx).map_err(|e| e.to_string()),
            // Polled again after it gave its output (a caller's bug): it never finishes again.
            Self::Done(output) => output.take().map_or(Poll::Pending, |t| Poll::Ready(Ok(t))),
        }
    }
}

/// Reads the whole file at `path`, as [`blocking`] runs work.
pub(crate) async fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let path = path.to_owned();
    blocking(move || std::fs::read(path))
        .await
        .unwrap_or_else(|panicked| Err(std::io::Error::other(panicked)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside any runtime (another executor, or none), the work runs where it is awaited.
    #[test]
    fn outside_a_runtime_the_work_runs_inline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "hello").unwrap();
        let read = block_on_without_tokio(read_file(&path)).unwrap();
        assert_eq!(read, b"hello");
        assert_eq!(block_on_without_tokio(blocking(|| 7)), Ok(7));
    }

    /// A minimal executor with no Tokio runtime: polls the future with a no-op waker until
    /// it is ready (the futures here never wait on anything).
    fn block_on_without_tokio<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
    }

    #[tokio::test]
    async fn inside_a_runtime_the_work_runs_on_the_blocking_pool() {
        let here = std::thread::current().id();
        let there = blocking(|| std::thread::current().id()).await.unwrap();
        assert_ne!(here, there);
        let panicked = blocking(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert!(panicked.contains("panic"), "{panicked}");
    }
}
