//! Tokens for Graph: refresh after a 401, sovereign clouds, slow login hosts, a caller's provider.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use httpmock::{Method::POST, MockServer};
use mail_connector::{ConnectorSettings, Delivery, MailTransport};

use super::helpers::*;
use crate::support::*;

#[tokio::test]
async fn a_refused_token_is_refreshed_once() {
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
        then.status(401).json_body(graph_error(
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ));
    });
    let accepted = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer token-2");
        then.status(202);
    });
    transport(&settings(&server))
        .send(&simple_email())
        .await
        .unwrap();
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "exactly two token requests"
    );
    refused.assert_calls(1);
    accepted.assert_calls(1);
}

#[tokio::test]
async fn a_second_401_fails_with_a_remedy() {
    let server = MockServer::start_async().await;
    let (fetches, responder) = numbered_tokens(3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.respond_with(responder);
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(401).json_body(graph_error(
            "InvalidAuthenticationToken",
            "CompactToken validation failed",
        ));
    });
    let error = transport(&settings(&server))
        .send(&simple_email())
        .await
        .unwrap_err();
    send.assert_calls(2);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert!(error.is_auth());
    assert!(
        error.remedy().unwrap().contains("`cloud`"),
        "{:?}",
        error.remedy()
    );
}

/// A new token refused too says what Graph named: a token for another resource (the scope)
/// or out of its time (the clock).
#[tokio::test]
async fn a_new_token_refused_too_names_the_scope_or_the_clock() {
    for (message, names, not) in [
        (
            "Access token validation failure. Invalid audience.",
            "`oauth_scope`",
            "clock",
        ),
        (
            "Access token has expired or is not yet valid.",
            "clock",
            "`oauth_scope`",
        ),
        // Either word alone, as other wordings of Graph's say it.
        (
            "Lifetime validation failed, the token is expired.",
            "clock",
            "`oauth_scope`",
        ),
        ("The token is not yet valid.", "clock", "`oauth_scope`"),
    ] {
        let server = MockServer::start_async().await;
        let (fetches, responder) = numbered_tokens(3600);
        server.mock(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(responder);
        });
        server.mock(|when, then| {
            when.method(POST).path(SEND_PATH);
            then.status(401)
                .json_body(graph_error("InvalidAuthenticationToken", message));
        });
        let error = transport(&settings(&server))
            .send(&simple_email())
            .await
            .unwrap_err();
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "a new token was tried");
        let remedy = error.remedy().unwrap();
        assert!(remedy.contains(names), "{message}: {remedy}");
        assert!(!remedy.contains(not), "{message}: {remedy}");
    }
}

#[tokio::test]
async fn a_sovereign_cloud_picks_its_scope_while_endpoints_are_overridden() {
    let server = MockServer::start_async().await;
    let token = token_for(&["Mail.Send"]);
    let body = token_body(&token, 3600);
    let token_mock = server.mock(|when, then| {
        when.method(POST)
            .path(token_path(TENANT))
            .form_urlencoded_tuple("scope", "https://graph.microsoft.us/.default");
        then.status(200).json_body(body);
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let mut settings = settings(&server);
    settings.cloud = mail_connector::Cloud::UsGov;
    transport(&settings).send(&simple_email()).await.unwrap();
    token_mock.assert_calls(1);
    send.assert_calls(1);
}

#[tokio::test]
async fn a_slow_login_host_cannot_overrun_the_send_deadline() {
    let server = MockServer::start_async().await;
    let body = token_body(&token_for(&["Mail.Send"]), 3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.status(200)
            .json_body(body)
            .delay(Duration::from_secs(3600));
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .send_deadline(Duration::from_millis(800))
        .build()
        .unwrap();
    // The login host answers after an hour: only a send that waits for it past its deadline
    // meets this guard, however slow the machine.
    let error = tokio::time::timeout(Duration::from_secs(120), graph.send(&simple_email()))
        .await
        .expect("the send waited for the login host past its deadline")
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.to_string().contains("deadline"), "{error}");
    send.assert_calls(0);
}

#[tokio::test]
async fn a_token_without_permissions_is_not_refetched_on_every_send() {
    let server = MockServer::start_async().await;
    let tokens = mock_token(&server, &token_for(&[]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(401).json_body(graph_error(
            "NoPermissionsInAccessToken",
            "The token contains no permissions, or permissions can not be understood.",
        ));
    });
    let graph = transport(&settings(&server));
    for _ in 0..3 {
        let error = graph.send(&simple_email()).await.unwrap_err();
        assert!(error.remedy().unwrap().contains("Grant admin consent"));
    }
    send.assert_calls(3);
    tokens.assert_calls(1);
}

/// A caller's own token source (a managed or workload identity) signs in: the settings need
/// no client id, tenant or secret, and no dummy values.
#[tokio::test]
async fn a_callers_token_provider_needs_no_app_registration_in_the_settings() {
    #[derive(Debug)]
    struct PlatformIdentity;

    #[mail_connector::async_trait]
    impl mail_connector::TokenProvider for PlatformIdentity {
        async fn token(&self, scope: &str) -> mail_connector::Result<mail_connector::AccessToken> {
            assert_eq!(scope, "https://graph.microsoft.com/.default");
            Ok(mail_connector::AccessToken::new(
                "platform-token",
                SystemTime::now() + Duration::from_secs(3600),
            ))
        }
    }

    let server = MockServer::start_async().await;
    let send = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer platform-token");
        then.status(202);
    });
    let settings = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\ngraph_endpoint = \"{}\"\n",
        server.base_url()
    ))
    .unwrap();
    // Without a provider a credential is required, naming every kind and what it needs.
    let Err(error) = settings.build() else {
        panic!("built without credentials")
    };
    let error = error.to_string();
    assert!(
        error.contains("`client_secret`")
            && error.contains("`client_certificate_file`")
            && error.contains("managed_identity")
            && error.contains("workload_identity"),
        "{error}"
    );

    let transport = settings
        .builder()
        .token_provider(PlatformIdentity)
        .http_client(
            mail_connector::reqwest::Client::builder()
                .redirect(mail_connector::reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    transport.send(&simple_email()).await.unwrap();
    send.assert_calls(1);
}

/// A provider's token at hand (`ready_token`) is used as it is, without asking `token`;
/// once the provider has none (Graph refused it and it was invalidated), `token` is asked.
#[tokio::test]
async fn a_providers_ready_token_is_used_without_asking_for_one() {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    #[derive(Debug, Default)]
    struct AtHand {
        ready: Mutex<Option<&'static str>>,
        asked: AtomicUsize,
    }

    fn token(value: &str) -> mail_connector::AccessToken {
        mail_connector::AccessToken::new(value, SystemTime::now() + Duration::from_secs(3600))
    }

    #[mail_connector::async_trait]
    impl mail_connector::TokenProvider for AtHand {
        async fn token(&self, _scope: &str) -> mail_connector::Result<mail_connector::AccessToken> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            Ok(token("fetched-token"))
        }

        fn ready_token(&self, _scope: &str) -> Option<mail_connector::AccessToken> {
            (*self.ready.lock().unwrap()).map(token)
        }

        fn invalidate(&self, _token: &mail_connector::AccessToken) {
            *self.ready.lock().unwrap() = None;
        }
    }

    let server = MockServer::start_async().await;
    let mut at_hand = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer ready-token");
        then.status(202);
    });
    let provider = std::sync::Arc::new(AtHand {
        ready: Mutex::new(Some("ready-token")),
        ..AtHand::default()
    });
    let graph = mail_connector::GraphTransport::builder(
        mail_connector::Mailbox::parse("no-reply@contoso.com").unwrap(),
        std::sync::Arc::clone(&provider),
    )
    .graph_endpoint(server.base_url())
    .build()
    .unwrap();
    graph.send(&simple_email()).await.unwrap();
    graph.send(&simple_email()).await.unwrap();
    at_hand.assert_calls(2);
    assert_eq!(
        provider.asked.load(Ordering::SeqCst),
        0,
        "token() not asked"
    );

    // Graph refuses the token at hand: it is invalidated, and `token` gives the next.
    at_hand.delete();
    let refused = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer ready-token");
        then.status(401).json_body(graph_error(
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ));
    });
    let fetched = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer fetched-token");
        then.status(202);
    });
    graph.send(&simple_email()).await.unwrap();
    refused.assert_calls(1);
    fetched.assert_calls(1);
    assert_eq!(provider.asked.load(Ordering::SeqCst), 1);
}

/// A managed identity has no app registration to add `Mail.Send` to: Graph's 403 says how to
/// grant it the app role instead.
#[tokio::test]
async fn a_managed_identity_without_mail_send_is_told_to_assign_the_app_role() {
    let server = MockServer::start_async().await;
    server.mock(|when, then| {
        when.method(httpmock::Method::GET)
            .path("/metadata/identity/oauth2/token");
        then.status(200).json_body(serde_json::json!({
            "access_token": "mi-token",
            "expires_in": "3599",
            "token_type": "Bearer",
        }));
    });
    server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(403).json_body(serde_json::json!({
            "error": {"code": "ErrorAccessDenied", "message": "Access is denied. Check credentials and try again."}
        }));
    });
    let settings = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
         oauth_credential = \"managed_identity\"\n\
         managed_identity_endpoint = \"{}\"\ngraph_endpoint = \"{}\"\n",
        server.url("/metadata/identity/oauth2/token"),
        server.base_url()
    ))
    .unwrap();
    let transport = settings.build().unwrap();

    let error = transport.send(&simple_email()).await.unwrap_err();

    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("app role"), "{remedy}");
    assert!(!remedy.contains("Grant admin consent"), "{remedy}");
}

/// Review finding: a token that does not come within the send deadline blames where tokens
/// come from. A managed identity's come from its identity endpoint, not the login host.
#[tokio::test]
async fn a_silent_managed_identity_endpoint_is_blamed_not_the_login_host() {
    let server = MockServer::start_async().await;
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let (identity, accepted) = hostile::silent().await;
    let identity = format!("{identity}/metadata/identity/oauth2/token");
    let settings = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
         oauth_credential = \"managed_identity\"\n\
         managed_identity_endpoint = \"{identity}\"\ngraph_endpoint = \"{}\"\n",
        server.base_url()
    ))
    .unwrap();
    let graph = settings
        .graph_builder()
        .unwrap()
        .send_deadline(Duration::from_secs(2))
        .build()
        .unwrap();

    let error = graph.send(&simple_email()).await.unwrap_err();

    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "the endpoint was asked"
    );
    let text = error.to_string();
    assert!(text.contains(&identity), "{text}");
    assert!(!text.contains("login host"), "{text}");
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("managed identity endpoint"), "{remedy}");
    assert!(remedy.contains("`managed_identity_endpoint`"), "{remedy}");
    assert!(!remedy.contains("authority_host"), "{remedy}");
    assert!(!remedy.contains("login host"), "{remedy}");
    send.assert_calls(0);
}

/// …and a caller's own token provider is blamed as such: it may not ask the login host. The
/// error gives the send deadline it waited for.
#[tokio::test]
async fn a_silent_token_provider_is_blamed_not_the_login_host() {
    #[derive(Debug)]
    struct Silent;

    #[mail_connector::async_trait]
    impl mail_connector::TokenProvider for Silent {
        async fn token(&self, _scope: &str) -> mail_connector::Result<mail_connector::AccessToken> {
            std::future::pending().await
        }
    }
    let server = MockServer::start_async().await;
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let settings = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\ngraph_endpoint = \"{}\"\n",
        server.base_url()
    ))
    .unwrap();
    let graph = settings
        .builder()
        .token_provider(Silent)
        .graph_builder()
        .unwrap()
        .send_deadline(Duration::from_secs(2))
        .build()
        .unwrap();

    let error = graph.send(&simple_email()).await.unwrap_err();

    assert_eq!(error.delivery(), Delivery::NotSent);
    let text = error.to_string();
    assert!(text.contains("token provider"), "{text}");
    assert!(!text.contains("login host"), "{text}");
    // The transport's own send deadline, not the retry policy's default of 120 s.
    assert!(text.contains("within the send deadline of 2s"), "{text}");
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("token provider"), "{remedy}");
    assert!(!remedy.contains("authority_host"), "{remedy}");
    assert!(!remedy.contains("login host"), "{remedy}");
    send.assert_calls(0);
}
