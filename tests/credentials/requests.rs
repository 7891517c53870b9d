//! The client-secret and certificate flows send the documented token requests.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use httpmock::Method::POST;
use httpmock::{HttpMockRequest, MockServer};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mail_connector::credentials::{AssertionAlgorithm, SMTP_SCOPE};

use super::helpers::*;
use crate::support::*;

#[tokio::test]
async fn client_secret_flow_sends_the_documented_request() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(token_path(TENANT))
                .header("content-type", FORM)
                .form_urlencoded_tuple("grant_type", "client_credentials")
                .form_urlencoded_tuple("client_id", CLIENT_ID)
                .form_urlencoded_tuple("client_secret", SECRET)
                .form_urlencoded_tuple("scope", GRAPH_SCOPE)
                .form_urlencoded_tuple_missing("client_assertion");
            then.status(200).json_body(token_body("graph-token", 3599));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let before = SystemTime::now();
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), "graph-token");
    let lifetime = token.expires_at().duration_since(before).unwrap();
    assert!(
        lifetime <= Duration::from_secs(3600) && lifetime > Duration::from_secs(3590),
        "{lifetime:?}"
    );
    assert_eq!(mock.calls_async().await, 1);
}

#[tokio::test]
async fn expires_in_as_a_string_is_accepted() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200).json_body(serde_json::json!({
                "token_type": "Bearer", "expires_in": "3599", "ext_expires_in": "3599",
                "access_token": "v1-style"
            }));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert!(token.expires_at() > SystemTime::now() + Duration::from_secs(3500));
}

/// Verifies a client assertion with the fixture's public key, as Entra ID would.
fn verify_assertion(
    request: &HttpMockRequest,
    algorithm: Algorithm,
    audience: &str,
) -> Option<jsonwebtoken::TokenData<serde_json::Value>> {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(request.body_ref())
        .into_owned()
        .collect();
    let assertion = &form.iter().find(|(k, _)| k == "client_assertion")?.1;
    let public = std::fs::read(fixture("test-client-public.der")).unwrap();
    let mut validation = Validation::new(algorithm);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[CLIENT_ID]);
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    validation.validate_nbf = true;
    jsonwebtoken::decode(assertion, &DecodingKey::from_rsa_der(&public), &validation).ok()
}

async fn certificate_flow(algorithm: AssertionAlgorithm, key_file: &str) {
    let server = MockServer::start_async().await;
    let audience = server.url(token_path(TENANT));
    let (jwt_alg, thumb_field, thumb) = match algorithm {
        AssertionAlgorithm::Ps256 => (
            Algorithm::PS256,
            "x5t#S256",
            "bFl2t-mJ54yUXOzCJQBL6Uo8OazqKsfUL2QivkO82O4",
        ),
        _ => (Algorithm::RS256, "x5t", "O6ilMfLIpXm7eUG8DTQ3ENJwybM"),
    };
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let check_audience = audience.clone();
    let mock = server
        .mock_async(move |when, then| {
            when.method(POST)
                .path(token_path(TENANT))
                .header("content-type", FORM)
                .form_urlencoded_tuple("grant_type", "client_credentials")
                .form_urlencoded_tuple("client_id", CLIENT_ID)
                .form_urlencoded_tuple("scope", GRAPH_SCOPE)
                .form_urlencoded_tuple(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .form_urlencoded_tuple_missing("client_secret")
                .is_true(move |request| {
                    let Some(data) = verify_assertion(request, jwt_alg, &check_audience) else {
                        return false;
                    };
                    record.lock().unwrap().push(data);
                    true
                });
            then.status(200).json_body(token_body("cert-token", 3599));
        })
        .await;
    let mut settings = certificate_settings(&server, TENANT);
    settings.client_private_key_file = Some(fixture(key_file));
    let credentials = settings
        .credentials_builder()
        .unwrap()
        .assertion_algorithm(algorithm)
        .build()
        .unwrap();
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), "cert-token");
    assert_eq!(mock.calls_async().await, 1);

    let seen = seen.lock().unwrap();
    let data = seen.last().expect("a verified assertion");
    let header = serde_json::to_value(&data.header).unwrap();
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header[thumb_field], thumb, "{header}");
    let claims = &data.claims;
    assert_eq!(claims["aud"], audience.as_str());
    assert_eq!(claims["sub"], CLIENT_ID);
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    let (nbf, exp) = (
        claims["nbf"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(exp > nbf && exp - nbf <= 600, "{claims}");
    assert_eq!(claims["iat"], claims["nbf"]);
}

#[tokio::test]
async fn certificate_flow_signs_ps256_with_sha256_thumbprint_by_default() {
    certificate_flow(AssertionAlgorithm::Ps256, "test-client.key").await;
}

#[tokio::test]
async fn certificate_flow_can_sign_rs256_with_sha1_thumbprint() {
    certificate_flow(AssertionAlgorithm::Rs256, "test-client.key").await;
}

#[tokio::test]
async fn certificate_flow_accepts_pkcs1_keys() {
    certificate_flow(AssertionAlgorithm::Ps256, "test-client-pkcs1.key").await;
}

#[tokio::test]
async fn each_assertion_is_new() {
    let server = MockServer::start_async().await;
    let assertions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&assertions);
    server
        .mock_async(move |when, then| {
            when.method(POST)
                .path(token_path(TENANT))
                .is_true(move |r| {
                    record.lock().unwrap().push(r.body_string());
                    true
                });
            then.status(200).json_body(token_body("t", 3599));
        })
        .await;
    let credentials = certificate_settings(&server, TENANT).credentials().unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    credentials.access_token(SMTP_SCOPE).await.unwrap();
    let assertions = assertions.lock().unwrap();
    assert_eq!(assertions.len(), 2);
    assert_ne!(assertions[0], assertions[1]);
}

#[test]
fn a_certificate_file_without_a_certificate_is_reported_by_setting() {
    let server = MockServer::start();
    let mut settings = certificate_settings(&server, TENANT);
    settings.client_certificate_file = Some(fixture("test-client.key"));
    let error = settings.credentials().unwrap_err();
    assert!(error.is_auth());
    assert!(
        error.to_string().contains("client_certificate_file"),
        "{error}"
    );
    let mut settings = certificate_settings(&server, TENANT);
    settings.client_private_key_file = Some(fixture("test-client.pem"));
    let error = settings.credentials().unwrap_err();
    assert!(
        error.to_string().contains("client_private_key_file"),
        "{error}"
    );
}

/// Real tokens are kilobytes long (1.5–3 KB, more with many roles or groups): a 32 KB
/// token response is read whole, within the 64 KB read limit.
#[tokio::test]
async fn a_token_of_many_kilobytes_is_accepted() {
    let server = MockServer::start_async().await;
    let roles: Vec<String> = (0..2500).map(|n| format!("Role.{n:05}")).collect();
    let token = jwt(serde_json::json!({"tid": TENANT, "roles": roles}));
    assert!(token.len() > 30_000, "{}", token.len());
    let body = token_body(&token, 3599);
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200).json_body(body);
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let got = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(got.expose_secret(), token);
    assert!(got.claims().unwrap().has_role("Role.02499"));
}
