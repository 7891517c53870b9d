//! `mailctl` with `queue_url`: send enqueues and prints the id (an idempotency key makes a
//! second send a no-op), `worker --once` delivers, `queue status|list|retry|cancel|purge`
//! operate, with `--json` where scripts read the output, and errors say their fix.

use std::process::{Command, Output};

fn mailctl(dir: &std::path::Path, args: &[&str]) -> Output {
    mailctl_with(dir, args, &[])
}

/// `mailctl` with the queue's settings and these variables besides (an empty value removes
/// the variable).
fn mailctl_with(dir: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailctl"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("MAIL_CONNECTOR_CONFIG")
        .env(
            "MAIL_CONNECTOR_QUEUE_URL",
            format!("sqlite://{}", dir.join("q.db").display()),
        )
        .env("MAIL_CONNECTOR_OUTBOX_DIR", dir.join("outbox"))
        .env("MAIL_CONNECTOR_USER_NAME", "no-reply@example.org");
    for (name, value) in vars {
        match value.is_empty() {
            true => command.env_remove(name),
            false => command.env(name, value),
        };
    }
    command.output().unwrap()
}

/// `mailctl send` of one small message.
const SEND: [&str; 7] = [
    "send",
    "--to",
    "ann@example.org",
    "--subject",
    "Hi",
    "--text",
    "x",
];

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
    let send = SEND;
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

/// `queue retry` of several ids that all fail prints every error the same way, each with
/// its fix, not only the first.
#[test]
fn every_failed_retry_prints_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let output = mailctl(dir.path(), &["queue", "retry", "no-such-1", "no-such-2"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for id in ["no-such-1", "no-such-2"] {
        let mut lines = stderr.lines().skip_while(|l| !l.contains(id));
        let error = lines
            .next()
            .unwrap_or_else(|| panic!("no error for {id}: {stderr}"));
        assert!(error.starts_with("error: "), "{stderr}");
        let fix = lines.next().unwrap_or_default();
        assert!(
            fix.starts_with("fix: ") && fix.contains("mailctl queue list"),
            "{id}: {stderr}"
        );
    }
}

/// `send --json` that enqueued prints the document every command prints — `status`,
/// `exit_code` and `kind` — with the transport and the id `mailctl queue` takes.
#[test]
fn send_json_says_queued_with_the_kind_every_document_has() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let args: Vec<&str> = SEND.iter().copied().chain(["--json"]).collect();
    let document: serde_json::Value = serde_json::from_str(&stdout(&mailctl(path, &args))).unwrap();
    assert_eq!(document["status"], "queued", "{document}");
    assert_eq!(document["exit_code"], 0, "{document}");
    assert_eq!(document["kind"], "ok", "{document}");
    assert_eq!(document["transport"], "queue", "{document}");
    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&mailctl(path, &["queue", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["id"], document["id"], "{listed}");
}

/// A disabled connector queues nothing and delivers nothing: `send` and `worker` exit 3 with
/// the fix, and what was queued before stays queued (a worker would fail it).
#[test]
fn a_disabled_connector_neither_queues_nor_fails_queued_mail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let send = SEND;
    let queued = stdout(&mailctl(path, &send)).trim().to_owned();
    let disabled = [("MAIL_CONNECTOR_ENABLED", "false")];

    let refused = mailctl_with(path, &send, &disabled);
    assert_eq!(refused.status.code(), Some(3));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("disabled"), "{said}");
    for args in [&["worker", "--once"][..], &["worker"][..]] {
        let worker = mailctl_with(path, args, &disabled);
        let log = String::from_utf8_lossy(&worker.stderr);
        assert_eq!(worker.status.code(), Some(3), "{args:?}: {log}");
        assert!(log.contains("disabled"), "{log}");
    }

    // An operator still sees and manages the queue while the connector is disabled.
    let list = ["queue", "list", "--json"];
    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&mailctl_with(path, &list, &disabled))).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "nothing queued while disabled: {listed:?}");
    assert_eq!(listed[0]["id"], queued.as_str());
    assert_eq!(listed[0]["state"], "queued");
}

/// The settings the worker prints never carry a password written into a host.
#[test]
fn the_worker_shows_no_credentials_from_a_host() {
    let dir = tempfile::tempdir().unwrap();
    let worker = mailctl_with(
        dir.path(),
        &["worker", "--once"],
        &[
            ("MAIL_CONNECTOR_OUTBOX_DIR", ""),
            ("MAIL_CONNECTOR_AUTH_MODE", "oauth"),
            (
                "MAIL_CONNECTOR_GRAPH_ENDPOINT",
                "https://admin:hunter2-secret@graph.example",
            ),
        ],
    );
    let log = String::from_utf8_lossy(&worker.stderr);
    assert_eq!(worker.status.code(), Some(3), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    assert!(log.contains("graph_endpoint"), "{log}");
}

/// A host without a managed identity: `worker --once` holds the message rather than failing
/// it, says so on a line of its own, and `queue status` shows the mailbox paused.
#[test]
fn the_worker_says_what_it_holds_and_status_shows_the_pause() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoint = format!("http://{closed}/metadata/identity/oauth2/token");
    let graph = [
        ("MAIL_CONNECTOR_OUTBOX_DIR", ""),
        ("MAIL_CONNECTOR_AUTH_MODE", "oauth"),
        ("MAIL_CONNECTOR_OAUTH_CREDENTIAL", "managed_identity"),
        (
            "MAIL_CONNECTOR_MANAGED_IDENTITY_ENDPOINT",
            endpoint.as_str(),
        ),
    ];
    let id = stdout(&mailctl_with(path, &SEND, &graph)).trim().to_owned();
    let worker = mailctl_with(path, &["worker", "--once"], &graph);
    let log = String::from_utf8_lossy(&worker.stderr);
    assert!(worker.status.success(), "{log}");
    assert!(log.contains("0 failed") && log.contains("1 held"), "{log}");

    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&mailctl(path, &["queue", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["state"], "queued");
    let error = listed[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("held") && error.contains("no managed identity"),
        "{error}"
    );
    let status = stdout(&mailctl(path, &["queue", "status"]));
    assert!(status.contains("(paused until "), "{status}");
}

/// `queue list` keeps one line per message, tab-separated, whatever its error holds (a
/// server's multi-line reply), with its due time and its fix; `--older-than` takes `1.5h`
/// and says what is wrong with a unit it does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_keeps_one_line_per_message_with_its_due_time_and_fix() {
    use mail_connector::queue::{Claim, ClaimRequest, EnqueueOptions, MailboxLimits, Outcome};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let url = format!("sqlite://{}", path.join("q.db").display());
    let queue = mail_connector::queue::Queue::open(&url).await.unwrap();
    let email = crate::helpers::email("ann@example.org", "multi-line");
    let id = queue.enqueue(&email, EnqueueOptions::new()).await.unwrap();
    let request = ClaimRequest::new(
        "test",
        std::time::SystemTime::now(),
        std::time::Duration::from_secs(60),
        MailboxLimits::graph(),
    );
    let Claim::Message(claimed) = queue.store().claim(&request).await.unwrap() else {
        panic!("due now");
    };
    let failed = Outcome::Failed {
        error: "554-5.7.1 refused\r\n554 5.7.1\tsee the policy".into(),
        remedy: Some("ask the\nadmin".into()),
    };
    let now = std::time::SystemTime::now();
    assert!(
        queue
            .store()
            .finish(&claimed.lease, failed, now)
            .await
            .unwrap()
    );

    let text = stdout(&mailctl(path, &["queue", "list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let fields: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(fields.len(), 8, "{fields:?}");
    assert_eq!(&fields[..2], [id.as_str(), "failed"]);
    assert_eq!(fields[5], "554-5.7.1 refused  554 5.7.1 see the policy");
    assert!(
        fields[6].ends_with('Z') && fields[6].contains('T'),
        "{fields:?}"
    );
    assert_eq!(fields[7], "ask the admin");

    let purge = ["queue", "purge", "--state", "sent", "--older-than"];
    let purged = stdout(&mailctl(path, &[&purge[..], &["1.5h"]].concat()));
    assert!(purged.contains("purged 0"), "{purged}");
    let bad = mailctl(path, &[&purge[..], &["2y"]].concat());
    assert_eq!(bad.status.code(), Some(2));
    let error = String::from_utf8_lossy(&bad.stderr);
    assert!(error.contains("unknown unit `y`"), "{error}");
}
