//! A message enqueued for later (`EnqueueOptions::not_before`) gets its retries when it
//! falls due: the age limit counts from its due time, not from when it was enqueued, or a
//! reminder scheduled for tomorrow would fail at its first transient error.

use std::time::{Duration, SystemTime};

use mail_connector::RetryPolicy;
use mail_connector::queue::{EnqueueOptions, Queue, State, Worker};

use crate::helpers::{Backend, Scripted, email, on_both_stores, row, transient};

on_both_stores!(a_scheduled_message_is_retried_within_its_age_limit_from_when_it_fell_due);

/// A queue on a fresh database of `backend`, with its URL (for [`time_passes`]).
async fn open(backend: Backend) -> (Queue, String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("queue.db").display());
            (Queue::open(&url).await.unwrap(), url, Some(dir))
        }
        Backend::Postgres => {
            let url = crate::postgres::database().await;
            (Queue::open(&url).await.unwrap(), url, None)
        }
    }
}

/// `by` passes for the queue: every time it stored moves back by `by`, as if the message had
/// been enqueued that much earlier (neither store's clock can be set by a test).
async fn time_passes(backend: Backend, url: &str, by: Duration) {
    use mail_connector::queue::sqlx::{Connection, PgConnection, SqliteConnection};
    let ms = i64::try_from(by.as_millis()).unwrap();
    let times = "due_at = due_at - $1, created_at = created_at - $1, \
                 updated_at = updated_at - $1, retry_from = retry_from - $1";
    match backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnection::connect(url).await.unwrap();
            mail_connector::queue::sqlx::query(&format!("UPDATE mail_queue SET {times}"))
                .bind(ms)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Backend::Postgres => {
            let mut conn = PgConnection::connect(url).await.unwrap();
            mail_connector::queue::sqlx::query(&format!("UPDATE mail_queue.messages SET {times}"))
                .bind(ms)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// Enqueued for an hour from now, with a 30-minute age limit: when the hour has passed and
/// its first attempt fails for a moment, it is retried and sent — not failed for being
/// older than the age limit since it was enqueued.
async fn a_scheduled_message_is_retried_within_its_age_limit_from_when_it_fell_due(
    backend: Backend,
) {
    let (queue, url, _guard) = open(backend).await;
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    let id = queue
        .enqueue(
            &email("ann@example.org", "reminder"),
            EnqueueOptions::new().not_before(in_an_hour),
        )
        .await
        .unwrap();
    time_passes(backend, &url, Duration::from_secs(3600)).await;

    let transport = Scripted::new(vec![Err(transient())]);
    let report = Worker::new(&queue, transport.clone())
        .with_retry(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            multiplier: 1.0,
            deadline: Some(Duration::from_secs(30 * 60)),
        })
        .run_once()
        .await
        .unwrap();

    let message = row(&queue, id.as_str()).await;
    assert_eq!(message.state, State::Sent, "{message:?}");
    assert_eq!((report.retried, report.sent, report.failed), (1, 1, 0));
    assert_eq!(message.attempts, 2);
    assert_eq!(transport.seen().len(), 2);
}
