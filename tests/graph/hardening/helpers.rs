//! Helpers shared by the Graph hardening tests.

use std::time::{Duration, SystemTime};

use httpmock::{Method::POST, MockServer};
use mail_connector::{
    AccessToken, ConnectorSettings, Credentials, Email, GraphTransport, Result, TokenProvider,
};

pub(crate) use crate::helpers::{SEND_PATH, large_email, token_for, transport};
use crate::support::*;

pub(crate) fn settings(login: &MockServer, graph: &str) -> ConnectorSettings {
    let mut settings = secret_settings(login, TENANT);
    settings.graph_endpoint = Some(graph.to_owned());
    settings
}

pub(crate) fn mock_token(server: &MockServer, token: &str) {
    let body = token_body(token, 3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.status(200).json_body(body);
    });
}

pub(crate) fn email() -> Email {
    Email::builder()
        .to("ann@example.org")
        .subject("Hi")
        .text("Hello")
        .build()
        .unwrap()
}

/// A token source that never fails, for servers that only play Graph.
#[derive(Debug)]
pub(crate) struct StaticToken;

#[async_trait::async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self, _: &str) -> Result<AccessToken> {
        Ok(AccessToken::new(
            "static-token",
            SystemTime::now() + Duration::from_secs(3600),
        ))
    }
}

pub(crate) fn graph_at(base: &str, max_concurrency: usize) -> GraphTransport {
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
