//! PostgreSQL stores every time on the server's clock, whatever the clock of the worker (or
//! application) that wrote it says: a retry "in 30 s" recorded by a worker whose clock runs
//! 10 minutes ahead or behind is due 30 s after the server's now, and so is a partly
//! delivered message's remainder; an enqueue, an operator's retry and the stats are measured
//! the same way, and a claimed message's `retry_from` is told on the claiming worker's clock.
//!
//! A test cannot set this machine's clock, so a worker whose clock is off is simulated at
//! the store's interface: directly (the times a test passes to `claim` and `finish`), or
//! through [`Skewed`] (tests/queue/skewed.rs), a store that shifts every time its worker
//! hands over. Stored times are checked against readings of the server's clock taken just
//! before and just after the store wrote them, so the bounds are exact, not timed.
//!
//! Not covered here: `extend`, `pause`, the purges and `pending` read this machine's clock
//! inside the store (there is no worker `now` to hand over), which a test on the server's
//! machine cannot set apart from the server's; `Skewed` passes them through. The one
//! conversion they share is unit-tested in `queue::postgres::clock`.

use std::time::{Duration, SystemTime};

use mail_connector::RetryPolicy;
use mail_connector::queue::{
    Claim, ClaimRequest, ClaimedMessage, EnqueueOptions, MailboxLimits, Outcome, Queue, QueueStore,
    State, Worker,
};
use sqlx::PgPool;

use crate::helpers::{Scripted, email, partial_delivery, server_clock_passes, smtp_to, transient};
use crate::skewed::{Skew, Skewed};

/// A fresh PostgreSQL queue, a pool on its database, and its URL.
async fn postgres() -> (Queue, PgPool, String) {
    let url = crate::postgres::database().await;
    let queue = Queue::open(&url).await.unwrap();
    let pool = PgPool::connect(&url).await.unwrap();
    (queue, pool, url)
}

/// The server's clock, in ms since the epoch, as the store reads it.
async fn server_now(pool: &PgPool) -> i64 {
    let (now,): (i64,) =
        sqlx::query_as("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
            .fetch_one(pool)
            .await
            .unwrap();
    now
}

/// A message's stored times (ms): due, created, updated, retry_from.
#[derive(Debug, Clone, Copy)]
struct Times {
    due: i64,
    created: i64,
    updated: i64,
    retry_from: i64,
}

async fn times(pool: &PgPool, id: &str) -> Times {
    let (due, created, updated, retry_from): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT due_at, created_at, updated_at, retry_from FROM mail_queue.messages \
         WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap();
    Times {
        due,
        created,
        updated,
        retry_from,
    }
}

/// `at` lies within `[from, to]` (ms, the server's clock), give or take the millisecond the
/// server's clock is rounded to.
#[track_caller]
fn within(what: &str, at: i64, from: i64, to: i64) {
    assert!(
        at >= from - 1 && at <= to + 1,
        "{what} is {at}: {} ms from the server's clock reading before the write, {} ms \
         from the one after (a worker's clock 10 minutes off would be ~600000 ms out)",
        at - from,
        at - to
    );
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap()
}

async fn claim_at(store: &dyn QueueStore, now: SystemTime) -> Claim {
    let request = ClaimRequest::new(
        "skewed",
        now,
        Duration::from_secs(60),
        MailboxLimits::graph(),
    );
    store.claim(&request).await.unwrap()
}

async fn claimed(store: &dyn QueueStore, now: SystemTime) -> Box<ClaimedMessage> {
    match claim_at(store, now).await {
        Claim::Message(message) => message,
        Claim::Idle { next } => panic!("a message is due; the claim found none (next {next:?})"),
    }
}

async fn a_retry_in_30_s_is_due_30_s_after_the_server_s_now(skew: Skew) {
    let (queue, pool, url) = postgres().await;
    let id = queue
        .enqueue(&email("x@example.org", "retry"), EnqueueOptions::new())
        .await
        .unwrap();
    let store = queue.store().as_ref();
    let now = skew.now();
    let message = claimed(store, now).await;
    let before = server_now(&pool).await;
    let retry = Outcome::Retry {
        at: now + Duration::from_secs(30),
        error: "busy".into(),
    };
    assert!(store.finish(&message.lease, retry, now).await.unwrap());
    let after = server_now(&pool).await;
    let stored = times(&pool, id.as_str()).await;
    within(
        "the retry's due time",
        stored.due,
        before + 30_000,
        after + 30_000,
    );
    within("the row's updated_at", stored.updated, before, after);

    // The due check agrees: 20 s on, not due yet (the worker looks again within the
    // remaining 10 s, on its own clock); 31 s on, due.
    server_clock_passes(Some(&url), Duration::from_secs(20)).await;
    let now = skew.now();
    match claim_at(store, now).await {
        Claim::Idle { next: Some(next) } => assert!(
            next > now && next <= now + Duration::from_millis(10_001),
            "next look {:?} after the worker's now",
            next.duration_since(now)
        ),
        other => panic!("not due 20 s on: {other:?}"),
    }
    server_clock_passes(Some(&url), Duration::from_secs(11)).await;
    let again = claimed(store, skew.now()).await;
    assert_eq!(again.lease.id, id.as_str());
    assert_eq!(again.attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_recorded_by_a_worker_10_minutes_ahead_is_due_30_s_after_the_server_s_now() {
    a_retry_in_30_s_is_due_30_s_after_the_server_s_now(Skew::Ahead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_recorded_by_a_worker_10_minutes_behind_is_due_30_s_after_the_server_s_now() {
    a_retry_in_30_s_is_due_30_s_after_the_server_s_now(Skew::Behind).await;
}

async fn a_partly_delivered_message_s_remainder_is_due_by_the_server_s_clock(skew: Skew) {
    // ann gets it, busy is refused for now (the remainder, retried), gone for good (split
    // off, failed).
    let (server, email) = partial_delivery("partial").await;
    let (queue, pool, _url) = postgres().await;
    let id = queue.enqueue(&email, EnqueueOptions::new()).await.unwrap();
    let enqueued = times(&pool, id.as_str()).await;
    let transport = smtp_to(&server).build().unwrap();
    // The first retry comes after 15 to 30 s (30 s with equal jitter); the run does not
    // wait for it.
    let retry = RetryPolicy {
        max_retries: 9,
        initial_backoff: Duration::from_secs(30),
        max_backoff: Duration::from_secs(30),
        multiplier: 2.0,
        deadline: Some(Duration::from_secs(24 * 60 * 60)),
    };
    let worker = Worker::new(&Skewed::queue(&queue, skew), transport)
        .with_retry(retry)
        .with_once_wait(Duration::ZERO);
    let before = server_now(&pool).await;
    let report = tokio::time::timeout(Duration::from_secs(60), worker.run_once())
        .await
        .expect("the run must end")
        .unwrap();
    let after = server_now(&pool).await;
    assert_eq!(report.partial, 1, "{report:?}");

    let rest = times(&pool, id.as_str()).await;
    within(
        "the remainder's due time",
        rest.due,
        before + 15_000,
        after + 30_000,
    );
    within("the remainder's updated_at", rest.updated, before, after);
    let rows = queue.list(None, 10).await.unwrap();
    let kept = rows.iter().find(|m| m.id == id.as_str()).unwrap();
    assert_eq!(
        (kept.state, kept.recipients.as_str()),
        (State::Queued, "To: busy@example.org")
    );
    let split = rows
        .iter()
        .find(|m| m.parent_id.as_deref() == Some(id.as_str()))
        .expect("the refused recipient is split off");
    assert_eq!(split.state, State::Failed);
    let split = times(&pool, &split.id).await;
    within("the split's updated_at", split.updated, before, after);
    assert_eq!(
        (split.due, split.created, split.retry_from),
        (enqueued.due, enqueued.created, enqueued.retry_from),
        "the split keeps the message's due time, creation and retry clock as stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remainder_recorded_by_a_worker_10_minutes_ahead_is_due_by_the_server_s_clock() {
    a_partly_delivered_message_s_remainder_is_due_by_the_server_s_clock(Skew::Ahead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remainder_recorded_by_a_worker_10_minutes_behind_is_due_by_the_server_s_clock() {
    a_partly_delivered_message_s_remainder_is_due_by_the_server_s_clock(Skew::Behind).await;
}

async fn an_enqueue_is_stored_on_the_server_s_clock(skew: Skew) {
    let (queue, pool, _url) = postgres().await;
    let skewed = Skewed::queue(&queue, skew);
    let hour = Duration::from_secs(3600);
    let before = server_now(&pool).await;
    let now_id = skewed
        .enqueue(&email("x@example.org", "now"), EnqueueOptions::new())
        .await
        .unwrap();
    // An hour from now on the application's clock.
    let later = EnqueueOptions::new().not_before(SystemTime::now() + hour);
    let later_id = skewed
        .enqueue(&email("x@example.org", "later"), later)
        .await
        .unwrap();
    let batch = skewed
        .enqueue_batch(&[
            (email("x@example.org", "b1"), EnqueueOptions::new()),
            (
                email("x@example.org", "b2"),
                EnqueueOptions::new().not_before(SystemTime::now() + hour),
            ),
        ])
        .await
        .unwrap();
    let after = server_now(&pool).await;
    for (id, due_in) in [
        (&now_id, 0),
        (&later_id, ms(hour)),
        (&batch[0], 0),
        (&batch[1], ms(hour)),
    ] {
        let stored = times(&pool, id.as_str()).await;
        within("created_at", stored.created, before, after);
        assert_eq!(
            (stored.updated, stored.retry_from),
            (stored.created, stored.due),
            "updated_at starts at created_at; retry_from (the age limit's start) at due_at"
        );
        within("due_at", stored.due, before + due_in, after + due_in);
    }
    // Due now means now, for any worker: the messages sent "now" are claimed at once.
    let store = queue.store().as_ref();
    for _ in 0..2 {
        let first = claimed(store, SystemTime::now()).await;
        assert!(
            [now_id.as_str(), batch[0].as_str()].contains(&first.lease.id.as_str()),
            "{first:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_by_an_application_10_minutes_ahead_is_stored_on_the_server_s_clock() {
    an_enqueue_is_stored_on_the_server_s_clock(Skew::Ahead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_by_an_application_10_minutes_behind_is_stored_on_the_server_s_clock() {
    an_enqueue_is_stored_on_the_server_s_clock(Skew::Behind).await;
}

async fn a_claimed_message_s_retry_from_is_told_on_the_worker_s_clock(skew: Skew) {
    let (queue, _pool, _url) = postgres().await;
    queue
        .enqueue(&email("x@example.org", "age"), EnqueueOptions::new())
        .await
        .unwrap();
    let now = skew.now();
    let message = claimed(queue.store().as_ref(), now).await;
    // Enqueued just now: on the worker's clock, at most a few seconds before its now.
    assert!(
        message.retry_from <= now + Duration::from_millis(1)
            && message.retry_from + Duration::from_secs(10) > now,
        "retry_from is {:?} from the worker's now",
        message.retry_from.duration_since(now)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_by_a_worker_10_minutes_ahead_tells_retry_from_on_its_clock() {
    a_claimed_message_s_retry_from_is_told_on_the_worker_s_clock(Skew::Ahead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_by_a_worker_10_minutes_behind_tells_retry_from_on_its_clock() {
    a_claimed_message_s_retry_from_is_told_on_the_worker_s_clock(Skew::Behind).await;
}

async fn an_operator_s_retry_is_due_by_the_server_s_clock(skew: Skew) {
    let (queue, pool, _url) = postgres().await;
    let id = queue
        .enqueue(&email("x@example.org", "failed"), EnqueueOptions::new())
        .await
        .unwrap();
    let store = queue.store().as_ref();
    let message = claimed(store, SystemTime::now()).await;
    let failed = Outcome::Failed {
        error: "refused".into(),
        remedy: None,
    };
    assert!(
        store
            .finish(&message.lease, failed, SystemTime::now())
            .await
            .unwrap()
    );
    // `mailctl queue retry` on a machine whose clock is off.
    let before = server_now(&pool).await;
    Skewed::queue(&queue, skew)
        .retry(id.as_str())
        .await
        .unwrap();
    let after = server_now(&pool).await;
    let stored = times(&pool, id.as_str()).await;
    within("due_at", stored.due, before, after);
    within("updated_at", stored.updated, before, after);
    within("retry_from", stored.retry_from, before, after);
    let again = claimed(store, SystemTime::now()).await;
    assert_eq!(again.lease.id, id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_s_retry_from_a_machine_10_minutes_ahead_is_due_at_once() {
    an_operator_s_retry_is_due_by_the_server_s_clock(Skew::Ahead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_s_retry_from_a_machine_10_minutes_behind_is_due_at_once() {
    an_operator_s_retry_is_due_by_the_server_s_clock(Skew::Behind).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_name_the_oldest_due_message_by_the_server_s_clock() {
    let (queue, _pool, _url) = postgres().await;
    let soon = EnqueueOptions::new().not_before(SystemTime::now() + Duration::from_secs(300));
    queue
        .enqueue(&email("x@example.org", "in 5 minutes"), soon)
        .await
        .unwrap();
    // Ten minutes ahead, the message due in five is not due yet.
    let ahead = Skewed::queue(&queue, Skew::Ahead).stats().await.unwrap();
    assert_eq!(ahead.oldest_due, None);
    let id = queue
        .enqueue(&email("x@example.org", "now"), EnqueueOptions::new())
        .await
        .unwrap();
    // Ten minutes behind, the message due now is due.
    let behind = Skewed::queue(&queue, Skew::Behind).stats().await.unwrap();
    assert_eq!(
        behind.oldest_due.map(|o| o.id),
        Some(id.as_str().to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_10_minutes_ahead_retries_after_its_backoff_within_the_age_limit() {
    let (queue, _pool, _url) = postgres().await;
    // Enqueued by an application whose clock is right.
    let id = queue
        .enqueue(&email("x@example.org", "retried"), EnqueueOptions::new())
        .await
        .unwrap();
    let transport = Scripted::new(vec![Err(transient())]);
    // A 5-minute age limit: on a clock 10 minutes ahead, an enqueue time read as the
    // server's would look 10 minutes old already.
    let retry = RetryPolicy {
        max_retries: 5,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        multiplier: 2.0,
        deadline: Some(Duration::from_secs(300)),
    };
    let worker =
        Worker::new(&Skewed::queue(&queue, Skew::Ahead), transport.clone()).with_retry(retry);
    let report = tokio::time::timeout(Duration::from_secs(60), worker.run_once())
        .await
        .expect("the run must end")
        .unwrap();
    assert_eq!((report.retried, report.sent, report.failed), (1, 1, 0));
    let message = crate::helpers::row(&queue, id.as_str()).await;
    assert_eq!((message.state, message.attempts), (State::Sent, 2));
    assert_eq!(transport.seen().len(), 2);
}
