//! What a managed-identity endpoint's refusal asks the admin to fix: the identity endpoint
//! passes Entra ID's own refusals through (a scope for a resource the tenant does not have),
//! which say nothing of the identity being missing.

use httpmock::Method::GET;
use httpmock::MockServer;
use mail_connector::Credentials;

use crate::support::*;

const IMDS_PATH: &str = "/metadata/identity/oauth2/token";

/// IMDS's answer to a token request for a resource Entra ID does not know in the tenant: a
/// 400 with Entra's body (a US Government Graph asked for in a global tenant, say).
fn resource_not_found() -> serde_json::Value {
    serde_json::json!({
        "error": "invalid_resource",
        "error_description": "AADSTS500011: The resource principal named https://graph.microsoft.us was not found in the tenant named Contoso. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.\r\nTrace ID: 0b6f6a4c-1d2e-4f3a-9b8c-7d6e5f4a3b2c\r\nCorrelation ID: 9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a\r\nTimestamp: 2025-01-31 10:00:00Z",
        "error_codes": [500011],
        "timestamp": "2025-01-31 10:00:00Z",
        "trace_id": "0b6f6a4c-1d2e-4f3a-9b8c-7d6e5f4a3b2c",
        "correlation_id": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
    })
}

/// The identity exists (it asked Entra ID for the token): the remedy is the scope and the
/// cloud, not an identity to enable or attach — for a system- or a user-assigned identity.
#[tokio::test]
async fn a_resource_entra_does_not_know_names_the_scope_not_the_identity() {
    for user_assigned in [None, Some("0c3c8e4b-1111-2222-3333-identity0001")] {
        let server = MockServer::start_async().await;
        let mock = server
            .mock_async(|when, then| {
                when.method(GET).path(IMDS_PATH);
                then.status(400).json_body(resource_not_found());
            })
            .await;
        let mut builder = Credentials::managed_identity_with_env(None, None)
            .managed_identity_endpoint(server.url(IMDS_PATH))
            .retry_policy(fast_retry(3));
        if let Some(id) = user_assigned {
            builder = builder.managed_identity_client_id(id);
        }
        let error = builder
            .build()
            .unwrap()
            .access_token("https://graph.microsoft.us/.default")
            .await
            .unwrap_err();
        assert_eq!(mock.calls_async().await, 1, "a 400 is not retried");
        assert!(!error.is_transient(), "{error}");
        assert!(error.to_string().contains("AADSTS500011"), "{error}");
        let remedy = error.remedy().unwrap();
        assert!(
            remedy.contains("`oauth_scope`") && remedy.contains("`cloud`"),
            "{user_assigned:?}: {remedy}"
        );
        for wrong in ["not attached", "no managed identity", "System assigned"] {
            assert!(!remedy.contains(wrong), "{user_assigned:?}: {remedy}");
        }
    }
}

/// What the endpoint's refusal (a 400, 401 or 403) asks the admin to fix, by what it says: an
/// identity that is not there (in IMDS's, App Service's or Entra ID's words; a bare "not
/// found" only with a 400) gets the plain "turn on / attach the identity" remedy; Entra ID's
/// unknown resource, even as a bare message without `invalid_resource`, names the scope;
/// anything else is the generic refusal. The error keeps the endpoint's code when `error` is
/// a string, and its message from whichever field carries it.
#[tokio::test]
async fn each_refusal_gets_the_remedy_for_what_the_endpoint_said() {
    const NOT_FOUND: &str = "no managed identity is assigned to this resource";
    const GENERIC: &str = "the identity endpoint refused the request";
    const RESOURCE: &str = "Entra ID knows no resource of the token's scope";
    let cases: [(u16, serde_json::Value, &[&str], &str); 6] = [
        (
            403,
            serde_json::json!({"error": "invalid_request", "error_description": "Identity not found"}),
            &["invalid_request", "Identity not found"],
            NOT_FOUND,
        ),
        (
            401,
            serde_json::json!({"error": {"code": "Unauthorized", "message": "No managed identity found for this app"}}),
            &["No managed identity found for this app"],
            NOT_FOUND,
        ),
        (
            403,
            serde_json::json!({"Message": "The identity is not assigned to this resource"}),
            &["not assigned to this resource"],
            NOT_FOUND,
        ),
        (
            400,
            serde_json::json!({"error": "invalid_request", "error_description": "Client id 0c3c8e4b was not found"}),
            &["invalid_request", "was not found"],
            NOT_FOUND,
        ),
        (
            400,
            serde_json::json!({"error": "invalid_request", "error_description": "Required query variable 'api-version' is missing"}),
            &["'api-version' is missing"],
            GENERIC,
        ),
        (
            400,
            serde_json::json!({"statusCode": 400, "message": "AADSTS500011: The resource principal named https://graph.microsoft.us was not found in the tenant named Contoso."}),
            &["AADSTS500011"],
            RESOURCE,
        ),
    ];
    for (status, body, said, expected) in cases {
        let server = MockServer::start_async().await;
        let mock = server
            .mock_async(|when, then| {
                when.method(GET).path(IMDS_PATH);
                then.status(status).json_body(body.clone());
            })
            .await;
        let error = Credentials::managed_identity_with_env(None, None)
            .managed_identity_endpoint(server.url(IMDS_PATH))
            .retry_policy(fast_retry(3))
            .build()
            .unwrap()
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap_err();
        assert_eq!(mock.calls_async().await, 1, "{status} {body}: not retried");
        assert!(!error.is_transient(), "{status} {body}: {error}");
        let text = error.to_string();
        for part in said {
            assert!(text.contains(part), "{status} {body}: {text}");
        }
        let remedy = error.remedy().unwrap();
        assert!(remedy.contains(expected), "{status} {body}: {remedy}");
        // The generic refusal ends with the not-found remedy, as one likely cause.
        let others: &[&str] = match expected {
            NOT_FOUND => &[GENERIC, RESOURCE],
            RESOURCE => &[NOT_FOUND, GENERIC],
            _ => &[RESOURCE],
        };
        for other in others {
            assert!(!remedy.contains(other), "{status} {body}: {remedy}");
        }
    }
}
