//! The per-mailbox limits at the claim (in flight, rate) and leases that run out — on both
//! stores, at the store's own interface.

use std::time::{Duration, SystemTime};

use mail_connector::queue::{Claim, ClaimRequest, EnqueueOptions, MailboxLimits, Outcome, State};

use crate::helpers::{
    Backend, count, email, on_both_stores, open, open_with_url, row, server_clock_passes,
};

on_both_stores!(
    in_flight_limit_holds_per_mailbox_at_the_claim,
    rate_limit_holds_per_mailbox_and_says_when_it_frees,
    a_lease_that_runs_out_makes_the_message_uncertain_never_queued,
    a_send_whose_lease_ran_out_keeps_its_place_for_a_lease,
);

/// A message whose lease ran out while being sent is `uncertain` at once, but its worker may
/// be stalled with the send still running: it keeps its place under the in-flight limit
/// until that worker records the outcome, or for one more lease.
async fn a_send_whose_lease_ran_out_keeps_its_place_for_a_lease(backend: Backend) {
    let (queue, _guard, url) = open_with_url(backend).await;
    for subject in ["a", "b"] {
        queue
            .enqueue(&email("x@example.org", subject), EnqueueOptions::new())
            .await
            .unwrap();
    }
    let store = queue.store();
    let one = MailboxLimits::new(1, 0);
    let now = SystemTime::now();
    let short = ClaimRequest::new("stalled", now, Duration::from_millis(10), one);
    let Claim::Message(stalled) = store.claim(&short).await.unwrap() else {
        panic!("due now");
    };

    server_clock_passes(url.as_deref(), Duration::from_secs(1)).await;
    let later = now + Duration::from_secs(1);
    assert!(
        matches!(
            store.claim(&request(later, one)).await.unwrap(),
            Claim::Idle { .. }
        ),
        "the stalled send still holds the mailbox's one place"
    );
    assert_eq!(count(&queue, State::Uncertain).await, 1);

    // Its worker comes back and records the outcome: the place is free.
    let sent = Outcome::Sent {
        report: "{}".into(),
    };
    assert!(store.finish(&stalled.lease, sent, later).await.unwrap());
    let Claim::Message(next) = store.claim(&request(later, one)).await.unwrap() else {
        panic!("the place is free once the outcome is recorded");
    };

    // A worker that never comes back holds the place for one lease (the claimer's) only.
    let queued = queue
        .enqueue(&email("x@example.org", "c"), EnqueueOptions::new())
        .await
        .unwrap();
    server_clock_passes(url.as_deref(), Duration::from_secs(61)).await;
    let after_lease = later + Duration::from_secs(61);
    let short_lived = ClaimRequest::new("next", after_lease, Duration::from_secs(60), one);
    assert!(
        matches!(store.claim(&short_lived).await.unwrap(), Claim::Idle { .. }),
        "b's lease (60 s) ran out just now: it holds the place"
    );
    drop(next);
    server_clock_passes(url.as_deref(), Duration::from_secs(61)).await;
    let much_later = after_lease + Duration::from_secs(61);
    let Claim::Message(last) = store.claim(&request(much_later, one)).await.unwrap() else {
        panic!("a lease after b's lease ran out, its place is free");
    };
    assert_eq!(last.lease.id, queued.as_str());
}

fn request(now: SystemTime, limits: MailboxLimits) -> ClaimRequest {
    ClaimRequest::new("test", now, Duration::from_secs(60), limits)
}

async fn in_flight_limit_holds_per_mailbox_at_the_claim(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    for i in 0..5 {
        let options = EnqueueOptions::new().mailbox("a@example.org");
        queue
            .enqueue(&email("x@example.org", &format!("a{i}")), options)
            .await
            .unwrap();
    }
    let b = queue
        .enqueue(
            &email("x@example.org", "b"),
            EnqueueOptions::new().mailbox("b@example.org"),
        )
        .await
        .unwrap();
    let store = queue.store();
    let limits = MailboxLimits::new(2, 0);
    let now = SystemTime::now();
    let mut claimed = Vec::new();
    while let Claim::Message(message) = store.claim(&request(now, limits)).await.unwrap() {
        claimed.push(*message);
    }
    let per_mailbox = |m: &str| claimed.iter().filter(|c| c.mailbox == m).count();
    assert_eq!(per_mailbox("a@example.org"), 2);
    assert_eq!(per_mailbox("b@example.org"), 1);
    assert!(claimed.iter().any(|c| c.lease.id == b.as_str()));
    // One finishes: one more of `a` may go.
    let done = claimed
        .iter()
        .find(|c| c.mailbox == "a@example.org")
        .unwrap();
    let sent = Outcome::Sent {
        report: "{}".into(),
    };
    assert!(store.finish(&done.lease, sent, now).await.unwrap());
    let Claim::Message(next) = store.claim(&request(now, limits)).await.unwrap() else {
        panic!("a slot was free");
    };
    assert_eq!(next.mailbox, "a@example.org");
    assert!(matches!(
        store.claim(&request(now, limits)).await.unwrap(),
        Claim::Idle { .. }
    ));
}

async fn rate_limit_holds_per_mailbox_and_says_when_it_frees(backend: Backend) {
    let (queue, _guard, url) = open_with_url(backend).await;
    for i in 0..4 {
        queue
            .enqueue(
                &email("x@example.org", &format!("m{i}")),
                EnqueueOptions::new(),
            )
            .await
            .unwrap();
    }
    let store = queue.store();
    let limits = MailboxLimits::new(10, 3).with_window(Duration::from_secs(3600));
    let start = SystemTime::now();
    let began = std::time::Instant::now();
    for i in 0..3u64 {
        let now = start + Duration::from_millis(i);
        let Claim::Message(message) = store.claim(&request(now, limits)).await.unwrap() else {
            panic!("claim {i} is within the rate");
        };
        let sent = Outcome::Sent {
            report: "{}".into(),
        };
        store.finish(&message.lease, sent, now).await.unwrap();
    }
    let now = start + Duration::from_secs(10);
    match store.claim(&request(now, limits)).await.unwrap() {
        Claim::Idle { next: Some(next) } => {
            // SQLite: by the worker's clock, from when each claim took the file's lock (a
            // moment after its `now`). PostgreSQL: by the server's, told as the same
            // distance from the worker's `now` (the test took some of the hour already).
            let frees = start + Duration::from_secs(3600);
            let earliest = match backend {
                Backend::Sqlite => frees - Duration::from_millis(2),
                Backend::Postgres => frees - Duration::from_secs(60),
            };
            let latest = match backend {
                Backend::Sqlite => frees + began.elapsed(),
                Backend::Postgres => now + Duration::from_secs(3600),
            };
            assert!(next >= earliest && next <= latest, "{next:?}");
        }
        other => panic!("the fourth is over the rate: {other:?}"),
    }
    // Once the window has passed, it goes.
    server_clock_passes(url.as_deref(), Duration::from_secs(3601)).await;
    let later = start + Duration::from_secs(3601);
    assert!(matches!(
        store.claim(&request(later, limits)).await.unwrap(),
        Claim::Message(_)
    ));
}

async fn a_lease_that_runs_out_makes_the_message_uncertain_never_queued(backend: Backend) {
    let (queue, _guard, url) = open_with_url(backend).await;
    let id = queue
        .enqueue(&email("x@example.org", "lost"), EnqueueOptions::new())
        .await
        .unwrap();
    let store = queue.store();
    let now = SystemTime::now();
    let short = ClaimRequest::new(
        "dying",
        now,
        Duration::from_millis(10),
        MailboxLimits::graph(),
    );
    let Claim::Message(lost) = store.claim(&short).await.unwrap() else {
        panic!("due now");
    };
    // Another worker, later: the expired lease makes it uncertain; it is not handed out.
    server_clock_passes(url.as_deref(), Duration::from_secs(1)).await;
    let later = now + Duration::from_secs(1);
    assert!(matches!(
        store
            .claim(&request(later, MailboxLimits::graph()))
            .await
            .unwrap(),
        Claim::Idle { .. }
    ));
    let message = row(&queue, id.as_str()).await;
    assert_eq!(message.state, State::Uncertain);
    assert!(
        message
            .last_error
            .unwrap()
            .contains("may have been delivered")
    );
    // The worker that held it, alive after all, knows it was sent and may say so.
    assert!(!store.extend(&lost.lease, later).await.unwrap());
    let sent = Outcome::Sent {
        report: "{}".into(),
    };
    assert!(store.finish(&lost.lease, sent, later).await.unwrap());
    assert_eq!(row(&queue, id.as_str()).await.state, State::Sent);
}
