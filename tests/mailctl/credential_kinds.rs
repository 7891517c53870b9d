//! `mailctl send` and `mailctl check` with each credential that needs no secret in the
//! settings — a managed identity, workload identity federation, a secret in a file — against
//! loopback servers named in the config.

use std::path::Path;
use std::process::Command;

use httpmock::Method::{GET, POST};
use httpmock::MockServer;

use super::helpers::*;
use crate::support;
use crate::support::assert_no_secrets;

const SEND_PATH: &str = "/v1.0/users/no-reply@contoso.com/sendMail";

/// A token that carries what the mailbox probe and a send need.
fn graph_token() -> String {
    support::jwt(
        serde_json::json!({"roles": ["Mail.Send", "Mail.ReadWrite"], "tid": support::TENANT}),
    )
}

/// Graph: a send, and the `check` probe (a message without recipients, refused as expected).
fn graph_mocks<'a>(server: &'a MockServer, token: &str) -> httpmock::Mock<'a> {
    server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .json_body_includes(r#"{"saveToSentItems":false}"#);
        then.status(400).json_body(
            serde_json::json!({"error": {"code": "ErrorInvalidRecipients", "message": "no recipients"}}),
        );
    });
    server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", format!("Bearer {token}"))
            .json_body_includes(r#"{"message":{"subject":"Hello"}}"#);
        then.status(202).header("request-id", "req-kind");
    })
}

/// mailctl with no `MAIL_CONNECTOR_*`, `AZURE_*` or App Service variables from this shell.
fn mailctl_in(dir: &Path) -> Command {
    let mut command = mailctl();
    command.current_dir(dir);
    for name in support::IDENTITY_ENV_VARS {
        command.env_remove(name);
    }
    command
}

/// `send` then `check` with `config`; returns what both printed.
fn send_and_check(dir: &Path, config: &Path) -> String {
    let (output, stdout, stderr) = run(mailctl_in(dir)
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
        .arg(config));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("req-kind"), "{stdout}");
    let (output, check, check_err) = run(mailctl_in(dir).arg("check").arg("--config").arg(config));
    assert!(output.status.success(), "{check}\n{check_err}");
    super::output::assert_columns(&check);
    for step in ["token", "permission", "mailbox"] {
        assert!(
            check
                .lines()
                .any(|l| l.starts_with(step) && l.contains(" ok ")),
            "{step} in\n{check}"
        );
    }
    format!("{stdout}\n{stderr}\n{check}\n{check_err}")
}

/// A token endpoint that answers `token` to a request carrying `name = value` in its form.
fn token_endpoint<'a>(
    server: &'a MockServer,
    token: &str,
    name: &str,
    value: &str,
) -> httpmock::Mock<'a> {
    let body = support::token_body(token, 3600);
    server.mock(|when, then| {
        when.method(POST)
            .path(support::token_path(support::TENANT))
            .form_urlencoded_tuple(name, value);
        then.status(200).json_body(body);
    })
}

fn write_config(dir: &Path, server: &MockServer, lines: &str) -> std::path::PathBuf {
    let config = dir.join("mail.toml");
    std::fs::write(
        &config,
        format!(
            "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\ngraph_endpoint = \"{}\"\n{lines}",
            server.base_url()
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_managed_identity_needs_no_app_registration_or_secret() {
    let server = MockServer::start();
    let token = graph_token();
    let body =
        serde_json::json!({"access_token": token, "expires_in": "3599", "token_type": "Bearer"});
    let identity = server.mock(|when, then| {
        when.method(GET)
            .path("/metadata/identity/oauth2/token")
            .query_param("resource", "https://graph.microsoft.com")
            .header("Metadata", "true");
        then.status(200).json_body(body);
    });
    let send = graph_mocks(&server, &token);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &server,
        &format!(
            "oauth_credential = \"managed_identity\"\nmanaged_identity_endpoint = \"{}\"\n",
            server.url("/metadata/identity/oauth2/token")
        ),
    );
    let printed = send_and_check(dir.path(), &config);
    assert!(
        printed.contains("system-assigned managed identity"),
        "{printed}"
    );
    send.assert_calls(1);
    assert!(identity.calls() >= 1);
    assert_no_secrets(&printed, &[&token]);
}

#[test]
fn workload_identity_sends_the_token_file_as_the_assertion() {
    const WORKLOAD_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWlsY3RsIn0.d29ya2xvYWQtc2ln";
    let server = MockServer::start();
    let token = graph_token();
    token_endpoint(&server, &token, "client_assertion", WORKLOAD_TOKEN);
    let send = graph_mocks(&server, &token);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, WORKLOAD_TOKEN).unwrap();
    let config = write_config(
        dir.path(),
        &server,
        &format!(
            "oauth_client_id = \"{}\"\ntenant_id = \"{}\"\nauthority_host = \"{}\"\nfederated_token_file = {:?}\n",
            support::CLIENT_ID,
            support::TENANT,
            server.base_url(),
            file.display().to_string()
        ),
    );
    let printed = send_and_check(dir.path(), &config);
    assert!(
        printed.contains("workload identity federation"),
        "{printed}"
    );
    send.assert_calls(1);
    assert_no_secrets(&printed, &[&token, WORKLOAD_TOKEN]);
}

/// A login host from `AZURE_AUTHORITY_HOST` with a tenant or token path in it is refused
/// before any request, as the `authority_host` setting would be, naming the variable: the
/// crate adds the tenant itself, so such a host would ask `…/{tenant}/{tenant}/…`.
#[test]
fn a_login_host_from_the_environment_with_a_tenant_path_is_refused() {
    let server = MockServer::start();
    let token = server.mock(|when, then| {
        when.any_request();
        then.status(500);
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").unwrap();
    let config = write_config(
        dir.path(),
        &server,
        &format!(
            "oauth_client_id = \"{}\"\ntenant_id = \"{}\"\nfederated_token_file = {:?}\n",
            support::CLIENT_ID,
            support::TENANT,
            file.display().to_string()
        ),
    );
    for path in [
        format!("/{}", support::TENANT),
        format!("/{}/oauth2/v2.0/token", support::TENANT),
    ] {
        let host = format!("{}{path}", server.base_url());
        for command in ["send", "check"] {
            let mut mailctl = mailctl_in(dir.path());
            mailctl.env("AZURE_AUTHORITY_HOST", &host).arg(command);
            if command == "send" {
                mailctl.args([
                    "--to",
                    "ann@example.org",
                    "--subject",
                    "Hello",
                    "--text",
                    "Hi",
                ]);
            }
            let (output, stdout, stderr) = run(mailctl.arg("--config").arg(&config));
            assert_eq!(output.status.code(), Some(3), "{command}: {stdout}{stderr}");
            assert_one_failure(&stderr);
            let error = stderr.lines().find(|l| l.starts_with("error:")).unwrap();
            assert!(error.contains("`AZURE_AUTHORITY_HOST`"), "{error}");
            assert!(error.contains("tenant or token path"), "{error}");
        }
    }
    token.assert_calls(0);
}

#[test]
fn a_secret_in_a_file_is_read_from_the_file() {
    const FILE_SECRET: &str = "secret-kept-in-a-vault-mounted-file";
    let server = MockServer::start();
    let token = graph_token();
    token_endpoint(&server, &token, "client_secret", FILE_SECRET);
    let send = graph_mocks(&server, &token);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client-secret");
    std::fs::write(&file, format!("{FILE_SECRET}\n")).unwrap();
    let config = write_config(
        dir.path(),
        &server,
        &format!(
            "oauth_client_id = \"{}\"\ntenant_id = \"{}\"\nauthority_host = \"{}\"\nclient_secret_file = {:?}\nclient_secret_expires = \"2099-12-31\"\n",
            support::CLIENT_ID,
            support::TENANT,
            server.base_url(),
            file.display().to_string()
        ),
    );
    let printed = send_and_check(dir.path(), &config);
    assert!(printed.contains("client secret from"), "{printed}");
    send.assert_calls(1);
    assert_no_secrets(&printed, &[&token, FILE_SECRET]);
}

#[test]
fn a_certificate_signs_the_assertion_and_its_expiry_is_checked() {
    let server = MockServer::start();
    let token = graph_token();
    let token_mock = token_endpoint(
        &server,
        &token,
        "client_assertion_type",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    );
    let send = graph_mocks(&server, &token);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &server,
        &format!(
            "oauth_client_id = \"{}\"\ntenant_id = \"{}\"\nauthority_host = \"{}\"\nclient_certificate_file = {:?}\nclient_private_key_file = {:?}\n",
            support::CLIENT_ID,
            support::TENANT,
            server.base_url(),
            support::fixture("test-client.pem").display().to_string(),
            support::fixture("test-client.key").display().to_string()
        ),
    );
    let printed = send_and_check(dir.path(), &config);
    assert!(printed.contains("oauth (certificate)"), "{printed}");
    assert!(printed.contains("certificate expiry"), "{printed}");
    send.assert_calls(1);
    assert!(token_mock.calls() >= 1);
    assert_no_secrets(&printed, &[&token]);
}
