//! Entra ID errors: which are retried, and the setup step and setting each one names.

use std::time::{Duration, Instant};

use httpmock::Method::POST;
use httpmock::MockServer;
use mail_connector::Error;

use crate::support::*;

#[tokio::test]
async fn throttling_is_retried_after_retry_after_seconds() {
    let server = MockServer::start_async().await;
    let throttled = httpmock::HttpMockResponse::builder()
        .status(429)
        .header("retry-after", "1")
        .body(r#"{"error":"temporarily_unavailable","error_codes":[90055]}"#)
        .build();
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(in_sequence(vec![
                throttled,
                json_response(200, &token_body("after-429", 3599)),
            ]));
        })
        .await;
    let credentials = secret_settings(&server, TENANT)
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .build()
        .unwrap();
    let started = Instant::now();
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(token.expose_secret(), "after-429");
    assert_eq!(mock.calls_async().await, 2);
}

#[tokio::test]
async fn unavailable_is_retried_after_fractional_retry_after_until_retries_run_out() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(503).header("retry-after", "0.25").body("busy");
        })
        .await;
    let credentials = secret_settings(&server, TENANT)
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(2))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(mock.calls_async().await, 3);
    assert!(error.is_transient(), "{error}");
    assert!(!error.is_auth());
    assert!(error.to_string().contains("503"), "{error}");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(400)
                .json_body(entra_error("invalid_scope", 70_011));
        })
        .await;
    let credentials = secret_settings(&server, TENANT)
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(5))
        .build()
        .unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert_eq!(mock.calls_async().await, 1);
    assert!(!error.is_transient());
}

#[tokio::test]
async fn entra_errors_name_the_setup_step_and_setting() {
    let server = MockServer::start_async().await;
    // (code, error, status, words the remedy must contain)
    let cases: &[(u64, &str, u16, &[&str])] = &[
        (
            7_000_215,
            "invalid_client",
            401,
            &["Value", "`client_secret`", "ID"],
        ),
        (
            7_000_222,
            "invalid_client",
            401,
            &[
                "Certificates & secrets",
                "`client_secret`",
                "`client_secret_expires`",
            ],
        ),
        (
            700_016,
            "unauthorized_client",
            400,
            &["`oauth_client_id`", "`tenant_id`", "admin-consent"],
        ),
        (
            700_011,
            "unauthorized_client",
            400,
            &["`oauth_client_id`", "`tenant_id`"],
        ),
        // An app registration made with `az ad app create`, Graph or Terraform has no
        // service principal until one is made: no secret will fix that.
        (
            7_000_229,
            "invalid_client",
            401,
            &["service principal", "az ad sp create", "`oauth_client_id`"],
        ),
        (90_002, "invalid_tenant", 400, &["`tenant_id`", "`cloud`"]),
        (90_038, "invalid_request", 400, &["`cloud`"]),
        (70_011, "invalid_scope", 400, &["/.default"]),
        (1_002_012, "invalid_scope", 400, &["/.default"]),
        (
            700_027,
            "invalid_client",
            401,
            &["upload the certificate", "`client_private_key_file`"],
        ),
        (700_024, "invalid_client", 401, &["clock"]),
        (65_001, "invalid_grant", 400, &["Grant admin consent"]),
        (
            500_011,
            "invalid_resource",
            400,
            &["Office 365 Exchange Online", "`tenant_id`", "`cloud`"],
        ),
        (
            500_014,
            "invalid_request",
            400,
            &["disabled", "re-enable", "Enterprise applications"],
        ),
    ];
    for (i, (code, error, status, words)) in cases.iter().enumerate() {
        let tenant = format!("case{i}.example.org");
        server
            .mock_async(|when, then| {
                when.method(POST).path(token_path(&tenant));
                then.status(*status).json_body(entra_error(error, *code));
            })
            .await;
        let credentials = secret_settings(&server, &tenant)
            .credentials_builder()
            .unwrap()
            .retry_policy(fast_retry(0))
            .build()
            .unwrap();
        let failure = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
        let remedy = failure.remedy().unwrap();
        for word in *words {
            assert!(
                remedy.contains(word),
                "AADSTS{code}: `{word}` missing in: {remedy}"
            );
        }
        let text = failure.to_string();
        assert!(text.contains(&format!("AADSTS{code}")), "{text}");
        assert!(
            text.contains("0b6f6a4c-1d2e-4f3a-9b8c-7d6e5f4a3b2c"),
            "trace id: {text}"
        );
        assert!(
            text.contains("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"),
            "correlation id: {text}"
        );
        assert!(failure.is_auth(), "AADSTS{code}");
        assert!(!failure.is_transient(), "AADSTS{code}");
        let Error::TokenRequest { trace_id, .. } = &failure else {
            panic!("{failure:?}")
        };
        assert_eq!(
            trace_id.as_deref(),
            Some("0b6f6a4c-1d2e-4f3a-9b8c-7d6e5f4a3b2c")
        );
    }

    // An error without a mapped code falls back to its `error` value.
    let tenant = "unmapped.example.org";
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(tenant));
            then.status(400).json_body(
                serde_json::json!({"error":"temporarily_unavailable","error_codes":[1]}),
            );
        })
        .await;
    let credentials = secret_settings(&server, tenant)
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(0))
        .build()
        .unwrap();
    let failure = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(failure.is_transient() && !failure.is_auth(), "{failure}");

    // Transient codes: throttling backs off; a detected loop means tokens are not reused.
    let transient: &[(u64, &str, &[&str], &str)] = &[
        (90_055, "invalid_request", &["throttling"], "loop"),
        (
            50_196,
            "invalid_request",
            &["one `Credentials`", "share it", "`TokenCacheStore`"],
            "throttling",
        ),
    ];
    for (code, error, words, absent) in transient {
        let tenant = format!("transient{code}.example.org");
        server
            .mock_async(|when, then| {
                when.method(POST).path(token_path(&tenant));
                then.status(400).json_body(entra_error(error, *code));
            })
            .await;
        let credentials = secret_settings(&server, &tenant)
            .credentials_builder()
            .unwrap()
            .retry_policy(fast_retry(0))
            .build()
            .unwrap();
        let failure = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
        let remedy = failure.remedy().unwrap();
        for word in *words {
            assert!(
                remedy.contains(word),
                "AADSTS{code}: `{word}` missing in: {remedy}"
            );
        }
        assert!(!remedy.contains(absent), "AADSTS{code}: {remedy}");
        assert!(failure.is_transient() && !failure.is_auth(), "{failure}");
    }
}

#[tokio::test]
async fn entra_errors_marked_transient_are_retried() {
    for (error, code) in [("temporarily_unavailable", 1), ("invalid_request", 90_055)] {
        let server = MockServer::start_async().await;
        let mock = server
            .mock_async(|when, then| {
                when.method(POST).path(token_path(TENANT));
                then.respond_with(in_sequence(vec![
                    json_response(400, &entra_error(error, code)),
                    json_response(200, &token_body("after-retry", 3599)),
                ]));
            })
            .await;
        let credentials = secret_settings(&server, TENANT)
            .credentials_builder()
            .unwrap()
            .retry_policy(fast_retry(3))
            .build()
            .unwrap();
        let token = credentials.access_token(GRAPH_SCOPE).await;
        assert_eq!(
            token.map(|t| t.expose_secret().to_owned()).ok().as_deref(),
            Some("after-retry"),
            "{error} AADSTS{code}"
        );
        assert_eq!(mock.calls_async().await, 2, "{error} AADSTS{code}");
    }
}

#[tokio::test]
async fn an_unreachable_login_host_is_transient_with_a_connectivity_remedy() {
    // Bind a port, then close it, so nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = secret_settings(&MockServer::start_async().await, TENANT);
    settings.authority_host = Some(format!("http://127.0.0.1:{port}"));
    let credentials = settings
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(1))
        .build()
        .unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(!error.is_auth());
    assert!(error.remedy().unwrap().contains("`authority_host`"));
    assert!(matches!(error, Error::TokenEndpoint { .. }), "{error:?}");
}

#[tokio::test]
async fn a_response_that_is_not_a_token_is_reported_without_its_body() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200)
                .body("<html>proxy login page secret-ish</html>");
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert_no_secrets(&error.to_string(), &["secret-ish"]);
    assert!(
        error.to_string().contains("not a token response"),
        "{error}"
    );
}

/// A throttled login host whose answer is not Entra's JSON (a gateway's 429 or 503 page):
/// the wait it asked for outlasts the retries, and stays on the error, so that a queue or
/// a caller scheduling its own retry does not ask again sooner.
#[tokio::test]
async fn retry_after_outlasting_the_retries_stays_on_the_error() {
    for status in [429u16, 503] {
        let server = MockServer::start_async().await;
        let mock = server
            .mock_async(|when, then| {
                when.method(POST).path(token_path(TENANT));
                then.status(status)
                    .header("retry-after", "600")
                    .body("busy");
            })
            .await;
        let credentials = secret_settings(&server, TENANT)
            .credentials_builder()
            .unwrap()
            .retry_policy(fast_retry(3))
            .build()
            .unwrap();
        let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
        // Ten minutes is past the policy's deadline: no second request.
        assert_eq!(mock.calls_async().await, 1, "{status}");
        assert!(error.is_transient(), "{status}: {error}");
        assert_eq!(
            error.retry_after(),
            Some(Duration::from_secs(600)),
            "{status}: {error:?}"
        );
    }
}

/// Entra ID's own failure, in its JSON (HTTP 500 `server_error`, AADSTS50000 "There was an
/// error issuing a token"): retried, and once the retries give up the remedy says to wait,
/// not to check settings that are right.
#[tokio::test]
async fn an_entra_server_error_is_retried_and_blames_no_setting() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(500)
                .json_body(entra_error("server_error", 50_000));
        })
        .await;
    let credentials = secret_settings(&server, TENANT)
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(1))
        .build()
        .unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert_eq!(mock.calls_async().await, 2, "retried once");
    assert!(error.is_transient() && !error.is_auth(), "{error:?}");
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("try again later"), "{remedy}");
    for setting in ["`client_secret`", "`oauth_client_id`", "`tenant_id`"] {
        assert!(!remedy.contains(setting), "{remedy}");
    }
}
