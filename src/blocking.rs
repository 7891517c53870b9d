//! The transports from synchronous code (feature `blocking`), on the model of
//! `reqwest::blocking`.
//!
//! [`Transport`] wraps any [`MailTransport`] — Graph, SMTP, the outbox, a stub, your own —
//! or builds one from [`ConnectorSettings`], and runs it on a small tokio runtime (one
//! current-thread runtime) on a background thread of its own. Its [`send`](Transport::send)
//! and [`check`](Transport::check) block the calling thread until the answer is in; the
//! transports' own deadlines bound how long that is.
//!
//! Call it from any thread that is **not** inside a tokio runtime: a `main` without
//! `#[tokio::main]`, a thread of a synchronous web framework, a worker pool. Called from
//! inside a runtime it does not block and does not panic: it returns an [`Error`] saying to
//! use the async [`MailTransport`] there.
//!
//! That refusal includes `spawn_blocking` closures and `block_in_place` sections, where
//! tokio itself would allow blocking: tokio has no public way to tell those threads from an
//! async task without risking a panic, so the blocking API refuses them all. In a
//! `spawn_blocking` closure, run the async transport on the runtime's handle instead:
//!
//! ```
//! # use mail_connector::{MailTransport, StubTransport, Email};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let transport = mail_connector::blocking::Transport::new(StubTransport::new())?;
//! # let email = Email::builder().to("ann@example.org").subject("Hi").build()?;
//! let shared = transport.transport(); // the async transport behind the blocking one
//! let report = tokio::task::spawn_blocking(move || {
//!     tokio::runtime::Handle::current().block_on(shared.send(&email))
//! })
//! .await??;
//! # assert_eq!(report.recipients().count(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! Making a `Transport` ([`Transport::new`], [`Transport::from_settings`]) blocks briefly,
//! anywhere: it waits for its background runtime to start, and building from settings may
//! read files (a CA certificate, a client certificate). That is fine in an async task at
//! start-up; on a busy runtime, make it in `spawn_blocking`.
//!
//! Cheap to clone: clones share the runtime and the transport, and may be used from many
//! threads at once; their sends run concurrently. The runtime's thread ends when the last
//! clone is dropped.
//!
//! ```
//! use mail_connector::{ConnectorSettings, Email};
//! use mail_connector::blocking::Transport;
//!
//! # let dir = std::env::temp_dir().join("mail-connector-doc-blocking");
//! let mut settings = ConnectorSettings::default();
//! settings.user_name = Some("no-reply@example.org".into());
//! settings.outbox_dir = Some(dir.clone());
//! let transport = Transport::from_settings(&settings)?;
//!
//! let email = Email::builder()
//!     .to("ann@example.org")
//!     .subject("Your export is ready")
//!     .text("Download it from the portal.")
//!     .build()?;
//! let report = transport.send(&email)?; // blocks until the message is written
//! assert_eq!(report.recipients().count(), 1);
//! # std::fs::remove_dir_all(dir).unwrap();
//! # Ok::<(), mail_connector::Error>(())
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::check::CheckReport;
use crate::error::{Error, Result, Transience};
use crate::message::Email;
use crate::settings::ConnectorSettings;
use crate::transport::{MailTransport, SendReport};

/// One call for the runtime's thread: a future to spawn there.
type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A [`MailTransport`] for synchronous code: see the [module documentation](self).
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<dyn MailTransport>,
    /// `None` once dropped, which ends the runtime's thread.
    jobs: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Transport")
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Runs `transport` on a runtime of its own. Works anywhere, inside an async task too;
    /// it blocks briefly, until the runtime's thread has started.
    ///
    /// # Errors
    ///
    /// A transient [`Error::Transport`] when the runtime or its thread cannot be started
    /// (the operating system's limits).
    pub fn new(transport: impl MailTransport + 'static) -> Result<Self> {
        Self::start(Arc::new(transport))
    }

    /// Builds the transport `settings` describe ([`ConnectorSettings::build`]) and runs it
    /// on a runtime of its own. Building needs no runtime, so this works anywhere, inside
    /// an async task too (only the calls must come from outside one); it blocks briefly,
    /// while the settings' files (certificates) are read and the runtime's thread starts.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::build`] (invalid settings name the field), and as
    /// [`Transport::new`].
    pub fn from_settings(settings: &ConnectorSettings) -> Result<Self> {
        Self::start(settings.build()?)
    }

    /// Sends one email, blocking until the transport has an answer.
    ///
    /// # Errors
    ///
    /// The transport's errors, as [`MailTransport::send`]; and an error that is not
    /// transient when called from inside a tokio runtime (nothing is sent).
    pub fn send(&self, email: &Email) -> Result<SendReport> {
        let transport = Arc::clone(&self.inner.transport);
        let email = email.clone();
        self.run(async move { transport.send(&email).await })?
    }

    /// Checks the configuration and connectivity without sending mail, blocking until
    /// done.
    ///
    /// # Errors
    ///
    /// As [`MailTransport::check`]; and an error that is not transient when called from
    /// inside a tokio runtime.
    pub fn check(&self) -> Result<CheckReport> {
        let transport = Arc::clone(&self.inner.transport);
        self.run(async move { transport.check().await })?
    }

    /// The transport this one runs, for use from async code that shares it. (An SMTP
    /// transport's pooled connections belong to the runtime that opened them; they keep
    /// working from another runtime while this one lives.)
    #[must_use]
    pub fn transport(&self) -> Arc<dyn MailTransport> {
        Arc::clone(&self.inner.transport)
    }

    fn start(transport: Arc<dyn MailTransport>) -> Result<Self> {
        Ok(Self::with_runtime(Runtime::start()?, transport))
    }

    fn with_runtime(runtime: Runtime, transport: Arc<dyn MailTransport>) -> Self {
        Self {
            inner: Arc::new(Inner {
                transport,
                jobs: Some(runtime.jobs),
                thread: Some(runtime.thread),
            }),
        }
    }

    fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> Result<T> {
        let jobs = self.inner.jobs.as_ref().ok_or_else(runtime_gone)?;
        run_on(jobs, work)
    }
}

/// The runtime's thread and the queue of its jobs.
struct Runtime {
    jobs: mpsc::UnboundedSender<Job>,
    thread: JoinHandle<()>,
}

impl Runtime {
    fn start() -> Result<Self> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let (started, outcome) = std::sync::mpsc::sync_channel(1);
        // The runtime is made, run and dropped on its own thread: dropping a runtime inside
        // an async context would panic.
        let thread = std::thread::Builder::new()
            .name("mail-connector-blocking".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.send(Err(error));
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                runtime.block_on(async move {
                    // Each call is a task of its own, so calls from many threads run at once.
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job);
                    }
                });
            })
            .map_err(|e| Error::transport_source("blocking", e, Transience::Transient))?;
        match outcome.recv() {
            Ok(Ok(())) => Ok(Self { jobs, thread }),
            Ok(Err(error)) => Err(Error::transport_source(
                "blocking",
                error,
                Transience::Transient,
            )),
            Err(_) => Err(runtime_gone()),
        }
    }
}

/// Runs `work` on the runtime behind `jobs` and waits for its result.
fn run_on<T: Send + 'static>(
    jobs: &mpsc::UnboundedSender<Job>,
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T> {
    // Blocking here would stall the runtime this thread belongs to (and tokio would panic).
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::transport(
            "blocking",
            "the blocking API was called from inside a tokio runtime (an async task, or a \
             `spawn_blocking` or `block_in_place` thread, which it cannot tell apart), \
             where it must not block; nothing was sent",
            Transience::Permanent,
        )
        .with_remedy(
            "in async code, await the async `MailTransport` (`Transport::transport()` shares \
             the same one); in `spawn_blocking`, run it with \
             `tokio::runtime::Handle::current().block_on(..)`; or call from a thread outside \
             the runtime",
        ));
    }
    let (reply, answer) = oneshot::channel();
    jobs.send(Box::pin(async move {
        // The caller may have gone (a panic on its thread): nobody to tell.
        let _ = reply.send(work.await);
    }))
    .map_err(|_| runtime_gone())?;
    // A job ends without an answer only when it panicked, or the runtime is gone.
    answer.blocking_recv().map_err(|_| runtime_gone())
}

fn runtime_gone() -> Error {
    Error::transport(
        "blocking",
        "the call ended without an answer: the transport panicked or the blocking API's \
         runtime stopped; delivery is unknown",
        Transience::Permanent,
    )
    .with_uncertain_delivery()
    .with_remedy(
        "check the logs for a panic; before sending again, check whether the mail arrived \
         (it may have been sent)",
    )
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the runtime's loop; in-flight calls have all returned
        // (each caller waits for its own), so the thread ends promptly.
        drop(self.jobs.take());
        let thread = self.thread.take();
        // Not joined from inside a runtime: that would block one of its threads.
        if let Some(thread) = thread
            && tokio::runtime::Handle::try_current().is_err()
        {
            let _ = thread.join();
        }
    }
}
