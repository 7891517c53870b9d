//! A client secret kept in a file a vault rotates: read at each token request, named by its
//! path in errors and `check`, never printed.

use httpmock::Method::POST;
use httpmock::{HttpMockRequest, MockServer};
use mail_connector::credentials::CredentialsBuilder;
use mail_connector::{CheckStatus, Credentials};

use super::federated::{field, recording_endpoint, recording_endpoint_for};
use crate::support::*;

const ROTATED: &str = "Rt9Q~ROTATED-SECRET-VALUE-do-not-print";

fn from_file(server: &MockServer, file: &std::path::Path) -> CredentialsBuilder {
    from_file_in(TENANT, server, file)
}

fn from_file_in(tenant: &str, server: &MockServer, file: &std::path::Path) -> CredentialsBuilder {
    Credentials::client_secret_file(tenant, CLIENT_ID, file).authority_host(server.base_url())
}

#[tokio::test]
async fn a_secret_rewritten_between_two_token_requests_is_sent_at_the_next() {
    let (logs, _guard) = capture_logs();
    let server = MockServer::start_async().await;
    // This test's own token endpoint, in the logs too (httpmock reuses servers' ports).
    let tenant = own_tenant();
    let forms = recording_endpoint_for(&server, &tenant).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mail-client-secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let credentials = from_file_in(&tenant, &server, &file).build().unwrap();

    let first = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    std::fs::write(&file, ROTATED).unwrap();
    credentials.invalidate(&first);
    let second = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(second.expose_secret(), "token-2");

    let forms = forms.lock().unwrap().clone();
    assert_eq!(forms.len(), 2);
    assert_eq!(field(&forms[0], "client_secret"), Some(SECRET));
    assert_eq!(field(&forms[1], "client_secret"), Some(ROTATED));
    for form in &forms {
        assert_eq!(field(form, "client_id"), Some(CLIENT_ID));
        assert_eq!(field(form, "client_assertion"), None);
    }
    assert_no_secrets(&format!("{credentials:?}"), &[SECRET, ROTATED]);
    logged_line(
        &logs,
        &["access token issued", &server.url(token_path(&tenant))],
    );
    assert_no_secrets(&logs.text(), &[SECRET, ROTATED]);
}

#[tokio::test]
async fn a_missing_or_empty_secret_file_names_the_path_never_a_secret() {
    let server = MockServer::start_async().await;
    let forms = recording_endpoint(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("missing-secret");
    let credentials = from_file(&server, &file).build().unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&file.display().to_string()) && text.contains("client_secret_file"),
        "{text}"
    );

    std::fs::write(&file, "\n\n").unwrap();
    let text = credentials
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("is empty"), "{text}");
    assert!(
        forms.lock().unwrap().is_empty(),
        "no request without a secret"
    );
}

#[tokio::test]
async fn a_refused_secret_from_a_file_is_redacted_from_what_the_endpoint_echoes() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            // A hostile or broken endpoint echoing the request in its error.
            then.respond_with(|request: &HttpMockRequest| {
                let mut body = entra_error("invalid_client", 7_000_215);
                body["error_description"] =
                    format!("AADSTS7000215: bad secret in {}", request.body_string()).into();
                json_response(401, &body)
            });
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, SECRET).unwrap();
    let credentials = from_file(&server, &file).build().unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(error.remedy().unwrap().contains("Value"), "{error}");
    // The echo reached the error, cleaned of the secret read from the file.
    assert!(error.to_string().contains("bad secret in"), "{error}");
    assert_no_secrets(&format!("{error} {error:?}"), &[SECRET]);
}

#[tokio::test]
async fn check_names_the_file_and_reports_expiry_only_when_known() {
    let server = MockServer::start_async().await;
    recording_endpoint(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, SECRET).unwrap();

    let credentials = from_file(&server, &file).build().unwrap();
    let steps = credentials.check_steps(GRAPH_SCOPE, &[]).await;
    let credential = steps.iter().find(|s| s.name == "credential").unwrap();
    assert!(
        credential.detail.contains("client secret")
            && credential.detail.contains(&file.display().to_string()),
        "{}",
        credential.detail
    );
    assert!(steps.iter().all(|s| s.name != "secret expiry"), "{steps:?}");
    assert_no_secrets(&format!("{steps:?}"), &[SECRET]);

    let credentials = from_file(&server, &file)
        .secret_expiry("2000-01-01".parse().unwrap())
        .build()
        .unwrap();
    let steps = credentials.check_steps(GRAPH_SCOPE, &[]).await;
    let expiry = steps.iter().find(|s| s.name == "secret expiry").unwrap();
    assert_eq!(expiry.status, CheckStatus::Failed);
}

/// A credential file is read up to a bound, and only when it is a regular file: 64 KiB is
/// read and sent whole (a Key Vault secret is at most 25 KB), a byte more is refused.
#[tokio::test]
async fn an_oversized_secret_file_or_a_directory_is_refused() {
    let server = MockServer::start_async().await;
    let forms = recording_endpoint(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let largest = dir.path().join("largest-secret");
    std::fs::write(&largest, "s".repeat(64 * 1024)).unwrap();
    from_file(&server, &largest)
        .build()
        .unwrap()
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap();
    let sent = forms.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        field(&sent[0], "client_secret").map(str::len),
        Some(64 * 1024),
        "read whole"
    );
    let big = dir.path().join("big-secret");
    std::fs::write(&big, "s".repeat(64 * 1024 + 1)).unwrap();
    let error = from_file(&server, &big)
        .build()
        .unwrap()
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("larger than"), "{error}");
    let error = from_file(&server, dir.path())
        .build()
        .unwrap()
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not a regular file"), "{error}");
    assert_eq!(
        forms.lock().unwrap().len(),
        1,
        "no request without a secret"
    );
}

/// Refused secrets from a file: the remedy sends the admin to the file (the vault entry it
/// is mounted from), not to `client_secret`, which the settings refuse beside
/// `client_secret_file` — whatever the refusal: the secret's ID stored instead of its Value,
/// an expired secret, or an `invalid_client` without a known code.
#[tokio::test]
async fn a_refused_secret_from_a_file_names_the_file_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, SECRET).unwrap();
    for (code, words) in [
        (7_000_215, &["`client_secret_file`", "Value"][..]),
        (7_000_222, &["`client_secret_file`", "expired"][..]),
        (7_999_999, &["`client_secret_file`", "Value"][..]),
    ] {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.method(POST).path(token_path(TENANT));
                then.status(401)
                    .json_body(entra_error("invalid_client", code));
            })
            .await;
        let error = from_file(&server, &file)
            .build()
            .unwrap()
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap_err();
        assert!(error.is_auth(), "AADSTS{code}: {error}");
        let remedy = error.remedy().unwrap();
        for word in words {
            assert!(remedy.contains(word), "AADSTS{code}: {word} in {remedy}");
        }
        assert!(
            !remedy.contains("`client_secret`"),
            "AADSTS{code}: {remedy}"
        );
    }
}
