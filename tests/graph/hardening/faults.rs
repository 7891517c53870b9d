//! Faults: absurd values, throttling, cancellation, revoked tokens, refused TLS, silent hosts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use httpmock::{Method::POST, MockServer};
use mail_connector::{
    CheckStatus, ConnectorSettings, Credentials, Delivery, MailTransport, RetryPolicy,
};
use serde_json::json;

use super::helpers::*;
use crate::support::*;

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
    for cause in ["`oauth_scope`", "`cloud`", "clock"] {
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
