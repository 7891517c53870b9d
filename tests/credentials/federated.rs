//! Workload identity federation: the workload's token file is the client assertion, read
//! again for every token request; rejected tokens get the Federated credentials remedies.

use std::sync::{Arc, Mutex};

use httpmock::Method::POST;
use httpmock::{HttpMockRequest, MockServer};
use mail_connector::credentials::CredentialsBuilder;
use mail_connector::{CheckStatus, Credentials};

use crate::support::*;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Two workload tokens, as the platform writes them (with a trailing newline).
const FIRST_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmaXJzdCJ9.Zmlyc3Qtc2lnbmF0dXJl";
const SECOND_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNvbmQifQ.c2Vjb25kLXNpZ25hdHVyZQ";

/// The form bodies the token endpoint received, in order.
pub(crate) type Forms = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A token endpoint that records every form it receives and answers `token-1`, `token-2`, …
pub(crate) async fn recording_endpoint(server: &MockServer) -> Forms {
    recording_endpoint_for(server, TENANT).await
}

/// [`recording_endpoint`] for `tenant`'s token requests.
pub(crate) async fn recording_endpoint_for(server: &MockServer, tenant: &str) -> Forms {
    let forms: Forms = Arc::default();
    let seen = Arc::clone(&forms);
    server
        .mock_async(move |when, then| {
            when.method(POST).path(token_path(tenant));
            then.respond_with(move |request: &HttpMockRequest| {
                let form = url::form_urlencoded::parse(request.body_ref())
                    .into_owned()
                    .collect();
                let mut seen = seen.lock().unwrap();
                seen.push(form);
                json_response(200, &token_body(&format!("token-{}", seen.len()), 3599))
            });
        })
        .await;
    forms
}

/// The value of `name` in a form, if present.
pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn federated(server: &MockServer, file: &std::path::Path) -> CredentialsBuilder {
    federated_in(TENANT, server, file)
}

fn federated_in(tenant: &str, server: &MockServer, file: &std::path::Path) -> CredentialsBuilder {
    Credentials::workload_identity(tenant, CLIENT_ID, file).authority_host(server.base_url())
}

#[tokio::test]
async fn the_assertion_is_the_token_files_current_content() {
    let (logs, _guard) = capture_logs();
    let server = MockServer::start_async().await;
    // This test's own token endpoint, in the logs too (httpmock reuses servers' ports).
    let tenant = own_tenant();
    let forms = recording_endpoint_for(&server, &tenant).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, format!("{FIRST_TOKEN}\n")).unwrap();
    let credentials = federated_in(&tenant, &server, &file).build().unwrap();

    let first = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(first.expose_secret(), "token-1");
    // The platform rotates the file; the next token request uses the new token.
    std::fs::write(&file, format!("  {SECOND_TOKEN}\r\n")).unwrap();
    credentials.invalidate(&first);
    let second = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(second.expose_secret(), "token-2");

    let forms = forms.lock().unwrap().clone();
    assert_eq!(forms.len(), 2);
    for (form, token) in forms.iter().zip([FIRST_TOKEN, SECOND_TOKEN]) {
        assert_eq!(field(form, "grant_type"), Some("client_credentials"));
        assert_eq!(field(form, "client_id"), Some(CLIENT_ID));
        assert_eq!(field(form, "client_assertion_type"), Some(JWT_BEARER));
        assert_eq!(field(form, "client_assertion"), Some(token));
        assert_eq!(field(form, "scope"), Some(GRAPH_SCOPE));
        assert_eq!(field(form, "client_secret"), None);
    }
    assert_no_secrets(&format!("{credentials:?}"), &[FIRST_TOKEN, SECOND_TOKEN]);
    logged_line(
        &logs,
        &["access token issued", &server.url(token_path(&tenant))],
    );
    assert_no_secrets(&logs.text(), &[FIRST_TOKEN, SECOND_TOKEN]);
}

#[tokio::test]
async fn a_missing_or_empty_token_file_names_the_path_and_the_fix() {
    let server = MockServer::start_async().await;
    let forms = recording_endpoint(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-such-token");
    let credentials = federated(&server, &file).build().unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&file.display().to_string())
            && text.contains("federated_token_file")
            && text.contains("AZURE_FEDERATED_TOKEN_FILE")
            && text.contains("azure.workload.identity/use"),
        "{text}"
    );
    assert!(error.remedy().unwrap().contains("federated_token_file"));

    std::fs::write(&file, " \n").unwrap();
    let credentials = federated(&server, &file).build().unwrap();
    let text = credentials
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("is empty") && text.contains(&file.display().to_string()),
        "{text}"
    );
    assert!(
        forms.lock().unwrap().is_empty(),
        "no request without a token"
    );
}

#[tokio::test]
async fn rejected_federated_tokens_name_the_federated_credential_to_fix() {
    let cases: [(u64, &[&str]); 5] = [
        (
            700_211,
            &["Federated credentials", "Issuer", "oidcIssuerProfile"],
        ),
        (
            700_212,
            &[
                "Federated credentials",
                "Audience",
                "api://AzureADTokenExchange",
            ],
        ),
        (
            700_213,
            &["Federated credentials", "Subject", "system:serviceaccount:"],
        ),
        (
            70_021,
            &["Federated credentials", "issuer, subject and audience"],
        ),
        (700_024, &["federated_token_file", "rotating", "clock"]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, FIRST_TOKEN).unwrap();
    for (code, words) in cases {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.method(POST).path(token_path(TENANT));
                then.status(401)
                    .header("content-type", "application/json")
                    .json_body(entra_error("invalid_client", code));
            })
            .await;
        let credentials = federated(&server, &file).build().unwrap();
        let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
        let remedy = error.remedy().unwrap();
        for word in words {
            assert!(remedy.contains(word), "AADSTS{code}: {word} in {remedy}");
        }
        assert!(error.is_auth(), "AADSTS{code}");
        assert_no_secrets(&format!("{error} {error:?}"), &[FIRST_TOKEN]);
    }
}

/// An `invalid_client` refusal without a code the table knows: the remedy is the federated
/// credential and the token file, not a client secret or certificate the app does not use.
#[tokio::test]
async fn an_unknown_refusal_of_a_federated_token_names_the_federated_credential() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, FIRST_TOKEN).unwrap();
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(401)
                .json_body(entra_error("invalid_client", 7_999_999));
        })
        .await;
    let error = federated(&server, &file)
        .build()
        .unwrap()
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap_err();
    let remedy = error.remedy().unwrap();
    assert!(
        remedy.contains("Federated credentials") && remedy.contains("`federated_token_file`"),
        "{remedy}"
    );
    for wrong in ["`client_secret`", "`client_certificate_file`"] {
        assert!(!remedy.contains(wrong), "{remedy}");
    }
}

#[tokio::test]
async fn check_says_workload_identity_and_the_file_never_the_token() {
    let server = MockServer::start_async().await;
    recording_endpoint(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, FIRST_TOKEN).unwrap();
    let credentials = federated(&server, &file).build().unwrap();
    let steps = credentials.check_steps(GRAPH_SCOPE, &[]).await;
    let credential = steps.iter().find(|s| s.name == "credential").unwrap();
    assert_eq!(credential.status, CheckStatus::Ok);
    assert!(
        credential.detail.contains("workload identity")
            && credential.detail.contains(&file.display().to_string()),
        "{}",
        credential.detail
    );
    assert!(
        steps.iter().all(|s| !s.name.contains("expiry")),
        "{steps:?}"
    );
    assert_no_secrets(&format!("{steps:?}"), &[FIRST_TOKEN]);
}

#[tokio::test]
async fn the_aks_webhook_variables_configure_it() {
    let server = MockServer::start_async().await;
    let forms = recording_endpoint(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, FIRST_TOKEN).unwrap();
    let file_name = file.display().to_string();
    // AKS sets the authority host with a trailing slash.
    let host = format!("{}/", server.base_url());
    let vars = [
        ("AZURE_CLIENT_ID", CLIENT_ID),
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_FEDERATED_TOKEN_FILE", file_name.as_str()),
        ("AZURE_AUTHORITY_HOST", host.as_str()),
        ("UNRELATED", "ignored"),
    ];
    let credentials = Credentials::workload_identity_from_vars(vars)
        .unwrap()
        .build()
        .unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    let forms = forms.lock().unwrap().clone();
    assert_eq!(field(&forms[0], "client_assertion"), Some(FIRST_TOKEN));
    assert_eq!(field(&forms[0], "client_id"), Some(CLIENT_ID));

    for missing in [
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
    ] {
        let without = vars.iter().filter(|(name, _)| *name != missing);
        let error = Credentials::workload_identity_from_vars(without.copied()).unwrap_err();
        assert!(error.to_string().contains(missing), "{missing}: {error}");
        // An empty value is as good as missing.
        let empty = vars
            .iter()
            .map(|&(name, value)| (name, if name == missing { "" } else { value }));
        let error = Credentials::workload_identity_from_vars(empty).unwrap_err();
        assert!(error.to_string().contains(missing), "{missing}: {error}");
    }
}

#[tokio::test]
async fn kinds_of_one_app_never_share_cached_tokens() {
    let server = MockServer::start_async().await;
    let forms = recording_endpoint(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, FIRST_TOKEN).unwrap();
    let store = Arc::new(mail_connector::credentials::InMemoryTokenCache::new());
    let federated = federated(&server, &file)
        .cache_store(store.clone())
        .build()
        .unwrap();
    let secret = Credentials::client_secret(TENANT, CLIENT_ID, SECRET.into())
        .authority_host(server.base_url())
        .cache_store(store)
        .build()
        .unwrap();
    assert_eq!(
        federated
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "token-1"
    );
    assert_eq!(
        secret
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "token-2"
    );
    assert_eq!(forms.lock().unwrap().len(), 2);
}

/// The settings map onto workload identity federation and a secret file: the token file's
/// content is the assertion, the secret file's content the secret, and the summary names the
/// files, never what they hold.
#[tokio::test]
async fn settings_map_onto_workload_identity_and_a_secret_file() {
    let server = MockServer::start_async().await;
    let forms = recording_endpoint(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, FIRST_TOKEN).unwrap();
    let settings = mail_connector::ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
         oauth_client_id = \"{CLIENT_ID}\"\ntenant_id = \"{TENANT}\"\n\
         authority_host = \"{}\"\nfederated_token_file = {:?}\n",
        server.base_url(),
        token_file.display().to_string(),
    ))
    .unwrap();
    settings.validate().unwrap();
    let summary = settings.summary();
    assert!(
        summary.contains("workload identity federation"),
        "{summary}"
    );
    assert_no_secrets(&summary, &[FIRST_TOKEN]);
    let credentials = settings.credentials().unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();

    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, "vault-rotated-secret\n").unwrap();
    let mut settings = settings.clone();
    settings.federated_token_file = None;
    settings.client_secret_file = Some(secret_file.clone());
    settings.validate().unwrap();
    assert!(
        settings.summary().contains("client secret from"),
        "{}",
        settings.summary()
    );
    settings
        .credentials()
        .unwrap()
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap();

    let forms = forms.lock().unwrap();
    assert_eq!(forms.len(), 2, "{forms:?}");
    assert_eq!(field(&forms[0], "client_assertion_type"), Some(JWT_BEARER));
    assert_eq!(field(&forms[0], "client_assertion"), Some(FIRST_TOKEN));
    assert_eq!(
        field(&forms[1], "client_secret"),
        Some("vault-rotated-secret")
    );

    // A token file that does not exist is named by validation.
    let mut missing = mail_connector::ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
         oauth_client_id = \"{CLIENT_ID}\"\ntenant_id = \"{TENANT}\"\n\
         oauth_credential = \"workload_identity\"\n"
    ))
    .unwrap();
    missing.federated_token_file = Some(dir.path().join("no-such-token"));
    let error = missing.validate().unwrap_err().to_string();
    assert!(error.contains("`federated_token_file`"), "{error}");
}
