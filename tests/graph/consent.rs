//! Graph's refusals for a permission, told apart by what the token carries: a token fetched
//! before admin consent is replaced (it keeps its old permissions until it expires), and a
//! refusal despite the permission points at Exchange's access policies, not at consent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use httpmock::{Method::POST, MockServer};
use mail_connector::{
    AccessToken, Credentials, GraphTransport, MailTransport, Mailbox, Result, TokenProvider,
};

use super::helpers::*;
use crate::support::*;

/// The two tokens of a test: without roles, and with `Mail.Send`.
struct Tokens {
    roleless: String,
    granted: String,
}

fn tokens() -> Tokens {
    Tokens {
        roleless: token_for(&[]),
        granted: token_for(&["Mail.Send"]),
    }
}

/// Gives `first` (issued `first_age` ago) first, and `then` after.
#[derive(Debug)]
struct Consent {
    first: String,
    first_age: Duration,
    then: String,
    asked: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl TokenProvider for Consent {
    async fn token(&self, _scope: &str) -> Result<AccessToken> {
        let now = SystemTime::now();
        let expires = now + Duration::from_secs(3600);
        Ok(match self.asked.fetch_add(1, Ordering::SeqCst) {
            0 => AccessToken::new(self.first.clone(), expires).with_issued_at(now - self.first_age),
            _ => AccessToken::new(self.then.clone(), expires),
        })
    }
}

fn graph(
    server: &MockServer,
    first: &str,
    first_age: Duration,
    then: &str,
) -> (GraphTransport, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let provider = Consent {
        first: first.to_owned(),
        first_age,
        then: then.to_owned(),
        asked: Arc::clone(&asked),
    };
    let graph = GraphTransport::builder(
        Mailbox::parse("no-reply@contoso.com").unwrap(),
        Credentials::from_token_provider(provider),
    )
    .graph_endpoint(server.base_url())
    .retry_policy(fast_retry(3))
    .build()
    .unwrap();
    (graph, asked)
}

/// Graph refusing `token` (any token when `None`) with `status` and the error `code`, `message`.
fn refuse_with<'a>(
    server: &'a MockServer,
    token: Option<&str>,
    status: u16,
    code: &str,
    message: &str,
) -> httpmock::Mock<'a> {
    server.mock(|when, then| {
        let when = when.method(POST).path(SEND_PATH);
        if let Some(token) = token {
            when.header("authorization", format!("Bearer {token}"));
        }
        then.status(status).json_body(graph_error(code, message));
    })
}

/// Graph accepting a send with `token`.
fn accept<'a>(server: &'a MockServer, token: &str) -> httpmock::Mock<'a> {
    server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", format!("Bearer {token}"));
        then.status(202);
    })
}

/// Graph refusing `token` as it refuses one without the permission.
fn refuse<'a>(server: &'a MockServer, token: &str) -> httpmock::Mock<'a> {
    refuse_with(
        server,
        Some(token),
        403,
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    )
}

/// Consent granted after the service fetched its token: Graph refuses the old token, which
/// is older than a few minutes, so a new one (with `Mail.Send`) is fetched and the send goes.
#[tokio::test]
async fn a_token_from_before_consent_is_replaced_and_the_send_goes() {
    let server = MockServer::start_async().await;
    let t = tokens();
    let refused = refuse(&server, &t.roleless);
    let accepted = accept(&server, &t.granted);
    let (graph, asked) = graph(&server, &t.roleless, Duration::from_secs(600), &t.granted);
    let report = graph.send(&simple_email()).await.unwrap();
    assert_eq!(report.messages.len(), 1);
    refused.assert_calls(1);
    accepted.assert_calls(1);
    assert_eq!(asked.load(Ordering::SeqCst), 2);
}

/// A token fetched just now without the permission: consent is missing, not late. It is not
/// fetched again (Entra would give the same), and the remedy says how to grant it and that
/// a token fetched before that is replaced.
#[tokio::test]
async fn a_fresh_token_without_the_permission_is_not_refetched() {
    let server = MockServer::start_async().await;
    let t = tokens();
    let refused = refuse(&server, &t.roleless);
    let (graph, asked) = graph(&server, &t.roleless, Duration::ZERO, &t.roleless);
    for _ in 0..2 {
        let error = graph.send(&simple_email()).await.unwrap_err();
        let remedy = error.remedy().unwrap();
        assert!(remedy.contains("Grant admin consent"), "{remedy}");
        assert!(remedy.contains("fetched before consent"), "{remedy}");
        // sendMail needs `Mail.Send` alone: `Mail.ReadWrite` is only for a draft's refusal.
        assert!(!remedy.contains("Mail.ReadWrite"), "{remedy}");
        assert!(!error.is_transient());
    }
    refused.assert_calls(2);
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the cached token is kept");
}

/// A token that carries `Mail.Send` refused all the same: no new token, and the remedy names
/// Exchange's access policies and how to test them, not a permission already granted.
#[tokio::test]
async fn a_refusal_despite_the_permission_points_at_exchange_policies() {
    let server = MockServer::start_async().await;
    let t = tokens();
    let refused = refuse(&server, &t.roleless);
    let with_role = refuse(&server, &t.granted);
    // The first token (without roles) is replaced at once (it is old); the second carries
    // the permission and is refused too.
    let (graph, asked) = graph(&server, &t.roleless, Duration::from_secs(600), &t.granted);
    let error = graph.send(&simple_email()).await.unwrap_err();
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("Test-ApplicationAccessPolicy"), "{remedy}");
    assert!(!remedy.contains("Grant admin consent"), "{remedy}");
    refused.assert_calls(1);
    with_role.assert_calls(1);
    assert_eq!(asked.load(Ordering::SeqCst), 2, "one refetch, no more");
}

/// An old token without the permission, refused by an Exchange access policy (in either of
/// Graph's words for it): no new token changes a policy, so none is fetched, and the remedy
/// names the policy's scope, not consent.
#[tokio::test]
async fn an_access_policy_refusal_keeps_the_token_and_names_the_policy() {
    for message in [
        "Access to OData is disabled.",
        "Blocked by tenant configured AppOnly AccessPolicy settings.",
    ] {
        let server = MockServer::start_async().await;
        let t = tokens();
        let refused = refuse_with(&server, None, 403, "ErrorAccessDenied", message);
        let (graph, asked) = graph(&server, &t.roleless, Duration::from_secs(600), &t.granted);
        let error = graph.send(&simple_email()).await.unwrap_err();
        let remedy = error.remedy().unwrap();
        assert!(
            remedy.contains("add it to the policy's scope"),
            "{message}: {remedy}"
        );
        assert!(
            !remedy.contains("Grant admin consent"),
            "{message}: {remedy}"
        );
        assert!(error.is_auth(), "{message}");
        refused.assert_calls(1);
        assert_eq!(asked.load(Ordering::SeqCst), 1, "{message}: no new token");
    }
}

/// Graph's other word for a token without the permission, a 401 `NoPermissionsInAccessToken`:
/// a token from before consent is replaced all the same, and the send goes.
#[tokio::test]
async fn a_token_refused_as_without_permissions_is_replaced_when_old() {
    let server = MockServer::start_async().await;
    let t = tokens();
    let refused = refuse_with(
        &server,
        Some(&t.roleless),
        401,
        "NoPermissionsInAccessToken",
        "The token contains no permissions, or permissions can not be understood.",
    );
    let accepted = accept(&server, &t.granted);
    let (graph, asked) = graph(&server, &t.roleless, Duration::from_secs(600), &t.granted);
    graph.send(&simple_email()).await.unwrap();
    refused.assert_calls(1);
    accepted.assert_calls(1);
    assert_eq!(asked.load(Ordering::SeqCst), 2);
}

/// A 403 for something else than a permission (the From address not allowed): an old token
/// without roles is kept, as a new one would be refused the same way.
#[tokio::test]
async fn a_refusal_for_another_reason_keeps_an_old_token() {
    let server = MockServer::start_async().await;
    let t = tokens();
    let refused = refuse_with(
        &server,
        None,
        403,
        "ErrorSendAsDenied",
        "The user account which was used to submit this request does not have the right to \
         send mail on behalf of the specified sending account.",
    );
    let (graph, asked) = graph(&server, &t.roleless, Duration::from_secs(600), &t.granted);
    let error = graph.send(&simple_email()).await.unwrap_err();
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("grant Send As"), "{remedy}");
    refused.assert_calls(1);
    assert_eq!(asked.load(Ordering::SeqCst), 1, "no new token");
}

/// The remedy's promise: a token is replaced once it is older than 5 minutes, not sooner: one
/// 4 minutes old is kept (consent may simply be missing).
#[tokio::test]
async fn a_token_younger_than_five_minutes_is_kept() {
    let server = MockServer::start_async().await;
    let t = tokens();
    let refused = refuse(&server, &t.roleless);
    let (graph, asked) = graph(&server, &t.roleless, Duration::from_secs(240), &t.granted);
    let error = graph.send(&simple_email()).await.unwrap_err();
    assert!(error.remedy().unwrap().contains("older than 5 minutes"));
    refused.assert_calls(1);
    assert_eq!(asked.load(Ordering::SeqCst), 1, "no new token");
}

/// A send refused for a token without permissions (before admin consent) is not a refused
/// fresh token: a later 401 for an expired token is still answered with a new token, and
/// that send goes.
#[tokio::test]
async fn a_refusal_for_missing_permissions_does_not_stop_a_later_refresh() {
    let server = MockServer::start_async().await;
    let (fetches, responder) = numbered_tokens(3600);
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.respond_with(responder);
    });
    let no_permissions = graph_error(
        "NoPermissionsInAccessToken",
        "The token contains no permissions, or permissions can not be understood.",
    );
    let expired = graph_error(
        "InvalidAuthenticationToken",
        "Access token has expired or is not yet valid.",
    );
    let refused = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer token-1");
        then.respond_with(in_sequence(vec![
            json_response(401, &no_permissions),
            json_response(401, &expired),
        ]));
    });
    let accepted = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", "Bearer token-2");
        then.status(202);
    });
    let graph = transport(&settings(&server));
    let error = graph.send(&simple_email()).await.unwrap_err();
    assert!(error.remedy().unwrap().contains("Grant admin consent"));
    graph.send(&simple_email()).await.unwrap();
    refused.assert_calls(2);
    accepted.assert_calls(1);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}
