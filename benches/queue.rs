//! The queue's enqueue throughput on SQLite and PostgreSQL — one at a time and in batches of
//! 100 — against a plain `INSERT` of the same bytes (the floor), and a worker's delivery
//! throughput to an in-process sink with the limits lifted, against calling the sink in a
//! loop. PostgreSQL is the throwaway loopback cluster the tests use (tests/support/postgres.rs;
//! it needs Debian's `postgresql` package).
//!
//! Run: `cargo bench --bench queue --features queue-sqlite,queue-postgres`
//!
//! Criterion prints messages per second (`thrpt`) for each variant; divide the queue's by
//! its floor for the ratios.

#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mail_connector::queue::sqlx::{self, Connection, PgConnection, SqliteConnection};
use mail_connector::queue::{EnqueueOptions, MailboxLimits, Queue, Worker};
use mail_connector::{Email, MailTransport, StubTransport};

const BATCH: usize = 100;

/// The floor's two benches, on a connection of either database: the same bytes, a plain
/// `INSERT` one at a time and in batches (one text for both, so the floors stay comparable).
macro_rules! floor_benches {
    ($group:ident, $rt:ident, $conn:ident, $bytes:ident) => {
        let conn = tokio::sync::Mutex::new($conn);
        $group.throughput(Throughput::Elements(1));
        $group.bench_function("plain INSERT, one at a time", |b| {
            b.to_async(&$rt).iter(|| async {
                sqlx::query("INSERT INTO floor VALUES ($1, $2)")
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(&$bytes)
                    .execute(&mut *conn.lock().await)
                    .await
                    .unwrap()
            });
        });
        $group.throughput(Throughput::Elements(BATCH as u64));
        $group.bench_function("plain INSERT, batches of 100", |b| {
            b.to_async(&$rt).iter(|| async {
                let mut conn = conn.lock().await;
                let mut tx = conn.begin().await.unwrap();
                for _ in 0..BATCH {
                    sqlx::query("INSERT INTO floor VALUES ($1, $2)")
                        .bind(uuid::Uuid::new_v4().to_string())
                        .bind(&$bytes)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            });
        });
    };
}

fn email() -> Email {
    Email::builder()
        .from("no-reply@example.org")
        .to("ann@example.org")
        .subject("Benchmark")
        .text("A short notification body.\n".repeat(40))
        .build()
        .expect("email")
}

/// The bytes the queue stores for `email()`, for the floor.
fn stored_bytes() -> Vec<u8> {
    serde_json::to_vec(&email()).expect("json")
}

const FLOOR_TABLE: &str = "CREATE TABLE floor (id TEXT PRIMARY KEY, body BYTEA NOT NULL)";

fn enqueue(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let floor_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("floor.db").display()
    );
    let pg_url = rt.block_on(postgres::database());
    let pg_floor_url = rt.block_on(postgres::database());
    let email = email();
    let bytes = stored_bytes();

    for (name, url, floor) in [
        ("sqlite", &sqlite_url, &floor_url),
        ("postgres", &pg_url, &pg_floor_url),
    ] {
        let queue = rt.block_on(Queue::open(url)).expect("queue");
        let mut group = c.benchmark_group(format!("enqueue/{name}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));

        group.throughput(Throughput::Elements(1));
        group.bench_function("queue, one at a time", |b| {
            b.to_async(&rt)
                .iter(|| async { queue.enqueue(&email, EnqueueOptions::new()).await.unwrap() });
        });
        let batch: Vec<(Email, EnqueueOptions)> = (0..BATCH)
            .map(|_| (email.clone(), EnqueueOptions::new()))
            .collect();
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function("queue, batches of 100", |b| {
            b.to_async(&rt)
                .iter(|| async { queue.enqueue_batch(&batch).await.unwrap() });
        });

        // The floor: the same bytes, a plain INSERT on one connection.
        if name == "sqlite" {
            let mut conn = rt
                .block_on(SqliteConnection::connect(floor))
                .expect("floor");
            rt.block_on(sqlx::query("PRAGMA journal_mode = WAL").execute(&mut conn))
                .unwrap();
            rt.block_on(sqlx::query(FLOOR_TABLE).execute(&mut conn))
                .unwrap();
            floor_benches!(group, rt, conn, bytes);
        } else {
            let mut conn = rt.block_on(PgConnection::connect(floor)).expect("floor");
            rt.block_on(sqlx::query(FLOOR_TABLE).execute(&mut conn))
                .unwrap();
            floor_benches!(group, rt, conn, bytes);
        }
        group.finish();
    }
}

fn deliver(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let sqlite_url = format!("sqlite://{}", dir.path().join("deliver.db").display());
    let pg_url = rt.block_on(postgres::database());
    let batch: Vec<(Email, EnqueueOptions)> = (0..BATCH)
        .map(|_| (email(), EnqueueOptions::new()))
        .collect();
    let mut group = c.benchmark_group("deliver");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(BATCH as u64));
    // The floor: the sink called in a loop, no queue.
    let sink = StubTransport::new();
    let email = email();
    group.bench_function("sink called directly", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..BATCH {
                sink.send(&email).await.unwrap();
            }
        });
    });
    for (name, url) in [("sqlite", &sqlite_url), ("postgres", &pg_url)] {
        let queue = rt.block_on(Queue::open(url)).expect("queue");
        let worker = Worker::new(&queue, StubTransport::new())
            .with_limits(MailboxLimits::unlimited())
            .with_concurrency(16)
            .with_retention(None);
        group.bench_function(format!("worker on {name}, limits lifted"), |b| {
            b.to_async(&rt).iter_custom(|iterations| {
                let queue = queue.clone();
                let worker = worker.clone();
                let batch = batch.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        queue.enqueue_batch(&batch).await.unwrap();
                        let start = std::time::Instant::now();
                        let report = worker.run_once().await.unwrap();
                        total += start.elapsed();
                        assert_eq!(report.sent, BATCH as u64);
                    }
                    total
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, enqueue, deliver);
criterion_main!(benches);
