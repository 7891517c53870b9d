//! `mailctl` against Graph and Entra ID endpoints from its config: send, and `check` with
//! and without consent.

use std::path::PathBuf;

use super::helpers::*;
use crate::support;
use crate::support::KNOWN_SECRET;
use crate::support::assert_no_secrets;

pub(crate) fn graph_config(dir: &std::path::Path, server: &httpmock::MockServer) -> PathBuf {
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

pub(crate) fn graph_mocks(server: &httpmock::MockServer, roles: &[&str]) -> String {
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
    // stderr holds the settings' source (a check for a secret in an empty text would pass
    // whatever went wrong).
    assert!(stderr.contains("settings from"), "{stderr}");
    for printed in [&stdout, &stderr] {
        assert_no_secrets(printed, &[KNOWN_SECRET, &token]);
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
    // A permission the admin must grant: 4, as for `send`.
    assert_eq!(output.status.code(), Some(4), "{stdout}");
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
