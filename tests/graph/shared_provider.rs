//! One credential shared, as an `Arc`, by two transports (two mailboxes of one managed
//! identity): what the credential says of itself — where its tokens come from, what to check
//! when none comes, how its identity gets `Mail.Send` — reaches each transport's errors as it
//! does unshared.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use httpmock::{Method::POST, MockServer};
use mail_connector::{Credentials, GraphTransport, MailTransport, Mailbox};

use super::helpers::*;
use crate::support::*;

const IDENTITY_PATH: &str = "/metadata/identity/oauth2/token";

/// Two Graph transports for two mailboxes on `graph`, sharing one managed identity credential
/// that asks `identity`.
fn two_mailboxes(identity: &str, graph: &str) -> [GraphTransport; 2] {
    let shared = Arc::new(
        Credentials::managed_identity_with_env(None, None)
            .managed_identity_endpoint(identity)
            .build()
            .unwrap(),
    );
    ["no-reply@contoso.com", "alerts@contoso.com"].map(|mailbox| {
        GraphTransport::builder(Mailbox::parse(mailbox).unwrap(), Arc::clone(&shared))
            .graph_endpoint(graph)
            .send_deadline(Duration::from_secs(2))
            .build()
            .unwrap()
    })
}

#[tokio::test]
async fn a_shared_managed_identity_without_mail_send_is_told_to_assign_the_app_role() {
    let server = MockServer::start_async().await;
    let identity = server.mock(|when, then| {
        when.method(httpmock::Method::GET).path(IDENTITY_PATH);
        then.status(200).json_body(serde_json::json!({
            "access_token": "mi-token",
            "expires_in": "3599",
            "token_type": "Bearer",
        }));
    });
    let refused = server.mock(|when, then| {
        when.method(POST).header("authorization", "Bearer mi-token");
        then.status(403).json_body(serde_json::json!({
            "error": {"code": "ErrorAccessDenied", "message": "Access is denied. Check credentials and try again."}
        }));
    });

    for graph in two_mailboxes(&server.url(IDENTITY_PATH), &server.base_url()) {
        let error = graph.send(&simple_email()).await.unwrap_err();
        let remedy = error.remedy().unwrap();
        assert!(remedy.contains("app role"), "{remedy}");
        assert!(!remedy.contains("Grant admin consent"), "{remedy}");
    }
    identity.assert_calls(1);
    refused.assert_calls(2);
}

#[tokio::test]
async fn a_silent_shared_identity_endpoint_is_blamed_with_its_own_remedy() {
    let server = MockServer::start_async().await;
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let (identity, accepted) = hostile::silent().await;
    let identity = format!("{identity}{IDENTITY_PATH}");

    for graph in two_mailboxes(&identity, &server.base_url()) {
        let error = graph.send(&simple_email()).await.unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&identity), "{text}");
        assert!(!text.contains("login host"), "{text}");
        let remedy = error.remedy().unwrap();
        assert!(remedy.contains("managed identity endpoint"), "{remedy}");
        assert!(!remedy.contains("the application's own"), "{remedy}");
    }
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "the endpoint was asked"
    );
    send.assert_calls(0);
}
