//! A failure that names a setting set by a `MAIL_CONNECTOR_<KEY>` variable says so: the
//! variable overrides the settings file, so a fix made in the file alone would not take.

use std::path::Path;
use std::process::Command;

use httpmock::Method::POST;
use httpmock::MockServer;

use super::graph::graph_config;
use super::helpers::*;
use crate::support;
use crate::support::KNOWN_SECRET;
use crate::support::assert_no_secrets;
use crate::support::smtp_server::{ServerOptions, TestServer};

const SECRET_NOTE: &str = "mailctl: `client_secret` comes from the environment variable \
    MAIL_CONNECTOR_CLIENT_SECRET, which overrides the settings file: make the change there";

fn command(dir: &Path, config: &Path, name: &str, json: bool) -> Command {
    let mut command = mailctl();
    command
        .current_dir(dir)
        .arg(name)
        .arg("--config")
        .arg(config);
    if name == "send" {
        command.args([
            "--to",
            "ann@example.org",
            "--subject",
            "Hello",
            "--text",
            "Hi",
        ]);
    }
    if json {
        command.arg("--json");
    }
    command
}

/// What `--json` lists as set by the environment: of the error, or of `check`'s one failed
/// step.
fn listed(document: &serde_json::Value) -> serde_json::Value {
    match document.get("steps") {
        Some(steps) => {
            let failed: Vec<_> = steps
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["status"] == "failed")
                .collect();
            assert_eq!(failed.len(), 1, "{document}");
            failed[0]["set_by_environment"].clone()
        }
        None => document["error"]["set_by_environment"].clone(),
    }
}

#[test]
fn a_refused_secret_from_the_environment_names_its_variable() {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(POST).path(support::token_path(support::TENANT));
        then.status(401)
            .json_body(support::entra_error("invalid_client", 7_000_215));
    });
    let dir = tempfile::tempdir().unwrap();
    let config = graph_config(dir.path(), &server);
    let expected = serde_json::json!([
        {"setting": "client_secret", "variable": "MAIL_CONNECTOR_CLIENT_SECRET"}
    ]);
    for name in ["send", "check"] {
        let (output, stdout, stderr) = run(command(dir.path(), &config, name, false)
            .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET));
        assert_eq!(output.status.code(), Some(4), "{name}: {stdout}{stderr}");
        let notes: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("environment"))
            .collect();
        assert_eq!(notes, [SECRET_NOTE], "{name}: {stderr}");
        assert_no_secrets(&format!("{stdout}{stderr}"), &[KNOWN_SECRET]);

        let (output, stdout, _) = run(command(dir.path(), &config, name, true)
            .env("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET));
        assert_eq!(output.status.code(), Some(4), "{name}: {stdout}");
        assert_eq!(listed(&json(&stdout)), expected, "{name}: {stdout}");
        assert_no_secrets(&stdout, &[KNOWN_SECRET]);
    }

    // The same secret in the file: nothing to say.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("client_secret = \"{KNOWN_SECRET}\"\n"));
    std::fs::write(&config, text).unwrap();
    for name in ["send", "check"] {
        let (output, stdout, stderr) = run(&mut command(dir.path(), &config, name, false));
        assert_eq!(output.status.code(), Some(4), "{name}: {stdout}{stderr}");
        assert!(!stderr.contains("environment variable"), "{name}: {stderr}");
        let (_, stdout, _) = run(&mut command(dir.path(), &config, name, true));
        assert_eq!(listed(&json(&stdout)), serde_json::json!([]), "{stdout}");
    }
}

/// The secret's ID (a GUID) refused by the settings, before any request.
#[test]
fn a_secret_id_from_the_environment_names_its_variable() {
    let server = MockServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = graph_config(dir.path(), &server);
    for name in ["send", "check"] {
        let (output, stdout, stderr) = run(command(dir.path(), &config, name, false).env(
            "MAIL_CONNECTOR_CLIENT_SECRET",
            "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        ));
        assert_eq!(output.status.code(), Some(3), "{name}: {stdout}{stderr}");
        assert_one_failure(&stderr);
        assert!(stderr.lines().any(|l| l == SECRET_NOTE), "{name}: {stderr}");
    }
}

#[tokio::test]
async fn a_refused_smtp_password_from_the_environment_names_its_variable() {
    let server = TestServer::start(ServerOptions {
        auth_failure: "535 5.7.3 Authentication unsuccessful [AM0PR02CA0001.outlook.com]".into(),
        ..ServerOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("smtp.toml");
    std::fs::write(
        &config,
        format!(
            "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls_ca_file = {:?}\n\
             user_name = \"no-reply@example.org\"\nauth_mode = \"basic\"\n",
            server.port(),
            server.ca_file.path().display().to_string()
        ),
    )
    .unwrap();
    for name in ["send", "check"] {
        let mut mailctl = command(dir.path(), &config, name, false);
        mailctl.env("MAIL_CONNECTOR_PASSWORD", "wrong horse");
        let (output, stdout, stderr) = run_async(mailctl).await;
        assert_eq!(output.status.code(), Some(4), "{name}: {stdout}{stderr}");
        let notes: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("environment"))
            .collect();
        assert_eq!(
            notes,
            [
                "mailctl: `password` comes from the environment variable MAIL_CONNECTOR_PASSWORD, \
              which overrides the settings file: make the change there"
            ],
            "{name}: {stderr}"
        );
        assert_no_secrets(&format!("{stdout}{stderr}"), &["wrong horse"]);
    }
    assert!(server.messages().is_empty());
}
