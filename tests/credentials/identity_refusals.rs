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
