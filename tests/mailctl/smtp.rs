//! `mailctl` against the loopback SMTP server, with basic auth and OAuth.

use super::helpers::{addresses, json, mailctl, run_async};
use crate::support;
use crate::support::assert_no_secrets;
use crate::support::smtp_server::{RcptReply, ServerOptions, TestServer};

const USER: &str = "no-reply@example.org";
const PASSWORD: &str = "correct horse";

async fn run_mailctl(args: Vec<String>, config: &std::path::Path) -> (bool, String) {
    let mut command = mailctl();
    command.args(&args).arg("--config").arg(config);
    let (output, stdout, stderr) = run_async(command).await;
    (output.status.success(), format!("{stdout}{stderr}"))
}

fn write_config(dir: &std::path::Path, server: &TestServer, extra: &str) -> std::path::PathBuf {
    let path = dir.join("smtp.toml");
    std::fs::write(
        &path,
        format!(
            "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls_ca_file = {:?}\nuser_name = \"{USER}\"\n{extra}",
            server.port(),
            server.ca_file.path().display().to_string()
        ),
    )
    .unwrap();
    path
}

/// A server refusing each `(address, reply)` at `RCPT TO`, and a basic-auth config for it.
pub(super) async fn refusing(
    replies: &[(&str, &str)],
    dir: &std::path::Path,
) -> (TestServer, std::path::PathBuf) {
    let server = TestServer::start(ServerOptions {
        rcpt_replies: replies
            .iter()
            .map(|(address, reply)| RcptReply::always(address, reply))
            .collect(),
        ..ServerOptions::default()
    })
    .await;
    let config = write_config(
        dir,
        &server,
        &format!("auth_mode = \"basic\"\npassword = \"{PASSWORD}\"\n"),
    );
    (server, config)
}

/// `mailctl send` to each of `to`, with `--json` when asked.
pub(super) async fn send_to(
    config: &std::path::Path,
    to: &[&str],
    json: bool,
) -> (std::process::Output, String, String) {
    let mut args = vec!["send".to_owned()];
    for to in to {
        args.extend(["--to".to_owned(), (*to).to_owned()]);
    }
    args.extend(["--subject", "Hi", "--text", "Hello"].map(String::from));
    if json {
        args.push("--json".into());
    }
    let mut command = mailctl();
    command.args(&args).arg("--config").arg(config);
    run_async(command).await
}

#[tokio::test]
async fn mailctl_sends_and_checks_with_basic_auth() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &server,
        &format!("auth_mode = \"basic\"\npassword = \"{PASSWORD}\"\n"),
    );
    let send: Vec<String> = [
        "send",
        "--to",
        "ann@example.org",
        "--subject",
        "Hi",
        "--text",
        "Hello",
    ]
    .map(String::from)
    .to_vec();
    let (ok, output) = run_mailctl(send, &config).await;
    assert!(ok, "{output}");
    assert_eq!(server.messages().len(), 1);
    let (ok, output) = run_mailctl(vec!["check".into()], &config).await;
    assert!(ok, "{output}");
    for step in ["connect", "tls", "ehlo", "auth", "quit"] {
        assert!(
            output
                .lines()
                .any(|l| l.starts_with(step) && l.contains(" ok ")),
            "{step}: {output}"
        );
    }
    assert_no_secrets(&output, &[PASSWORD]);
}

#[tokio::test]
async fn mailctl_sends_and_checks_with_oauth_over_smtp() {
    use httpmock::{Method::POST, MockServer};
    let entra = MockServer::start_async().await;
    let body = support::token_body("smtp-token", 3600);
    entra.mock(|when, then| {
        when.method(POST)
            .path(support::token_path(support::TENANT))
            .form_urlencoded_tuple("scope", "https://outlook.office365.com/.default");
        then.status(200).json_body(body);
    });
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN", "XOAUTH2"],
        tokens: vec!["smtp-token".into()],
        ..ServerOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &server,
        &format!(
            "auth_mode = \"oauth\"\ntransport = \"smtp\"\noauth_client_id = \"{}\"\nclient_secret = \"{}\"\ntenant_id = \"{}\"\nauthority_host = \"{}\"\nclient_secret_expires = \"2099-12-31\"\n",
            support::CLIENT_ID,
            support::SECRET,
            support::TENANT,
            entra.base_url()
        ),
    );
    let send: Vec<String> = [
        "send",
        "--to",
        "ann@example.org",
        "--subject",
        "Hi",
        "--text",
        "Hello",
    ]
    .map(String::from)
    .to_vec();
    let (ok, output) = run_mailctl(send, &config).await;
    assert!(ok, "{output}");
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.auths()[0].mechanism, "XOAUTH2");
    let (ok, output) = run_mailctl(vec!["check".into()], &config).await;
    assert!(ok, "{output}");
    // The credential steps come first: the token and the client secret's expiry.
    for step in ["token", "secret"] {
        assert!(
            output
                .lines()
                .any(|l| l.starts_with(step) && l.contains(" ok ")),
            "{step}: {output}"
        );
    }
    assert!(
        output
            .lines()
            .any(|l| l.starts_with("auth") && l.contains(" ok ")),
        "{output}"
    );
    assert_no_secrets(&output, &[support::SECRET, "smtp-token"]);
}

/// A send refused for one recipient with 550 and for another with 450: both are not sent,
/// and the output names the one refused permanently, as text and in `--json`.
#[tokio::test]
async fn mailctl_names_the_recipients_refused_permanently() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, config) = refusing(
        &[
            ("gone@example.org", "550 5.1.1 User unknown"),
            ("busy@example.org", "450 4.2.1 Mailbox busy"),
        ],
        dir.path(),
    )
    .await;
    let to = ["ann@example.org", "gone@example.org", "busy@example.org"];
    let (output, stdout, stderr) = send_to(&config, &to, true).await;
    assert_eq!(output.status.code(), Some(6), "{stdout}{stderr}");
    let document = json(&stdout);
    assert_eq!(document["status"], "partial");
    assert_eq!(addresses(&document, "delivered"), ["ann@example.org"]);
    assert_eq!(
        addresses(&document, "not_sent"),
        ["gone@example.org", "busy@example.org"]
    );
    assert_eq!(
        addresses(&document, "refused_permanently"),
        ["gone@example.org"]
    );
    let message = document["error"]["message"].as_str().unwrap();
    assert!(message.contains("1 refused permanently"), "{message}");
    // Each refused recipient with the server's reply to it.
    assert_eq!(
        document["refusals"],
        serde_json::json!([
            {"kind": "to", "address": "gone@example.org", "name": null, "code": 550,
             "enhanced_code": "5.1.1", "text": "User unknown", "permanent": true,
             "auth": false},
            {"kind": "to", "address": "busy@example.org", "name": null, "code": 450,
             "enhanced_code": "4.2.1", "text": "Mailbox busy", "permanent": false,
             "auth": false},
        ])
    );
    // The rest (busy) was refused for now: worth a resend, unlike the email as a whole.
    assert_eq!(document["error"]["rest_transient"], true);
    assert_eq!(document["error"]["transient"], false);

    let (output, stdout, stderr) = send_to(&config, &to, false).await;
    assert_eq!(output.status.code(), Some(6), "{stdout}{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l == "not sent to To: gone@example.org, To: busy@example.org"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == "refused permanently, not to be resent: To: gone@example.org"),
        "{stdout}"
    );
    for line in [
        "refused To: gone@example.org: 550 5.1.1 User unknown",
        "refused To: busy@example.org: 450 4.2.1 Mailbox busy",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line}: {stdout}");
    }
}

/// Every recipient refused, one for good (550) and one for now (450): nothing went out, so
/// it exits 1 (a recipient refused) as a failure, not as a partial delivery, and `--json`
/// still says which one not to resend to and that the other's refusal is temporary.
#[tokio::test]
async fn mailctl_all_refused_fails_and_names_the_permanent_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (server, config) = refusing(
        &[
            ("gone@example.org", "550 5.1.1 User unknown"),
            ("busy@example.org", "450 4.2.1 Mailbox busy"),
        ],
        dir.path(),
    )
    .await;
    let (output, stdout, stderr) =
        send_to(&config, &["gone@example.org", "busy@example.org"], true).await;
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    let document = json(&stdout);
    assert_eq!(document["status"], "failed");
    assert_eq!((document["kind"].as_str()), Some("failed"));
    assert!(addresses(&document, "delivered").is_empty());
    assert_eq!(
        addresses(&document, "not_sent"),
        ["gone@example.org", "busy@example.org"]
    );
    assert_eq!(
        addresses(&document, "refused_permanently"),
        ["gone@example.org"]
    );
    assert_eq!(document["error"]["rest_transient"], true);
    let message = document["error"]["message"].as_str().unwrap();
    assert!(message.contains("none of its 2 recipients"), "{message}");
    assert!(server.messages().is_empty());
}

/// Every one of several recipients refused for now (450): nothing went out and a later
/// resend may reach them all, so it exits 5 (temporary), after the retries within the send.
#[tokio::test]
async fn mailctl_all_refused_for_now_exits_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let (server, config) = refusing(
        &[
            ("ann@example.org", "450 4.2.1 Mailbox busy"),
            ("busy@example.org", "450 4.2.1 Mailbox busy"),
        ],
        dir.path(),
    )
    .await;
    let (output, stdout, stderr) =
        send_to(&config, &["ann@example.org", "busy@example.org"], true).await;
    assert_eq!(output.status.code(), Some(5), "{stdout}{stderr}");
    let document = json(&stdout);
    assert_eq!(document["error"]["kind"], "temporary");
    assert_eq!(document["error"]["transient"], true);
    assert!(addresses(&document, "delivered").is_empty());
    assert!(addresses(&document, "refused_permanently").is_empty());
    assert_eq!(
        addresses(&document, "not_sent"),
        ["ann@example.org", "busy@example.org"]
    );
    assert!(server.mail_from_commands() > 1, "retried within the send");
    assert!(server.messages().is_empty());
}
