//! A store that fails for a moment after a send: the outcome is written again, not lost —
//! a delivery known to be sent (or sent to some recipients only) must not end `uncertain`
//! because one database write failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use mail_connector::queue::{
    Claim, ClaimRequest, EnqueueOptions, Enqueued, Lease, MessageSummary, NewMessage, Outcome,
    Queue, QueueStats, QueueStore, State, Worker,
};
use mail_connector::{Result, async_trait};
use tokio::sync::Notify;

use crate::helpers::{
    Backend, Scripted, email, on_both_stores, open, partial_delivery, row, smtp_to, transient,
};

/// How [`Flaky`] fails its `finish` calls.
#[derive(Debug, Default)]
struct Failures {
    /// Fail this many calls before passing them through.
    before: AtomicU32,
    /// Write the first call through, then answer it with an error (the answer was lost).
    lose_first_answer: AtomicBool,
    /// Fail every call while set.
    down: AtomicBool,
    /// Told at each failed call.
    failed: Notify,
}

/// A store whose `finish` fails as [`Failures`] says; everything else passes through.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn QueueStore>,
    failures: Arc<Failures>,
}

impl Flaky {
    fn queue(inner: &Queue, failures: &Arc<Failures>) -> Queue {
        Queue::new(Self {
            inner: inner.store().clone(),
            failures: failures.clone(),
        })
    }
}

#[async_trait]
impl QueueStore for Flaky {
    async fn insert(&self, message: NewMessage) -> Result<Enqueued> {
        self.inner.insert(message).await
    }
    async fn insert_batch(&self, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
        self.inner.insert_batch(messages).await
    }
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim> {
        self.inner.claim(request).await
    }
    async fn extend(&self, lease: &Lease, until: SystemTime) -> Result<bool> {
        self.inner.extend(lease, until).await
    }
    async fn pause(&self, mailbox: &str, until: SystemTime) -> Result<()> {
        self.inner.pause(mailbox, until).await
    }
    async fn finish(&self, lease: &Lease, outcome: Outcome, now: SystemTime) -> Result<bool> {
        let failures = &self.failures;
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
            self.inner.finish(lease, outcome, now).await?;
            return Err(transient());
        }
        self.inner.finish(lease, outcome, now).await
    }
    async fn stats(&self, now: SystemTime) -> Result<QueueStats> {
        self.inner.stats(now).await
    }
    async fn list(&self, state: Option<State>, limit: u32) -> Result<Vec<MessageSummary>> {
        self.inner.list(state, limit).await
    }
    async fn transition(
        &self,
        id: &str,
        from: &[State],
        to: State,
        now: SystemTime,
    ) -> Result<Option<State>> {
        self.inner.transition(id, from, to, now).await
    }
    async fn purge(&self, state: State, before: SystemTime) -> Result<u64> {
        self.inner.purge(state, before).await
    }
    async fn purge_sent_bodies(&self, before: SystemTime) -> Result<u64> {
        self.inner.purge_sent_bodies(before).await
    }
    async fn pending(&self, by: SystemTime) -> Result<(u64, u64)> {
        self.inner.pending(by).await
    }
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
}

on_both_stores!(
    a_partial_delivery_whose_first_write_failed_is_recorded,
    a_write_that_landed_with_its_answer_lost_is_not_undone,
);

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
