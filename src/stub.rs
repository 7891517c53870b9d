//! [`StubTransport`]: a recording transport for tests of code that sends mail, with a script
//! of outcomes ([`StubOutcome`]) to play "fail twice, then succeed".

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::check::{CheckReport, CheckStep};
use crate::error::{Error, Result, Transience};
use crate::message::{Email, Mailbox};
use crate::transport::{MailTransport, SendReport, SentMessage};

/// What the stub does with one send.
///
/// Each failure is an [`Error::Transport`] from the `stub` transport that answers
/// [`Error::is_transient`] and [`Error::delivery`] as a real transport's would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StubOutcome {
    /// The email is accepted and recorded.
    Sent,
    /// Not sent, and trying again later may work (a 429, a dropped connection before the
    /// data): [`Error::is_transient`] is true, delivery [`NotSent`](crate::Delivery::NotSent).
    TransientFailure,
    /// Not sent, and trying again will not help (a refused permission, a bad recipient):
    /// not transient, delivery [`NotSent`](crate::Delivery::NotSent).
    PermanentFailure,
    /// Maybe delivered (a timeout after the data was written): not transient, delivery
    /// [`Uncertain`](crate::Delivery::Uncertain). Not recorded as sent: the test cannot know.
    Uncertain,
}

#[derive(Debug, Default)]
struct State {
    sent: Vec<(Option<Mailbox>, Email)>,
    attempts: usize,
    script: VecDeque<StubOutcome>,
    otherwise: Option<StubOutcome>,
    fail_after: Option<usize>,
    transient: bool,
    uncertain: bool,
    sender: Option<Mailbox>,
    mailbox_only: bool,
}

impl State {
    /// The outcome of the next send: the script's next entry, then `otherwise`, then the
    /// `fail_after` rule.
    fn next_outcome(&mut self) -> StubOutcome {
        if let Some(outcome) = self.script.pop_front() {
            return outcome;
        }
        if let Some(outcome) = self.otherwise {
            return outcome;
        }
        if self.fail_after.is_none_or(|n| self.sent.len() < n) {
            return StubOutcome::Sent;
        }
        match (self.uncertain, self.transient) {
            (true, _) => StubOutcome::Uncertain,
            (false, true) => StubOutcome::TransientFailure,
            (false, false) => StubOutcome::PermanentFailure,
        }
    }
}

/// Keeps every email it is given in memory, with the sender it would have gone out as, and
/// fails when told to.
///
/// Clones share the same record, so a test keeps one clone and hands another to the code
/// under test.
///
/// ```
/// use mail_connector::{Email, MailTransport, StubOutcome, StubTransport};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // Fail twice (transiently), then accept everything.
/// let stub = StubTransport::new()
///     .with_sender("no-reply@example.org".parse()?)
///     .then(StubOutcome::TransientFailure)
///     .then(StubOutcome::TransientFailure);
/// let email = Email::builder().to("ann@example.org").subject("Hi").build()?;
/// assert!(stub.send(&email).await.unwrap_err().is_transient());
/// assert!(stub.send(&email).await.unwrap_err().is_transient());
/// assert!(stub.send(&email).await.is_ok());
/// assert_eq!(stub.attempts(), 3);
/// assert_eq!(stub.sent().len(), 1);
/// assert_eq!(stub.senders(), vec![Some("no-reply@example.org".parse()?)]);
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

    /// Adds `outcome` to the script: each send takes the script's next outcome; once it is
    /// used up, sends follow [`otherwise`](Self::otherwise) (by default: accepted).
    #[must_use]
    pub fn then(self, outcome: StubOutcome) -> Self {
        self.state().script.push_back(outcome);
        self
    }

    /// Adds `outcomes` to the script, in order, as [`then`](Self::then) does one.
    #[must_use]
    pub fn script(self, outcomes: impl IntoIterator<Item = StubOutcome>) -> Self {
        self.state().script.extend(outcomes);
        self
    }

    /// What every send does once the script is used up. Without it, sends are accepted
    /// (or fail per [`fail_after`](Self::fail_after)).
    #[must_use]
    pub fn otherwise(self, outcome: StubOutcome) -> Self {
        self.state().otherwise = Some(outcome);
        self
    }

    /// Accepts the first `successes` sends, then fails every later one (permanently, unless
    /// [`with_transient_failures`](Self::with_transient_failures) or
    /// [`with_uncertain_failures`](Self::with_uncertain_failures) say otherwise). A script
    /// and [`otherwise`](Self::otherwise) take precedence.
    #[must_use]
    pub fn fail_after(self, successes: usize) -> Self {
        self.state().fail_after = Some(successes);
        self
    }

    /// Makes [`fail_after`](Self::fail_after)'s failures transient ([`Error::is_transient`]
    /// is true).
    #[must_use]
    pub fn with_transient_failures(self) -> Self {
        self.state().transient = true;
        self
    }

    /// Makes [`fail_after`](Self::fail_after)'s failures leave delivery uncertain, like a
    /// timeout after the request was sent.
    #[must_use]
    pub fn with_uncertain_failures(self) -> Self {
        self.state().uncertain = true;
        self
    }

    /// The sender for emails that do not name one, as the settings' `user_name` is for the
    /// real transports.
    #[must_use]
    pub fn with_sender(self, sender: Mailbox) -> Self {
        self.state().sender = Some(sender);
        self
    }

    /// Refuses an email whose `from` is another address than the sender
    /// ([`with_sender`](Self::with_sender)), before any outcome of the script is played, as
    /// Graph and SMTP do unless the settings' `allow_send_as` is on (it is off by default): a
    /// test of code that sends "as" another address then fails as production would. The
    /// refusal is an [`Error::InvalidMessage`] on `from`, as Graph's is, saying to set
    /// `allow_send_as`. Without a sender there is nothing to compare with, and nothing is
    /// refused.
    ///
    /// ```
    /// use mail_connector::{Email, MailTransport, StubTransport};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let stub = StubTransport::new()
    ///     .with_sender("no-reply@example.org".parse()?)
    ///     .mailbox_only();
    /// let billing = Email::builder()
    ///     .from("billing@example.org")
    ///     .to("ann@example.org")
    ///     .build()?;
    /// let error = stub.send(&billing).await.unwrap_err();
    /// assert!(error.to_string().contains("allow_send_as"));
    /// assert!(stub.sent().is_empty());
    /// # Ok::<(), mail_connector::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn mailbox_only(self) -> Self {
        self.state().mailbox_only = true;
        self
    }

    /// The emails accepted so far, in order.
    #[must_use]
    pub fn sent(&self) -> Vec<Email> {
        self.state().sent.iter().map(|(_, e)| e.clone()).collect()
    }

    /// The From address each accepted email went out as, in the order of
    /// [`sent`](Self::sent): the email's own `from`, else the stub's
    /// [`with_sender`](Self::with_sender), else `None`.
    #[must_use]
    pub fn senders(&self) -> Vec<Option<Mailbox>> {
        self.state().sent.iter().map(|(f, _)| f.clone()).collect()
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
        if state.mailbox_only
            && let (Some(from), Some(sender)) = (email.from(), state.sender.as_ref())
            && !from.same_address(sender)
        {
            return Err(send_as_refused(email, from, sender));
        }
        let failure = |transience, what: &str| {
            Error::transport(
                "stub",
                format!("the stub transport was told to fail ({what})"),
                transience,
            )
        };
        match state.next_outcome() {
            StubOutcome::Sent => {}
            StubOutcome::TransientFailure => {
                return Err(failure(Transience::Transient, "transient"));
            }
            StubOutcome::PermanentFailure => {
                return Err(failure(Transience::Permanent, "permanent"));
            }
            StubOutcome::Uncertain => {
                // `fail_after` with both flags set keeps its old message: transient, then
                // marked uncertain (which makes it not transient).
                let transience = match state.transient {
                    true => Transience::Transient,
                    false => Transience::Permanent,
                };
                return Err(failure(transience, "delivery uncertain").with_uncertain_delivery());
            }
        }
        let from = email.from().cloned().or_else(|| state.sender.clone());
        state.sent.push((from, email.clone()));
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

/// The refusal of an email from `from` by a stub that sends only as `sender`, in the words
/// of the real transports' refusal.
fn send_as_refused(email: &Email, from: &Mailbox, sender: &Mailbox) -> Error {
    let (what, fix) = email.send_as_fix();
    Error::invalid_message(
        "from",
        format!(
            "{what} is from `{}` but this stub sends as `{}` (`mailbox_only`); {fix}, or set \
             `allow_send_as = true` in the settings once the app may send as that mailbox",
            from.address(),
            sender.address()
        ),
    )
}
