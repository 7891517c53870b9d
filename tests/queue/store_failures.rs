//! A store that fails for a moment. After a send, the outcome is written again, not lost: a
//! delivery known to be sent (or sent to some recipients only) must not end `uncertain`
//! because one database write failed. At an enqueue whose answer was lost,
//! `QueueTransport::send` tries again under its own idempotency key — stored once — and says
//! the email may be queued when every try failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use mail_connector::queue::{
    EnqueueOptions, Enqueued, Lease, NewMessage, Outcome, Queue, QueueStore, QueueTransport, State,
    Worker,
};
use mail_connector::{Delivery, MailTransport, Result, async_trait};
use tokio::sync::Notify;

use crate::around::{Around, Hooks};
use crate::helpers::{
    Backend, Scripted, email, on_both_stores, open, partial_delivery, row, smtp_to, transient,
};

/// How [`Flaky`] fails its `insert` and `finish` calls.
#[derive(Debug, Default)]
struct Failures {
    /// Store the first insert, then answer it with an error (the connection broke).
    lose_first_insert_answer: AtomicBool,
    /// Fail every insert (after that first one) with a transient error, storing nothing.
    inserts_down: AtomicBool,
    /// Fail this many calls before passing them through.
    before: AtomicU32,
    /// Write the first call through, then answer it with an error (the answer was lost).
    lose_first_answer: AtomicBool,
    /// Fail every call while set.
    down: AtomicBool,
    /// Told at each failed call.
    failed: Notify,
    /// `finish` calls so far.
    finishes: AtomicU32,
    /// Told when an extension finds the lease gone.
    lease_gone: Notify,
}

/// A store whose `insert` and `finish` fail as [`Failures`] say; the rest passes through.
#[derive(Debug)]
struct Flaky {
    failures: Arc<Failures>,
}

impl Flaky {
    fn queue(inner: &Queue, failures: &Arc<Failures>) -> Queue {
        Around::queue(
            inner,
            Self {
                failures: failures.clone(),
            },
        )
    }
}

#[async_trait]
impl Hooks for Flaky {
    async fn extend(
        &self,
        inner: &dyn QueueStore,
        lease: &Lease,
        until: SystemTime,
    ) -> Result<bool> {
        let held = inner.extend(lease, until).await?;
        if !held {
            self.failures.lease_gone.notify_one();
        }
        Ok(held)
    }

    async fn insert(&self, inner: &dyn QueueStore, message: NewMessage) -> Result<Enqueued> {
        let failures = &self.failures;
        if failures
            .lose_first_insert_answer
            .swap(false, Ordering::SeqCst)
        {
            inner.insert(message).await?;
            return Err(answer_lost());
        }
        if failures.inserts_down.load(Ordering::SeqCst) {
            return Err(transient());
        }
        inner.insert(message).await
    }

    async fn finish(
        &self,
        inner: &dyn QueueStore,
        lease: &Lease,
        outcome: Outcome,
        now: SystemTime,
    ) -> Result<bool> {
        let failures = &self.failures;
        failures.finishes.fetch_add(1, Ordering::SeqCst);
        let fail_now = failures.down.load(Ordering::SeqCst)
            || failures
                .before
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if fail_now {
            failures.failed.notify_one();
            return Err(transient());
        }
        if failures.lose_first_answer.swap(false, Ordering::SeqCst) {
            inner.finish(lease, outcome, now).await?;
            return Err(transient());
        }
        inner.finish(lease, outcome, now).await
    }
}

/// What a store answers when the connection broke after the statement was sent.
fn answer_lost() -> mail_connector::Error {
    mail_connector::Error::transport(
        "test store",
        "connection reset by peer",
        mail_connector::Transience::Transient,
    )
    .with_uncertain_delivery()
}

/// A run that must end by itself.
async fn run_once(worker: &Worker) -> mail_connector::queue::WorkerReport {
    tokio::time::timeout(Duration::from_secs(60), worker.run_once())
        .await
        .expect("the run must end")
        .unwrap()
}

async fn a_partial_delivery_whose_first_write_failed_is_recorded(backend: Backend) {
    // ann gets it, gone is refused for good, busy for now; the store fails the first write.
    let (server, email) = partial_delivery("flaky partial").await;
    let (queue, _dir) = open(backend).await;
    let id = queue.enqueue(&email, EnqueueOptions::new()).await.unwrap();
    let failures = Arc::new(Failures::default());
    failures.before.store(1, Ordering::SeqCst);
    let worker = Worker::new(
        &Flaky::queue(&queue, &failures),
        smtp_to(&server).build().unwrap(),
    )
    .with_once_wait(Duration::ZERO);

    let report = run_once(&worker).await;

    assert_eq!(report.partial, 1, "{report:?}");
    let kept = row(&queue, id.as_str()).await;
    assert_eq!(
        (kept.state, kept.recipients.as_str()),
        (State::Queued, "To: busy@example.org"),
        "only the recipient refused for now is queued again: {kept:?}"
    );
    let delivered = kept.report.expect("the delivery to ann is kept");
    assert!(delivered.contains("ann@example.org"), "{delivered}");
    let rows = queue.list(None, 10).await.unwrap();
    let split = rows
        .iter()
        .find(|m| m.parent_id.as_deref() == Some(id.as_str()))
        .expect("the recipient refused for good is split off");
    assert_eq!(
        (split.state, split.recipients.as_str()),
        (State::Failed, "To: gone@example.org")
    );
}

async fn a_write_that_landed_with_its_answer_lost_is_not_undone(backend: Backend) {
    let (queue, _dir) = open(backend).await;
    let id = queue
        .enqueue(
            &email("ann@example.org", "lost answer"),
            EnqueueOptions::new(),
        )
        .await
        .unwrap();
    let failures = Arc::new(Failures::default());
    failures.lose_first_answer.store(true, Ordering::SeqCst);
    let transport = Scripted::new(Vec::new());
    let worker = Worker::new(&Flaky::queue(&queue, &failures), transport.clone())
        .with_once_wait(Duration::ZERO);

    let report = run_once(&worker).await;

    assert_eq!(report.sent, 1, "{report:?}");
    let sent = row(&queue, id.as_str()).await;
    assert_eq!(sent.state, State::Sent, "{sent:?}");
    assert_eq!(transport.seen().len(), 1, "sent once");
    assert_eq!(
        failures.finishes.load(Ordering::SeqCst),
        2,
        "written again after the error, and found recorded"
    );
}

async fn a_send_whose_enqueue_answer_was_lost_is_stored_once(backend: Backend) {
    let (queue, _dir) = open(backend).await;
    let failures = Arc::new(Failures::default());
    failures
        .lose_first_insert_answer
        .store(true, Ordering::SeqCst);
    let transport = QueueTransport::new(Flaky::queue(&queue, &failures));

    let report = transport
        .send(&email("ann@example.org", "answer lost"))
        .await
        .expect("the second try finds the email stored by the first");

    let rows = queue.list(None, 10).await.unwrap();
    assert_eq!(rows.len(), 1, "stored once: {rows:?}");
    assert_eq!(report.messages[0].id.as_deref(), Some(rows[0].id.as_str()));
    assert!(!failures.lose_first_insert_answer.load(Ordering::SeqCst));
}

on_both_stores!(
    a_partial_delivery_whose_first_write_failed_is_recorded,
    a_write_that_landed_with_its_answer_lost_is_not_undone,
    a_send_whose_enqueue_answer_was_lost_is_stored_once,
);

/// The first try's answer lost, then the database down: the caller is told the email may
/// be queued (it is) — not that sending again is safe, as the last error alone would say.
#[tokio::test]
async fn a_send_that_may_have_been_enqueued_says_so() {
    let (queue, _dir) = open(Backend::Sqlite).await;
    let failures = Arc::new(Failures::default());
    failures
        .lose_first_insert_answer
        .store(true, Ordering::SeqCst);
    failures.inserts_down.store(true, Ordering::SeqCst);
    let transport = QueueTransport::new(Flaky::queue(&queue, &failures));

    let error = transport
        .send(&email("ann@example.org", "maybe queued"))
        .await
        .unwrap_err();

    assert_eq!(error.delivery(), Delivery::Uncertain, "{error}");
    assert!(!error.is_transient(), "{error}");
    assert_eq!(queue.list(None, 10).await.unwrap().len(), 1, "it is queued");
}

/// A worker told to stop while the store keeps failing records, once it may, the outcome
/// its delivery had decided — not `uncertain`, which would hide a known delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_while_the_store_fails_records_the_decided_outcome() {
    let (queue, _dir) = open(Backend::Sqlite).await;
    let id = queue
        .enqueue(&email("ann@example.org", "stopped"), EnqueueOptions::new())
        .await
        .unwrap();
    let failures = Arc::new(Failures::default());
    failures.down.store(true, Ordering::SeqCst);
    let worker = Worker::new(&Flaky::queue(&queue, &failures), Scripted::new(Vec::new()))
        .with_grace_period(Duration::ZERO);
    // Stop once the outcome's write has failed; the store works again from then on (the
    // delivery's task waits before writing again, and is stopped first).
    let shutdown = {
        let failures = failures.clone();
        async move {
            failures.failed.notified().await;
            failures.down.store(false, Ordering::SeqCst);
        }
    };

    let report = tokio::time::timeout(Duration::from_secs(60), worker.run(shutdown))
        .await
        .expect("the worker must stop")
        .unwrap();

    assert_eq!(report.sent, 1, "{report:?}");
    let sent = row(&queue, id.as_str()).await;
    assert_eq!(sent.state, State::Sent, "{sent:?}");
    assert!(
        sent.report.is_some(),
        "the delivery report is kept: {sent:?}"
    );
}

/// A send that waits to be let go, and says when it started.
#[derive(Debug, Clone, Default)]
struct Gate {
    started: Arc<Notify>,
    go: Arc<Notify>,
}

#[async_trait]
impl MailTransport for Gate {
    async fn send(&self, email: &mail_connector::Email) -> Result<mail_connector::SendReport> {
        self.started.notify_one();
        self.go.notified().await;
        Ok(mail_connector::SendReport::single(
            mail_connector::SentMessage::new(email.recipients().collect(), Some("gate".into())),
        ))
    }
    async fn check(&self) -> Result<mail_connector::CheckReport> {
        Ok(mail_connector::CheckReport::default())
    }
}

/// A worker stalled past its lease (here: another worker's claim, an hour later, found the
/// lease run out) keeps sending, and records the send's real outcome over `uncertain`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_records_the_real_outcome() {
    let (queue, _dir) = open(Backend::Sqlite).await;
    let id = queue
        .enqueue(&email("ann@example.org", "stalled"), EnqueueOptions::new())
        .await
        .unwrap();
    let failures = Arc::new(Failures::default());
    let gate = Gate::default();
    let worker = Worker::new(&Flaky::queue(&queue, &failures), gate.clone())
        .with_lease(Duration::from_millis(300))
        .with_once_wait(Duration::ZERO);
    let run = tokio::spawn(async move { worker.run_once().await });
    gate.started.notified().await;

    let an_hour_later = SystemTime::now() + Duration::from_secs(3600);
    let other = mail_connector::queue::ClaimRequest::new(
        "other",
        an_hour_later,
        Duration::from_secs(60),
        mail_connector::queue::MailboxLimits::graph(),
    );
    queue.store().claim(&other).await.unwrap();
    assert_eq!(row(&queue, id.as_str()).await.state, State::Uncertain);
    // The worker finds its lease gone at its next extension, and sends on.
    failures.lease_gone.notified().await;
    gate.go.notify_one();

    let report = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the run must end")
        .unwrap()
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let sent = row(&queue, id.as_str()).await;
    assert_eq!(sent.state, State::Sent, "{sent:?}");
}
