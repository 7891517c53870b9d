//! A worker process killed with SIGKILL while deliveries are in flight: after a restart,
//! nothing is delivered twice, nothing is lost, and each message is `sent`, `queued` (not
//! yet attempted) or `uncertain` (the ones in flight when it died), counted — and so
//! `mailctl queue status` and `list` show them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mail_connector::queue::State;
use tokio::sync::mpsc;

use crate::fleet::{ChildConfig, graph_server, queue_of, spawn_worker, worker_for};
use crate::helpers::count;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_delivery_loses_nothing_and_resends_nothing() {
    const MESSAGES: usize = 20;
    const ANSWERED: usize = 3;
    const IN_FLIGHT: u32 = 4;
    let (held_tx, mut held) = mpsc::unbounded_channel();
    let (graph, seen) = graph_server(Duration::ZERO, Some(held_tx)).await;
    seen.answer_first.store(ANSWERED, Ordering::SeqCst);
    seen.hold.store(true, Ordering::SeqCst);
    let url = crate::postgres::database().await;
    let queue = queue_of(&url, MESSAGES).await;
    let config = ChildConfig {
        queue_url: &url,
        graph: &graph,
        max_in_flight: IN_FLIGHT,
        per_window: 0,
        window: Duration::from_secs(60),
        lease: Duration::from_millis(900),
    };
    let mut child = spawn_worker(&config);
    // The first three are answered; then four are held at the server, in flight.
    for _ in 0..IN_FLIGHT {
        held.recv().await.unwrap();
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(count(&queue, State::Sent).await, ANSWERED as u64);
    assert_eq!(count(&queue, State::Sending).await, u64::from(IN_FLIGHT));
    assert_eq!(
        count(&queue, State::Queued).await,
        (MESSAGES - ANSWERED) as u64 - u64::from(IN_FLIGHT)
    );

    // Restart: the dead worker's leases run out (uncertain); the rest is delivered.
    seen.hold.store(false, Ordering::SeqCst);
    let report = worker_for(&queue, &graph, &config)
        .run_once()
        .await
        .unwrap();
    let delivered_now = MESSAGES - ANSWERED - IN_FLIGHT as usize;
    assert_eq!(report.sent, delivered_now as u64);
    assert_eq!(
        count(&queue, State::Sent).await,
        (MESSAGES - IN_FLIGHT as usize) as u64
    );
    assert_eq!(count(&queue, State::Uncertain).await, u64::from(IN_FLIGHT));
    // Nothing was requested twice: the uncertain ones were not resent.
    let subjects = seen.subjects();
    assert_eq!(subjects.len(), MESSAGES);
    assert!(subjects.values().all(|n| *n == 1), "{subjects:?}");
    let uncertain = queue.list(Some(State::Uncertain), 100).await.unwrap();
    assert!(
        uncertain
            .iter()
            .all(|m| m.last_error.as_deref().unwrap().contains("lost its lease"))
    );

    // As `mailctl queue` shows them to the operator: counted as uncertain, each with why.
    let mailctl = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mailctl"))
            .args(args)
            .env_remove("MAIL_CONNECTOR_CONFIG")
            .env("MAIL_CONNECTOR_QUEUE_URL", &url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let status = mailctl(&["queue", "status", "--json"]);
    assert_eq!(status["states"]["uncertain"], IN_FLIGHT, "{status}");
    assert_eq!(
        status["states"]["sent"],
        MESSAGES - IN_FLIGHT as usize,
        "{status}"
    );
    for state in ["queued", "sending", "failed", "cancelled"] {
        assert_eq!(status["states"][state], 0, "{status}");
    }
    let listed = mailctl(&["queue", "list", "--state", "uncertain", "--json"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), IN_FLIGHT as usize);
    let uncertain_ids: Vec<String> = uncertain.iter().map(|m| m.id.clone()).collect();
    for message in listed {
        assert!(
            uncertain_ids.contains(&message["id"].as_str().unwrap().to_owned()),
            "{message}"
        );
        let error = message["last_error"].as_str().unwrap();
        assert!(error.contains("lost its lease"), "{error}");
        assert_eq!(message["attempts"], 1, "{message}");
        let remedy = message["remedy"].as_str().unwrap();
        assert!(remedy.contains("before any resend"), "{remedy}");
    }
}
