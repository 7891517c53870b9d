//! [`StubTransport`]: a recording transport for tests of code that sends mail.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::check::{CheckReport, CheckStep};
use crate::error::{Error, Result, Transience};
use crate::message::Email;
use crate::transport::{MailTransport, SendReport, SentMessage};

#[derive(Debug, Default)]
struct State {
    sent: Vec<Email>,
    attempts: usize,
    fail_after: Option<usize>,
    transient: bool,
    uncertain: bool,
}

/// Keeps every email it is given in memory, and can be told to fail.
///
/// Clones share the same record, so a test keeps one clone and hands another to the code
/// under test.
///
/// ```
/// use mail_connector::{Email, MailTransport, StubTransport};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let stub = StubTransport::new().fail_after(1);
/// let email = Email::builder().to("ann@example.org").subject("Hi").build()?;
/// assert!(stub.send(&email).await.is_ok());
/// assert!(stub.send(&email).await.is_err());
/// assert_eq!(stub.sent().len(), 1);
/// assert_eq!(stub.attempts(), 2);
/// # Ok::<(), mail_connector::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct StubTransport {
    state: Arc<Mutex<State>>,
}

impl StubTransport {
    /// A stub that accepts every email.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A stub that fails every send.
    #[must_use]
    pub fn failing() -> Self {
        Self::new().fail_after(0)
    }

    /// Accepts the first `successes` sends, then fails every later one.
    #[must_use]
    pub fn fail_after(self, successes: usize) -> Self {
        self.state().fail_after = Some(successes);
        self
    }

    /// Makes failures transient ([`Error::is_transient`] is true).
    #[must_use]
    pub fn with_transient_failures(self) -> Self {
        self.state().transient = true;
        self
    }

    /// Makes failures leave delivery uncertain, like a timeout after the request was sent.
    #[must_use]
    pub fn with_uncertain_failures(self) -> Self {
        self.state().uncertain = true;
        self
    }

    /// The emails accepted so far, in order.
    #[must_use]
    pub fn sent(&self) -> Vec<Email> {
        self.state().sent.clone()
    }

    /// How many sends were attempted, failed ones included.
    #[must_use]
    pub fn attempts(&self) -> usize {
        self.state().attempts
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` inconsistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl MailTransport for StubTransport {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        let mut state = self.state();
        state.attempts = state.attempts.saturating_add(1);
        if state.fail_after.is_some_and(|n| state.sent.len() >= n) {
            let error = Error::transport(
                "stub",
                "the stub transport was told to fail",
                if state.transient {
                    Transience::Transient
                } else {
                    Transience::Permanent
                },
            );
            return Err(if state.uncertain {
                error.with_uncertain_delivery()
            } else {
                error
            });
        }
        state.sent.push(email.clone());
        let id = format!("stub-{}", state.sent.len());
        Ok(SendReport::single(SentMessage::new(
            email.recipients().collect(),
            Some(id),
        )))
    }

    async fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        report.push(CheckStep::ok("stub", "the stub transport records emails"));
        Ok(report)
    }
}
