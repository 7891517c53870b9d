//! How many connections the transport opens, counted at loopback HTTPS servers that answer as
//! Entra ID's token endpoint and as Graph at once.
//!
//! Graph and the login host speak HTTP/2 (chosen by ALPN), where every request of a host
//! shares one connection; a proxy or gateway in between may offer HTTP/1.1 only, where a
//! connection carries one request at a time and the pool must hand a finished one on.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mail_connector::{AuthMode, ConnectorSettings, GraphTransport, MailTransport};

use crate::helpers::simple_email;
use crate::support::tls_sink::{self, TlsSink};
use crate::support::{CLIENT_ID, SECRET, TENANT};

/// The default number of Graph requests in flight per mailbox.
const CAP: usize = 4;

/// Settings with `login` as the login host and `graph` as Graph, trusting both certificates;
/// no HTTP client of the caller's, so the transport makes its own.
fn settings(login: &TlsSink, graph: &TlsSink, dir: &tempfile::TempDir) -> ConnectorSettings {
    let ca_file = dir.path().join("sink-ca.pem");
    std::fs::write(
        &ca_file,
        format!("{}{}", login.certificate_pem, graph.certificate_pem),
    )
    .unwrap();
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(AuthMode::OAuth);
    settings.user_name = Some("no-reply@contoso.com".into());
    settings.oauth_client_id = Some(CLIENT_ID.into());
    settings.tenant_id = Some(TENANT.into());
    settings.client_secret = Some(SECRET.into());
    settings.authority_host = Some(login.base.clone());
    settings.graph_endpoint = Some(graph.base.clone());
    settings.tls_ca_file = Some(ca_file);
    settings
}

/// A fresh Graph transport (no token yet, no connection yet, the default cap) for the sinks.
fn graph_transport(login: &TlsSink, graph: &TlsSink, dir: &tempfile::TempDir) -> GraphTransport {
    settings(login, graph, dir)
        .builder()
        .graph_builder()
        .unwrap()
        .build()
        .unwrap()
}

/// `count` sends at once, all succeeding.
async fn cold_sends(graph: GraphTransport, count: usize) {
    let graph = Arc::new(graph);
    let email = Arc::new(simple_email());
    let sends: Vec<_> = (0..count)
        .map(|_| {
            let (graph, email) = (Arc::clone(&graph), Arc::clone(&email));
            tokio::spawn(async move { graph.send(&email).await })
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn the_token_request_and_graph_share_one_connection_pool() {
    for sink in [tls_sink::start().await, tls_sink::start_http1().await] {
        let dir = tempfile::tempdir().unwrap();
        let graph = graph_transport(&sink, &sink, &dir);
        graph.send(&simple_email()).await.unwrap();
        graph.send(&simple_email()).await.unwrap();
        assert_eq!(sink.stats.token_requests.load(Ordering::SeqCst), 1);
        assert_eq!(sink.stats.graph_requests.load(Ordering::SeqCst), 2);
        // Two clients (one for the token endpoint, one for Graph) would need two connections.
        assert_eq!(
            sink.connections(),
            1,
            "the Graph requests did not reuse the token request's connection"
        );
    }
}

#[tokio::test]
async fn the_transport_speaks_http2_where_the_server_offers_it() {
    let sink = tls_sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    graph_transport(&sink, &sink, &dir)
        .send(&simple_email())
        .await
        .unwrap();
    assert_eq!(sink.http2_connections(), 1, "HTTP/2 was not chosen");

    let sink = tls_sink::start_http1().await;
    graph_transport(&sink, &sink, &dir)
        .send(&simple_email())
        .await
        .unwrap();
    assert_eq!(sink.http2_connections(), 0);
    assert_eq!(sink.stats.graph_requests.load(Ordering::SeqCst), 1);
}

/// Over HTTP/2 the count does not depend on how tasks are scheduled, so this runs on
/// several threads, as a service would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_thousand_cold_sends_share_one_connection() {
    let sink = tls_sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    cold_sends(graph_transport(&sink, &sink, &dir), 1000).await;
    assert_eq!(sink.stats.graph_requests.load(Ordering::SeqCst), 1000);
    assert_eq!(sink.stats.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        (sink.connections(), sink.http2_connections()),
        (1, 1),
        "(connections, HTTP/2 connections) for the token request and 1,000 sends"
    );
}

/// As in production, the login host and Graph are two hosts: one connection to the first,
/// and to Graph at most one per request in flight while the first is being made (each one
/// that loses the race to become the shared HTTP/2 connection is closed), never more after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_with_two_hosts_a_thousand_cold_sends_stay_within_the_cap_plus_one() {
    let login = tls_sink::start().await;
    let graph = tls_sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    cold_sends(graph_transport(&login, &graph, &dir), 1000).await;
    assert_eq!(graph.stats.graph_requests.load(Ordering::SeqCst), 1000);
    assert_eq!(login.stats.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(login.connections(), 1, "connections to the login host");
    let to_graph = graph.connections();
    assert!(
        (1..=CAP).contains(&to_graph),
        "{to_graph} connections to Graph for at most {CAP} requests in flight"
    );
}

/// Over HTTP/1.1, on one thread, so that the count depends on the transport alone: on
/// several, the HTTP client may dial one more connection when a freed slot is taken before
/// the connection it freed is back in the client's pool (`benches/graph_hot.rs` reports that
/// count).
#[tokio::test]
async fn over_http1_a_thousand_cold_sends_open_at_most_the_cap_plus_one_connections() {
    let sink = tls_sink::start_http1().await;
    let dir = tempfile::tempdir().unwrap();
    cold_sends(graph_transport(&sink, &sink, &dir), 1000).await;
    assert_eq!(sink.stats.graph_requests.load(Ordering::SeqCst), 1000);
    assert_eq!(sink.stats.token_requests.load(Ordering::SeqCst), 1);
    let connections = sink.connections();
    assert!(
        connections <= CAP + 1,
        "{connections} TLS connections for at most {CAP} requests in flight and one token request"
    );
}
