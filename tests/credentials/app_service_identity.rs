//! Managed identity on App Service (and Functions): the identity endpoint's per-instance
//! header goes with every request and never into an error, a log line or `Debug`, even when
//! the endpoint echoes it back.

use httpmock::Method::GET;
use httpmock::MockServer;
use mail_connector::{CheckStatus, Credentials, Secret};

use crate::support::*;

const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// App Service's per-instance header: a secret.
const IDENTITY_HEADER: &str = "Hx9~identity-header-SECRET-value";

/// An identity endpoint's path only the calling test uses, so that a logged line naming its
/// URL is the test's own: httpmock hands its servers, ports and all, from test to test.
fn own_identity_path() -> String {
    format!("/msi/{}/token", unique_number())
}

#[tokio::test]
async fn app_service_sends_its_header_and_never_shows_it() {
    let (logs, _guard) = capture_logs();
    // Endpoints only this test uses, in the logs too (httpmock reuses servers' ports).
    let path = own_identity_path();
    let echo_path = own_identity_path();
    let server = MockServer::start_async().await;
    let ok = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(&path)
                .query_param("api-version", "2019-08-01")
                .query_param("resource", GRAPH_RESOURCE)
                .header("X-IDENTITY-HEADER", IDENTITY_HEADER);
            then.respond_with(move |_: &httpmock::HttpMockRequest| {
                let claims = serde_json::json!({"roles": [], "tid": TENANT});
                json_response(
                    200,
                    &serde_json::json!({
                        "access_token": jwt(claims),
                        "expires_on": "4000000000",
                        "resource": GRAPH_RESOURCE,
                        "token_type": "Bearer",
                    }),
                )
            });
        })
        .await;
    let credentials = Credentials::managed_identity_with_env(
        Some(server.url(&path)),
        Some(Secret::new(IDENTITY_HEADER)),
    )
    .retry_policy(fast_retry(1))
    .build()
    .unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(ok.calls_async().await, 1);

    // The permission step: no app-role assignment yet; the remedy says how to assign one.
    let steps = credentials.check_steps(GRAPH_SCOPE, &["Mail.Send"]).await;
    assert!(steps[0].detail.contains(&path), "{steps:?}");
    let permission = steps.iter().find(|s| s.name == "permission").unwrap();
    assert_eq!(permission.status, CheckStatus::Failed);
    let remedy = permission.remedy.as_deref().unwrap();
    assert!(
        remedy.contains("New-MgServicePrincipalAppRoleAssignment")
            && remedy.contains("appRoleAssignments")
            && remedy.contains("RBAC for Applications"),
        "{remedy}"
    );
    assert!(steps.iter().all(|s| s.name != "secret expiry"), "{steps:?}");

    // Without the header the endpoint refuses; its echo of the header is redacted.
    let echo = MockServer::start_async().await;
    echo.mock_async(|when, then| {
        when.method(GET).path(&echo_path);
        then.respond_with(move |_: &httpmock::HttpMockRequest| {
            json_response(
                401,
                &serde_json::json!({"message": format!("bad header {IDENTITY_HEADER}")}),
            )
        });
    })
    .await;
    let refused = Credentials::managed_identity_with_env(
        Some(echo.url(&echo_path)),
        Some(Secret::new(IDENTITY_HEADER)),
    )
    .build()
    .unwrap();
    let error = refused.access_token(GRAPH_SCOPE).await.unwrap_err();
    let printed = format!(
        "{credentials:?} {refused:?} {error} {error:?} {:?} {steps:?}",
        error.remedy()
    );
    assert!(printed.contains("[redacted]"), "{printed}");
    assert_no_secrets(&printed, &[IDENTITY_HEADER]);
    // The capture holds this test's token and its refusal: the check below is not vacuous.
    logged_line(
        &logs,
        &["managed-identity token issued", &server.url(&path)],
    );
    logged_line(
        &logs,
        &["managed-identity token refused", &echo.url(&echo_path)],
    );
    assert_no_secrets(&logs.text(), &[IDENTITY_HEADER]);
}

/// An echo of the header with JSON's escapes (`\u002B` for `+`, `\/` for `/`, as .NET writes
/// them) does not show the header in the raw body; parsed, it does, and the error's text is
/// cut at 500 characters: an echo across the cut must not leave half the header.
#[tokio::test]
async fn an_echo_of_the_header_escaped_in_json_is_redacted_before_the_cut() {
    const HEADER: &str = "ab+cd/ef-identity-SECRET";
    let (logs, _guard) = capture_logs();
    let path = own_identity_path();
    let echo = MockServer::start_async().await;
    let padding = "x".repeat(489);
    echo.mock_async(|when, then| {
        when.method(GET).path(&path);
        then.status(400)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"error":"invalid_request","error_description":"{padding} ab\u002Bcd\/ef-identity-SECRET"}}"#
            ));
    })
    .await;
    let refused =
        Credentials::managed_identity_with_env(Some(echo.url(&path)), Some(Secret::new(HEADER)))
            .build()
            .unwrap();
    let error = refused.access_token(GRAPH_SCOPE).await.unwrap_err();
    let printed = format!("{error} {error:?} {:?}", error.remedy());
    assert!(printed.contains("xxx [redac"), "{printed}");
    assert!(!printed.contains("ab+cd"), "{printed}");
    assert_no_secrets(&printed, &[HEADER]);
    logged_line(&logs, &["managed-identity token refused", &echo.url(&path)]);
    assert_no_secrets(&logs.text(), &[HEADER, "ab+cd"]);
}
