//! Enqueue, idempotency, not-before, attachments read at enqueue time, the per-mailbox limits
//! at the claim, leases that run out, operator actions, stats and retention — on both stores.

use std::time::{Duration, SystemTime};

use mail_connector::queue::{
    Claim, ClaimRequest, EnqueueOptions, MailboxLimits, Outcome, State, Worker,
};
use mail_connector::{Attachment, AttachmentContent, Email, StubTransport};

use crate::helpers::{
    Backend, count, email, on_both_stores, open, open_with_url, row, server_clock_passes,
};

on_both_stores!(
    the_same_idempotency_key_returns_the_first_id_and_stores_nothing,
    a_message_is_not_delivered_before_its_time,
    file_attachments_are_read_at_enqueue_time,
    in_flight_limit_holds_per_mailbox_at_the_claim,
    rate_limit_holds_per_mailbox_and_says_when_it_frees,
    a_lease_that_runs_out_makes_the_message_uncertain_never_queued,
    operators_retry_cancel_and_purge_only_where_it_applies,
    stats_count_per_state_and_mailbox_and_name_the_oldest_due,
    retention_drops_sent_bodies_only,
    a_batch_is_stored_whole_or_not_at_all,
    the_mailbox_option_is_an_address,
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

/// The same mailbox spelled two ways is one set of limits; another name is a key as it is;
/// a blank one or a malformed address is refused, naming the option.
async fn the_mailbox_option_is_an_address(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let id = queue
        .enqueue(
            &email("x@example.org", "named"),
            EnqueueOptions::new().mailbox("Billing <Billing@Example.org>"),
        )
        .await
        .unwrap();
    assert_eq!(
        row(&queue, id.as_str()).await.mailbox,
        "billing@example.org"
    );
    let named = queue
        .enqueue(
            &email("x@example.org", "any name"),
            EnqueueOptions::new().mailbox(" Tenant-42 "),
        )
        .await
        .unwrap();
    assert_eq!(row(&queue, named.as_str()).await.mailbox, "tenant-42");
    for bad in ["", "  ", "Billing <billing@>", "a@b@c"] {
        let error = queue
            .enqueue(
                &email("x@example.org", "bad"),
                EnqueueOptions::new().mailbox(bad),
            )
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`mailbox`"), "{bad:?}: {message}");
        assert!(
            error.remedy().unwrap().contains("mailbox"),
            "{bad:?}: {error:?}"
        );
    }
    assert_eq!(
        count(&queue, State::Queued).await,
        2,
        "nothing bad is stored"
    );
}

async fn a_batch_is_stored_whole_or_not_at_all(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let keyed = || EnqueueOptions::new().idempotency_key("same");
    let batch = vec![
        (email("a@example.org", "1"), keyed()),
        (email("b@example.org", "2"), EnqueueOptions::new()),
        (email("c@example.org", "3"), keyed()),
    ];
    let ids = queue.enqueue_batch(&batch).await.unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], ids[2]);
    assert_eq!(count(&queue, State::Queued).await, 2);
    let refused = vec![
        (email("a@example.org", "4"), EnqueueOptions::new()),
        (
            email("a@example.org", "5"),
            EnqueueOptions::new().idempotency_key(""),
        ),
    ];
    assert!(queue.enqueue_batch(&refused).await.is_err());
    assert_eq!(count(&queue, State::Queued).await, 2);
}

async fn the_same_idempotency_key_returns_the_first_id_and_stores_nothing(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let first = queue
        .enqueue(
            &email("a@example.org", "one"),
            EnqueueOptions::new().idempotency_key("k1"),
        )
        .await
        .unwrap();
    let again = queue
        .enqueue(
            &email("b@example.org", "two"),
            EnqueueOptions::new().idempotency_key("k1"),
        )
        .await
        .unwrap();
    assert_eq!(first, again);
    let other = queue
        .enqueue(&email("a@example.org", "one"), EnqueueOptions::new())
        .await
        .unwrap();
    assert_ne!(first, other);
    assert_eq!(count(&queue, State::Queued).await, 2);
    assert_eq!(row(&queue, first.as_str()).await.subject, "one");
    let bad = queue
        .enqueue(
            &email("a@example.org", "x"),
            EnqueueOptions::new().idempotency_key(" "),
        )
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("idempotency_key"), "{bad}");
}

async fn a_message_is_not_delivered_before_its_time(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let later = SystemTime::now() + Duration::from_secs(3600);
    let id = queue
        .enqueue(
            &email("a@example.org", "later"),
            EnqueueOptions::new().not_before(later),
        )
        .await
        .unwrap();
    let stub = StubTransport::new();
    Worker::new(&queue, stub.clone()).run_once().await.unwrap();
    assert!(stub.sent().is_empty());
    let message = row(&queue, id.as_str()).await;
    assert_eq!(message.state, State::Queued);
    assert!(message.due_at >= later - Duration::from_millis(1));
}

async fn file_attachments_are_read_at_enqueue_time(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.csv");
    std::fs::write(&path, "a,b\n1,2\n").unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .subject("report")
        .attachment(Attachment::from_path(&path).unwrap())
        .build()
        .unwrap();
    queue.enqueue(&email, EnqueueOptions::new()).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    let stub = StubTransport::new();
    let report = Worker::new(&queue, stub.clone()).run_once().await.unwrap();
    assert_eq!(report.sent, 1);
    let sent = stub.sent();
    assert!(matches!(
        sent[0].attachments()[0].content(),
        AttachmentContent::Bytes(b) if b == b"a,b\n1,2\n"
    ));
    // A missing file is an error at enqueue, naming the file.
    std::fs::write(&path, "x").unwrap();
    let gone = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_path(&path).unwrap())
        .build()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let error = queue
        .enqueue(&gone, EnqueueOptions::new())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("report.csv"), "{error}");
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

async fn operators_retry_cancel_and_purge_only_where_it_applies(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let failing = queue
        .enqueue(&email("x@example.org", "fails"), EnqueueOptions::new())
        .await
        .unwrap();
    Worker::new(&queue, StubTransport::failing())
        .run_once()
        .await
        .unwrap();
    let failed = row(&queue, failing.as_str()).await;
    assert_eq!(failed.state, State::Failed);
    assert!(failed.last_error.is_some());

    let cancel_me = queue
        .enqueue(&email("x@example.org", "cancel"), EnqueueOptions::new())
        .await
        .unwrap();
    queue.cancel(cancel_me.as_str()).await.unwrap();
    assert_eq!(
        row(&queue, cancel_me.as_str()).await.state,
        State::Cancelled
    );
    let error = queue.cancel(failing.as_str()).await.unwrap_err();
    assert!(error.to_string().contains("is failed"), "{error}");
    let remedy = error.remedy().expect("says what to do instead");
    assert!(remedy.contains("never sent again"), "{remedy}");
    let error = queue.retry("no-such-id").await.unwrap_err();
    assert!(error.to_string().contains("no-such-id"), "{error}");

    queue.retry(failing.as_str()).await.unwrap();
    let retried = row(&queue, failing.as_str()).await;
    assert_eq!((retried.state, retried.attempts), (State::Queued, 0));
    let stub = StubTransport::new();
    Worker::new(&queue, stub.clone()).run_once().await.unwrap();
    assert_eq!(row(&queue, failing.as_str()).await.state, State::Sent);
    let error = queue.retry(failing.as_str()).await.unwrap_err();
    assert!(error.to_string().contains("is sent"), "{error}");
    assert!(error.remedy().unwrap().contains("delivered"), "{error:?}");

    assert_eq!(
        queue
            .purge(State::Cancelled, Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        queue.purge(State::Cancelled, Duration::ZERO).await.unwrap(),
        1
    );
    assert!(queue.purge(State::Sending, Duration::ZERO).await.is_err());
    assert_eq!(count(&queue, State::Sent).await, 1);
}

async fn stats_count_per_state_and_mailbox_and_name_the_oldest_due(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let first = queue
        .enqueue(
            &email("x@example.org", "1"),
            EnqueueOptions::new().mailbox("A@example.org"),
        )
        .await
        .unwrap();
    queue
        .enqueue(
            &email("x@example.org", "2"),
            EnqueueOptions::new().mailbox("b@example.org"),
        )
        .await
        .unwrap();
    let later = SystemTime::now() + Duration::from_secs(3600);
    queue
        .enqueue(
            &email("x@example.org", "3"),
            EnqueueOptions::new().not_before(later),
        )
        .await
        .unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.states[&State::Queued], 3);
    assert_eq!(stats.states[&State::Sent], 0);
    let mailboxes: Vec<_> = stats.mailboxes.iter().map(|m| m.mailbox.as_str()).collect();
    // Mailboxes are compared in lower case; the email's From is the default.
    assert_eq!(
        mailboxes,
        ["a@example.org", "b@example.org", "no-reply@example.org"]
    );
    assert_eq!(stats.oldest_due.unwrap().id, first.as_str());
}

async fn retention_drops_sent_bodies_only(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    queue
        .enqueue(&email("x@example.org", "sent"), EnqueueOptions::new())
        .await
        .unwrap();
    let stub = StubTransport::new();
    Worker::new(&queue, stub.clone()).run_once().await.unwrap();
    let later = SystemTime::now() + Duration::from_secs(3600);
    let waiting = queue
        .enqueue(
            &email("x@example.org", "waiting"),
            EnqueueOptions::new().not_before(later),
        )
        .await
        .unwrap();
    // A worker with no retention purges the sent body at its start, and nothing else.
    Worker::new(&queue, stub.clone())
        .with_retention(Some(Duration::ZERO))
        .run_once()
        .await
        .unwrap();
    let store = queue.store();
    assert_eq!(store.purge_sent_bodies(SystemTime::now()).await.unwrap(), 0);
    assert_eq!(row(&queue, waiting.as_str()).await.state, State::Queued);
    assert_eq!(count(&queue, State::Sent).await, 1);
}
