//! The constructors that read the process environment — `workload_identity_from_env` (what
//! the AKS workload-identity webhook sets) and `managed_identity` (App Service's
//! `IDENTITY_ENDPOINT` / `IDENTITY_HEADER`) — run in a child process of this test binary
//! with the environment set there: tests run in parallel and must not change their own.

use httpmock::Method::GET;
use httpmock::MockServer;
use mail_connector::Credentials;

use super::federated::{field, recording_endpoint};
use crate::support::*;

/// The variable that tells the child which constructor to run: `workload` or `managed`.
const KIND_VAR: &str = "CREDENTIALS_CHILD_KIND";
/// The variable that holds the error text the child's constructor must give; unset, a
/// token must be had.
const EXPECT_ERROR_VAR: &str = "CREDENTIALS_CHILD_EXPECT_ERROR";
const WORKLOAD_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJlbnYifQ.ZW52LXNpZ25hdHVyZQ";
const IDENTITY_HEADER: &str = "Hx9~env-identity-header-SECRET";

/// Runs [`child`] in a new process of this binary with `vars` (and nothing else the
/// constructors read) set; panics with its output unless it passed.
fn run_child(kind: &str, vars: &[(&str, &str)], expect_error: Option<&str>) {
    run_child_test(
        "process_env::child",
        &format!("{kind} {vars:?}"),
        |command| {
            for name in IDENTITY_ENV_VARS {
                command.env_remove(name);
            }
            command.envs(vars.iter().copied()).env(KIND_VAR, kind);
            match expect_error {
                Some(text) => command.env(EXPECT_ERROR_VAR, text),
                None => command.env_remove(EXPECT_ERROR_VAR),
            };
        },
    );
}

/// The constructor under test, as the child process sees its environment.
#[tokio::test]
#[ignore = "run in a child process by this module's tests, with the environment they set"]
async fn child() {
    let builder = match std::env::var(KIND_VAR).as_deref() {
        Ok("workload") => Credentials::workload_identity_from_env(),
        Ok("managed") => Ok(Credentials::managed_identity().retry_policy(fast_retry(1))),
        other => panic!("{KIND_VAR} is {other:?}"),
    };
    let got = match builder {
        Ok(builder) => builder.build().unwrap().access_token(GRAPH_SCOPE).await,
        Err(error) => Err(error),
    };
    match std::env::var(EXPECT_ERROR_VAR) {
        Ok(text) => {
            let error = got.unwrap_err().to_string();
            assert!(error.contains(&text), "{error}");
        }
        Err(_) => {
            got.unwrap();
        }
    }
}

#[tokio::test]
async fn workload_identity_from_env_reads_the_aks_webhook_variables() {
    let server = MockServer::start_async().await;
    let forms = recording_endpoint(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, format!("{WORKLOAD_TOKEN}\n")).unwrap();
    let file = file.display().to_string();
    let host = server.base_url();
    let vars = [
        ("AZURE_CLIENT_ID", CLIENT_ID),
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_FEDERATED_TOKEN_FILE", file.as_str()),
        ("AZURE_AUTHORITY_HOST", host.as_str()),
    ];
    run_child("workload", &vars, None);
    {
        let forms = forms.lock().unwrap();
        assert_eq!(forms.len(), 1, "{forms:?}");
        assert_eq!(field(&forms[0], "client_assertion"), Some(WORKLOAD_TOKEN));
        assert_eq!(field(&forms[0], "client_id"), Some(CLIENT_ID));
    }

    // Without the client id, the error names the variable, and nothing is asked.
    run_child("workload", &vars[1..], Some("AZURE_CLIENT_ID"));
    assert_eq!(forms.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn managed_identity_uses_app_services_endpoint_from_the_environment() {
    let server = MockServer::start_async().await;
    let path = format!("/msi/{}/token", unique_number());
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(&path)
                .query_param("api-version", "2019-08-01")
                .header("X-IDENTITY-HEADER", IDENTITY_HEADER);
            then.status(200).json_body(serde_json::json!({
                "access_token": "mi-from-env",
                "expires_on": "4000000000",
                "token_type": "Bearer",
            }));
        })
        .await;
    let endpoint = server.url(&path);
    run_child(
        "managed",
        &[
            ("IDENTITY_ENDPOINT", endpoint.as_str()),
            ("IDENTITY_HEADER", IDENTITY_HEADER),
        ],
        None,
    );
    assert_eq!(mock.calls_async().await, 1);
}
