//! Each exit code `mailctl --help` documents, produced by a real situation against loopback
//! servers, with piped output: no escape codes (checked by `run`), one line per failure.

use std::path::{Path, PathBuf};

use httpmock::Method::POST;
use httpmock::MockServer;

use super::graph::{graph_config, graph_mocks};
use super::helpers::*;
use crate::support;
use crate::support::KNOWN_SECRET;
use crate::support::assert_no_secrets;
use crate::support::smtp_server::{ServerOptions, TestServer};

const USER: &str = "no-reply@example.org";
const PASSWORD: &str = "correct horse";
const SEND_PATH: &str = "/v1.0/users/no-reply@contoso.com/sendMail";

fn smtp_config(dir: &Path, port: u16, ca_file: Option<&Path>, extra: &str) -> PathBuf {
    let path = dir.join("smtp.toml");
    let ca = ca_file
        .map(|f| format!("tls_ca_file = {:?}\n", f.display().to_string()))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!(
            "smtp_host = \"127.0.0.1\"\nsmtp_port = {port}\n{ca}user_name = \"{USER}\"\n\
             auth_mode = \"basic\"\n{extra}"
        ),
    )
    .unwrap();
    path
}

fn send_to(recipients: &[&str]) -> Vec<String> {
    let mut args = vec!["send".to_owned()];
    for to in recipients {
        args.extend(["--to".to_owned(), (*to).to_owned()]);
    }
    args.extend(["--subject", "Hello", "--text", "Hi"].map(String::from));
    args
}

fn mailctl_with(dir: &Path, config: &Path, args: &[String]) -> std::process::Command {
    let mut command = mailctl();
    command
        .current_dir(dir)
        .args(args)
        .arg("--config")
        .arg(config);
    command
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["send", "--bogus"],
        vec!["send", "--to", "ann@example.org"],
        vec!["frobnicate"],
    ] {
        let (output, _, stderr) = run(mailctl().current_dir(dir.path()).args(&args));
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error:"), "{stderr}");
    }
    // An address that is not one is a wrong command line too.
    let (output, _, stderr) = run(mailctl().current_dir(dir.path()).args([
        "send",
        "--to",
        "not-an-address",
        "--subject",
        "x",
    ]));
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_one_failure(&stderr);
    assert!(stderr.contains("to[0]"), "{stderr}");
    assert!(!dir.path().join("outbox").exists());
}

#[test]
fn a_bad_setting_exits_3_with_a_remedy_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mail.toml");
    for (text, says) in [
        ("auth_mode = \"kerberos\"\n", "auth_mode"),
        ("auth_mode = \"basic\"\nsmtp_port = \n", "line 2"),
    ] {
        std::fs::write(&config, text).unwrap();
        for command in ["check", "send"] {
            let mut args = send_to(&["ann@example.org"]);
            if command == "check" {
                args = vec!["check".to_owned()];
            }
            let (output, _, stderr) = run(&mut mailctl_with(dir.path(), &config, &args));
            assert_eq!(output.status.code(), Some(3), "{stderr}");
            assert_one_failure(&stderr);
            assert!(stderr.contains(says), "{stderr}");
            let fix = stderr.lines().find(|l| l.starts_with("fix:")).unwrap();
            assert!(!fix.contains("`settings`"), "{fix}");
        }
    }
    // A settings file that is not there is missing settings too.
    let missing = dir.path().join("missing.toml");
    let (output, _, stderr) = run(&mut mailctl_with(
        dir.path(),
        &missing,
        &["check".to_owned()],
    ));
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_one_failure(&stderr);
}

#[test]
fn check_with_nothing_configured_says_so_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let (output, stdout, stderr) = run(mailctl().current_dir(dir.path()).arg("check"));
    assert_eq!(output.status.code(), Some(3), "{stdout}{stderr}");
    assert_one_failure(&stderr);
    assert!(stderr.contains("nothing is configured"), "{stderr}");
    assert!(stderr.contains("./outbox"), "{stderr}");
    assert!(!stdout.contains("overall: ok"), "{stdout}");

    let (output, stdout, _) = run(mailctl().current_dir(dir.path()).args(["check", "--json"]));
    assert_eq!(output.status.code(), Some(3));
    let document = json(&stdout);
    assert_eq!(document["status"], "not_configured");
    assert_eq!(document["exit_code"], 3);
}

#[test]
fn a_wrong_client_secret_exits_4() {
    let server = MockServer::start();
    let token = server.mock(|when, then| {
        when.method(POST).path(support::token_path(support::TENANT));
        then.status(401)
            .json_body(support::entra_error("invalid_client", 7_000_215));
    });
    let dir = tempfile::tempdir().unwrap();
    let config = graph_config(dir.path(), &server);
    let (output, stdout, stderr) =
        run(
            mailctl_with(dir.path(), &config, &send_to(&["ann@example.org"]))
                .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET),
        );
    assert_eq!(output.status.code(), Some(4), "{stdout}{stderr}");
    assert_one_failure(&stderr);
    assert!(stderr.contains("7000215"), "{stderr}");
    assert_no_secrets(&format!("{stdout}{stderr}"), &[KNOWN_SECRET]);
    assert!(token.calls() >= 1);

    let mut args = send_to(&["ann@example.org"]);
    args.push("--json".into());
    let (output, stdout, _) =
        run(mailctl_with(dir.path(), &config, &args)
            .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET));
    assert_eq!(output.status.code(), Some(4));
    let document = json(&stdout);
    assert_eq!(document["status"], "failed");
    assert_eq!(document["error"]["kind"], "refused");
    assert_eq!(document["error"]["auth"], true);
    assert_eq!(addresses(&document, "not_sent"), ["ann@example.org"]);
    assert!(addresses(&document, "delivered").is_empty());
}

#[tokio::test]
async fn a_refused_smtp_password_exits_4() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = smtp_config(
        dir.path(),
        server.port(),
        Some(server.ca_file.path()),
        "password = \"wrong horse\"\n",
    );
    let (output, stdout, stderr) = run_async(mailctl_with(
        dir.path(),
        &config,
        &send_to(&["ann@example.org"]),
    ))
    .await;
    assert_eq!(output.status.code(), Some(4), "{stdout}{stderr}");
    assert_one_failure(&stderr);
    assert!(stderr.contains("535"), "{stderr}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_exits_5_and_logs_only_when_asked() {
    // A loopback port nobody listens on: the connection is refused at once.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = smtp_config(dir.path(), port, None, "password = \"pw\"\n");
    let args = send_to(&["ann@example.org"]);
    let (output, stdout, stderr) = run_async(mailctl_with(dir.path(), &config, &args)).await;
    assert_eq!(output.status.code(), Some(5), "{stdout}{stderr}");
    // The retries happened, but without -v they are not logged: the failure is said once.
    assert_one_failure(&stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");

    let mut verbose = mailctl_with(dir.path(), &config, &args);
    verbose.arg("-v");
    let (output, _, stderr) = run_async(verbose).await;
    assert_eq!(output.status.code(), Some(5));
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("retrying")),
        "-v logs the retries: {stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );
}

#[test]
fn throttling_past_the_send_deadline_exits_5() {
    let server = MockServer::start();
    graph_mocks(&server, &["Mail.Send"]);
    // An hour: far past the send deadline, so the transport gives up at once.
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(429).header("Retry-After", "3600").json_body(
            serde_json::json!({"error": {"code": "ApplicationThrottled", "message": "slow down"}}),
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let config = graph_config(dir.path(), &server);
    let mut args = send_to(&["ann@example.org"]);
    let (output, stdout, stderr) =
        run(mailctl_with(dir.path(), &config, &args)
            .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET));
    assert_eq!(output.status.code(), Some(5), "{stdout}{stderr}");
    assert_one_failure(&stderr);
    assert!(stderr.contains("429"), "{stderr}");
    assert_eq!(send.calls(), 1, "an hour's wait is not waited");

    args.push("--json".into());
    let (output, stdout, _) =
        run(mailctl_with(dir.path(), &config, &args)
            .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET));
    assert_eq!(output.status.code(), Some(5));
    let document = json(&stdout);
    assert_eq!(document["error"]["kind"], "temporary");
    assert_eq!(document["error"]["transient"], true);
    assert!(document["error"]["retry_after_seconds"].as_u64().unwrap() > 3000);
    assert_eq!(addresses(&document, "not_sent"), ["ann@example.org"]);
}

#[tokio::test]
async fn a_partly_refused_send_exits_6_and_the_json_says_who_got_it() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["bob@example.org".into()],
        ..ServerOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = smtp_config(
        dir.path(),
        server.port(),
        Some(server.ca_file.path()),
        &format!("password = \"{PASSWORD}\"\n"),
    );
    let mut args = send_to(&["ann@example.org", "bob@example.org", "cy@example.org"]);
    args.push("--json".into());
    let (output, stdout, stderr) = run_async(mailctl_with(dir.path(), &config, &args)).await;
    assert_eq!(output.status.code(), Some(6), "{stdout}{stderr}");
    let document = json(&stdout);
    assert_eq!(document["status"], "partial");
    assert_eq!(document["kind"], "partial");
    assert_eq!(
        addresses(&document, "delivered"),
        ["ann@example.org", "cy@example.org"]
    );
    assert_eq!(addresses(&document, "not_sent"), ["bob@example.org"]);
    assert!(addresses(&document, "uncertain").is_empty());
    let message = &document["messages"][0];
    assert!(message["id"].as_str().unwrap().contains('@'), "{document}");
    assert_eq!(
        server.messages()[0].rcpt_to,
        ["ann@example.org", "cy@example.org"]
    );
}

#[tokio::test]
async fn a_recipient_limit_split_with_the_second_part_refused_exits_6() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["bob@example.org".into()],
        ..ServerOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = smtp_config(
        dir.path(),
        server.port(),
        Some(server.ca_file.path()),
        &format!("password = \"{PASSWORD}\"\nrecipient_limit = 1\n"),
    );
    let args = send_to(&["ann@example.org", "bob@example.org"]);
    let (output, stdout, stderr) = run_async(mailctl_with(dir.path(), &config, &args)).await;
    assert_eq!(output.status.code(), Some(6), "{stdout}{stderr}");
    assert_one_failure(&stderr);
    assert!(stderr.contains("sent to 1 of 2"), "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("sent to To: ann@example.org [")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == "not sent to To: bob@example.org"),
        "{stdout}"
    );
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn a_server_error_after_the_request_exits_6_with_every_recipient_uncertain() {
    let server = MockServer::start();
    graph_mocks(&server, &["Mail.Send"]);
    // Graph may have acted on the request before failing: it is never sent again.
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(500).json_body(
            serde_json::json!({"error": {"code": "InternalServerError", "message": "oops"}}),
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let config = graph_config(dir.path(), &server);
    let mut args = send_to(&["ann@example.org", "bob@example.org"]);
    let (output, stdout, stderr) =
        run(mailctl_with(dir.path(), &config, &args)
            .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET));
    assert_eq!(output.status.code(), Some(6), "{stdout}{stderr}");
    assert_one_failure(&stderr);
    assert_eq!(
        stdout,
        "delivery uncertain to To: ann@example.org, To: bob@example.org\n"
    );

    args.push("--json".into());
    let (output, stdout, _) =
        run(mailctl_with(dir.path(), &config, &args)
            .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET));
    assert_eq!(output.status.code(), Some(6));
    let document = json(&stdout);
    assert_eq!(document["status"], "uncertain");
    assert_eq!(
        addresses(&document, "uncertain"),
        ["ann@example.org", "bob@example.org"]
    );
    assert!(addresses(&document, "not_sent").is_empty());
    assert_eq!(send.calls(), 2, "one request per run, never repeated");
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `check --json`'s exit code and the failed step's `kind`.
async fn check_json(dir: &Path, config: &Path) -> (i32, serde_json::Value) {
    let args = ["check".to_owned(), "--json".to_owned()];
    let (output, stdout, stderr) = run_async(mailctl_with(dir, config, &args)).await;
    let document = json(&stdout);
    let code = output.status.code().unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(document["exit_code"], code, "{document}");
    (code, document)
}

fn failed_step_kind(document: &serde_json::Value) -> String {
    let steps = document["steps"].as_array().unwrap();
    let failed: Vec<&serde_json::Value> =
        steps.iter().filter(|s| s["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{document}");
    for step in steps {
        if step["status"] != "failed" {
            assert!(step["kind"].is_null(), "{document}");
        }
    }
    failed[0]["kind"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn check_against_a_closed_port_exits_5_like_send() {
    let dir = tempfile::tempdir().unwrap();
    let config = smtp_config(dir.path(), closed_port(), None, "password = \"pw\"\n");
    let (code, document) = check_json(dir.path(), &config).await;
    assert_eq!(code, 5, "{document}");
    assert_eq!(document["kind"], "temporary");
    assert_eq!(failed_step_kind(&document), "transient");
    let (output, stdout, stderr) =
        run_async(mailctl_with(dir.path(), &config, &["check".to_owned()])).await;
    assert_eq!(output.status.code(), Some(5), "{stdout}{stderr}");
}

#[tokio::test]
async fn check_with_a_refused_smtp_password_exits_4() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = smtp_config(
        dir.path(),
        server.port(),
        Some(server.ca_file.path()),
        "password = \"wrong horse\"\n",
    );
    let (code, document) = check_json(dir.path(), &config).await;
    assert_eq!(code, 4, "{document}");
    assert_eq!(document["kind"], "refused");
    assert_eq!(failed_step_kind(&document), "auth");
}

#[tokio::test]
async fn check_with_an_unreadable_file_the_settings_name_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-dkim.pem");
    let config = smtp_config(
        dir.path(),
        closed_port(),
        None,
        &format!(
            "password = \"pw\"\ndkim_domain = \"example.org\"\ndkim_selector = \"s1\"\n\
             dkim_private_key_file = {:?}\n",
            missing.display().to_string()
        ),
    );
    let (code, document) = check_json(dir.path(), &config).await;
    assert_eq!(code, 3, "{document}");
    assert_eq!(document["error"]["kind"], "settings", "{document}");
}

#[test]
fn an_unreadable_dkim_key_exits_3_and_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-dkim.pem");
    let config = dir.path().join("outbox.toml");
    std::fs::write(
        &config,
        format!(
            "outbox_dir = \"out\"\nuser_name = \"{USER}\"\ndkim_domain = \"example.org\"\ndkim_selector = \"s1\"\n\
             dkim_private_key_file = {:?}\n",
            missing.display().to_string()
        ),
    )
    .unwrap();
    let (output, stdout, stderr) = run(&mut mailctl_with(
        dir.path(),
        &config,
        &send_to(&["ann@example.org"]),
    ));
    assert_eq!(output.status.code(), Some(3), "{stdout}{stderr}");
    assert_one_failure(&stderr);
    assert!(stderr.contains("dkim_private_key_file"), "{stderr}");
}

#[test]
fn an_unreadable_tls_ca_file_exits_3_and_names_the_setting() {
    let server = MockServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = graph_config(dir.path(), &server);
    let missing = dir.path().join("missing-ca.pem");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "tls_ca_file = {:?}\n",
        missing.display().to_string()
    ));
    std::fs::write(&config, text).unwrap();
    for args in [send_to(&["ann@example.org"]), vec!["check".to_owned()]] {
        let (output, stdout, stderr) = run(mailctl_with(dir.path(), &config, &args)
            .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET));
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stdout}{stderr}");
        assert_one_failure(&stderr);
        let fix = stderr.lines().find(|l| l.starts_with("fix:")).unwrap();
        assert!(fix.contains("`tls_ca_file`"), "{fix}");
    }
}

#[test]
fn no_sender_exits_3_whatever_the_recipient_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("outbox.toml");
    for extra in ["", "recipient_limit = 1\n"] {
        std::fs::write(&config, format!("outbox_dir = \"out\"\n{extra}")).unwrap();
        let args = send_to(&["ann@example.org", "bob@example.org"]);
        let (output, stdout, stderr) = run(&mut mailctl_with(dir.path(), &config, &args));
        assert_eq!(output.status.code(), Some(3), "{extra}: {stdout}{stderr}");
        assert_one_failure(&stderr);
        let fix = stderr.lines().find(|l| l.starts_with("fix:")).unwrap();
        assert!(fix.contains("`user_name`"), "{fix}");
    }
}
