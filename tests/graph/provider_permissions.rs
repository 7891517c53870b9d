//! A caller's token provider that says nothing of how its identity gets `Mail.Send` (the
//! trait's default): Graph's 403 keeps the app registration's steps, as for a client secret.

use std::time::{Duration, SystemTime};

use httpmock::{Method::POST, MockServer};
use mail_connector::MailTransport;

use super::helpers::*;

#[tokio::test]
async fn a_callers_provider_without_mail_send_is_told_to_grant_it_in_the_app_registration() {
    #[derive(Debug)]
    struct Provider;

    #[mail_connector::async_trait]
    impl mail_connector::TokenProvider for Provider {
        async fn token(&self, _scope: &str) -> mail_connector::Result<mail_connector::AccessToken> {
            Ok(mail_connector::AccessToken::new(
                "provider-token",
                SystemTime::now() + Duration::from_secs(3600),
            ))
        }
    }
    let server = MockServer::start_async().await;
    let send = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer provider-token");
        then.status(403).json_body(serde_json::json!({
            "error": {"code": "ErrorAccessDenied", "message": "Access is denied. Check credentials and try again."}
        }));
    });
    let graph = mail_connector::GraphTransport::builder(
        mail_connector::Mailbox::parse("no-reply@contoso.com").unwrap(),
        Provider,
    )
    .graph_endpoint(server.base_url())
    .build()
    .unwrap();

    let error = graph.send(&simple_email()).await.unwrap_err();

    send.assert_calls(1);
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("Grant admin consent"), "{remedy}");
    assert!(remedy.contains("Mail.Send"), "{remedy}");
}
