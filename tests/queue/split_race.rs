//! PostgreSQL: an operator who moves a message on while its worker records a partial
//! delivery wins, and the worker's outcome leaves nothing behind — not even the messages it
//! would have split off. The worker's `finish` is held at the message's row lock while the
//! operator's change commits, so the race is played in one order, every time.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mail_connector::queue::{EnqueueOptions, Worker};
use mail_connector::{
    CheckReport, Email, MailTransport, Result, SendReport, SmtpTransport, async_trait,
};
use sqlx::{Connection, PgConnection};

use crate::helpers::{Backend, open_with_url, partial_delivery, smtp_to};

/// Sends through `inner`, then, before the worker records the outcome, locks every message
/// row in a transaction of its own, left open in `held`; `pid` is that connection's backend.
struct LockAfterSend {
    inner: SmtpTransport,
    url: String,
    held: Arc<Mutex<Option<PgConnection>>>,
    pid: Arc<OnceLock<i32>>,
}

#[async_trait]
impl MailTransport for LockAfterSend {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        let result = self.inner.send(email).await;
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        sqlx::query("SELECT id FROM mail_queue.messages FOR UPDATE")
            .execute(&mut conn)
            .await
            .unwrap();
        *self.held.lock().unwrap() = Some(conn);
        self.pid.set(pid).unwrap();
        result
    }

    async fn check(&self) -> Result<CheckReport> {
        self.inner.check().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_delivery_recorded_after_its_lease_was_lost_splits_off_nothing() {
    // ann gets it, busy stays in the message to retry, gone would be split off.
    let (server, email) = partial_delivery("race").await;
    let (queue, _guard, url) = open_with_url(Backend::Postgres).await;
    let url = url.unwrap();
    let id = queue.enqueue(&email, EnqueueOptions::new()).await.unwrap();
    let held = Arc::new(Mutex::new(None));
    let pid = Arc::new(OnceLock::new());
    let transport = LockAfterSend {
        inner: smtp_to(&server).build().unwrap(),
        url: url.clone(),
        held: Arc::clone(&held),
        pid: Arc::clone(&pid),
    };
    let worker = {
        let queue = queue.clone();
        tokio::spawn(async move { Worker::new(&queue, transport).run_once().await })
    };

    // Wait (bounded: only a hang fails here) until the worker's `finish` waits for the lock
    // this test's own connection holds: other tests' lock waits on the server do not count.
    let mut watch = PgConnection::connect(&url).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let Some(&holder) = pid.get() else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let (waiting,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE $1 = ANY(pg_blocking_pids(pid))",
            )
            .bind(holder)
            .fetch_one(&mut watch)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the worker's finish must wait for the row lock");

    // The operator's retry, as `transition_state` does it (due tomorrow, so that this
    // worker's run ends), commits while the worker waits.
    let mut conn = held.lock().unwrap().take().expect("the lock is held");
    sqlx::query(
        "UPDATE mail_queue.messages SET state = 'queued', lease_token = NULL, \
         lease_owner = NULL, lease_until = NULL, attempts = 0, \
         due_at = due_at + 86400000 WHERE id = $1",
    )
    .bind(id.as_str())
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("the worker must end")
        .unwrap()
        .unwrap();

    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT id, state, parent_id FROM mail_queue.messages")
            .fetch_all(&mut watch)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [(id.as_str().to_owned(), "queued".to_owned(), None)],
        "the operator's change stands, and nothing was split off"
    );
}
