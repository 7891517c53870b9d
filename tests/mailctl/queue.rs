//! `mailctl queue retry|cancel` of several ids reports each failure in the order the ids
//! were given, each with its fix, and exits with the first failure's code.

use std::process::Command;

use super::helpers::*;

/// `mailctl` on an SQLite queue in `dir`.
fn mailctl_queue(dir: &std::path::Path) -> Command {
    let mut command = mailctl();
    command
        .current_dir(dir)
        .env(
            "MAIL_CONNECTOR_QUEUE_URL",
            format!("sqlite://{}", dir.join("q.db").display()),
        )
        .env("MAIL_CONNECTOR_OUTBOX_DIR", dir.join("outbox"))
        .env("MAIL_CONNECTOR_USER_NAME", "no-reply@example.org");
    command
}

/// The ids that `stderr`'s `error:` lines name, in order, each checked to be followed by
/// its `fix:` line.
fn failed_ids<'a>(stderr: &str, ids: &[&'a str]) -> Vec<&'a str> {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut named = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(id) = ids.iter().find(|id| line.contains(*id)) else {
            continue;
        };
        assert!(line.starts_with("error: "), "{stderr}");
        let fix = lines.get(at + 1).copied().unwrap_or_default();
        assert!(
            fix.starts_with("fix: ") && fix.contains("mailctl queue list"),
            "{id}: {stderr}"
        );
        named.push(*id);
    }
    named
}

#[test]
fn a_retry_of_several_ids_reports_their_failures_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let ids = ["no-such-1", "no-such-2", "no-such-3"];
    let (output, stdout, stderr) =
        run(mailctl_queue(dir.path()).args(["queue", "retry"]).args(ids));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(failed_ids(&stderr, &ids), ids, "{stderr}");
    assert_eq!(stderr.matches("error: ").count(), 3, "{stderr}");
}

#[test]
fn a_cancel_between_failures_reports_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (output, queued, stderr) = run(mailctl_queue(dir.path()).args([
        "send",
        "--to",
        "ann@example.org",
        "--subject",
        "Hi",
        "--text",
        "x",
    ]));
    assert!(output.status.success(), "{stderr}");
    let queued = queued.trim();
    let (output, stdout, stderr) =
        run(mailctl_queue(dir.path()).args(["queue", "cancel", "no-such-1", queued, "no-such-2"]));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), format!("{queued} cancelled"), "{stderr}");
    let ids = ["no-such-1", "no-such-2"];
    assert_eq!(failed_ids(&stderr, &ids), ids, "{stderr}");
}

/// `--config` goes after the queue command too, where `send --config` and `check --config`
/// put it: `mailctl queue status --config FILE` was refused as an unexpected argument.
#[test]
fn queue_commands_take_config_after_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mail.toml");
    let settings = format!(
        "auth_mode = \"none\"\nuser_name = \"no-reply@example.org\"\noutbox_dir = \"{}\"\n\
         queue_url = \"sqlite://{}\"\n",
        dir.path().join("outbox").display(),
        dir.path().join("q.db").display()
    );
    std::fs::write(&config, settings).unwrap();
    let send = [
        "send",
        "--to",
        "ann@example.org",
        "--subject",
        "Hi",
        "--text",
        "x",
    ];
    let (output, queued, stderr) = run(mailctl().args(send).arg("--config").arg(&config));
    assert!(output.status.success(), "{stderr}");
    let queued = queued.trim();
    for (before, after) in [
        (&["queue"][..], &["status"][..]),
        (&["queue", "status"][..], &[][..]),
        (&["queue", "list"][..], &["--state", "queued"][..]),
    ] {
        let (output, stdout, stderr) = run(mailctl()
            .args(before)
            .arg("--config")
            .arg(&config)
            .args(after));
        assert!(output.status.success(), "{before:?} {after:?}: {stderr}");
        assert!(stdout.contains("queued"), "{before:?} {after:?}: {stdout}");
    }
    let (output, stdout, stderr) = run(mailctl()
        .args(["queue", "cancel", queued, "--config"])
        .arg(&config));
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), format!("{queued} cancelled"), "{stderr}");
}
