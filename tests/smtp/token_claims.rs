//! An XOAUTH2 login refused with `535`: the remedy names the setup step the refused token's
//! claims point to (tokens from a mock Entra ID, the loopback server refusing every one).

use std::time::{SystemTime, UNIX_EPOCH};

use httpmock::{Method::POST, MockServer};
use mail_connector::credentials::SMTP_SCOPE;
use mail_connector::{Error, MailTransport, SmtpStage};
use serde_json::{Value, json};

use super::helpers::*;
use crate::support;
use crate::support::assert_no_secrets;
use crate::support::smtp_server::{ServerOptions, TestServer};

/// The object ID of the app's service principal, as a token's `oid`.
const OBJECT_ID: &str = "5e5e5e5e-1111-2222-3333-444444444444";

const REFUSED: &str =
    "535 5.7.3 Authentication unsuccessful [SN4PR0601CA0002.namprd06.prod.outlook.com]";

/// An Entra ID access token with `claims` and an expiry an hour away.
fn token_with(mut claims: Value) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    claims["exp"] = json!(exp);
    claims["tid"] = json!(support::TENANT);
    support::jwt(claims)
}

/// Sends with OAuth settings (`extra` added) whose token endpoint hands out `token` for
/// `scope`, to a server that refuses every token with `reply`; returns the error, after
/// checking that the refused token was replaced once and appears in no output.
async fn refused(token: &str, scope: &str, extra: &str, reply: &str) -> Error {
    let entra = MockServer::start_async().await;
    let body = support::token_body(token, 3600);
    let token_mock = entra.mock(|when, then| {
        when.method(POST)
            .path(support::token_path(support::TENANT))
            .form_urlencoded_tuple("scope", scope);
        then.status(200).json_body(body);
    });
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        tokens: vec![],
        auth_failure: reply.into(),
        ..ServerOptions::default()
    })
    .await;
    let settings = xoauth2_settings(&server, &entra.base_url(), extra);
    let error = settings
        .build()
        .unwrap()
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Smtp { stage: SmtpStage::Auth, code: Some(535), mechanism: Some(m), .. }
                if m == "XOAUTH2"
        ),
        "{error:?}"
    );
    assert!(error.is_auth());
    // 5.7.3 is answered with a fresh token once; 5.7.139 is not.
    let logins = if reply.contains("5.7.139") { 1 } else { 2 };
    assert_eq!(server.auths().len(), logins);
    token_mock.assert_calls(logins);
    let printed = format!("{error} {error:?} {:?}", error.remedy());
    assert_no_secrets(&printed, &[token, support::SECRET]);
    error
}

#[tokio::test]
async fn a_token_for_graph_names_the_scope_setting() {
    let token = token_with(json!({
        "aud": "https://graph.microsoft.com",
        "roles": ["Mail.Send"],
        "azp": support::CLIENT_ID,
    }));
    let error = refused(
        &token,
        support::GRAPH_SCOPE,
        &format!("oauth_scope = \"{}\"\n", support::GRAPH_SCOPE),
        REFUSED,
    )
    .await;
    let remedy = error.remedy().unwrap();
    for step in [
        "audience is `https://graph.microsoft.com`",
        "`oauth_scope`",
        "`https://outlook.office365.com/.default`",
        "leave it unset",
    ] {
        assert!(remedy.contains(step), "{step}: {remedy}");
    }
    // Not the steps for a token Exchange could take.
    for other in [
        "SMTP.SendAsApp",
        "New-ServicePrincipal",
        "Add-MailboxPermission",
    ] {
        assert!(!remedy.contains(other), "{other}: {remedy}");
    }
}

#[tokio::test]
async fn an_app_only_token_without_send_as_app_names_the_permission_and_consent() {
    // A v1 token: Exchange's URI as the audience; only Graph's permission granted.
    let token = token_with(json!({
        "aud": "https://outlook.office365.com",
        "roles": ["Mail.Send"],
        "appid": support::CLIENT_ID,
        "oid": OBJECT_ID,
    }));
    let error = refused(&token, SMTP_SCOPE, "", REFUSED).await;
    let remedy = error.remedy().unwrap();
    for step in [
        "no `SMTP.SendAsApp` role",
        "only `Mail.Send`",
        "Office 365 Exchange Online application permission `SMTP.SendAsApp`",
        "Grant admin consent",
        "keeps its old roles",
        "RBAC for Applications",
    ] {
        assert!(remedy.contains(step), "{step}: {remedy}");
    }
    // The Exchange side comes after the permission: not asked for yet.
    for other in ["Add-MailboxPermission", "Set-CASMailbox", "`oauth_scope`"] {
        assert!(!remedy.contains(other), "{other}: {remedy}");
    }
}

#[tokio::test]
async fn a_token_with_send_as_app_names_the_exchange_side() {
    // A v2 token: Exchange's app ID as the audience.
    let token = token_with(json!({
        "aud": "00000002-0000-0ff1-ce00-000000000000",
        "roles": ["SMTP.SendAsApp"],
        "azp": support::CLIENT_ID,
        "oid": OBJECT_ID,
    }));
    let error = refused(&token, SMTP_SCOPE, "", REFUSED).await;
    let remedy = error.remedy().unwrap();
    let register = format!(
        "New-ServicePrincipal -AppId {} -ObjectId {OBJECT_ID}",
        support::CLIENT_ID
    );
    for step in [
        register.as_str(),
        "not the App registration's",
        "Add-MailboxPermission -Identity <user_name>",
        "-AccessRights FullAccess",
        "Set-CASMailbox -Identity <user_name> -SmtpClientAuthenticationDisabled $false",
    ] {
        assert!(remedy.contains(step), "{step}: {remedy}");
    }
    for other in ["admin consent", "`oauth_scope`"] {
        assert!(!remedy.contains(other), "{other}: {remedy}");
    }

    // Exchange's 5.7.139 without the switch's name in it ends the same way, at once.
    let token = token_with(json!({
        "aud": "https://outlook.office365.com/",
        "roles": ["SMTP.SendAsApp"],
        "azp": support::CLIENT_ID,
        "oid": OBJECT_ID,
    }));
    let error = refused(
        &token,
        SMTP_SCOPE,
        "",
        "535 5.7.139 Authentication unsuccessful",
    )
    .await;
    assert!(error.remedy().unwrap().contains(&register), "{error}");

    // A delegated token says nothing of the app's setup: every step stays.
    let token = token_with(json!({
        "aud": "https://outlook.office.com",
        "scp": "SMTP.Send",
        "azp": support::CLIENT_ID,
        "oid": OBJECT_ID,
    }));
    let error = refused(&token, SMTP_SCOPE, "", REFUSED).await;
    let remedy = error.remedy().unwrap();
    for step in [
        "SMTP.SendAsApp",
        "admin consent",
        "New-ServicePrincipal -AppId <oauth_client_id>",
        "Add-MailboxPermission",
    ] {
        assert!(remedy.contains(step), "{step}: {remedy}");
    }
}
