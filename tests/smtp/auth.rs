//! Authentication: basic auth failures and XOAUTH2 with token refresh.

use std::sync::Arc;

use mail_connector::smtp::SmtpTransportBuilder;
use mail_connector::{Delivery, Error, MailTransport, Secret, SmtpStage};

use super::helpers::*;
use crate::support;
use crate::support::FakeTokens;
use crate::support::assert_no_secrets;
use crate::support::smtp_server::{ServerOptions, TestServer};

#[tokio::test]
async fn wrong_password_reports_the_fix_and_no_secret() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN"],
        ..ServerOptions::default()
    })
    .await;
    let secret = "wrong-pass-5f1e2d";
    let transport = starttls(&server)
        .basic_auth(USER, Secret::new(secret))
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Smtp { stage: SmtpStage::Auth, code: Some(535), enhanced_code: Some(e), .. } if e == "5.7.8"
        ),
        "{error:?}"
    );
    assert!(error.is_auth());
    assert!(!error.is_transient());
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.remedy().unwrap().contains("`password`"));
    assert_eq!(server.auths().len(), 1, "a 5xx must not be retried");
    let printed = format!("{error} {error:?} {transport:?} {:?}", error.remedy());
    assert_no_secrets(&printed, &[secret]);
}

#[tokio::test]
async fn smtp_auth_disabled_for_the_tenant_names_set_casmailbox() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN"],
        users: vec![],
        auth_failure: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = basic_settings(&server).build().unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("Set-CASMailbox"), "{remedy}");
    assert!(
        remedy.contains("-SmtpClientAuthenticationDisabled $false"),
        "{remedy}"
    );
}

#[tokio::test]
async fn xoauth2_sends_the_exact_sasl_string() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN", "XOAUTH2"],
        tokens: vec!["token-1".into()],
        ..ServerOptions::default()
    })
    .await;
    let tokens = Arc::new(FakeTokens::new(&["token-1"]));
    let builder = starttls(&server).xoauth2(USER, tokens.clone());
    assert_no_secrets(&format!("{builder:?}"), &["token-1"]);
    let transport = builder.build().unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    let auths = server.auths();
    assert_eq!(auths.len(), 1);
    assert_eq!(auths[0].mechanism, "XOAUTH2");
    assert_eq!(
        auths[0].decoded,
        "user=no-reply@example.org\x01auth=Bearer token-1\x01\x01"
    );
    assert!(auths[0].accepted);
    assert!(tokens.invalidated().is_empty());
    assert_no_secrets(&format!("{transport:?}"), &["token-1"]);
}

#[tokio::test]
async fn xoauth2_535_invalidates_the_token_and_retries_once() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        tokens: vec!["fresh".into()],
        auth_failure: "535 5.7.3 Authentication unsuccessful".into(),
        ..ServerOptions::default()
    })
    .await;
    let tokens = Arc::new(FakeTokens::new(&["stale", "fresh"]));
    let transport = starttls(&server)
        .xoauth2(USER, tokens.clone())
        .build()
        .unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    assert_eq!(tokens.invalidated(), ["stale"]);
    let decoded: Vec<_> = server.auths().into_iter().map(|a| a.decoded).collect();
    assert_eq!(
        decoded,
        [
            "user=no-reply@example.org\x01auth=Bearer stale\x01\x01",
            "user=no-reply@example.org\x01auth=Bearer fresh\x01\x01",
        ]
    );

    // Refused again with the fresh token: one retry only, then the setup remedy.
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        auth_failure:
            "535 5.7.3 Authentication unsuccessful [SN4PR0601CA0002.namprd06.prod.outlook.com]"
                .into(),
        ..ServerOptions::default()
    })
    .await;
    let tokens = Arc::new(FakeTokens::new(&["bad-1", "bad-2", "bad-3"]));
    let transport = starttls(&server)
        .xoauth2(USER, tokens.clone())
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(server.auths().len(), 2);
    assert_eq!(tokens.invalidated(), ["bad-1"]);
    assert!(error.is_auth());
    let remedy = error.remedy().unwrap();
    for step in [
        "SMTP.SendAsApp",
        "New-ServicePrincipal",
        "Add-MailboxPermission",
    ] {
        assert!(remedy.contains(step), "{remedy}");
    }
    let printed = format!("{error} {error:?}");
    assert_no_secrets(&printed, &["bad-2"]);
}

#[tokio::test]
async fn xoauth2_with_smtp_auth_disabled_does_not_burn_a_fresh_token() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        tokens: vec![],
        auth_failure: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is \
                       disabled for the Tenant."
            .into(),
        ..ServerOptions::default()
    })
    .await;
    let tokens = Arc::new(FakeTokens::new(&["token-1", "token-2"]));
    let transport = starttls(&server)
        .xoauth2(USER, tokens.clone())
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(server.auths().len(), 1, "a fresh token cannot fix 5.7.139");
    assert!(tokens.invalidated().is_empty());
    assert!(
        error.remedy().unwrap().contains("Set-CASMailbox"),
        "{error}"
    );
}

/// Two sends with `tokens`' first token share one pooled connection; after the token
/// changes, the next send logs in on a new connection with the new token. `provider` is
/// what the transport asks: one with the token at hand, or one that has to fetch it.
async fn pooled_connection_follows_the_token(
    tokens: Arc<FakeTokens>,
    provider: Arc<dyn mail_connector::TokenProvider>,
) {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        tokens: vec!["token-1".into(), "token-2".into()],
        ..ServerOptions::default()
    })
    .await;
    let transport = starttls(&server).xoauth2(USER, provider).build().unwrap();
    for _ in 0..2 {
        transport
            .send(&simple_email("ann@example.org"))
            .await
            .unwrap();
    }
    assert_eq!(server.connections(), 1, "same token: connection reused");
    tokens.rotate("token-2");
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    assert_eq!(server.connections(), 2, "replaced for the new token");
    let last = server.auths().pop().unwrap();
    assert!(last.decoded.contains("Bearer token-2"), "{}", last.decoded);
    assert_eq!(server.messages().len(), 3);
}

/// A provider with its token at hand once it has one (`ready_token` gives it, as a cache
/// does): the pooled connection is compared with it without a fetch.
#[derive(Debug)]
struct ReadyTokens(Arc<FakeTokens>);

#[async_trait::async_trait]
impl mail_connector::TokenProvider for ReadyTokens {
    async fn token(&self, scope: &str) -> mail_connector::Result<mail_connector::AccessToken> {
        self.0.token(scope).await
    }

    fn ready_token(&self, _scope: &str) -> Option<mail_connector::AccessToken> {
        let token = self.0.current()?;
        Some(mail_connector::AccessToken::new(
            token,
            std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
        ))
    }
}

#[tokio::test]
async fn a_pooled_connection_is_replaced_when_the_token_at_hand_changes() {
    let tokens = Arc::new(FakeTokens::new(&["token-1"]));
    pooled_connection_follows_the_token(tokens.clone(), Arc::new(ReadyTokens(tokens))).await;
}

/// A provider with no token at hand (`ready_token` says `None`) whose `token` has to wait
/// for its answer, as any that fetches does (a vault, a login host).
#[derive(Debug)]
struct FetchingTokens(Arc<FakeTokens>);

#[async_trait::async_trait]
impl mail_connector::TokenProvider for FetchingTokens {
    async fn token(&self, scope: &str) -> mail_connector::Result<mail_connector::AccessToken> {
        tokio::task::yield_now().await;
        self.0.token(scope).await
    }
}

/// As above with a provider that has to fetch its token: the pooled connection is still
/// compared with the provider's current token (fetched within the connect timeout) and
/// replaced when it changed, not reused as if the provider could not answer.
#[tokio::test]
async fn a_pooled_connection_is_replaced_when_a_fetched_token_changes() {
    let tokens = Arc::new(FakeTokens::new(&["token-1"]));
    pooled_connection_follows_the_token(tokens.clone(), Arc::new(FetchingTokens(tokens))).await;
}

#[tokio::test]
async fn oauth_over_smtp_from_settings_uses_the_credentials_provider() {
    use httpmock::{Method::POST, MockServer};
    // Entra ID hands out token-1, token-2, …; the server accepts only token-2, so the first
    // login fails with 535, the provider's token is invalidated and a fresh one fetched.
    let entra = MockServer::start_async().await;
    let (fetches, responder) = support::numbered_tokens(3600);
    let token_mock = entra.mock(|when, then| {
        when.method(POST)
            .path(support::token_path(support::TENANT))
            .form_urlencoded_tuple("scope", "https://outlook.office365.com/.default")
            .form_urlencoded_tuple("client_secret", support::SECRET);
        then.respond_with(responder);
    });
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN", "XOAUTH2"],
        tokens: vec!["token-2".into()],
        auth_failure: "535 5.7.3 Authentication unsuccessful".into(),
        ..ServerOptions::default()
    })
    .await;
    let settings = xoauth2_settings(&server, &entra.base_url(), "");
    let transport = settings.build().unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    let decoded: Vec<_> = server.auths().into_iter().map(|a| a.decoded).collect();
    assert_eq!(
        decoded,
        [
            "user=no-reply@example.org\x01auth=Bearer token-1\x01\x01",
            "user=no-reply@example.org\x01auth=Bearer token-2\x01\x01",
        ]
    );
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The next send reuses the pooled, logged-in connection and the cached token.
    transport
        .send(&simple_email("bob@example.org"))
        .await
        .unwrap();
    token_mock.assert_calls(2);
    assert_eq!(server.messages().len(), 2);
    let printed = format!(
        "{:?}",
        settings
            .smtp_builder()
            .and_then(SmtpTransportBuilder::build)
            .unwrap()
    );
    assert_no_secrets(&printed, &[support::SECRET, "token-2"]);
}

/// RFC 4954's `432 4.7.12` (a password transition is needed) is not Exchange's connection
/// limit (`432 4.3.2`): it names the password, and is not retried.
#[tokio::test]
async fn a_password_transition_is_not_a_connection_limit() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN"],
        users: vec![],
        auth_failure: "432 4.7.12 A password transition is needed".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("password transition"), "{remedy}");
    assert!(!remedy.contains("simultaneous"), "{remedy}");
    assert!(!error.is_transient(), "{error}");
    assert_eq!(
        server.auths().len(),
        1,
        "logged in once, not again and again"
    );
}

/// An XOAUTH2 token refused the RFC 7628 way (`334` and an error, before `535`) is dropped,
/// and the send logs in again with a fresh one; a token refused every time gets the OAuth
/// remedy.
#[tokio::test]
async fn an_xoauth2_token_refused_with_a_challenge_is_replaced() {
    let options = || ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        tokens: vec!["fresh".into()],
        auth_failure: "334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=".into(),
        ..ServerOptions::default()
    };
    let server = TestServer::start(options()).await;
    let tokens = Arc::new(FakeTokens::new(&["revoked", "fresh"]));
    let transport = starttls(&server)
        .xoauth2(USER, tokens.clone())
        .build()
        .unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .expect("logged in again with a fresh token");
    assert_eq!(tokens.invalidated().len(), 1);

    let server = TestServer::start(options()).await;
    let refused = Arc::new(FakeTokens::new(&["revoked"]));
    let transport = starttls(&server)
        .xoauth2(USER, refused.clone())
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("OAuth token"), "{remedy}");
    assert!(
        !remedy.contains("offers no authentication mechanism"),
        "{remedy}"
    );
}

/// `530 5.7.0 Must issue a STARTTLS command first`: the fix is TLS, not the auth mode.
#[tokio::test]
async fn starttls_required_names_the_tls_settings() {
    let server = TestServer::start(ServerOptions {
        transient_mail_failures: 5,
        transient_reply: "530 5.7.0 Must issue a STARTTLS command first".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("use_ssl"), "{remedy}");
    assert!(!remedy.contains("auth_mode"), "{remedy}");
}

/// A server that greets, answers EHLO and STARTTLS, reads the login and holds its verdict past
/// the connect timeout (as one does to slow down password guessing): the remedy speaks of
/// the login — the password, a slow check, the connect timeout — not of a port, a TLS mode
/// or a greeting that never came.
#[tokio::test]
async fn a_login_answered_late_is_blamed_on_the_login_not_the_port() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let server = TestServer::start(ServerOptions {
        gated_auth_verdict: Some(Arc::clone(&gate)),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server)
        .connect_timeout(std::time::Duration::from_millis(200))
        .retry_policy(mail_connector::RetryPolicy::none())
        .build()
        .unwrap();
    let error = bounded(transport.send(&simple_email("ann@example.org")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Smtp {
                stage: SmtpStage::Auth,
                code: None,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("no answer from"), "{error}");
    assert_eq!(server.auths().len(), 1, "the server had the login");
    assert_eq!(error.delivery(), Delivery::NotSent);
    let remedy = error.remedy().expect("a remedy");
    for named in ["`password`", "connect_timeout"] {
        assert!(remedy.contains(named), "{named}: {remedy}");
    }
    for blamed in ["smtp_port", "never comes", "firewall", "465"] {
        assert!(!remedy.contains(blamed), "{blamed}: {remedy}");
    }
    // The check says the same.
    let report = bounded(transport.check()).await;
    let text = format!("{report:?}");
    assert!(text.contains("connect_timeout"), "{text}");
    assert!(!text.contains("never comes"), "{text}");
}
