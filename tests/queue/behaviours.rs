//! Enqueue, idempotency, not-before, attachments read at enqueue time, the mailbox option,
//! operator actions, stats and retention — on both stores (the claim's limits and leases:
//! `claims.rs`).

use std::time::{Duration, SystemTime};

use mail_connector::queue::{EnqueueOptions, State, Worker};
use mail_connector::{Attachment, AttachmentContent, Email, StubTransport};

use crate::helpers::{Backend, count, email, on_both_stores, open, row};

on_both_stores!(
    the_same_idempotency_key_returns_the_first_id_and_stores_nothing,
    a_message_is_not_delivered_before_its_time,
    file_attachments_are_read_at_enqueue_time,
    operators_retry_cancel_and_purge_only_where_it_applies,
    stats_count_per_state_and_mailbox_and_name_the_oldest_due,
    retention_drops_sent_bodies_only,
    a_batch_is_stored_whole_or_not_at_all,
    the_mailbox_option_is_an_address,
    one_mailbox_spelled_with_an_idn_domain_either_way_shares_one_set_of_limits,
    an_idempotency_key_of_255_bytes_is_kept_and_a_longer_one_refused,
);

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

/// A mailbox is one set of limits however its address is written — its IDN domain in
/// Unicode or as `xn--`, the ASCII letters of its local part in either case — as
/// `Mailbox::same_address` says: from the email's `From`, the `mailbox` option or the queue's
/// default mailbox.
async fn one_mailbox_spelled_with_an_idn_domain_either_way_shares_one_set_of_limits(
    backend: Backend,
) {
    let (queue, _guard) = open(backend).await;
    let from = |sender: &str| {
        Email::builder()
            .from(sender)
            .to("x@example.org")
            .subject("spelled")
            .build()
            .unwrap()
    };
    let mut keys = Vec::new();
    for (email, options) in [
        (from("Ann@Bücher.de"), EnqueueOptions::new()),
        (from("ann@XN--BCHER-KVA.DE"), EnqueueOptions::new()),
        (
            email("x@example.org", "named"),
            EnqueueOptions::new().mailbox("ann@bücher.de"),
        ),
        (from("Jürgen@bücher.de"), EnqueueOptions::new()),
        (
            email("x@example.org", "named"),
            EnqueueOptions::new().mailbox("JüRGEN@BÜCHER.DE"),
        ),
    ] {
        let id = queue.enqueue(&email, options).await.unwrap();
        keys.push(row(&queue, id.as_str()).await.mailbox);
    }
    let unnamed = Email::builder().to("x@example.org").build().unwrap();
    let defaulted = queue.clone().with_default_mailbox("JüRGEN@Bücher.DE");
    let id = defaulted
        .enqueue(&unnamed, EnqueueOptions::new())
        .await
        .unwrap();
    keys.push(row(&queue, id.as_str()).await.mailbox);
    assert_eq!(keys[0], keys[1], "{keys:?}");
    assert_eq!(keys[0], keys[2], "{keys:?}");
    assert_eq!(keys[3], keys[4], "{keys:?}");
    assert_eq!(keys[3], keys[5], "{keys:?}");
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.mailboxes.len(), 2, "{stats:?}");
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

/// The longest idempotency key, 255 bytes (in any characters), is kept, and finds its first
/// message again; a byte more, or a control character, is refused naming the option and its
/// limits, and nothing is stored.
async fn an_idempotency_key_of_255_bytes_is_kept_and_a_longer_one_refused(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    // 253 bytes of ASCII and a two-byte letter: 255 bytes, 254 characters.
    let longest = format!("{}é", "k".repeat(253));
    let keyed = |key: &str| EnqueueOptions::new().idempotency_key(key);
    let first = queue
        .enqueue(&email("a@example.org", "longest"), keyed(&longest))
        .await
        .unwrap();
    let again = queue
        .enqueue(&email("a@example.org", "again"), keyed(&longest))
        .await
        .unwrap();
    assert_eq!(first, again);
    for bad in [
        format!("{}é", "k".repeat(254)),
        "k".repeat(256),
        "k\n1".into(),
    ] {
        let error = queue
            .enqueue(&email("a@example.org", "bad"), keyed(&bad))
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("idempotency_key"), "{message}");
        assert!(message.contains("1 to 255 bytes"), "{message}");
    }
    assert_eq!(count(&queue, State::Queued).await, 1);
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
