//! `mailctl` with `queue_url`: send enqueues and prints the id (an idempotency key makes a
//! second send a no-op), `worker --once` delivers, `queue status|list|retry|cancel|purge`
//! operate, with `--json` where scripts read the output, and errors say their fix.

use std::process::{Command, Output};

fn mailctl(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailctl"))
        .args(args)
        .current_dir(dir)
        .env_remove("MAIL_CONNECTOR_CONFIG")
        .env(
            "MAIL_CONNECTOR_QUEUE_URL",
            format!("sqlite://{}", dir.join("q.db").display()),
        )
        .env("MAIL_CONNECTOR_OUTBOX_DIR", dir.join("outbox"))
        .env("MAIL_CONNECTOR_USER_NAME", "no-reply@example.org")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn send_enqueues_worker_delivers_and_queue_commands_operate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let send = [
        "send",
        "--to",
        "ann@example.org",
        "--subject",
        "Hi",
        "--text",
        "x",
    ];
    let keyed: Vec<&str> = send
        .iter()
        .copied()
        .chain(["--idempotency-key", "k1"])
        .collect();
    let first = stdout(&mailctl(path, &keyed)).trim().to_owned();
    let again = stdout(&mailctl(path, &keyed)).trim().to_owned();
    assert_eq!(first, again);
    assert_eq!(first.len(), 36, "a UUID alone: {first}");
    let other = stdout(&mailctl(path, &send)).trim().to_owned();
    assert_ne!(first, other);
    assert!(!path.join("outbox").exists());

    let status: serde_json::Value =
        serde_json::from_str(&stdout(&mailctl(path, &["queue", "status", "--json"]))).unwrap();
    assert_eq!(status["states"]["queued"], 2);
    assert_eq!(status["mailboxes"][0]["mailbox"], "no-reply@example.org");
    assert!(status["oldest_due"]["id"].is_string());

    stdout(&mailctl(path, &["queue", "cancel", &other]));
    let worker = mailctl(path, &["worker", "--once"]);
    let log = String::from_utf8_lossy(&worker.stderr).to_string();
    assert!(worker.status.success() && log.contains("1 sent"), "{log}");
    assert_eq!(std::fs::read_dir(path.join("outbox")).unwrap().count(), 1);

    let listed: serde_json::Value = serde_json::from_str(&stdout(&mailctl(
        path,
        &["queue", "list", "--state", "sent", "--json"],
    )))
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], first.as_str());
    assert_eq!(listed[0]["recipients"], "To: ann@example.org");
    let text = stdout(&mailctl(path, &["queue", "list"]));
    assert!(text.contains(&format!("{other}\tcancelled")), "{text}");

    // A sent message cannot be retried: exit 1, the error and what to do.
    let retry = mailctl(path, &["queue", "retry", &first]);
    assert_eq!(retry.status.code(), Some(1));
    let error = String::from_utf8_lossy(&retry.stderr);
    assert!(error.contains("is sent"), "{error}");

    let purged = stdout(&mailctl(
        path,
        &[
            "queue",
            "purge",
            "--state",
            "cancelled",
            "--older-than",
            "0s",
        ],
    ));
    assert!(purged.contains("purged 1"), "{purged}");
    let bad = mailctl(
        path,
        &["queue", "purge", "--state", "sent", "--older-than", "5"],
    );
    assert_eq!(
        bad.status.code(),
        Some(2),
        "clap refuses a duration without unit"
    );
}
