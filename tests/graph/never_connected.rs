//! A request whose time runs out before it has a connection was never sent: a timeout while
//! the TLS handshake is still going is not "delivery uncertain". A request's time can be
//! shorter than the connect timeout near the end of the send deadline, or when the request
//! timeout is set below it; such a request's body is watched, and must still arrive whole.

use std::time::Duration;

use httpmock::{Method::POST, MockServer};
use mail_connector::{Delivery, MailTransport};

use super::helpers::*;
use crate::support::tls_sink;
use crate::support::*;

/// A Graph host that takes the connection and never answers the TLS handshake.
#[tokio::test]
async fn a_request_that_never_got_a_connection_was_not_sent() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let (settings, silent) = settings_with_silent_graph(&server).await;
    let graph = settings
        .graph_builder()
        .unwrap()
        .request_timeout(Duration::from_millis(300))
        .retry_policy(fast_retry(0))
        .build()
        .unwrap();
    let error = send_unanswered(&graph, &silent).await;
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    assert!(error.to_string().contains("never sent"), "{error}");
    // Said in plain words, as one sentence.
    assert!(
        error
            .to_string()
            .contains("(no connection yet, or none free); it was never sent"),
        "{error}"
    );
    assert!(error.is_transient(), "{error}");
}

/// With a request timeout below the connect timeout, every request is watched: it still
/// reaches Graph whole, over HTTP/1.1 (the mock)...
#[tokio::test]
async fn a_watched_request_arrives_whole() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("content-type", "application/json")
            .body_includes("Meet for lunch?")
            .body_includes("samanthab@contoso.com");
        then.status(202);
    });
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    graph.send(&simple_email()).await.unwrap();
    send.assert_calls(1);
}

/// ... and over HTTP/2 and HTTP/1.1 through TLS, with the client the settings make.
#[tokio::test]
async fn a_watched_request_is_sent_over_tls_with_either_protocol() {
    for sink in [tls_sink::start().await, tls_sink::start_http1().await] {
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("sink-ca.pem");
        std::fs::write(&ca_file, &sink.certificate_pem).unwrap();
        let mut settings = mail_connector::ConnectorSettings::default();
        settings.auth_mode = Some(mail_connector::AuthMode::OAuth);
        settings.user_name = Some("no-reply@contoso.com".into());
        settings.oauth_client_id = Some(CLIENT_ID.into());
        settings.tenant_id = Some(TENANT.into());
        settings.client_secret = Some(SECRET.into());
        settings.authority_host = Some(sink.base.clone());
        settings.graph_endpoint = Some(sink.base.clone());
        settings.tls_ca_file = Some(ca_file);
        let graph = settings
            .builder()
            .graph_builder()
            .unwrap()
            .request_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        for _ in 0..3 {
            graph.send(&simple_email()).await.unwrap();
        }
        let answered = sink
            .stats
            .graph_requests
            .load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(answered, 3);
    }
}
