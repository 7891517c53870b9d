//! Replicas racing for one sender mailbox: several workers, each with a store and connection
//! pool of its own (as separate processes would have), claim at once, released together by a
//! barrier, round after round. The mailbox's limits hold however the claims interleave,
//! because each is counted under the mailbox's lock (PostgreSQL: its row, `FOR UPDATE SKIP
//! LOCKED`; SQLite: the file's write lock, `BEGIN IMMEDIATE`); and each round reaches the
//! limit, so a claim turned away wrongly fails too.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mail_connector::queue::{
    Claim, ClaimRequest, ClaimedMessage, EnqueueOptions, MailboxLimits, Outcome, Queue, State,
};
use tokio::sync::Barrier;

use crate::helpers::{Backend, count, email, on_both_stores, open_with_url, server_clock_passes};

on_both_stores!(
    racing_replicas_never_have_more_than_the_in_flight_limit_out,
    racing_replicas_never_start_more_than_the_rate_limit_in_a_window,
);

/// Workers racing in every round: more than either limit, so that most are turned away.
const REPLICAS: usize = 6;

/// The mailbox's queue opened `count` times over, each with a pool of its own, with
/// `messages` queued through the first; keep the guard alive.
async fn replicas(
    backend: Backend,
    messages: usize,
    count: usize,
) -> (Vec<Queue>, Option<tempfile::TempDir>, Option<String>) {
    let (first, guard, pg_url) = open_with_url(backend).await;
    let url = match (&pg_url, &guard) {
        (Some(url), _) => url.clone(),
        (None, Some(dir)) => format!("sqlite://{}", dir.path().join("queue.db").display()),
        (None, None) => unreachable!("a SQLite queue has its folder"),
    };
    for i in 0..messages {
        first
            .enqueue(
                &email("x@example.org", &format!("m{i}")),
                EnqueueOptions::new(),
            )
            .await
            .unwrap();
    }
    let mut queues = vec![first];
    for _ in 1..count {
        queues.push(Queue::open(&url).await.unwrap());
    }
    (queues, guard, pg_url)
}

/// One round: every replica, released by one barrier, claims until it gets a message or
/// the mailbox is at a limit; the messages claimed. A PostgreSQL replica that finds the
/// mailbox locked by another's admission is told to look again within moments (a limit
/// answers "never" or a window's end): it does so at once, so that it counts again after
/// the other's claim committed.
async fn race(queues: &[Queue], limits: MailboxLimits, now: SystemTime) -> Vec<ClaimedMessage> {
    let barrier = Arc::new(Barrier::new(queues.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, queue) in queues.iter().enumerate() {
        let store = Arc::clone(queue.store());
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            let request = ClaimRequest::new(format!("replica-{i}"), now, LEASE, limits);
            barrier.wait().await;
            // A deadline against a hang, never a measure of the claim.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                assert!(Instant::now() < deadline, "replica {i} never settled");
                match store.claim(&request).await.unwrap() {
                    Claim::Message(message) => return Some(*message),
                    Claim::Idle { next: Some(at) } if at < now + Duration::from_secs(5) => {}
                    Claim::Idle { .. } => return None,
                }
            }
        });
    }
    let mut claimed = Vec::new();
    while let Some(done) = tasks.join_next().await {
        claimed.extend(done.unwrap());
    }
    claimed
}

const LEASE: Duration = Duration::from_secs(600);

async fn finish_all(queue: &Queue, claimed: &[ClaimedMessage], now: SystemTime) {
    for message in claimed {
        let sent = Outcome::Sent {
            report: "{}".into(),
        };
        assert!(
            queue
                .store()
                .finish(&message.lease, sent, now)
                .await
                .unwrap()
        );
    }
}

/// In flight: each round starts with none out and no rate limit; the racing replicas take
/// exactly the limit between them, and the store's rows never show more being sent.
async fn racing_replicas_never_have_more_than_the_in_flight_limit_out(backend: Backend) {
    const IN_FLIGHT: usize = 2;
    const ROUNDS: usize = 20;
    // One round's worth to spare, so that every round could take more than the limit.
    let (queues, _guard, _) = replicas(backend, (ROUNDS + 1) * IN_FLIGHT, REPLICAS).await;
    let limits = MailboxLimits::new(IN_FLIGHT as u32, 0);
    for round in 0..ROUNDS {
        let now = SystemTime::now();
        let claimed = race(&queues, limits, now).await;
        let sending = count(&queues[0], State::Sending).await;
        assert_eq!(
            (claimed.len(), sending),
            (IN_FLIGHT, IN_FLIGHT as u64),
            "round {round}: the replicas took {} messages, the store shows {sending} being \
             sent; the limit is {IN_FLIGHT}",
            claimed.len()
        );
        finish_all(&queues[0], &claimed, now).await;
    }
    let sent = count(&queues[0], State::Sent).await;
    assert_eq!(sent, (ROUNDS * IN_FLIGHT) as u64);
}

/// The rate: no in-flight limit to speak of, and each round is a window of its own (the
/// clock moves a window on between rounds): the racing replicas start exactly the limit's
/// attempts in each window, never more.
async fn racing_replicas_never_start_more_than_the_rate_limit_in_a_window(backend: Backend) {
    const PER_WINDOW: usize = 3;
    const ROUNDS: usize = 24;
    let window = Duration::from_secs(3600);
    let (queues, _guard, url) = replicas(backend, (ROUNDS + 1) * PER_WINDOW, REPLICAS).await;
    let limits = MailboxLimits::new(100, PER_WINDOW as u32).with_window(window);
    let start = SystemTime::now();
    for round in 0..ROUNDS {
        // SQLite counts by the worker's clock: each round a window and a second later.
        // PostgreSQL counts by the server's: every stored time is moved back instead.
        let now = start + (window + Duration::from_secs(1)) * round as u32;
        let claimed = race(&queues, limits, now).await;
        assert_eq!(
            claimed.len(),
            PER_WINDOW,
            "round {round}: the replicas started {} attempts in one window; the limit is \
             {PER_WINDOW}",
            claimed.len()
        );
        finish_all(&queues[0], &claimed, now).await;
        server_clock_passes(url.as_deref(), window + Duration::from_secs(1)).await;
    }
    let sent = count(&queues[0], State::Sent).await;
    assert_eq!(sent, (ROUNDS * PER_WINDOW) as u64);
}

/// PostgreSQL: replicas claiming without pause through a short rate window, so that some
/// claim just as an attempt leaves the window while the others' claims run beside them.
/// No window may hold more than the limit's attempt stamps — the stamps the store wrote,
/// each the server's clock read under the mailbox's lock, logged by a trigger because the
/// store deletes those that left the window. Such a delete once ran in every claim, by
/// that claim's clock: one read just after an admitting claim's, committed between that
/// claim's reading and its count, dropped an attempt still in its window and let one too
/// many in (by a few milliseconds). It is a race, so this test caught it in about six runs
/// of ten; every run must pass now that each mailbox's stamps go under its lock only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_replicas_never_start_more_than_the_rate_limit_in_any_window() {
    const PER_WINDOW: usize = 2;
    const MESSAGES: usize = 160;
    let window = Duration::from_millis(40);
    let (queues, _guard, url) = replicas(Backend::Postgres, MESSAGES, 2 * REPLICAS).await;
    let pool = sqlx::PgPool::connect(&url.unwrap()).await.unwrap();
    for sql in [
        "CREATE TABLE public.attempt_log (seq BIGSERIAL, started_at BIGINT NOT NULL)",
        "CREATE FUNCTION public.log_attempt() RETURNS trigger AS $$ BEGIN \
         INSERT INTO public.attempt_log (started_at) VALUES (NEW.started_at); \
         RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER log_attempt AFTER INSERT ON mail_queue.attempts FOR EACH ROW \
         EXECUTE FUNCTION public.log_attempt()",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let limits = MailboxLimits::new(100, PER_WINDOW as u32).with_window(window);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, queue) in queues.iter().enumerate() {
        let store = Arc::clone(queue.store());
        tasks.spawn(async move {
            // A deadline against a hang, never a measure of the claims.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                assert!(Instant::now() < deadline, "replica {i} never finished");
                let now = SystemTime::now();
                let request = ClaimRequest::new(format!("replica-{i}"), now, LEASE, limits);
                match store.claim(&request).await.unwrap() {
                    Claim::Message(message) => {
                        let sent = Outcome::Sent {
                            report: "{}".into(),
                        };
                        assert!(store.finish(&message.lease, sent, now).await.unwrap());
                    }
                    // Queued messages left, held back by the window or the lock: at once.
                    Claim::Idle { next: Some(_) } => {}
                    Claim::Idle { next: None } => return,
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let stamps: Vec<(i64,)> =
        sqlx::query_as("SELECT started_at FROM public.attempt_log ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut stamps: Vec<i64> = stamps.into_iter().map(|(at,)| at).collect();
    assert_eq!(stamps.len(), MESSAGES, "one attempt per message");
    stamps.sort_unstable();
    let window_ms = i64::try_from(window.as_millis()).unwrap();
    let crowded: Vec<&[i64]> = stamps
        .windows(PER_WINDOW + 1)
        .filter(|run| run[PER_WINDOW] - run[0] < window_ms)
        .collect();
    assert!(
        crowded.is_empty(),
        "{} attempts started within {window_ms} ms (the limit is {PER_WINDOW}): {crowded:?}",
        PER_WINDOW + 1
    );
}
