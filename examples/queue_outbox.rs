//! The transactional outbox: an order and its confirmation email commit together, or
//! neither does; a worker delivers the email later, within the mailbox's limits.
//!
//! ```sh
//! DATABASE_URL=postgres://app:secret@localhost/shop \
//!   cargo run --example queue_outbox --features queue-postgres
//! ```
//!
//! Without `DATABASE_URL` it says what to set and exits with code 2; a database it cannot
//! use is an `error:` line and a `fix:` line, and exit code 1. Copied into a service, it
//! needs `mail-connector` with the feature `queue-postgres`, and `tokio` (the README's
//! `[dependencies]`); sqlx comes with the crate, as `mail_connector::queue::sqlx`.

use std::process::ExitCode;

use mail_connector::queue::sqlx::{self, PgPool, postgres::PgPoolOptions};
use mail_connector::queue::{EnqueueOptions, PostgresStore, Queue, Worker};
use mail_connector::{Email, Mailbox, OutboxTransport};

/// The mailbox mail is sent from (with settings: `user_name`).
const SENDER: &str = "no-reply@example.org";

/// The service's own errors and the crate's alike; the crate's carry their fix.
type BoxError = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("set DATABASE_URL=postgres://… to run this example against your database");
        return ExitCode::from(2);
    };
    // The service's own pool, opened lazily: the store's first connection (below) says at
    // once when the server refuses it, and what to fix, where `PgPool::connect` would try
    // again for its whole 30 s acquire timeout before saying anything.
    let pool = match PgPoolOptions::new().max_connections(5).connect_lazy(&url) {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("error: DATABASE_URL cannot be read: {error}");
            eprintln!("fix: set DATABASE_URL=postgres://user:password@host/database");
            return ExitCode::from(2);
        }
    };
    let outcome = run(&pool).await;
    // A service closes its pool when it shuts down, whatever happened: the server sees its
    // sessions end rather than dropped connections.
    pool.close().await;
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // Every error says what went wrong (never the URL or its password); the crate's
            // say what to do about it, too, naming the URL as its setting does (`queue_url`):
            // here that is DATABASE_URL.
            eprintln!("error: {error}");
            let remedy = error
                .downcast_ref::<mail_connector::Error>()
                .and_then(mail_connector::Error::remedy);
            if let Some(remedy) = remedy {
                eprintln!("fix: {remedy}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Stores an order with its email in one transaction, then delivers what is due.
async fn run(pool: &PgPool) -> Result<ExitCode, BoxError> {
    // Once, at start-up: creates the schema `mail_queue` when missing.
    let store = PostgresStore::from_pool(pool.clone()).await?;
    // Emails that name no `From` count against the sender mailbox's sending limits (with
    // settings: `settings.queue()`, whose default mailbox is `user_name`). This names the
    // limits only; the transport sends as its own mailbox.
    let queue = Queue::new(store).with_default_mailbox(SENDER);
    sqlx::query("CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, email TEXT NOT NULL)")
        .execute(pool)
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
        eprintln!("error: some mail was not delivered");
        eprintln!("fix: see why with `mailctl queue list --state failed` (or `uncertain`)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
