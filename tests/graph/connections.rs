//! How many connections the transport opens, counted at a loopback HTTPS server that answers
//! as Entra ID's token endpoint and as Graph at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mail_connector::{AuthMode, ConnectorSettings, MailTransport};

use crate::helpers::simple_email;
use crate::support::tls_sink::{self, TlsSink};
use crate::support::{CLIENT_ID, SECRET, TENANT};

/// Settings for the sink as login host and Graph, trusting its certificate; no HTTP client
/// of the caller's, so the transport makes its own.
fn settings(sink: &TlsSink, dir: &tempfile::TempDir) -> ConnectorSettings {
    let ca_file = dir.path().join("sink-ca.pem");
    std::fs::write(&ca_file, &sink.certificate_pem).unwrap();
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(AuthMode::OAuth);
    settings.user_name = Some("no-reply@contoso.com".into());
    settings.oauth_client_id = Some(CLIENT_ID.into());
    settings.tenant_id = Some(TENANT.into());
    settings.client_secret = Some(SECRET.into());
    settings.authority_host = Some(sink.base.clone());
    settings.graph_endpoint = Some(sink.base.clone());
    settings.tls_ca_file = Some(ca_file);
    settings
}

#[tokio::test]
async fn the_token_request_and_graph_share_one_connection_pool() {
    let sink = tls_sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let graph = settings(&sink, &dir).build().unwrap();
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

/// On one thread, so that the count depends on the transport alone: on several, the HTTP
/// client may dial one more connection when a freed slot is taken before the connection it
/// freed is back in the client's pool (`benches/graph_hot.rs` reports that count).
#[tokio::test]
async fn a_thousand_cold_sends_open_at_most_the_cap_plus_one_connections() {
    let sink = tls_sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A fresh transport: no token yet, no connection yet, the default cap of 4 in flight.
    let graph = settings(&sink, &dir).build().unwrap();
    let email = Arc::new(simple_email());
    let sends: Vec<_> = (0..1000)
        .map(|_| {
            let (graph, email) = (Arc::clone(&graph), Arc::clone(&email));
            tokio::spawn(async move { graph.send(&email).await })
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
    assert_eq!(sink.stats.graph_requests.load(Ordering::SeqCst), 1000);
    assert_eq!(sink.stats.token_requests.load(Ordering::SeqCst), 1);
    let connections = sink.connections();
    assert!(
        connections <= 4 + 1,
        "{connections} TLS connections for at most 4 requests in flight and one token request"
    );
}
