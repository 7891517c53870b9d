//! `mailctl` against the loopback SMTP server, with basic auth and OAuth.

use super::helpers::mailctl;
use crate::support;
use crate::support::assert_no_secrets;
use crate::support::smtp_server::{ServerOptions, TestServer};

const USER: &str = "no-reply@example.org";
const PASSWORD: &str = "correct horse";

async fn run_mailctl(args: Vec<String>, config: &std::path::Path) -> (bool, String) {
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = mailctl()
            .args(&args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    })
    .await
    .unwrap()
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
