//! An enqueue whose answer was lost (the connection broke as PostgreSQL committed the
//! `INSERT`, or a batch's `COMMIT`): the id was made before the statement was sent, so the
//! enqueue looks the row up once the database answers and says plainly whether the email is
//! queued. Only when it cannot look is the outcome uncertain, and then it names the id.

use std::sync::atomic::Ordering;

use mail_connector::Delivery;
use mail_connector::queue::sqlx::{Connection, PgConnection};
use mail_connector::queue::{EnqueueOptions, Queue, State, enqueue_in};

use crate::helpers::{email, row};
use crate::proxy::{COMMIT, INSERT, Proxy, through_proxy};

async fn stored(direct: &Queue) -> usize {
    direct.list(None, 100).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_whose_answer_was_lost_after_it_was_stored_is_queued() {
    let (proxy, queue, direct) = through_proxy().await;
    proxy.lose_answer_to(INSERT);
    let id = queue
        .enqueue(&email("x@example.org", "lost"), EnqueueOptions::new())
        .await
        .expect("stored: the lookup says so");
    assert!(proxy.cut(), "an insert's answer was cut");
    assert_eq!(row(&direct, id.as_str()).await.state, State::Queued);
    assert_eq!(stored(&direct).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_lost_before_the_database_had_it_is_not_queued_and_transient() {
    let (proxy, queue, direct) = through_proxy().await;
    proxy.lose(INSERT);
    let error = queue
        .enqueue(
            &email("x@example.org", "lost"),
            EnqueueOptions::new().idempotency_key("k-1"),
        )
        .await
        .unwrap_err();
    assert!(proxy.cut(), "an insert was cut");
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("not found"), "{error}");
    assert_eq!(stored(&direct).await, 0);
}

/// Without an idempotency key, not found is not "not stored": the statement may still be
/// running on the server, to commit after the look, and enqueueing again could store the
/// email twice. Uncertain, naming the id to look for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_lost_and_not_found_without_a_key_is_uncertain() {
    let (proxy, queue, direct) = through_proxy().await;
    proxy.lose(INSERT);
    let error = queue
        .enqueue(&email("x@example.org", "lost"), EnqueueOptions::new())
        .await
        .unwrap_err();
    assert!(proxy.cut(), "an insert was cut");
    assert_eq!(error.delivery(), Delivery::Uncertain, "{error}");
    assert!(!error.is_transient(), "{error}");
    assert!(error.to_string().contains("not found"), "{error}");
    assert!(
        error.remedy().unwrap().contains("mailctl queue list"),
        "{error:?}"
    );
    assert_eq!(stored(&direct).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_that_cannot_be_looked_up_is_uncertain_and_names_its_id() {
    let (proxy, queue, direct) = through_proxy().await;
    proxy.down_after_cut.store(true, Ordering::SeqCst);
    proxy.lose_answer_to(INSERT);
    let error = queue
        .enqueue(&email("x@example.org", "lost"), EnqueueOptions::new())
        .await
        .unwrap_err();
    assert!(
        proxy.down.load(Ordering::SeqCst),
        "an insert's answer was cut"
    );
    assert_eq!(error.delivery(), Delivery::Uncertain, "{error}");
    assert!(
        !error.is_transient(),
        "enqueueing again could store it twice"
    );
    let listed = direct.list(None, 100).await.unwrap();
    assert_eq!(listed.len(), 1, "the insert committed");
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains(&listed[0].id), "{remedy}");
    assert!(remedy.contains("mailctl queue list"), "{remedy}");
}

/// With an idempotency key, enqueueing again is safe: an enqueue that cannot be looked up
/// is transient, its remedy says to enqueue again with the same key, and doing so stores
/// the email once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_enqueue_that_cannot_be_looked_up_is_transient_and_safe_to_repeat() {
    let (proxy, queue, direct) = through_proxy().await;
    proxy.down_after_cut.store(true, Ordering::SeqCst);
    proxy.lose_answer_to(INSERT);
    let keyed = || EnqueueOptions::new().idempotency_key("k-lost");
    let error = queue
        .enqueue(&email("x@example.org", "lost"), keyed())
        .await
        .unwrap_err();
    assert!(
        proxy.down.load(Ordering::SeqCst),
        "an insert's answer was cut"
    );
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("same idempotency key"), "{remedy}");
    let again = direct
        .enqueue(&email("x@example.org", "lost"), keyed())
        .await
        .unwrap();
    let listed = direct.list(None, 100).await.unwrap();
    assert_eq!(listed.len(), 1, "stored once");
    assert_eq!(listed[0].id, again.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_commit_lost_its_answer_is_queued() {
    let (proxy, queue, direct) = through_proxy().await;
    proxy.lose_answer_to(COMMIT);
    let emails = [
        (email("a@example.org", "one"), EnqueueOptions::new()),
        (email("b@example.org", "two"), EnqueueOptions::new()),
    ];
    let ids = queue
        .enqueue_batch(&emails)
        .await
        .expect("stored: the lookup says so");
    assert!(proxy.cut(), "the batch's commit was cut");
    for id in ids {
        assert_eq!(row(&direct, id.as_str()).await.state, State::Queued);
    }
    assert_eq!(stored(&direct).await, 2);
}

/// In the application's transaction a lost answer loses the transaction, and the email
/// with it: certainly not queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_enqueue_in_a_transaction_whose_answer_was_lost_is_not_queued() {
    let url = crate::postgres::database().await;
    let direct = Queue::open(&url).await.unwrap();
    let (proxy, proxied) = Proxy::start(&url).await;
    let mut conn = PgConnection::connect(&proxied).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    proxy.lose_answer_to(INSERT);
    let error = enqueue_in(
        &mut tx,
        &email("x@example.org", "lost"),
        EnqueueOptions::new(),
    )
    .await
    .unwrap_err();
    assert!(proxy.cut(), "an insert's answer was cut");
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    assert!(error.is_transient(), "{error}");
    drop(tx);
    assert_eq!(stored(&direct).await, 0);
}
