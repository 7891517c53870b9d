//! The SQLite queue's file where it cannot be written — its folder missing or not writable,
//! a write refused (a file-size limit on the process) — and the `sqlite://` URLs an admin
//! types: relative, with `~`, with spaces, `?mode=ro`, a text file. What `mailctl` says, from
//! a real process: the error names `queue_url` and the fix, and an email that could not be
//! stored is never reported queued.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::sqlite_processes::mailctl_json;

/// `mailctl send --json` of one email, to the queue at `url`, run by `command` (mailctl, or
/// a shell that limits it first).
fn send(mut command: Command, url: &str, cwd: &Path, attach: Option<&Path>) -> Output {
    command
        .args([
            "send",
            "--json",
            "--to",
            "ann@example.org",
            "--subject",
            "Hi",
        ])
        .args(["--text", "hello"])
        .current_dir(cwd)
        .env_remove("MAIL_CONNECTOR_CONFIG")
        .env("MAIL_CONNECTOR_QUEUE_URL", url)
        .env("MAIL_CONNECTOR_AUTH_MODE", "none")
        .env("MAIL_CONNECTOR_SMTP_HOST", "127.0.0.1")
        .env("MAIL_CONNECTOR_USER_NAME", "no-reply@example.org");
    if let Some(file) = attach {
        command.arg("--attach").arg(file);
    }
    command.output().unwrap()
}

fn mailctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailctl"))
}

/// `mailctl queue status` on `url` from `cwd`.
fn status(url: &str, cwd: &Path) -> Output {
    mailctl()
        .args(["queue", "status", "--json"])
        .current_dir(cwd)
        .env_remove("MAIL_CONNECTOR_CONFIG")
        .env("MAIL_CONNECTOR_QUEUE_URL", url)
        .output()
        .unwrap()
}

fn queued(url: &str) -> u64 {
    mailctl_json(url, &["queue", "status", "--json"])["states"]["queued"]
        .as_u64()
        .unwrap()
}

/// A send that failed: not reported queued, its error and fix naming `queue_url` and
/// `fix_says`. Returns the fix.
fn not_queued(output: &Output, fix_says: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "reported queued: {stdout}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["status"], "failed", "{report}");
    assert!(
        report["id"].is_null(),
        "an id for an email not stored: {report}"
    );
    let remedy = report["error"]["remedy"].as_str().unwrap_or_default();
    assert!(remedy.contains("`queue_url`"), "{remedy}");
    assert!(remedy.contains(fix_says), "{remedy}");
    remedy.to_owned()
}

/// An error `mailctl` printed on stderr (text output), with its fix naming `queue_url`.
fn failed_saying(output: &Output, says: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("`queue_url`"), "{stderr}");
    for text in says {
        assert!(stderr.contains(text), "{text:?} in {stderr}");
    }
}

/// A full disk for the queue's file, for this process only: a file-size limit (`ulimit -f`,
/// 100 KiB) with SIGXFSZ ignored, so that the write fails (EFBIG) rather than killing the
/// process. SQLite hands over an `INSERT … RETURNING` row before the statement commits: the
/// commit refused then must not go unseen.
#[test]
fn an_email_the_disk_refused_is_not_reported_queued() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    assert_eq!(queued(&url), 0);
    let big = dir.path().join("big.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&big, bytes).unwrap();
    let mut limited = Command::new("sh");
    limited.args(["-c", "trap '' XFSZ; ulimit -f 200; exec \"$0\" \"$@\""]);
    limited.arg(env!("CARGO_BIN_EXE_mailctl"));
    let output = send(limited, &url, dir.path(), Some(&big));
    not_queued(&output, "file-size limit");
    assert_eq!(queued(&url), 0);
    // The file is whole: without the limit, the same email is stored.
    let output = send(mailctl(), &url, dir.path(), Some(&big));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(queued(&url), 1);
}

#[test]
fn a_missing_folder_says_so_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("missing");
    let url = format!("sqlite://{}", folder.join("queue.db").display());
    let output = send(mailctl(), &url, dir.path(), None);
    assert!(!output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["id"].is_null(), "{report}");
    let remedy = report["error"]["remedy"].as_str().unwrap();
    assert!(remedy.contains("folder of the SQLite file in `queue_url` exists"));
    assert!(!folder.exists());
}

/// A queue whose folder and file this process may not write: it reads the queue (status)
/// but cannot enqueue, and says to make them writable. As root (which writes anywhere) the
/// process runs as `nobody`.
#[test]
fn a_queue_this_process_may_not_write_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let folder = dir.path().join("queue");
    std::fs::create_dir(&folder).unwrap();
    let url = format!("sqlite://{}", folder.join("queue.db").display());
    assert_eq!(queued(&url), 0);
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();
    let as_someone_else = || {
        let mut command = mailctl();
        if std::fs::metadata(&folder).unwrap().uid() == 0 {
            command.uid(65534).gid(65534);
        }
        command
    };
    let output = send(as_someone_else(), &url, dir.path(), None);
    not_queued(&output, "writable by this process");
    let reading = status(&url, dir.path());
    assert!(reading.status.success(), "{reading:?}");
    assert_eq!(queued(&url), 0);
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `~` is not expanded (SQLite would look for a folder named `~`): said at once, with the
/// fix, and nothing created.
#[test]
fn a_tilde_path_asks_for_the_full_path() {
    let dir = tempfile::tempdir().unwrap();
    let output = status("sqlite://~/queue.db", dir.path());
    failed_saying(&output, &["`~`", "full path"]);
    assert!(!dir.path().join("~").exists());
}

/// A relative path is the working directory's: the file is made where the process runs.
#[test]
fn a_relative_path_is_taken_from_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let output = status("sqlite://relative.db", dir.path());
    assert!(output.status.success(), "{output:?}");
    assert!(dir.path().join("relative.db").exists());
}

/// With `-v`, opening the queue logs the file's full path, so that an operator can see which
/// file each process uses (a relative one included).
#[test]
fn the_queue_file_is_logged_with_its_full_path() {
    let dir = tempfile::tempdir().unwrap();
    let output = mailctl()
        .args(["-v", "queue", "status"])
        .current_dir(dir.path())
        .env_remove("MAIL_CONNECTOR_CONFIG")
        .env_remove("RUST_LOG")
        .env("MAIL_CONNECTOR_QUEUE_URL", "sqlite://relative.db")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let full = dir.path().canonicalize().unwrap().join("relative.db");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.lines()
            .any(|line| line.contains("opened the SQLite queue")
                && line.contains(&full.display().to_string())),
        "{logs}"
    );
}

/// A folder with a space, written as it is or as `%20`: one file.
#[test]
fn a_path_with_spaces_opens_the_same_file_either_way() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("mail queue");
    std::fs::create_dir(&folder).unwrap();
    let plain = format!("sqlite://{}/queue.db", folder.display());
    let escaped = plain.replace(' ', "%20");
    let output = send(mailctl(), &plain, dir.path(), None);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(queued(&escaped), 1);
    assert!(folder.join("queue.db").exists());
}

/// `?mode=ro` reads an existing queue; enqueueing through it fails, saying to drop it; on a
/// missing file it says the file must exist.
#[test]
fn a_read_only_url_reads_and_says_why_it_cannot_enqueue() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let output = send(mailctl(), &url, dir.path(), None);
    assert!(output.status.success(), "{output:?}");
    let read_only = format!("{url}?mode=ro");
    assert_eq!(queued(&read_only), 1);
    let output = send(mailctl(), &read_only, dir.path(), None);
    not_queued(&output, "`?mode=ro`");
    assert_eq!(queued(&url), 1);
    let missing = format!("sqlite://{}?mode=ro", dir.path().join("none.db").display());
    failed_saying(
        &status(&missing, dir.path()),
        &["with `?mode=ro` the file must exist"],
    );
}

/// A text file is not a queue: said, and the file left as it was.
#[test]
fn a_text_file_is_not_a_queue_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "not a database\n").unwrap();
    let url = format!("sqlite://{}", file.display());
    failed_saying(&status(&url, dir.path()), &["not an SQLite database"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a database\n");
}
