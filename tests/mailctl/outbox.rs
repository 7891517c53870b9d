//! `mailctl` with an outbox folder (`outbox_dir`) that cannot be written: a setting to
//! change, so `send` and `check` exit 3 with a fix that names the folder and the setting.

use std::path::Path;

use super::helpers::*;

/// mailctl writing to `outbox`, configured by variables alone.
fn mailctl_to(dir: &Path, outbox: &Path, args: &[&str]) -> std::process::Command {
    let mut command = mailctl();
    command
        .current_dir(dir)
        .args(args)
        .env("MAIL_CONNECTOR_OUTBOX_DIR", outbox)
        .env("MAIL_CONNECTOR_USER_NAME", "no-reply@example.org");
    command
}

/// A folder that cannot be made, even by root: its parent is a file.
fn unwritable_folder(dir: &Path) -> std::path::PathBuf {
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, "").unwrap();
    blocker.join("outbox")
}

fn assert_fix_names_the_folder(remedy: &str, folder: &Path) {
    assert!(remedy.contains("`outbox_dir`"), "{remedy}");
    assert!(remedy.contains(&folder.display().to_string()), "{remedy}");
    assert!(remedy.contains("write"), "{remedy}");
}

#[test]
fn send_to_an_outbox_folder_that_cannot_be_written_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let folder = unwritable_folder(dir.path());
    let send = [
        "send",
        "--to",
        "ann@example.org",
        "--subject",
        "Hi",
        "--text",
        "x",
    ];
    let (output, stdout, stderr) = run(&mut mailctl_to(dir.path(), &folder, &send));
    assert_eq!(output.status.code(), Some(3), "{stdout}{stderr}");
    assert_one_failure(&stderr);
    let fix = stderr.lines().find(|l| l.starts_with("fix:")).unwrap();
    assert_fix_names_the_folder(fix, &folder);

    let json_send: Vec<&str> = send.iter().copied().chain(["--json"]).collect();
    let (output, stdout, stderr) = run(&mut mailctl_to(dir.path(), &folder, &json_send));
    assert_eq!(output.status.code(), Some(3), "{stdout}{stderr}");
    let document = json(&stdout);
    assert_eq!(document["kind"], "settings", "{document}");
    assert_eq!(document["transport"], "outbox", "{document}");
    assert_eq!(addresses(&document, "not_sent"), ["ann@example.org"]);
    assert_fix_names_the_folder(document["error"]["remedy"].as_str().unwrap(), &folder);
}

#[test]
fn check_of_an_outbox_folder_that_cannot_be_written_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let folder = unwritable_folder(dir.path());
    let (output, stdout, stderr) = run(&mut mailctl_to(dir.path(), &folder, &["check", "--json"]));
    assert_eq!(output.status.code(), Some(3), "{stdout}{stderr}");
    let document = json(&stdout);
    assert_eq!(document["kind"], "settings", "{document}");
    let step = document["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "outbox")
        .unwrap_or_else(|| panic!("{document}"));
    assert_eq!(step["status"], "failed", "{document}");
    assert_eq!(step["kind"], "settings", "{document}");
    assert_fix_names_the_folder(step["remedy"].as_str().unwrap(), &folder);

    // A folder that can be made passes.
    let fine = dir.path().join("outbox");
    let (output, stdout, stderr) = run(&mut mailctl_to(dir.path(), &fine, &["check"]));
    assert!(output.status.success(), "{stdout}{stderr}");
}

/// `mailctl send` of one email to the outbox in `dir`, its output written to `stdout`: its
/// exit code, its stderr, and how many emails the outbox holds after it.
fn send_with_output_to(
    dir: &Path,
    stdout: impl Into<std::process::Stdio>,
) -> (Option<i32>, String, usize) {
    let outbox = dir.join("outbox");
    let send = [
        "send",
        "--to",
        "ann@example.org",
        "--subject",
        "Hi",
        "--text",
        "x",
    ];
    let output = mailctl_to(dir, &outbox, &send)
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let written = std::fs::read_dir(&outbox).map_or(0, Iterator::count);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        written,
    )
}

/// Output to a reader that went away (`mailctl send … | head -0`, `mailctl queue list |
/// head -1`): mailctl does not panic, says nothing of it, and exits with the code of what it
/// did — the email was written to the outbox.
#[test]
fn output_to_a_closed_pipe_is_dropped_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // every write to the pipe now fails with a broken pipe
    let (code, stderr, written) = send_with_output_to(dir.path(), writer);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("cannot write"), "{stderr}");
    assert_eq!(written, 1, "{stderr}");
}

/// Output that cannot be written for another reason (a full disk under `> file`; here
/// `/dev/full`): said once on stderr, and the exit code still says the email was written —
/// a script must not send it again for a lost output.
#[test]
fn output_to_a_full_disk_is_said_once_and_the_exit_code_says_what_was_done() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (code, stderr, written) = send_with_output_to(dir.path(), full);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("cannot write to standard output").count(),
        1,
        "{stderr}"
    );
    assert_eq!(written, 1, "{stderr}");
}
