//! End-to-end runs of the `mailctl` binary, which `cargo test --features cli` builds.

use super::helpers::*;
use crate::support::KNOWN_SECRET;
use crate::support::assert_no_secrets;

#[test]
fn send_without_settings_writes_one_eml_into_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let (output, stdout, stderr) = run(mailctl()
        .current_dir(dir.path())
        .args([
            "send",
            "--to",
            "you@example.org",
            "--to",
            "Ann Example <ann@example.org>",
        ])
        .args(["--subject", "Hello", "--text", "Hi"]));
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("writing messages to ./outbox"), "{stderr}");
    assert!(
        stdout.contains(
            "written to the outbox for To: you@example.org, To: Ann Example <ann@example.org>"
        ),
        "{stdout}"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read(files[0].as_ref().unwrap().path()).unwrap();
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.subject(), Some("Hello"));
}

/// Variables left empty (`KEY=${UNSET}` in a compose file) are no settings: with nothing
/// else set, `mailctl` writes to the outbox as with nothing configured.
#[test]
fn empty_variables_count_as_no_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (output, _, stderr) = run(mailctl()
        .current_dir(dir.path())
        .env("MAIL_CONNECTOR_CONFIG", "")
        .env("MAIL_CONNECTOR_SMTP_PORT", "")
        .args(["send", "--to", "you@example.org", "--subject", "Hi"]));
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("writing messages to ./outbox"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn send_with_attachments_and_all_roles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.csv"), "a,b\n").unwrap();
    let (output, _, stderr) = run(mailctl()
        .current_dir(dir.path())
        .args([
            "send",
            "--to",
            "a@example.org",
            "--cc",
            "b@example.org",
            "--bcc",
            "c@example.org",
        ])
        .args([
            "--reply-to",
            "r@example.org",
            "--subject",
            "S",
            "--html",
            "<p>x</p>",
        ])
        .args(["--attach", "report.csv"]));
    assert!(output.status.success(), "{stderr}");
    let file = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let raw = std::fs::read(file.path()).unwrap();
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.attachments().count(), 1);
    assert!(message.cc().is_some() && message.bcc().is_some() && message.reply_to().is_some());
}

#[test]
fn bad_input_exits_2_with_the_error_and_its_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let (output, _, stderr) = run(mailctl().current_dir(dir.path()).args([
        "send",
        "--to",
        "not-an-address",
        "--subject",
        "x",
    ]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("error: invalid email: to[0]"), "{stderr}");
    assert!(stderr.contains("fix: "), "{stderr}");
    assert!(!dir.path().join("outbox").exists());
}

#[test]
fn settings_file_errors_name_the_fields_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mail.toml");
    std::fs::write(
        &config,
        format!("auth_mode = \"oauth\"\nclient_secret = \"{KNOWN_SECRET}\"\n"),
    )
    .unwrap();
    for args in [
        vec!["check"],
        vec!["send", "--to", "a@example.org", "--subject", "x"],
    ] {
        let (output, stdout, stderr) = run(mailctl()
            .current_dir(dir.path())
            .args(&args)
            .arg("--config")
            .arg(&config));
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        assert!(
            stderr.contains("`oauth_client_id`") && stderr.contains("`tenant_id`"),
            "{stderr}"
        );
        assert_no_secrets(&stdout, &[KNOWN_SECRET]);
        assert_no_secrets(&stderr, &[KNOWN_SECRET]);
    }
}

#[test]
fn environment_overrides_the_file_and_disabled_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mail.toml");
    std::fs::write(
        &config,
        "outbox_dir = \"elsewhere\"\nuser_name = \"n@example.org\"\n",
    )
    .unwrap();
    let (output, _, stderr) = run(mailctl()
        .current_dir(dir.path())
        .env("MAIL_CONNECTOR_CONFIG", &config)
        .env("MAIL_CONNECTOR_ENABLED", "false")
        .args(["send", "--to", "a@example.org", "--subject", "x"]));
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr.contains("disabled"), "{stderr}");
    assert!(stderr.contains("fix: enable the connector"), "{stderr}");
    assert!(!dir.path().join("elsewhere").exists());
}

#[test]
fn check_prints_one_line_per_step() {
    let dir = tempfile::tempdir().unwrap();
    let (output, stdout, stderr) = run(mailctl()
        .current_dir(dir.path())
        .env("MAIL_CONNECTOR_OUTBOX_DIR", "out")
        .env("MAIL_CONNECTOR_USER_NAME", "no-reply@example.org")
        .arg("check"));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("outbox") && l.contains(" ok ")),
        "{stdout}"
    );
    assert!(stdout.contains("overall: ok"), "{stdout}");
    // Without `user_name`, `send` fails ("no sender"): the check warns, naming the fix.
    let (output, stdout, stderr) = run(mailctl()
        .current_dir(dir.path())
        .env("MAIL_CONNECTOR_OUTBOX_DIR", "out")
        .arg("check"));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.lines().any(|l| l.starts_with("sender")
            && l.contains(" warning ")
            && l.contains("`user_name`")),
        "{stdout}"
    );
    assert!(stdout.contains("overall: warning"), "{stdout}");
}

#[test]
fn an_unknown_variable_is_warned_about_without_logs_and_does_not_stop_the_send() {
    let dir = tempfile::tempdir().unwrap();
    let (output, _, stderr) = run(mailctl()
        .current_dir(dir.path())
        .env("MAIL_CONNECTOR_OUTBOX_DIR", "out")
        .env("MAIL_CONNECTOR_USER_NAME", "n@example.org")
        .env("MAIL_CONNECTOR_TENNANT_ID", KNOWN_SECRET)
        .args(["send", "--to", "a@example.org", "--subject", "x"]));
    assert!(output.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("MAIL_CONNECTOR_TENNANT_ID"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("did you mean `MAIL_CONNECTOR_TENANT_ID`"),
        "{stderr}"
    );
    assert_no_secrets(&stderr, &[KNOWN_SECRET]);
    // The connector's other logs stay off without -v.
    assert!(
        !stderr.contains("INFO") && !stderr.contains("DEBUG"),
        "{stderr}"
    );
}

/// `std::env::vars` panics on a variable that is not Unicode, even one that is not ours.
#[cfg(unix)]
#[test]
fn variables_that_are_not_unicode_are_skipped_unless_they_are_ours() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let dir = tempfile::tempdir().unwrap();
    let not_unicode = OsStr::from_bytes(b"caf\xe9");
    let (output, _, stderr) = run(mailctl()
        .current_dir(dir.path())
        .env("SOME_OTHER_TOOL", not_unicode)
        .env("MAIL_CONNECTOR_OUTBOX_DIR", "out")
        .env("MAIL_CONNECTOR_USER_NAME", "no-reply@example.org")
        .args(["send", "--to", "a@example.org", "--subject", "x"]));
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        1
    );

    let (output, _, stderr) = run(mailctl()
        .current_dir(dir.path())
        .env("MAIL_CONNECTOR_USER_NAME", not_unicode)
        .args(["send", "--to", "a@example.org", "--subject", "x"]));
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("MAIL_CONNECTOR_USER_NAME") && stderr.contains("not valid Unicode"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `worker` and `queue` need the queue `queue_url` names: with nothing configured they say
/// so, rather than announcing that they write messages to `./outbox` (only `send` does).
#[test]
fn the_queue_commands_with_nothing_configured_name_queue_url_not_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["worker", "--once"][..], &["queue", "status"][..]] {
        let (output, _, stderr) = run(mailctl().current_dir(dir.path()).args(args));
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(!stderr.contains("outbox"), "{args:?}: {stderr}");
        assert!(stderr.contains("no settings"), "{args:?}: {stderr}");
        assert!(stderr.contains("`queue_url`"), "{args:?}: {stderr}");
        assert!(!dir.path().join("outbox").exists());
    }
}
