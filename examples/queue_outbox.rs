//! The transactional outbox: an order and its confirmation email commit together, or
//! neither does; a worker delivers the email later, within the mailbox's limits.
//!
//! ```sh
//! DATABASE_URL=postgres://app:secret@localhost/shop \
//!   cargo run --example queue_outbox --features queue-postgres
//! ```
//!
//! Without `DATABASE_URL` it says what to set and exits.

use mail_connector::queue::sqlx::{self, PgPool};
use mail_connector::queue::{EnqueueOptions, PostgresStore, Queue, Worker};
use mail_connector::{Email, Mailbox, OutboxTransport};

/// The mailbox mail is sent from (with settings: `user_name`).
const SENDER: &str = "no-reply@example.org";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("set DATABASE_URL=postgres://… to run this example against your database");
        return Ok(());
    };
    let pool = PgPool::connect(&url).await?;
    // Once, at start-up: creates the schema `mail_queue` when missing.
    let store = PostgresStore::from_pool(pool.clone()).await?;
    // Emails that name no `From` count against the sender mailbox's sending limits (with
    // settings: `settings.queue()`, whose default mailbox is `user_name`). This names the
    // limits only; the transport sends as its own mailbox.
    let queue = Queue::new(store).with_default_mailbox(SENDER);
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

    // In a worker process (or `mailctl worker`): deliver. Here to .eml files in ./outbox,
    // as the sender mailbox (a Graph or SMTP transport has its own).
    let outbox = OutboxTransport::new("outbox").with_sender(SENDER.parse::<Mailbox>()?);
    let report = Worker::new(&queue, outbox).run_once().await?;
    println!(
        "written to ./outbox: {}; queued again: {}; failed: {}; uncertain: {}",
        report.sent, report.retried, report.failed, report.uncertain
    );
    // A failed message keeps its error in the queue: `mailctl queue list --state failed`.
    if report.failed > 0 || report.uncertain > 0 {
        return Err("some mail was not delivered; see `mailctl queue list`".into());
    }
    Ok(())
}
