//! Outcomes as states: transient failures come back with backoff (never sooner than
//! Retry-After) until attempts run out, permanent ones fail with their remedy, uncertain ones
//! are parked and never resent, partial deliveries split, and shutdown is graceful.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use httpmock::prelude::*;
use mail_connector::queue::{EnqueueOptions, State, Worker};
use mail_connector::{
    CheckReport, Email, Error, MailTransport, RecipientLimit, Result, RetryPolicy, SendReport,
    Transience, async_trait,
};
use tokio::sync::{Notify, mpsc};

use crate::helpers::{Backend, Scripted, email, graph_to, on_both_stores, open, row, transient};

on_both_stores!(
    a_transient_failure_is_retried_with_backoff_within_the_run,
    out_of_attempts_is_failed,
    a_retry_is_never_sooner_than_retry_after,
    a_429_pauses_its_mailbox_until_retry_after,
    a_huge_retry_after_pauses_its_mailbox_for_five_minutes_at_most,
    an_uncertain_delivery_is_parked_and_never_resent,
    a_partial_delivery_retries_the_rest_and_parks_the_uncertain,
    shutdown_lets_deliveries_finish_within_the_grace_period,
    a_delivery_cut_off_by_shutdown_is_uncertain,
);

fn fast(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        multiplier: 2.0,
        deadline: Some(Duration::from_secs(600)),
    }
}

async fn a_transient_failure_is_retried_with_backoff_within_the_run(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let id = queue
        .enqueue(&email("a@example.org", "retry"), EnqueueOptions::new())
        .await
        .unwrap();
    let transport = Scripted::new(vec![Err(transient()), Err(transient())]);
    let report = Worker::new(&queue, transport.clone())
        .with_retry(fast(5))
        .run_once()
        .await
        .unwrap();
    assert_eq!((report.retried, report.sent), (2, 1));
    let message = row(&queue, id.as_str()).await;
    assert_eq!((message.state, message.attempts), (State::Sent, 3));
    assert!(message.report.unwrap().contains("sent-retry"));
    assert_eq!(transport.seen().len(), 3);
}

async fn out_of_attempts_is_failed(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let id = queue
        .enqueue(&email("a@example.org", "give up"), EnqueueOptions::new())
        .await
        .unwrap();
    let transport = Scripted::new(vec![Err(transient()), Err(transient()), Err(transient())]);
    Worker::new(&queue, transport.clone())
        .with_retry(fast(0))
        .with_max_attempts(2)
        .run_once()
        .await
        .unwrap();
    let message = row(&queue, id.as_str()).await;
    assert_eq!((message.state, message.attempts), (State::Failed, 2));
    assert!(
        message
            .last_error
            .unwrap()
            .contains("gave up after 2 attempt")
    );
    assert_eq!(transport.seen().len(), 2);
}

/// An email without From: the transport's mailbox sends it.
fn unsigned(subject: &str) -> Email {
    Email::builder()
        .to("a@example.org")
        .subject(subject)
        .build()
        .unwrap()
}

/// Graph throttling every `sendMail` for five minutes.
async fn throttled(server: &MockServer) -> httpmock::Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method(POST).path_includes("/sendMail");
            then.status(429)
                .header("Retry-After", "300")
                .json_body(serde_json::json!({
                    "error": {"code": "TooManyRequests", "message": "Please retry again later."}
                }));
        })
        .await
}

async fn a_retry_is_never_sooner_than_retry_after(backend: Backend) {
    let server = MockServer::start_async().await;
    let graph = graph_to(&server).await;
    throttled(&server).await;
    let (queue, _guard) = open(backend).await;
    let id = queue
        .enqueue(&unsigned("throttled"), EnqueueOptions::new())
        .await
        .unwrap();
    // The backoff alone would be 20 ms; the server asked for five minutes.
    Worker::with_transport(&queue, graph)
        .with_retry(fast(5))
        .with_once_wait(Duration::from_secs(60))
        .run_once()
        .await
        .unwrap();
    let message = row(&queue, id.as_str()).await;
    assert_eq!(
        (message.state, message.attempts),
        (State::Queued, 1),
        "{message:?}"
    );
    let wait = message.due_at.duration_since(message.updated_at).unwrap();
    assert!(wait >= Duration::from_secs(300), "{wait:?}");
    assert!(message.last_error.unwrap().contains("429"));
}

async fn a_429_pauses_its_mailbox_until_retry_after(backend: Backend) {
    let server = MockServer::start_async().await;
    let graph = graph_to(&server).await;
    let sends = throttled(&server).await;
    let (queue, _guard) = open(backend).await;
    let mut ids = Vec::new();
    for subject in ["first", "second", "third"] {
        let id = queue
            .enqueue(&unsigned(subject), EnqueueOptions::new())
            .await
            .unwrap();
        ids.push(id);
    }
    // One at a time: the first is throttled, and its mailbox with it; the run ends
    // without touching the others (their mailbox resumes after the run's horizon).
    Worker::with_transport(&queue, graph)
        .with_retry(fast(5))
        .with_concurrency(1)
        .with_once_wait(Duration::from_secs(60))
        .run_once()
        .await
        .unwrap();
    assert_eq!(
        sends.calls_async().await,
        1,
        "the others wait out the pause"
    );
    let mut attempts = Vec::new();
    for id in &ids {
        let message = row(&queue, id.as_str()).await;
        assert_eq!(message.state, State::Queued, "{message:?}");
        attempts.push(message.attempts);
    }
    attempts.sort_unstable();
    assert_eq!(attempts, [0, 0, 1]);
}

/// A proxy's Retry-After of a day (or an HTTP date from a wrong clock) would pause the
/// mailbox that long, its messages never tried: the pause is cut to five minutes.
async fn a_huge_retry_after_pauses_its_mailbox_for_five_minutes_at_most(backend: Backend) {
    let server = MockServer::start_async().await;
    let graph = graph_to(&server).await;
    server
        .mock_async(|when, then| {
            when.method(POST).path_includes("/sendMail");
            then.status(429).header("Retry-After", "86400");
        })
        .await;
    let (queue, _guard) = open(backend).await;
    queue
        .enqueue(&unsigned("throttled for a day"), EnqueueOptions::new())
        .await
        .unwrap();
    Worker::with_transport(&queue, graph)
        .with_retry(fast(5))
        .with_once_wait(Duration::from_secs(60))
        .run_once()
        .await
        .unwrap();
    let after = SystemTime::now();
    let stats = queue.stats().await.unwrap();
    let paused = stats.mailboxes[0].paused_until.expect("paused");
    assert!(paused > after, "{paused:?}");
    assert!(paused <= after + Duration::from_secs(5 * 60), "{paused:?}");
}

async fn an_uncertain_delivery_is_parked_and_never_resent(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let id = queue
        .enqueue(&email("a@example.org", "maybe"), EnqueueOptions::new())
        .await
        .unwrap();
    let uncertain = Error::transport("test", "timed out after writing", Transience::Transient)
        .with_uncertain_delivery();
    let transport = Scripted::new(vec![Err(uncertain)]);
    let worker = Worker::new(&queue, transport.clone()).with_retry(fast(5));
    worker.run_once().await.unwrap();
    worker.run_once().await.unwrap();
    let message = row(&queue, id.as_str()).await;
    assert_eq!(message.state, State::Uncertain);
    assert!(
        message
            .last_error
            .unwrap()
            .contains("timed out after writing")
    );
    assert_eq!(
        transport.seen().len(),
        1,
        "never resent without an operator"
    );
    // An operator who checked that it did not arrive sends it again.
    queue.retry(id.as_str()).await.unwrap();
    worker.run_once().await.unwrap();
    assert_eq!(row(&queue, id.as_str()).await.state, State::Sent);
    assert_eq!(transport.seen().len(), 2);
}

async fn a_partial_delivery_retries_the_rest_and_parks_the_uncertain(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let email = Email::builder()
        .to("a@example.org")
        .to("b@example.org")
        .to("c@example.org")
        .subject("split")
        .build()
        .unwrap();
    let id = queue.enqueue(&email, EnqueueOptions::new()).await.unwrap();
    // One recipient per message: a goes, b times out after writing, c is never tried.
    let uncertain =
        Error::transport("test", "timed out", Transience::Transient).with_uncertain_delivery();
    let inner = Scripted::new(vec![Ok(()), Err(uncertain)]);
    let transport = RecipientLimit::new(inner.clone(), 1);
    let report = Worker::new(&queue, transport)
        .with_retry(fast(5))
        .run_once()
        .await
        .unwrap();
    assert_eq!((report.partial, report.sent), (1, 1));
    let to = |e: &Email| e.to()[0].address().to_owned();
    let seen: Vec<String> = inner.seen().iter().map(to).collect();
    assert_eq!(seen, ["a@example.org", "b@example.org", "c@example.org"]);
    let original = row(&queue, id.as_str()).await;
    assert_eq!(original.state, State::Sent, "c was retried and sent");
    assert_eq!(original.recipients, "To: c@example.org");
    // The report names everyone who got it: a (first attempt) and c (the retry).
    let delivered: serde_json::Value =
        serde_json::from_str(original.report.as_deref().unwrap()).unwrap();
    let recipients: Vec<&str> = delivered["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["recipients"].as_array().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(recipients.len(), 2, "{delivered}");
    assert!(recipients[0].contains("a@example.org"), "{delivered}");
    assert!(recipients[1].contains("c@example.org"), "{delivered}");
    let parked = queue.list(Some(State::Uncertain), 10).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].recipients, "To: b@example.org");
    assert_eq!(parked[0].parent_id.as_deref(), Some(id.as_str()));
    let remedy = parked[0].remedy.as_deref().unwrap();
    assert!(remedy.contains("verify with these recipients"), "{remedy}");
}

/// Blocks every send until released; says when a send has started.
#[derive(Clone)]
struct Held {
    started: mpsc::UnboundedSender<()>,
    release: Arc<Notify>,
}

#[async_trait]
impl MailTransport for Held {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        self.started.send(()).unwrap();
        self.release.notified().await;
        Ok(SendReport::single(mail_connector::SentMessage::new(
            email.recipients().collect(),
            None,
        )))
    }

    async fn check(&self) -> Result<CheckReport> {
        Ok(CheckReport::default())
    }
}

async fn shutdown_lets_deliveries_finish_within_the_grace_period(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let id = queue
        .enqueue(&email("a@example.org", "in flight"), EnqueueOptions::new())
        .await
        .unwrap();
    let (started, mut has_started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let held = Held {
        started,
        release: release.clone(),
    };
    let stop = Arc::new(Notify::new());
    let worker = Worker::new(&queue, held).with_grace_period(Duration::from_secs(60));
    let signal = stop.clone();
    // The shutdown future completes inside the worker's loop: its last step tells the test
    // the worker has seen the request, so the release below comes within the grace period.
    let (seen, mut worker_saw_stop) = mpsc::unbounded_channel();
    let shutdown = async move {
        signal.notified().await;
        seen.send(()).unwrap();
    };
    let running = tokio::spawn(async move { worker.run(shutdown).await });
    has_started.recv().await.unwrap();
    stop.notify_one();
    worker_saw_stop.recv().await.unwrap();
    // Asked to stop, the worker still lets the delivery in flight finish.
    release.notify_one();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(row(&queue, id.as_str()).await.state, State::Sent);
}

async fn a_delivery_cut_off_by_shutdown_is_uncertain(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let id = queue
        .enqueue(&email("a@example.org", "stuck"), EnqueueOptions::new())
        .await
        .unwrap();
    let later = queue
        .enqueue(
            &email("a@example.org", "not yet"),
            EnqueueOptions::new().not_before(SystemTime::now() + Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let (started, mut has_started) = mpsc::unbounded_channel();
    let held = Held {
        started,
        release: Arc::new(Notify::new()),
    };
    let stop = Arc::new(Notify::new());
    let worker = Worker::new(&queue, held).with_grace_period(Duration::from_millis(50));
    let signal = stop.clone();
    let running =
        tokio::spawn(async move { worker.run(async move { signal.notified().await }).await });
    has_started.recv().await.unwrap();
    stop.notify_one();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.uncertain, 1);
    let message = row(&queue, id.as_str()).await;
    assert_eq!(message.state, State::Uncertain);
    assert!(message.last_error.unwrap().contains("grace period"));
    assert_eq!(row(&queue, later.as_str()).await.state, State::Queued);
}
