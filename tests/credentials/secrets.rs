//! No client secret or token is ever printed: not in `Debug`, errors or logs.

use std::sync::Arc;

use httpmock::Method::POST;
use httpmock::MockServer;
use mail_connector::{AuthMode, ConnectorSettings};

use super::helpers::*;
use crate::support;
use crate::support::*;

#[tokio::test]
async fn no_secret_is_ever_printed() {
    const TOKEN: &str = "eyJTOKEN-VALUE-must-not-print";
    const PASSWORD: &str = "basic-PASSWORD-must-not-print";
    let key_pem = std::fs::read_to_string(fixture("test-client.key")).unwrap();
    let key_line = key_pem.lines().nth(1).unwrap().to_owned();
    let server = MockServer::start_async().await;
    let assertions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&assertions);
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200).json_body(token_body(TOKEN, 3599));
        })
        .await;
    server
        .mock_async(move |when, then| {
            when.method(POST)
                .path(token_path("refused.example.org"))
                .is_true(move |r| {
                    record.lock().unwrap().push(r.body_string());
                    true
                });
            then.status(401)
                .json_body(entra_error("invalid_client", 7_000_215));
        })
        .await;

    let mut printed = Vec::new();
    let secret = secret_settings(&server, TENANT);
    let with_secret = secret.credentials().unwrap();
    let token = with_secret.access_token(GRAPH_SCOPE).await.unwrap();
    let certificate = certificate_settings(&server, TENANT).credentials().unwrap();
    let mut basic_settings = ConnectorSettings::default();
    basic_settings.auth_mode = Some(AuthMode::Basic);
    basic_settings.user_name = Some("relay@contoso.com".into());
    basic_settings.password = Some(PASSWORD.into());
    let basic = basic_settings.credentials().unwrap();
    let builder = secret.credentials_builder().unwrap();
    printed.push(format!("{builder:?}"));
    for value in [&with_secret, &certificate, &basic] {
        printed.push(format!("{value:?} {value:#?}"));
    }
    printed.push(format!("{token:?} {token:#?} {:?}", token.claims()));
    printed.push(format!("{secret:?} {basic_settings:?}"));
    let (_, password) = basic.user_password().unwrap();
    printed.push(format!("{password:?} {password}"));

    // Errors: refused (the request carried the secret), refused with a certificate
    // (it carried an assertion), unreachable, not a token, a bad key file.
    let refused = secret_settings(&server, "refused.example.org")
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(0))
        .build()
        .unwrap();
    let cert_refused = certificate_settings(&server, "refused.example.org")
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(0))
        .build()
        .unwrap();
    let mut errors = vec![
        refused.access_token(GRAPH_SCOPE).await.unwrap_err(),
        cert_refused.access_token(GRAPH_SCOPE).await.unwrap_err(),
        basic.access_token(GRAPH_SCOPE).await.unwrap_err(),
    ];
    let mut bad_key = certificate_settings(&server, TENANT);
    bad_key.client_private_key_file = Some(fixture("test-client.pem"));
    errors.push(bad_key.credentials().unwrap_err());
    let mut unreachable = secret_settings(&server, TENANT);
    unreachable.authority_host = Some("http://127.0.0.1:9".into());
    let unreachable = unreachable
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(0))
        .build()
        .unwrap();
    errors.push(unreachable.access_token(GRAPH_SCOPE).await.unwrap_err());
    for error in &errors {
        printed.push(format!("{error} {error:?} {:?}", error.remedy()));
    }
    for step in refused.check_steps(GRAPH_SCOPE, &["Mail.Send"]).await {
        printed.push(format!("{step:?}"));
    }

    let assertion = assertions
        .lock()
        .unwrap()
        .iter()
        .flat_map(|body| {
            url::form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect::<Vec<_>>()
        })
        .find(|(k, _)| k == "client_assertion")
        .expect("the certificate request carried an assertion")
        .1;
    let printed = printed.join("\n");
    // The client secret, the access token, the password, the private key and the assertion.
    assert_no_secrets(
        &printed,
        &[
            SECRET,
            TOKEN,
            PASSWORD,
            key_line.as_str(),
            assertion.as_str(),
        ],
    );
    // The assertion's signature part alone must not leak either.
    let signature = assertion.rsplit('.').next().unwrap();
    assert_no_secrets(&printed, &[signature]);
    assert!(printed.contains("[redacted]"));
}

#[tokio::test]
async fn logs_never_hold_the_client_secret_or_the_token() {
    const TOKEN: &str = "eyJ-LOGGED-TOKEN-must-not-appear";
    let (logs, _guard) = support::capture_logs();
    // A tenant and a trace ID only this test uses, so that the events found below are this
    // test's own: httpmock hands its servers (and their addresses) from one test to the
    // next, and other tests log the same refusal.
    let tenant = own_tenant();
    let trace = format!("7ace0000-0000-4000-8000-{:012}", unique_number());
    let mut refusal = entra_error("invalid_client", 7_000_215);
    refusal["trace_id"] = trace.clone().into();

    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(&tenant));
            then.respond_with(in_sequence(vec![
                json_response(200, &due_token_body(TOKEN, 3599)),
                json_response(401, &refusal),
            ]));
        })
        .await;
    let credentials = secret_settings(&server, &tenant).credentials().unwrap();
    // A successful fetch, then a refresh that fails and falls back to the same token.
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), TOKEN);
    credentials.access_token(GRAPH_SCOPE).await.unwrap();

    // This test's own events (its tenant's endpoint, its refusal's trace ID).
    let endpoint = server.url(token_path(&tenant));
    logged_line(&logs, &["access token issued", &endpoint]);
    logged_line(
        &logs,
        &["token request refused", &endpoint, "AADSTS7000215", &trace],
    );
    logged_line(&logs, &["token refresh failed", "AADSTS7000215", &trace]);
    assert_no_secrets(&logs.text(), &[SECRET, TOKEN]);
}
