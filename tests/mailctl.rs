//! End-to-end runs of the `mailctl` example binary, which `cargo test` builds.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::{KNOWN_SECRET, mailctl};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    (output, stdout, stderr)
}

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
        stdout.contains("sent to To: you@example.org, To: Ann Example <ann@example.org>"),
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
fn bad_input_exits_non_zero_with_the_error_and_its_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let (output, _, stderr) = run(mailctl().current_dir(dir.path()).args([
        "send",
        "--to",
        "not-an-address",
        "--subject",
        "x",
    ]));
    assert_eq!(output.status.code(), Some(1));
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
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr.contains("`oauth_client_id`") && stderr.contains("`tenant_id`"),
            "{stderr}"
        );
        assert!(!stdout.contains(KNOWN_SECRET) && !stderr.contains(KNOWN_SECRET));
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
    assert_eq!(output.status.code(), Some(1));
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
        .arg("check"));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("outbox") && l.contains(" ok ")),
        "{stdout}"
    );
    assert!(stdout.contains("overall: ok"), "{stdout}");
}

fn graph_config(dir: &std::path::Path, server: &httpmock::MockServer) -> PathBuf {
    let config = dir.join("graph.toml");
    std::fs::write(
        &config,
        format!(
            "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\noauth_client_id = \"{}\"\ntenant_id = \"{}\"\nclient_secret_expires = \"2099-12-31\"\nauthority_host = \"{}\"\ngraph_endpoint = \"{}\"\n",
            support::CLIENT_ID,
            support::TENANT,
            server.base_url(),
            server.base_url()
        ),
    )
    .unwrap();
    config
}

fn graph_mocks(server: &httpmock::MockServer, roles: &[&str]) -> String {
    use httpmock::Method::POST;
    let token = support::jwt(serde_json::json!({"roles": roles, "tid": support::TENANT}));
    let body = support::token_body(&token, 3600);
    server.mock(|when, then| {
        when.method(POST)
            .path(support::token_path(support::TENANT))
            .form_urlencoded_tuple("client_secret", KNOWN_SECRET);
        then.status(200).json_body(body);
    });
    token
}

#[test]
fn send_and_check_work_against_graph_endpoints_from_the_config() {
    use httpmock::Method::POST;
    let server = httpmock::MockServer::start();
    let token = graph_mocks(&server, &["Mail.Send", "Mail.ReadWrite"]);
    let send = server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/sendMail")
            .json_body_includes(r#"{"message":{"subject":"Hello"}}"#);
        then.status(202).header("request-id", "req-mailctl");
    });
    let probe = server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/sendMail")
            .json_body_includes(r#"{"saveToSentItems":false}"#);
        then.status(400)
            .json_body(serde_json::json!({"error": {"code": "ErrorInvalidRecipients", "message": "no recipients"}}));
    });
    let dir = tempfile::tempdir().unwrap();
    let config = graph_config(dir.path(), &server);
    let (output, stdout, stderr) = run(mailctl()
        .current_dir(dir.path())
        .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET)
        .args([
            "send",
            "--to",
            "ann@example.org",
            "--subject",
            "Hello",
            "--text",
            "Hi",
            "--config",
        ])
        .arg(&config));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("req-mailctl"), "{stdout}");
    send.assert_calls(1);

    let (output, stdout, stderr) = run(mailctl()
        .current_dir(dir.path())
        .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET)
        .arg("check")
        .arg("--config")
        .arg(&config));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for step in ["token", "permission", "secret", "mailbox"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(step) && l.contains(" ok ")),
            "{step} in\n{stdout}"
        );
    }
    probe.assert_calls(1);
    for printed in [&stdout, &stderr] {
        assert!(!printed.contains(KNOWN_SECRET) && !printed.contains(&token));
    }
}

#[test]
fn check_fails_with_remedies_when_consent_is_missing() {
    let server = httpmock::MockServer::start();
    graph_mocks(&server, &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = graph_config(dir.path(), &server);
    let (output, stdout, _) = run(mailctl()
        .current_dir(dir.path())
        .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET)
        .arg("check")
        .arg("--config")
        .arg(&config));
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("permission"))
        .unwrap();
    assert!(
        line.contains("failed") && line.contains("Grant admin consent"),
        "{line}"
    );
    assert!(stdout.contains("overall: failed"), "{stdout}");
}
