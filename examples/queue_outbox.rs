//! The transactional outbox: an order and its confirmation email commit together, or
//! neither does; a worker delivers the email later, within the mailbox's limits.
//!
//! ```sh
//! DATABASE_URL=postgres://app:secret@localhost/shop \
//!   cargo run --example queue_outbox --features queue-postgres
//! ```
//!
//! Without `DATABASE_URL` it prints what it would do and exits.

use mail_connector::queue::sqlx::{self, PgPool};
use mail_connector::queue::{EnqueueOptions, PostgresStore, Queue, Worker};
use mail_connector::{Email, OutboxTransport};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("set DATABASE_URL=postgres://… to run this example against your database");
        return Ok(());
    };
    let pool = PgPool::connect(&url).await?;
    // Once, at start-up: creates the schema `mail_queue` when missing.
    let store = PostgresStore::from_pool(pool.clone()).await?;
    // Emails that name no `From` count against the sender mailbox's limits (with settings:
    // `settings.queue()`, whose default mailbox is `user_name`).
    let queue = Queue::new(store).with_default_mailbox("no-reply@example.org");
    sqlx::query("CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, email TEXT NOT NULL)")
        .execute(&pool)
        .await?;

    // In the request handler: the order and its email in one transaction.
    let order_id: i64 = 42;
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO orders (id, email) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(order_id)
        .bind("ann@example.org")
        .execute(&mut *tx)
        .await?;
    let email = Email::builder()
        .to("ann@example.org")
        .subject(format!("Order {order_id} confirmed"))
        .text("Thank you for your order.")
        .build()?;
    // The key makes a retried request enqueue nothing new.
    let options = EnqueueOptions::new().idempotency_key(format!("order-{order_id}-confirmation"));
    let id = queue.enqueue_in(&mut tx, &email, options).await?;
    tx.commit().await?;
    println!("order {order_id} stored; confirmation queued as {id}");

    // In a worker process (or `mailctl worker`): deliver. Here to .eml files in ./outbox.
    let report = Worker::new(&queue, OutboxTransport::new("outbox"))
        .run_once()
        .await?;
    println!("delivered {} message(s) into ./outbox", report.sent);
    Ok(())
}
