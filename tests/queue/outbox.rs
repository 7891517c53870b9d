//! The transactional outbox on PostgreSQL: the email commits or rolls back with the
//! application's own data, in the application's transaction.

use mail_connector::queue::sqlx::{self, Connection, PgConnection};
use mail_connector::queue::{EnqueueOptions, PostgresStore, Queue, State, enqueue_in};

use crate::helpers::{count, email};

#[tokio::test]
async fn the_email_commits_and_rolls_back_with_the_callers_transaction() {
    let url = crate::postgres::database().await;
    let queue = Queue::new(PostgresStore::open(&url).await.unwrap());
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE orders (id BIGINT PRIMARY KEY)")
        .execute(&mut conn)
        .await
        .unwrap();

    let mut tx = conn.begin().await.unwrap();
    sqlx::query("INSERT INTO orders VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let id = enqueue_in(
        &mut tx,
        &email("a@example.org", "order 1"),
        EnqueueOptions::new(),
    )
    .await
    .unwrap();
    // Not visible to the queue before the commit.
    assert_eq!(count(&queue, State::Queued).await, 0);
    tx.commit().await.unwrap();
    assert_eq!(count(&queue, State::Queued).await, 1);
    assert_eq!(
        crate::helpers::row(&queue, id.as_str()).await.subject,
        "order 1"
    );

    let mut tx = conn.begin().await.unwrap();
    sqlx::query("INSERT INTO orders VALUES (2)")
        .execute(&mut *tx)
        .await
        .unwrap();
    enqueue_in(
        &mut tx,
        &email("a@example.org", "order 2"),
        EnqueueOptions::new(),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(&queue, State::Queued).await, 1);
    let (orders,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(orders, 1);
}

/// Opening the store on the application's pool leaves the pool's sessions as the
/// application set them up: the migration runs on a connection of its own.
#[tokio::test]
async fn from_pool_keeps_the_applications_search_path() {
    let url = crate::postgres::database().await;
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("CREATE SCHEMA app")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET search_path TO app")
                    .execute(conn)
                    .await
                    .map(drop)
            })
        })
        .connect(&url)
        .await
        .unwrap();
    let store = PostgresStore::from_pool(pool.clone()).await.unwrap();
    let (path,): (String,) = sqlx::query_as("SHOW search_path")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(path, "app");
    let queue = Queue::new(store);
    queue
        .enqueue(&email("a@example.org", "after"), EnqueueOptions::new())
        .await
        .unwrap();
    assert_eq!(count(&queue, State::Queued).await, 1);
}

/// Through the queue the settings open, the outbox's emails count against the transport's
/// own mailbox, as the queue's other emails do; through the free function, an email with no
/// `From` counts against `default`.
#[tokio::test]
async fn the_queues_outbox_shares_its_default_mailbox() {
    let url = crate::postgres::database().await;
    let queue = Queue::new(PostgresStore::open(&url).await.unwrap())
        .with_default_mailbox("No-Reply@contoso.com");
    let no_from = |subject: &str| {
        mail_connector::Email::builder()
            .to("ann@example.org")
            .subject(subject)
            .text("hello")
            .build()
            .unwrap()
    };
    let enqueued = queue
        .enqueue(&no_from("enqueue"), EnqueueOptions::new())
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let outbox = queue
        .enqueue_in(&mut tx, &no_from("outbox"), EnqueueOptions::new())
        .await
        .unwrap();
    let free = enqueue_in(&mut tx, &no_from("free"), EnqueueOptions::new())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mailbox = |id: String| {
        let queue = queue.clone();
        async move { crate::helpers::row(&queue, &id).await.mailbox }
    };
    assert_eq!(mailbox(enqueued.to_string()).await, "no-reply@contoso.com");
    assert_eq!(mailbox(outbox.to_string()).await, "no-reply@contoso.com");
    assert_eq!(
        mailbox(free.to_string()).await,
        mail_connector::queue::DEFAULT_MAILBOX
    );
}

/// Enqueueing in a transaction on a database whose queue schema was never created says how
/// to create it.
#[tokio::test]
async fn an_outbox_without_the_queue_schema_says_to_open_the_queue_first() {
    let url = crate::postgres::database().await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let error = enqueue_in(
        &mut conn,
        &email("a@example.org", "no schema"),
        EnqueueOptions::new(),
    )
    .await
    .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    let remedy = error.remedy().expect("names the fix");
    assert!(remedy.contains("open the queue once"), "{remedy}");
}
