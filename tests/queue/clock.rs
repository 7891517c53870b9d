//! PostgreSQL admits by the server's clock and never lets a mailbox at its limits crowd
//! out the others: workers whose clocks disagree share one rate window, and the 101st
//! mailbox is served while 100 others are full.

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
