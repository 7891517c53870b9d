//! `check` on the token side: the permission, consent URL and secret expiry steps.

use httpmock::Method::POST;
use httpmock::MockServer;
use mail_connector::CheckStatus;

use crate::support::*;

async fn check_with_roles(roles: &[&str], expires: Option<&str>) -> Vec<mail_connector::CheckStep> {
    let server = MockServer::start_async().await;
    let token = jwt(serde_json::json!({
        "aud": "https://graph.microsoft.com", "tid": TENANT, "roles": roles, "exp": 4_102_444_800_u64
    }));
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200).json_body(token_body(&token, 3599));
        })
        .await;
    let mut settings = secret_settings(&server, TENANT);
    settings.client_secret_expires = expires.map(|e| e.parse().unwrap());
    let credentials = settings.credentials().unwrap();
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    let claims = token.claims().unwrap();
    assert_eq!(claims.tid.as_deref(), Some(TENANT));
    assert_eq!(claims.exp, Some(4_102_444_800));
    let steps = credentials.check_steps(GRAPH_SCOPE, &["Mail.Send"]).await;
    // A cached token that holds the role is used as it is; one without it is fetched anew
    // (it may predate admin consent).
    let requests = if roles.contains(&"Mail.Send") { 1 } else { 2 };
    assert_eq!(
        mock.calls_async().await,
        requests,
        "token requests, roles {roles:?}"
    );
    steps
}

fn date_in(days: i64) -> String {
    let date = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

#[tokio::test]
async fn check_reports_a_missing_application_permission_with_the_consent_url() {
    let steps = check_with_roles(&[], Some(&date_in(400))).await;
    let names: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["token", "permission", "secret expiry", "credential"]
    );
    assert_eq!(steps[3].detail, "client secret (from the settings)");
    assert_eq!(steps[0].status, CheckStatus::Ok);
    assert!(steps[0].detail.contains(TENANT), "{}", steps[0].detail);
    let permission = &steps[1];
    assert_eq!(permission.status, CheckStatus::Failed);
    assert!(permission.detail.contains("Mail.Send"));
    let remedy = permission.remedy.as_deref().unwrap();
    assert!(
        remedy.contains("Application permission") && remedy.contains("admin consent"),
        "{remedy}"
    );
    assert!(
        remedy.contains(&format!("/{TENANT}/adminconsent?client_id={CLIENT_ID}")),
        "{remedy}"
    );
    assert_eq!(steps[2].status, CheckStatus::Ok);
}

#[tokio::test]
async fn check_passes_with_the_role_and_warns_about_the_secret_expiry() {
    let steps = check_with_roles(&["Mail.Send"], Some(&date_in(10))).await;
    assert_eq!(steps[1].status, CheckStatus::Ok, "{steps:?}");
    assert_eq!(steps[2].status, CheckStatus::Warning);
    assert!(
        steps[2]
            .remedy
            .as_deref()
            .unwrap()
            .contains("`client_secret_expires`")
    );
    // A secret whose Expires date is today still works today (checked again if the day
    // changed during the check).
    loop {
        let today = date_in(0);
        let steps = check_with_roles(&["Mail.Send"], Some(&today)).await;
        if date_in(0) == today {
            assert_eq!(steps[2].status, CheckStatus::Warning, "{steps:?}");
            break;
        }
    }
    let steps = check_with_roles(&["Mail.Send"], Some(&date_in(-1))).await;
    assert_eq!(steps[2].status, CheckStatus::Failed);
    let steps = check_with_roles(&["Mail.Send"], None).await;
    assert_eq!(steps[2].status, CheckStatus::Warning);
}

#[tokio::test]
async fn check_reports_a_failed_token_step() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(401)
                .json_body(entra_error("invalid_client", 7_000_215));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let steps = credentials.check_steps(GRAPH_SCOPE, &["Mail.Send"]).await;
    assert_eq!(steps[0].name, "token");
    assert_eq!(steps[0].status, CheckStatus::Failed);
    assert!(
        steps[0]
            .remedy
            .as_deref()
            .unwrap()
            .contains("`client_secret`")
    );
}

/// Review finding: when the cached token lacks the role and fetching a new one fails, the
/// `token` step reports that failure and its remedy — not the old token's missing
/// permission.
#[tokio::test]
async fn check_reports_a_failed_refetch_instead_of_the_old_tokens_permission() {
    let server = MockServer::start_async().await;
    let without_role = jwt(serde_json::json!({
        "aud": "https://graph.microsoft.com", "tid": TENANT, "roles": [], "exp": 4_102_444_800_u64
    }));
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(in_sequence(vec![
                json_response(200, &token_body(&without_role, 3599)),
                json_response(401, &entra_error("invalid_client", 7_000_215)),
            ]));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();

    let steps = credentials.check_steps(GRAPH_SCOPE, &["Mail.Send"]).await;

    assert_eq!(mock.calls_async().await, 2, "the token was fetched anew");
    assert_eq!(steps[0].name, "token");
    assert_eq!(steps[0].status, CheckStatus::Failed, "{steps:?}");
    assert!(steps[0].detail.contains("7000215"), "{steps:?}");
    let remedy = steps[0].remedy.as_deref().unwrap();
    assert!(remedy.contains("`client_secret`"), "{remedy}");
    assert!(
        steps.iter().all(|s| s.name != "permission"),
        "a permission read from the old token: {steps:?}"
    );
}

/// A caller's token provider has no app registration behind it to describe: its check is
/// the token step alone, with no `credential` or expiry step.
#[tokio::test]
async fn a_token_providers_check_is_the_token_step_alone() {
    let source = super::helpers::NumberedSource::new(
        std::time::Duration::from_secs(3600),
        std::time::Duration::ZERO,
    );
    let credentials = super::helpers::from_source(source).build().unwrap();
    let steps = credentials.check_steps(GRAPH_SCOPE, &[]).await;
    let names: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["token"], "{steps:?}");
    assert_eq!(steps[0].status, CheckStatus::Ok);
}
