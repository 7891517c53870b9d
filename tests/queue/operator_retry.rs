//! An operator's retry of an `uncertain` message waits one lease after its lease ran out:
//! until then its worker, stalled past the lease, may still be sending it, and records the
//! send's real outcome when it ends — a retry meanwhile would lose that and could deliver
//! the email twice. On both stores, and as `mailctl queue retry` shows it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use mail_connector::queue::{
    Claim, ClaimRequest, ClaimedMessage, EnqueueOptions, MailboxLimits, Outcome, Queue, State,
};

use crate::helpers::{Backend, count, email, on_both_stores, open_with_url, row};

on_both_stores!(a_retry_waits_a_lease_after_the_lease_ran_out);

const LEASE: Duration = Duration::from_secs(60);

/// Moves every stored lease back by `by`, as if that much time had passed: on the SQLite
/// file in `dir`, or on the PostgreSQL database at `url`.
async fn leases_age(dir: Option<&Path>, url: Option<&str>, by: Duration) {
    let ms = i64::try_from(by.as_millis()).unwrap();
    match (dir, url) {
        (_, Some(url)) => crate::helpers::server_clock_passes(Some(url), by).await,
        (Some(dir), None) => {
            let url = format!("sqlite://{}", dir.join("queue.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query("UPDATE mail_queue SET lease_until = lease_until - $1")
                .bind(ms)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        (None, None) => unreachable!("a queue is on one store or the other"),
    }
}

/// Claims every due message with [`LEASE`].
async fn claim_all(queue: &Queue) -> Vec<ClaimedMessage> {
    let mut claimed = Vec::new();
    let request = || ClaimRequest::new("stalled", SystemTime::now(), LEASE, MailboxLimits::graph());
    while let Claim::Message(message) = queue.store().claim(&request()).await.unwrap() {
        claimed.push(*message);
    }
    claimed
}

fn sent() -> Outcome {
    Outcome::Sent {
        report: "{}".into(),
    }
}

async fn a_retry_waits_a_lease_after_the_lease_ran_out(backend: Backend) {
    let (queue, guard, url) = open_with_url(backend).await;
    let dir = guard.as_ref().map(tempfile::TempDir::path);
    let mut ids = Vec::new();
    for subject in ["a", "b"] {
        let options = EnqueueOptions::new();
        ids.push(
            queue
                .enqueue(&email("x@example.org", subject), options)
                .await
                .unwrap(),
        );
    }
    let stalled = claim_all(&queue).await;
    assert_eq!(stalled.len(), 2);
    let lease_of = |id: &str| &stalled.iter().find(|m| m.lease.id == id).unwrap().lease;
    let (a, b) = (ids[0].as_str(), ids[1].as_str());

    // Their leases ran out a second ago: the next claim makes them uncertain.
    leases_age(dir, url.as_deref(), LEASE + Duration::from_secs(1)).await;
    assert!(claim_all(&queue).await.is_empty());
    assert_eq!(count(&queue, State::Uncertain).await, 2);

    let refused = queue.retry(a).await.unwrap_err();
    assert!(!refused.is_transient());
    assert!(
        refused.to_string().contains("may still be sending it"),
        "{refused}"
    );
    let remedy = refused.remedy().unwrap();
    assert!(
        remedy.starts_with("wait ") && remedy.contains("s (one lease"),
        "{remedy}"
    );
    assert_eq!(row(&queue, a).await.state, State::Uncertain);

    // Its worker comes back: the real outcome is recorded, not lost to the retry.
    let store = queue.store();
    assert!(
        store
            .finish(lease_of(a), sent(), SystemTime::now())
            .await
            .unwrap()
    );
    assert_eq!(row(&queue, a).await.state, State::Sent);

    // A lease after its lease ran out, no send of b can still be running: retry goes.
    assert!(queue.retry(b).await.is_err());
    leases_age(dir, url.as_deref(), LEASE).await;
    queue.retry(b).await.unwrap();
    assert_eq!(row(&queue, b).await.state, State::Queued);
    assert!(
        !store
            .finish(lease_of(b), sent(), SystemTime::now())
            .await
            .unwrap()
    );
}

/// `mailctl queue retry` prints the refusal and how long to wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailctl_retry_says_how_long_to_wait() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let queue = Queue::open(&url).await.unwrap();
    let options = EnqueueOptions::new();
    let id = queue
        .enqueue(&email("x@example.org", "a"), options)
        .await
        .unwrap();
    assert_eq!(claim_all(&queue).await.len(), 1);
    leases_age(Some(dir.path()), None, LEASE + Duration::from_secs(1)).await;
    assert!(claim_all(&queue).await.is_empty());

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mailctl"))
        .args(["queue", "retry", id.as_str()])
        .env_remove("MAIL_CONNECTOR_CONFIG")
        .env("MAIL_CONNECTOR_QUEUE_URL", &url)
        .env("MAIL_CONNECTOR_OUTBOX_DIR", dir.path().join("outbox"))
        .env("MAIL_CONNECTOR_USER_NAME", "no-reply@example.org")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("may still be sending it"), "{stderr}");
    assert!(
        stderr.contains("wait ") && stderr.contains("one lease"),
        "{stderr}"
    );
    assert_eq!(row(&queue, id.as_str()).await.state, State::Uncertain);
}
