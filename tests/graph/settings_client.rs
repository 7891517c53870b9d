//! A Graph builder made from the settings shares one HTTP client with the token endpoint.
//! Its `connect_timeout` and `tls_ca_file` still apply: they give Graph a client of its own,
//! made with the settings' options (their `tls_ca_file`) and the change.

use std::time::Duration;

use httpmock::MockServer;
use mail_connector::{Delivery, MailTransport};

use super::helpers::*;
use crate::support::tls_sink;
use crate::support::*;

/// The sink's certificate in a PEM file, to trust.
fn sink_ca(sink: &tls_sink::TlsSink, dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("sink-ca.pem");
    std::fs::write(&path, &sink.certificate_pem).unwrap();
    path
}

fn graph_requests(sink: &tls_sink::TlsSink) -> usize {
    sink.stats
        .graph_requests
        .load(std::sync::atomic::Ordering::SeqCst)
}

/// The token endpoint (plain HTTP on loopback) needs no CA; Graph's host does, and is
/// trusted through the builder alone.
#[tokio::test]
async fn a_trusted_ca_set_on_the_builder_is_used_for_graph() {
    let server = MockServer::start_async().await;
    let token = mock_token(&server, &token_for(&["Mail.Send"]));
    let sink = tls_sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(&server);
    settings.graph_endpoint = Some(sink.base.clone());
    let graph = settings
        .graph_builder()
        .unwrap()
        .tls_ca_file(sink_ca(&sink, &dir))
        .retry_policy(fast_retry(0))
        .build()
        .unwrap();
    graph.send(&simple_email()).await.unwrap();
    assert_eq!(graph_requests(&sink), 1);
    token.assert_calls(1);
}

/// A connect timeout set on the builder keeps the settings' trusted CA, and Graph's client
/// is its own: the token endpoint and Graph, on the same host, no longer share a connection.
#[tokio::test]
async fn a_connect_timeout_set_on_the_builder_keeps_the_settings_ca() {
    let dir = tempfile::tempdir().unwrap();
    for (own_timeout, connections) in [(false, 1), (true, 2)] {
        let sink = tls_sink::start().await;
        let mut settings = mail_connector::ConnectorSettings::default();
        settings.auth_mode = Some(mail_connector::AuthMode::OAuth);
        settings.user_name = Some("no-reply@contoso.com".into());
        settings.oauth_client_id = Some(CLIENT_ID.into());
        settings.tenant_id = Some(TENANT.into());
        settings.client_secret = Some(SECRET.into());
        settings.authority_host = Some(sink.base.clone());
        settings.graph_endpoint = Some(sink.base.clone());
        settings.tls_ca_file = Some(sink_ca(&sink, &dir));
        let mut builder = settings.graph_builder().unwrap();
        if own_timeout {
            builder = builder.connect_timeout(Duration::from_secs(5));
        }
        let graph = builder.retry_policy(fast_retry(0)).build().unwrap();
        for _ in 0..2 {
            graph.send(&simple_email()).await.unwrap();
        }
        assert_eq!(graph_requests(&sink), 2);
        assert_eq!(
            sink.connections(),
            connections,
            "own timeout: {own_timeout}"
        );
    }
}

/// A Graph host that takes the connection and never answers the TLS handshake: the
/// builder's connect timeout, far below the request timeout, ends the attempt as a
/// connection that timed out (without it, the shared client's 10 s would outlast the
/// request's 5 s).
#[tokio::test]
async fn a_connect_timeout_set_on_the_builder_is_used_for_graph() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let (settings, silent) = settings_with_silent_graph(&server).await;
    let graph = settings
        .graph_builder()
        .unwrap()
        .connect_timeout(Duration::from_millis(200))
        .request_timeout(Duration::from_secs(5))
        .retry_policy(fast_retry(0))
        .build()
        .unwrap();
    let error = send_unanswered(&graph, &silent).await;
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    assert!(error.to_string().contains("timed out"), "{error}");
    assert!(!error.to_string().contains("never sent"), "{error}");
}
