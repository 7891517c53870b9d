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
