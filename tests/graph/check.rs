//! `check` against Graph: roles, the mailbox, Mail.ReadWrite and the secret's expiry.

use httpmock::{Method::POST, Mock, MockServer};
use mail_connector::{CheckStatus, MailTransport};
use serde_json::json;

use super::helpers::*;

fn probe_mock<'a>(server: &'a MockServer, status: u16, code: &str) -> Mock<'a> {
    let body = graph_error(code, "probe");
    server.mock(move |when, then| {
        when.method(POST).path(SEND_PATH).json_body(
            json!({"message": {"subject": "mail-connector configuration check (never delivered)",
                "body": {"contentType": "Text", "content": ""}}, "saveToSentItems": false}),
        );
        then.status(status).json_body(body);
    })
}

fn step<'a>(report: &'a mail_connector::CheckReport, name: &str) -> &'a mail_connector::CheckStep {
    report
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} step in\n{report}"))
}

#[tokio::test]
async fn check_passes_for_a_complete_setup() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let probe = probe_mock(&server, 400, "ErrorInvalidRecipients");
    let mut settings = settings(&server);
    settings.client_secret_expires = Some("2099-01-01".parse().unwrap());
    let report = transport(&settings).check().await.unwrap();
    assert_eq!(report.status(), CheckStatus::Ok, "{report}");
    for name in ["token", "permission", "mailbox"] {
        assert_eq!(step(&report, name).status, CheckStatus::Ok, "{report}");
    }
    probe.assert_calls(1);
}

#[tokio::test]
async fn check_reports_a_missing_role_with_the_consent_url() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&[]));
    // Without the permission (and no RBAC for Applications grant) Graph refuses the probe.
    let probe = probe_mock(&server, 403, "ErrorAccessDenied");
    let report = transport(&settings(&server)).check().await.unwrap();
    let permission = step(&report, "permission");
    assert_eq!(permission.status, CheckStatus::Failed, "{report}");
    let remedy = permission.remedy.as_deref().unwrap();
    assert!(
        remedy.contains("Mail.Send") && remedy.contains("adminconsent?client_id="),
        "{remedy}"
    );
    // The consent page's possible error, and the mailbox-scoped alternative.
    assert!(remedy.contains("says Granted"), "{remedy}");
    assert!(remedy.contains("`Application Mail.Send`"), "{remedy}");
    probe.assert_calls(1);
    assert!(
        report.steps.iter().all(|s| s.name != "mailbox"),
        "the permission step says it: {report}"
    );
}

/// Exchange Online's RBAC for Applications lets an app send from a mailbox without any role
/// in its token: the probe shows it, and the missing role is only a warning that says not
/// to grant the tenant-wide one.
#[tokio::test]
async fn check_passes_an_app_that_rbac_for_applications_lets_send() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&[]));
    let probe = probe_mock(&server, 400, "ErrorInvalidRecipients");
    let report = transport(&settings(&server)).check().await.unwrap();
    probe.assert_calls(1);
    assert_eq!(step(&report, "mailbox").status, CheckStatus::Ok, "{report}");
    let permission = step(&report, "permission");
    assert_eq!(permission.status, CheckStatus::Warning, "{report}");
    assert!(
        permission.detail.contains("RBAC for Applications"),
        "{report}"
    );
    assert_ne!(report.status(), CheckStatus::Failed, "{report}");
}

/// Consent granted after the service fetched its token: `check` in that process asks for a
/// new token before it reports a missing role (the old one keeps its old permissions).
#[tokio::test]
async fn check_after_consent_reads_a_new_token_not_the_cached_one() {
    let server = MockServer::start_async().await;
    let roleless = token_for(&[]);
    let mut before = mock_token(&server, &roleless);
    let refused = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", format!("Bearer {roleless}"));
        then.status(403)
            .json_body(graph_error("ErrorAccessDenied", "probe"));
    });
    let graph = transport(&settings(&server));
    let report = graph.check().await.unwrap();
    assert_eq!(step(&report, "permission").status, CheckStatus::Failed);
    refused.assert_calls(1);
    before.delete();
    let after = mock_token(&server, &token_for(&["Mail.Send"]));
    let probe = probe_mock(&server, 400, "ErrorInvalidRecipients");
    let report = graph.check().await.unwrap();
    let permission = step(&report, "permission");
    assert_eq!(permission.status, CheckStatus::Ok, "{report}");
    assert!(permission.detail.contains("Mail.Send"), "{report}");
    after.assert_calls(1);
    probe.assert_calls(1);
}

#[tokio::test]
async fn check_reports_a_missing_mailbox_and_missing_mail_readwrite() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    probe_mock(&server, 404, "ErrorInvalidUser");
    let report = transport(&settings(&server)).check().await.unwrap();
    let mailbox = step(&report, "mailbox");
    assert_eq!(mailbox.status, CheckStatus::Failed, "{report}");
    assert!(
        mailbox.remedy.as_deref().unwrap().contains("`user_name`"),
        "{report}"
    );
    assert_eq!(
        step(&report, "large mail").status,
        CheckStatus::Warning,
        "{report}"
    );
}

#[tokio::test]
async fn check_fails_an_expired_secret() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    probe_mock(&server, 400, "ErrorInvalidRecipients");
    let mut settings = settings(&server);
    settings.client_secret_expires = Some("2020-01-31".parse().unwrap());
    let report = transport(&settings).check().await.unwrap();
    assert_eq!(report.status(), CheckStatus::Failed, "{report}");
    let expiry = report
        .steps
        .iter()
        .find(|s| s.status == CheckStatus::Failed)
        .unwrap();
    assert!(
        expiry.remedy.as_deref().unwrap().contains("client_secret"),
        "{report}"
    );
    assert_eq!(step(&report, "mailbox").status, CheckStatus::Ok, "{report}");
}

/// Review finding: a token that does not come within the check's deadline blames where
/// tokens come from — here the managed identity endpoint, not the login host.
#[tokio::test]
async fn check_blames_a_silent_managed_identity_endpoint_not_the_login_host() {
    let server = MockServer::start_async().await;
    let (identity, _) = crate::support::hostile::silent().await;
    let settings = mail_connector::ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
         oauth_credential = \"managed_identity\"\n\
         managed_identity_endpoint = \"{identity}/metadata/identity/oauth2/token\"\n\
         graph_endpoint = \"{}\"\n",
        server.base_url()
    ))
    .unwrap();
    let graph = settings
        .graph_builder()
        .unwrap()
        .send_deadline(std::time::Duration::from_secs(2))
        .build()
        .unwrap();

    let report = graph.check().await.unwrap();

    let token = step(&report, "token");
    assert_eq!(token.status, CheckStatus::Failed, "{report}");
    assert!(!token.detail.contains("login host"), "{report}");
    let remedy = token.remedy.as_deref().unwrap_or_default();
    assert!(remedy.contains("`managed_identity_endpoint`"), "{report}");
    assert!(!remedy.contains("authority_host"), "{report}");
}
