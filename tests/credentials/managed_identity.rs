//! Managed identity against loopback servers standing in for the instance metadata service
//! and App Service's identity endpoint: the request, string expiry fields, retries while the
//! endpoint starts or throttles, and the diagnostics when there is no identity.

use httpmock::Method::GET;
use httpmock::MockServer;
use mail_connector::credentials::CredentialsBuilder;
use mail_connector::{CheckStatus, Credentials, Secret};

use crate::support::*;

const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
const IDENTITY_CLIENT_ID: &str = "0c3c8e4b-1111-2222-3333-identity0001";
/// App Service's per-instance header: a secret.
const IDENTITY_HEADER: &str = "Hx9~identity-header-SECRET-value";

/// IMDS's success body: every number a string, as the metadata service sends them.
fn imds_body(access_token: &str) -> serde_json::Value {
    serde_json::json!({
        "access_token": access_token,
        "client_id": IDENTITY_CLIENT_ID,
        "expires_in": "86399",
        "expires_on": "1900000000",
        "ext_expires_in": "86399",
        "not_before": "1700000000",
        "resource": GRAPH_RESOURCE,
        "token_type": "Bearer",
    })
}

fn imds(server: &MockServer) -> CredentialsBuilder {
    Credentials::managed_identity_with_env(None, None)
        .managed_identity_endpoint(server.url(IMDS_PATH))
        .retry_policy(fast_retry(3))
}

#[tokio::test]
async fn imds_system_assigned_identity() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(IMDS_PATH)
                .query_param("api-version", "2018-02-01")
                .query_param("resource", GRAPH_RESOURCE)
                .query_param_missing("client_id")
                .header("Metadata", "true");
            then.respond_with(move |_: &httpmock::HttpMockRequest| {
                json_response(200, &imds_body("mi-token-1"))
            });
        })
        .await;
    let credentials = imds(&server).build().unwrap();
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), "mi-token-1");
    let lifetime = token
        .expires_at()
        .duration_since(token.issued_at())
        .unwrap();
    assert_eq!(lifetime.as_secs(), 86399, "expires_in read from a string");
    // Cached: a second call does not ask again.
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(mock.calls_async().await, 1);
    assert_eq!(
        credentials.token_endpoint(),
        Some(server.url(IMDS_PATH).as_str())
    );
    assert!(credentials.admin_consent_url().is_none());
}

#[tokio::test]
async fn imds_user_assigned_identity_by_client_id() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(IMDS_PATH)
                .query_param("resource", "https://outlook.office365.com")
                .query_param("client_id", IDENTITY_CLIENT_ID)
                .header("Metadata", "true");
            then.respond_with(move |_: &httpmock::HttpMockRequest| {
                json_response(200, &imds_body("mi-user-token"))
            });
        })
        .await;
    let credentials = imds(&server)
        .managed_identity_client_id(IDENTITY_CLIENT_ID)
        .build()
        .unwrap();
    let token = credentials
        .access_token(mail_connector::credentials::SMTP_SCOPE)
        .await
        .unwrap();
    assert_eq!(token.expose_secret(), "mi-user-token");
    assert_eq!(mock.calls_async().await, 1);
}

#[tokio::test]
async fn expires_on_alone_as_a_string() {
    let server = MockServer::start_async().await;
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    server
        .mock_async(|when, then| {
            when.method(GET).path(IMDS_PATH);
            then.respond_with(move |_: &httpmock::HttpMockRequest| {
                json_response(
                    200,
                    &serde_json::json!({
                        "access_token": "mi-token-on",
                        "expires_on": expires_on.to_string(),
                        "token_type": "Bearer",
                    }),
                )
            });
        })
        .await;
    let token = imds(&server)
        .build()
        .unwrap()
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap();
    let expires = token
        .expires_at()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(expires, expires_on);
}

/// Answers `status` once, then a token.
async fn first_then_token(
    server: &MockServer,
    status: u16,
    body: serde_json::Value,
) -> httpmock::Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method(GET).path(IMDS_PATH);
            then.respond_with(in_sequence(vec![
                json_response(status, &body),
                json_response(200, &imds_body("mi-after-retry")),
            ]));
        })
        .await
}

#[tokio::test]
async fn throttled_then_success() {
    let server = MockServer::start_async().await;
    let mock = first_then_token(&server, 429, serde_json::json!({"error": "throttled"})).await;
    let token = imds(&server)
        .build()
        .unwrap()
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap();
    assert_eq!(token.expose_secret(), "mi-after-retry");
    assert_eq!(mock.calls_async().await, 2);
}

#[tokio::test]
async fn not_found_while_starting_then_success() {
    for status in [404, 410, 500] {
        let server = MockServer::start_async().await;
        let mock =
            first_then_token(&server, status, serde_json::json!({"error": "starting"})).await;
        let token = imds(&server)
            .build()
            .unwrap()
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap();
        assert_eq!(token.expose_secret(), "mi-after-retry", "{status}");
        assert_eq!(mock.calls_async().await, 2, "{status}");
    }
}

#[tokio::test]
async fn user_assigned_identity_not_found_names_the_client_id() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET).path(IMDS_PATH);
            then.respond_with(move |_: &httpmock::HttpMockRequest| {
                json_response(
                    400,
                    &serde_json::json!({
                        "error": "invalid_request",
                        "error_description": "Identity not found",
                    }),
                )
            });
        })
        .await;
    let credentials = imds(&server)
        .managed_identity_client_id(IDENTITY_CLIENT_ID)
        .build()
        .unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert_eq!(mock.calls_async().await, 1, "a 400 is not retried");
    assert!(error.to_string().contains("Identity not found"), "{error}");
    let remedy = error.remedy().unwrap();
    assert!(
        remedy.contains(IDENTITY_CLIENT_ID) && remedy.contains("not attached"),
        "{remedy}"
    );
    let steps = credentials.check_steps(GRAPH_SCOPE, &["Mail.Send"]).await;
    assert_eq!(steps[0].name, "credentials");
    assert!(steps[0].detail.contains("user-assigned"), "{steps:?}");
    assert_eq!(steps[1].status, CheckStatus::Failed, "{steps:?}");
}

#[tokio::test]
async fn unreachable_endpoint_means_no_identity_on_this_host() {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let credentials = Credentials::managed_identity_with_env(None, None)
        .managed_identity_endpoint(format!("http://127.0.0.1:{port}{IMDS_PATH}"))
        .build()
        .unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    let remedy = error.remedy().unwrap();
    assert!(
        remedy.contains("no managed identity on this host"),
        "{remedy}"
    );
    let steps = credentials.check_steps(GRAPH_SCOPE, &[]).await;
    assert_eq!(steps[1].status, CheckStatus::Failed, "{steps:?}");
}

#[test]
fn endpoint_override_allows_plain_http_only_locally() {
    let builder = || Credentials::managed_identity_with_env(None, None);
    builder()
        .managed_identity_endpoint("http://169.254.169.254/metadata/identity/oauth2/token")
        .build()
        .unwrap();
    let error = builder()
        .managed_identity_endpoint("http://10.1.2.3/token")
        .build()
        .unwrap_err();
    assert!(
        error.to_string().contains("`managed_identity_endpoint`"),
        "{error}"
    );
    // App Service's endpoint from the environment obeys the same rule.
    let error = Credentials::managed_identity_with_env(
        Some("http://identity.example/msi/token".into()),
        Some(Secret::new(IDENTITY_HEADER)),
    )
    .build()
    .unwrap_err();
    assert!(error.to_string().contains("IDENTITY_ENDPOINT"), "{error}");
    assert_no_secrets(&format!("{error:?}"), &[IDENTITY_HEADER]);
}

#[test]
fn the_default_endpoint_is_the_metadata_service() {
    let credentials = Credentials::managed_identity_with_env(None, None)
        .build()
        .unwrap();
    assert_eq!(
        credentials.token_endpoint(),
        Some(mail_connector::credentials::IMDS_ENDPOINT)
    );
}

/// The settings map onto a managed identity: no client id, tenant or secret is required, and
/// the user-assigned identity and endpoint override reach the request.
#[tokio::test]
async fn settings_with_a_managed_identity_need_no_app_registration() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(IMDS_PATH)
                .query_param("client_id", IDENTITY_CLIENT_ID)
                .query_param("resource", GRAPH_RESOURCE)
                .header("Metadata", "true");
            then.respond_with(move |_: &httpmock::HttpMockRequest| {
                json_response(200, &imds_body("mi-from-settings"))
            });
        })
        .await;
    let settings = mail_connector::ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
         oauth_credential = \"managed_identity\"\nmanaged_identity_client_id = \"{IDENTITY_CLIENT_ID}\"\n\
         managed_identity_endpoint = \"{}\"\n",
        server.url(IMDS_PATH)
    ))
    .unwrap();
    settings.validate().unwrap();
    assert!(
        settings
            .summary()
            .contains("user-assigned managed identity"),
        "{}",
        settings.summary()
    );
    let credentials = settings.credentials().unwrap();
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), "mi-from-settings");
    assert_eq!(mock.calls_async().await, 1);

    // An endpoint anywhere but this machine or a link-local address is refused.
    let mut remote = settings.clone();
    remote.managed_identity_endpoint = Some("http://identity.example.org/token".into());
    let error = remote.validate().unwrap_err().to_string();
    assert!(error.contains("`managed_identity_endpoint`"), "{error}");
}

/// Review findings: a caller's (proxied) HTTP client is not used for the local endpoint, an
/// endpoint override never receives App Service's header, and two hosts' system-assigned
/// identities sharing a cache store do not share tokens.
#[tokio::test]
async fn the_identity_endpoint_gets_its_own_client_and_never_a_misdirected_header() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(IMDS_PATH)
                .header("Metadata", "true")
                .header_missing("X-IDENTITY-HEADER");
            then.respond_with(move |_: &httpmock::HttpMockRequest| {
                json_response(200, &imds_body("mi-own-client"))
            });
        })
        .await;
    // A caller's client that would send everything to a dead proxy.
    let proxied = mail_connector::reqwest::Client::builder()
        .proxy(mail_connector::reqwest::Proxy::all("http://127.0.0.1:9").unwrap())
        .build()
        .unwrap();
    let store = std::sync::Arc::new(mail_connector::credentials::InMemoryTokenCache::new());
    let host = |header: &str| {
        Credentials::managed_identity_with_env(
            Some("http://127.0.0.1:9/msi/token".into()),
            Some(Secret::new(header)),
        )
        .managed_identity_endpoint(server.url(IMDS_PATH))
        .http_client(proxied.clone())
        .cache_store(store.clone())
        .retry_policy(fast_retry(1))
        .build()
        .unwrap()
    };
    let (first, second) = (host(IDENTITY_HEADER), host(IDENTITY_HEADER));
    first.access_token(GRAPH_SCOPE).await.unwrap();
    second.access_token(GRAPH_SCOPE).await.unwrap();
    // Each "host" asked for its own token, over its own unproxied client, without the header.
    assert_eq!(mock.calls_async().await, 2);
}

#[tokio::test]
async fn a_token_that_has_already_expired_is_refused() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(IMDS_PATH);
            then.respond_with(move |_: &httpmock::HttpMockRequest| {
                json_response(
                    200,
                    &serde_json::json!({"access_token": "stale", "expires_on": "1000000000", "token_type": "Bearer"}),
                )
            });
        })
        .await;
    let error = imds(&server)
        .build()
        .unwrap()
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("already expired"), "{error}");
}
