//! PostgreSQL admits by the server's clock and never lets a mailbox at its limits crowd
//! out the others: workers whose clocks disagree share one rate window, and the 101st
//! mailbox is served while 100 others are full. SQLite dates a claim from when it took the
//! file's lock.

use std::time::{Duration, SystemTime};

use mail_connector::queue::{
    Claim, ClaimRequest, EnqueueOptions, MailboxLimits, Outcome, Queue, QueueStore,
};

use crate::helpers::email;

async fn postgres_queue() -> Queue {
    let url = crate::postgres::database().await;
    Queue::open(&url).await.unwrap()
}

async fn claim(
    store: &dyn QueueStore,
    worker: &str,
    now: SystemTime,
    limits: MailboxLimits,
) -> Claim {
    let request = ClaimRequest::new(worker, now, Duration::from_secs(60), limits);
    store.claim(&request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_with_skewed_clocks_cannot_exceed_the_rate_limit_on_postgres() {
    let queue = postgres_queue().await;
    for i in 0..4 {
        queue
            .enqueue(
                &email("x@example.org", &format!("m{i}")),
                EnqueueOptions::new(),
            )
            .await
            .unwrap();
    }
    let store = queue.store().as_ref();
    let limits = MailboxLimits::new(10, 2);
    let now = SystemTime::now();
    // A worker with a right clock takes the minute's two attempts and delivers them.
    for _ in 0..2 {
        let Claim::Message(message) = claim(store, "right", now, limits).await else {
            panic!("two attempts are allowed");
        };
        let sent = Outcome::Sent {
            report: "{}".into(),
        };
        assert!(store.finish(&message.lease, sent, now).await.unwrap());
    }
    // A worker whose clock runs 61 s ahead sees the same window: nothing more this minute.
    let ahead = now + Duration::from_secs(61);
    let Claim::Idle { next } = claim(store, "ahead", ahead, limits).await else {
        panic!("a clock running ahead must not open a new rate window");
    };
    // Its next look is a window from the first attempt, on its own clock.
    let next = next.expect("the window frees up");
    assert!(
        next > ahead && next <= ahead + Duration::from_secs(61),
        "{next:?}"
    );
    // And one behind neither.
    let behind = now - Duration::from_secs(3600);
    assert!(matches!(
        claim(store, "behind", behind, limits).await,
        Claim::Idle { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_running_behind_does_not_leave_due_messages_waiting_on_postgres() {
    let queue = postgres_queue().await;
    queue
        .enqueue(&email("x@example.org", "due"), EnqueueOptions::new())
        .await
        .unwrap();
    let store = queue.store().as_ref();
    let behind = SystemTime::now() - Duration::from_secs(3600);
    assert!(matches!(
        claim(store, "behind", behind, MailboxLimits::graph()).await,
        Claim::Message(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_101st_mailbox_is_served_while_100_others_are_full_on_postgres() {
    let queue = postgres_queue().await;
    // 100 mailboxes with a backlog, each due before the 101st mailbox's one message.
    for i in 0..100u64 {
        for j in 0..2u64 {
            let options = EnqueueOptions::new().mailbox(format!("box{i}@example.org"));
            queue
                .enqueue(&email("x@example.org", &format!("{i}-{j}")), options)
                .await
                .unwrap();
        }
    }
    let last = EnqueueOptions::new().mailbox("last@example.org");
    let id = queue
        .enqueue(&email("x@example.org", "last"), last)
        .await
        .unwrap();
    let store = queue.store().as_ref();
    let limits = MailboxLimits::new(1, 0);
    let now = SystemTime::now();
    let mut claimed = Vec::new();
    for _ in 0..101 {
        match claim(store, "w", now, limits).await {
            Claim::Message(message) => claimed.push(message.mailbox),
            Claim::Idle { .. } => break,
        }
    }
    assert_eq!(claimed.len(), 101, "every mailbox gets one in flight");
    assert_eq!(claimed.last().unwrap(), "last@example.org", "{id:?}");
    assert!(matches!(
        claim(store, "w", now, limits).await,
        Claim::Idle { .. }
    ));
}

/// SQLite dates an attempt from when its claim took the file's lock, not from the worker's
/// `now` before it waited for it: a claim that waited behind another process must not free
/// its place in the rate window early.
#[tokio::test]
async fn a_claim_that_waited_for_sqlites_lock_is_dated_when_it_took_it() {
    use mail_connector::queue::sqlx::{Connection, Executor, SqliteConnection};
    use std::pin::pin;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let queue = Queue::open(&url).await.unwrap();
    queue
        .enqueue(&email("x@example.org", "waited"), EnqueueOptions::new())
        .await
        .unwrap();
    // Another process holds the lock.
    let mut other = SqliteConnection::connect(&url).await.unwrap();
    other.execute("BEGIN IMMEDIATE").await.unwrap();

    let now = SystemTime::now();
    let request = ClaimRequest::new("w", now, Duration::from_secs(60), MailboxLimits::graph());
    let store = queue.store().clone();
    let mut claiming = pin!(store.claim(&request));
    // Its first poll starts the claim, which then waits for the lock.
    assert!(poll_once(claiming.as_mut()).await.is_none());
    let asked_by = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await; // how long the other holds it
    let released = std::time::Instant::now();
    other.execute("COMMIT").await.unwrap();
    let Claim::Message(_) = claiming.await.unwrap() else {
        panic!("the message is due")
    };

    let (started,) = last_attempt_started(&mut other).await;
    let waited = released.duration_since(asked_by);
    let dated = Duration::from_millis(
        u64::try_from(started).unwrap()
            - u64::try_from(
                now.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_millis(),
            )
            .unwrap(),
    );
    assert!(
        dated + Duration::from_millis(1) >= waited,
        "the attempt is dated {dated:?} after the worker's now, though the claim waited {waited:?} for the lock"
    );
}

/// Polls `future` once: its output if it finished.
async fn poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
    let mut future = future;
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

async fn last_attempt_started(conn: &mut mail_connector::queue::sqlx::SqliteConnection) -> (i64,) {
    mail_connector::queue::sqlx::query_as("SELECT MAX(started_at) FROM mail_queue_attempts")
        .fetch_one(conn)
        .await
        .unwrap()
}
