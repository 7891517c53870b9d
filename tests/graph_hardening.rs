//! The Graph transport under attack and under faults (issue 8): redirects, oversized bodies,
//! echoed tokens, absurd builder values, throttling, cancellation, revoked tokens, refused
//! TLS certificates and a login host that never answers.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use httpmock::{HttpMockRequest, HttpMockResponse, Method::POST, MockServer};
use mail_connector::{
    AccessToken, CheckStatus, ConnectorSettings, Credentials, Delivery, Email, GraphTransport,
    MailTransport, Result, RetryPolicy, TokenProvider,
};
use serde_json::json;
use support::*;

const SEND_PATH: &str = "/v1.0/users/no-reply@contoso.com/sendMail";

fn token_for(roles: &[&str]) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jwt(json!({"roles": roles, "tid": TENANT, "aud": "https://graph.microsoft.com", "exp": exp}))
}

fn settings(login: &MockServer, graph: &str) -> ConnectorSettings {
    let mut settings = secret_settings(login, TENANT);
    settings.graph_endpoint = Some(graph.to_owned());
    settings
}

fn mock_token(server: &MockServer, token: &str) {
    let body = token_body(token, 3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.status(200).json_body(body);
    });
}

fn transport(settings: &ConnectorSettings) -> GraphTransport {
    settings
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .build()
        .unwrap()
}

fn email() -> Email {
    Email::builder()
        .to("ann@example.org")
        .subject("Hi")
        .text("Hello")
        .build()
        .unwrap()
}

/// A token source that never fails, for servers that only play Graph.
#[derive(Debug)]
struct StaticToken;

#[async_trait::async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self, _: &str) -> Result<AccessToken> {
        Ok(AccessToken::new(
            "static-token",
            SystemTime::now() + Duration::from_secs(3600),
        ))
    }
}

fn graph_at(base: &str, max_concurrency: usize) -> GraphTransport {
    let login = "http://127.0.0.1:9"; // never used: the token comes from StaticToken
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(mail_connector::AuthMode::OAuth);
    settings.user_name = Some("no-reply@contoso.com".into());
    settings.oauth_client_id = Some(CLIENT_ID.into());
    settings.tenant_id = Some(TENANT.into());
    settings.client_secret = Some(SECRET.into());
    settings.authority_host = Some(login.into());
    settings.graph_endpoint = Some(base.to_owned());
    settings
        .builder()
        .token_provider(Credentials::from_token_provider(StaticToken))
        .graph_builder()
        .unwrap()
        .max_concurrency(max_concurrency)
        .retry_policy(fast_retry(3))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_redirecting_graph_endpoint_is_not_followed() {
    let elsewhere = MockServer::start_async().await;
    let stolen = elsewhere.mock(|_, then| {
        then.status(202);
    });
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let target = elsewhere.url("/collect");
    server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(307).header("location", target);
    });
    let error = transport(&settings(&server, &server.base_url()))
        .send(&email())
        .await
        .unwrap_err();
    assert_eq!(stolen.calls(), 0, "the redirect was followed");
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.delivery(), Delivery::NotSent);
    let text = format!("{error} {}", error.remedy().unwrap_or_default());
    assert!(
        text.contains("graph_endpoint") && text.contains("127.0.0.1"),
        "{text}"
    );
}

#[tokio::test]
async fn huge_graph_bodies_are_not_read_whole() {
    let login = MockServer::start_async().await;
    mock_token(&login, &token_for(&["Mail.Send"]));
    // An error answer and a success answer, each with an endless body.
    for status in [400u16, 202] {
        let (base, sent) = hostile::endless_body(status).await;
        let result = tokio::time::timeout(
            Duration::from_secs(60),
            transport(&settings(&login, &base)).send(&email()),
        )
        .await
        .expect("the send ends by itself");
        let sent = sent.load(Ordering::SeqCst);
        assert!(
            sent < 32 * 1024 * 1024,
            "HTTP {status}: the client read {sent} bytes of the body"
        );
        match status {
            // The status is the answer: the mail was accepted whatever followed it.
            202 => {
                result.unwrap();
            }
            _ => {
                let error = result.unwrap_err();
                assert!(error.to_string().contains("larger than"), "{error}");
            }
        }
    }
}

#[tokio::test]
async fn a_token_echoed_by_graph_is_redacted_everywhere() {
    let (logs, _guard) = capture_logs();
    let server = MockServer::start_async().await;
    let token = token_for(&["Mail.Send"]);
    mock_token(&server, &token);
    // Echoes the Authorization header back, as a careless proxy or a hostile server would.
    server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.respond_with(|request: &HttpMockRequest| {
            let auth = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = json!({"error": {"code": "InvalidAuthenticationToken",
                "message": format!("bad header: {auth}"),
                "innerError": {"request-id": format!("id {auth}")}}});
            HttpMockResponse::builder()
                .status(401)
                .header("request-id", format!("hdr {auth}"))
                .body(body.to_string())
                .build()
        });
    });
    let error = transport(&settings(&server, &server.base_url()))
        .send(&email())
        .await
        .unwrap_err();
    let printed = format!(
        "{error}\n{error:?}\n{}\n{}",
        error.remedy().unwrap_or_default(),
        logs.text()
    );
    assert!(printed.contains("bad header"), "{printed}");
    // The token's signature part is the tail of every echo.
    assert!(
        !printed.contains(&token),
        "the token was printed:\n{printed}"
    );
    assert!(!printed.contains("c2lnbmF0dXJl"), "{printed}");
}

#[tokio::test]
async fn extreme_builder_values_do_not_panic() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let settings = settings(&server, &server.base_url());
    let credentials = settings
        .credentials_builder()
        .unwrap()
        .refresh_margin(Duration::MAX)
        .refresh_cooldown(Duration::MAX)
        .retry_policy(RetryPolicy {
            max_retries: u32::MAX,
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            multiplier: f64::MAX,
            deadline: Some(Duration::MAX),
        })
        .build()
        .unwrap();
    let graph = settings
        .builder()
        .token_provider(credentials)
        .graph_builder()
        .unwrap()
        .max_concurrency(usize::MAX)
        .send_deadline(Duration::MAX)
        .connect_timeout(Duration::MAX)
        .request_timeout(Duration::MAX)
        .retry_policy(RetryPolicy {
            max_retries: u32::MAX,
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            multiplier: f64::MAX,
            deadline: None,
        })
        .build()
        .unwrap();
    graph.send(&email()).await.unwrap();
    graph.send(&email()).await.unwrap();
    send.assert_calls(2);
}

#[tokio::test]
async fn an_absurd_retry_after_neither_panics_nor_waits() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    for value in ["18446744073709551615", "9223372036854775807.5"] {
        server.mock(|when, then| {
            when.method(POST).path(SEND_PATH);
            then.status(429).header("retry-after", value);
        });
        let error = tokio::time::timeout(
            Duration::from_secs(30),
            transport(&settings(&server, &server.base_url())).send(&email()),
        )
        .await
        .expect("gives up at once")
        .unwrap_err();
        assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
        assert!(error.is_transient());
    }
}

#[tokio::test]
async fn one_retry_after_pauses_the_whole_mailbox() {
    let (base, arrivals) = hostile::throttle_once(1).await;
    let graph = Arc::new(graph_at(&base, 4));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let graph = Arc::clone(&graph);
            tokio::spawn(async move { graph.send(&email()).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let throttled = arrivals.throttled_at.lock().unwrap().unwrap();
    let window_end = throttled + Duration::from_secs(1);
    let inside = arrivals
        .at
        .lock()
        .unwrap()
        .iter()
        .filter(|at| **at > throttled && **at < window_end)
        .count();
    println!("requests that arrived inside the 1 s Retry-After window: {inside}");
    // Only requests already on their way when the 429 was answered (at most the other 3
    // permits) may arrive; nothing new starts until the window has passed.
    assert!(inside <= 3, "{inside} requests arrived inside the window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_sends_keep_the_concurrency_cap() {
    let (base, stats) = loopback::start(Duration::from_millis(200)).await;
    let graph = Arc::new(graph_at(&base, 4));
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let graph = Arc::clone(&graph);
            tokio::spawn(async move {
                // Callers that give up at different moments, most while a request is out.
                let patience = Duration::from_millis(20 + 2 * (i % 100));
                let _ = tokio::time::timeout(patience, graph.send(&email())).await;
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Sends after the storm still work and still respect the cap.
    for _ in 0..4 {
        graph.send(&email()).await.unwrap();
    }
    let max = stats.max_in_flight.load(Ordering::SeqCst);
    println!("most sendMail requests in flight after mass cancellation: {max}");
    assert!(max <= 4, "{max} requests were in flight at once");
}

#[tokio::test]
async fn a_key_rollover_costs_one_shared_refresh() {
    let server = MockServer::start_async().await;
    let (fetches, responder) = numbered_tokens(3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.respond_with(responder);
    });
    let refused = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer token-1");
        then.status(401).json_body(
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "rolled over"}}),
        );
    });
    let accepted = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let graph = Arc::new(transport(&settings(&server, &server.base_url())));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let graph = Arc::clone(&graph);
            tokio::spawn(async move { graph.send(&email()).await })
        })
        .collect();
    let mut delivered = 0;
    for task in tasks {
        task.await.unwrap().unwrap();
        delivered += 1;
    }
    let token_requests = fetches.load(Ordering::SeqCst);
    println!(
        "rollover: {delivered}/200 delivered, {token_requests} token requests, {} refused",
        refused.calls()
    );
    assert_eq!(accepted.calls(), 200);
    assert!(token_requests <= 4, "{token_requests} token requests");
}

#[tokio::test]
async fn a_revoked_app_names_the_causes_and_does_not_loop_on_tokens() {
    let server = MockServer::start_async().await;
    let (fetches, responder) = numbered_tokens(3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.respond_with(responder);
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(401).json_body(
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token validation failure."}}),
        );
    });
    let graph = transport(&settings(&server, &server.base_url()));
    let mut last = None;
    for _ in 0..50 {
        let error = graph.send(&email()).await.unwrap_err();
        assert!(!error.is_transient());
        last = Some(error);
    }
    let token_requests = fetches.load(Ordering::SeqCst);
    println!(
        "revocation: 0/50 delivered, {token_requests} token requests, {} Graph requests",
        send.calls()
    );
    assert!(token_requests <= 3, "{token_requests} token requests");
    let remedy = last.unwrap().remedy().unwrap();
    for cause in [
        "consent",
        "disabled",
        "service principal",
        "Conditional Access",
        "application access policy",
        "`cloud`",
    ] {
        assert!(remedy.contains(cause), "{cause} missing from: {remedy}");
    }
}

#[tokio::test]
async fn concurrent_sends_under_a_revocation_make_few_token_requests() {
    let server = MockServer::start_async().await;
    let (fetches, responder) = numbered_tokens(3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.respond_with(responder);
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(401).json_body(
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "revoked"}}),
        );
    });
    let graph = Arc::new(transport(&settings(&server, &server.base_url())));
    // Waves of concurrent sends, as a busy service would make them.
    let mut delivered = 0;
    for _ in 0..10 {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let graph = Arc::clone(&graph);
                tokio::spawn(async move { graph.send(&email()).await })
            })
            .collect();
        for task in tasks {
            delivered += usize::from(task.await.unwrap().is_ok());
        }
    }
    let token_requests = fetches.load(Ordering::SeqCst);
    println!(
        "revocation, 10 waves of 20 concurrent sends: {delivered}/200 delivered, \
         {token_requests} token requests, {} Graph requests",
        send.calls()
    );
    assert_eq!(delivered, 0);
    assert!(token_requests <= 3, "{token_requests} token requests");
}

#[tokio::test]
async fn a_refused_tls_certificate_is_permanent_and_tried_once() {
    let (base, handshakes) = hostile::self_signed_tls().await;
    let graph = graph_at(&base, 4);
    let error = graph.send(&email()).await.unwrap_err();
    assert_eq!(handshakes.load(Ordering::SeqCst), 1, "retried: {error}");
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.delivery(), Delivery::NotSent);
    let remedy = error.remedy().unwrap();
    for word in ["tls_ca_file", "graph_endpoint", "clock"] {
        assert!(remedy.contains(word), "{word} missing from: {remedy}");
    }
}

#[tokio::test]
async fn a_wrong_host_name_or_an_expired_certificate_is_permanent_too() {
    for (names, expired, cause) in [
        (&["wrong.example"][..], false, "not valid for name"),
        (&["127.0.0.1"][..], true, "xpired"),
    ] {
        let (base, handshakes, pem) = hostile::tls_server(names, expired).await;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, pem).unwrap();
        let mut settings = ConnectorSettings::default();
        settings.auth_mode = Some(mail_connector::AuthMode::OAuth);
        settings.user_name = Some("no-reply@contoso.com".into());
        settings.oauth_client_id = Some(CLIENT_ID.into());
        settings.tenant_id = Some(TENANT.into());
        settings.client_secret = Some(SECRET.into());
        settings.graph_endpoint = Some(base);
        settings.tls_ca_file = Some(ca);
        let graph = settings
            .builder()
            .token_provider(Credentials::from_token_provider(StaticToken))
            .graph_builder()
            .unwrap()
            .retry_policy(fast_retry(3))
            .build()
            .unwrap();
        let error = graph.send(&email()).await.unwrap_err();
        assert!(error.to_string().contains(cause), "{error}");
        assert_eq!(handshakes.load(Ordering::SeqCst), 1, "retried: {error}");
        assert!(!error.is_transient(), "{error}");
        let remedy = error.remedy().unwrap();
        assert!(
            remedy.contains("tls_ca_file") && remedy.contains("clock"),
            "{remedy}"
        );
    }
}

#[tokio::test]
async fn check_is_bounded_and_blames_the_login_host() {
    let (login, _) = hostile::silent().await;
    let graph_server = MockServer::start_async().await;
    let mut settings = settings(&graph_server, &graph_server.base_url());
    settings.authority_host = Some(login.clone());
    let graph = settings
        .graph_builder()
        .unwrap()
        .send_deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), graph.check())
        .await
        .expect("check ends within its deadline")
        .unwrap();
    assert_eq!(report.status(), CheckStatus::Failed);
    let text = report
        .steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("authority_host"), "{text}");
    assert!(text.contains("1s"), "{text}");
    assert!(!text.contains("0ns"), "{text}");
    assert!(!text.contains("graph_endpoint"), "{text}");
    // And a send blames the login host too.
    let error = graph.send(&email()).await.unwrap_err();
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("authority_host"), "{error}: {remedy}");
    assert!(!remedy.contains("graph_endpoint"), "{error}: {remedy}");
}

#[tokio::test]
async fn a_redirecting_upload_url_is_not_followed() {
    let elsewhere = MockServer::start_async().await;
    let stolen = elsewhere.mock(|_, then| {
        then.status(200).body("{}");
    });
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages");
        then.status(201).json_body(json!({"id": "d1"}));
    });
    let upload_url = server.url("/upload/session?authtoken=UPLOAD-CREDENTIAL");
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages/d1/attachments/createUploadSession");
        then.status(201).json_body(json!({"uploadUrl": upload_url}));
    });
    let target = elsewhere.url("/collect");
    let put = server.mock(|when, then| {
        when.method(httpmock::Method::PUT).path("/upload/session");
        then.status(308).header("location", target);
    });
    let delete = server.mock(|when, then| {
        when.method(httpmock::Method::DELETE)
            .path("/v1.0/users/no-reply@contoso.com/messages/d1");
        then.status(204);
    });
    let big = Email::builder()
        .to("ann@example.org")
        .attachment(mail_connector::Attachment::from_bytes(
            "big.bin",
            vec![7u8; 3 * 1024 * 1024 + 1],
        ))
        .build()
        .unwrap();
    let error = transport(&settings(&server, &server.base_url()))
        .send(&big)
        .await
        .unwrap_err();
    assert_eq!(stolen.calls(), 0, "the upload was redirected");
    put.assert_calls(1);
    delete.assert_calls(1);
    assert!(!error.is_transient(), "{error}");
    assert!(!format!("{error:?}").contains("UPLOAD-CREDENTIAL"));
}
