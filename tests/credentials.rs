//! The Credentials provider against a mock Entra ID token endpoint on loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use httpmock::Method::POST;
use httpmock::{HttpMockRequest, MockServer};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mail_connector::credentials::{AssertionAlgorithm, SMTP_SCOPE};
use mail_connector::{
    AccessToken, AuthMode, CheckStatus, Cloud, ConnectorSettings, Credentials, Error, Secret,
    TokenProvider, Transience,
};
use support::*;

const FORM: &str = "application/x-www-form-urlencoded";

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

#[test]
fn each_cloud_has_its_graph_scope_and_login_host() {
    let cases = [
        (
            Cloud::Global,
            "https://graph.microsoft.com/.default",
            "https://login.microsoftonline.com",
        ),
        (
            Cloud::UsGov,
            "https://graph.microsoft.us/.default",
            "https://login.microsoftonline.us",
        ),
        (
            Cloud::UsDod,
            "https://dod-graph.microsoft.us/.default",
            "https://login.microsoftonline.us",
        ),
        (
            Cloud::China,
            "https://microsoftgraph.chinacloudapi.cn/.default",
            "https://login.partner.microsoftonline.cn",
        ),
    ];
    for (cloud, scope, login) in cases {
        let mut settings = ConnectorSettings::default();
        settings.auth_mode = Some(AuthMode::OAuth);
        settings.cloud = cloud;
        settings.tenant_id = Some(TENANT.into());
        settings.oauth_client_id = Some(CLIENT_ID.into());
        settings.client_secret = Some(SECRET.into());
        assert_eq!(settings.graph_scope(), scope, "{cloud}");
        let credentials = settings.credentials().unwrap();
        assert_eq!(
            credentials.token_endpoint().unwrap(),
            format!("{login}/{TENANT}/oauth2/v2.0/token"),
            "{cloud}"
        );
        assert_eq!(
            credentials.admin_consent_url().unwrap(),
            format!("{login}/{TENANT}/adminconsent?client_id={CLIENT_ID}")
        );
        // A proxy in front of Graph does not change the resource the token is for.
        settings.graph_endpoint = Some("https://graph-proxy.internal.example".into());
        assert_eq!(settings.graph_scope(), scope, "{cloud}");
    }
}

#[tokio::test]
async fn each_cloud_requests_its_own_scope() {
    let server = MockServer::start_async().await;
    for (i, cloud) in [Cloud::Global, Cloud::UsGov, Cloud::UsDod, Cloud::China]
        .into_iter()
        .enumerate()
    {
        let tenant = format!("cloud{i}.example.org");
        let mut settings = secret_settings(&server, &tenant);
        settings.cloud = cloud;
        let scope = format!("{}/.default", cloud.graph_endpoint());
        let mock = server
            .mock_async(|when, then| {
                when.method(POST)
                    .path(token_path(&tenant))
                    .form_urlencoded_tuple("scope", &scope);
                then.status(200).json_body(token_body("t", 3599));
            })
            .await;
        let credentials = settings.credentials().unwrap();
        credentials
            .access_token(&settings.graph_scope())
            .await
            .unwrap();
        assert_eq!(mock.calls_async().await, 1, "{cloud}");
    }
}

#[test]
fn scope_overrides_and_smtp_scope() {
    let mut settings = ConnectorSettings::default();
    assert_eq!(
        settings.smtp_scope(),
        "https://outlook.office365.com/.default"
    );
    settings.oauth_scope = Some("https://graph.microsoft.us/.default".into());
    assert_eq!(
        settings.graph_scope(),
        "https://graph.microsoft.us/.default"
    );
    assert_eq!(settings.smtp_scope(), "https://graph.microsoft.us/.default");
}

#[tokio::test]
async fn one_token_request_serves_many_sends_and_scopes_are_cached_apart() {
    let server = MockServer::start_async().await;
    let graph = server
        .mock_async(|when, then| {
            when.method(POST)
                .form_urlencoded_tuple("scope", GRAPH_SCOPE);
            then.status(200).json_body(token_body("graph", 3599));
        })
        .await;
    let smtp = server
        .mock_async(|when, then| {
            when.method(POST).form_urlencoded_tuple("scope", SMTP_SCOPE);
            then.status(200).json_body(token_body("smtp", 3599));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    for _ in 0..50 {
        let clone = credentials.clone();
        assert_eq!(
            clone
                .access_token(GRAPH_SCOPE)
                .await
                .unwrap()
                .expose_secret(),
            "graph"
        );
        assert_eq!(
            clone
                .access_token(SMTP_SCOPE)
                .await
                .unwrap()
                .expose_secret(),
            "smtp"
        );
    }
    assert_eq!(graph.calls_async().await, 1);
    assert_eq!(smtp.calls_async().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_callers_cause_one_token_request() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            // Slow enough that the callers pile up behind the first.
            then.status(200)
                .delay(Duration::from_millis(200))
                .json_body(token_body("shared", 3599));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let credentials = credentials.clone();
            tokio::spawn(async move { credentials.access_token(GRAPH_SCOPE).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().expose_secret(), "shared");
    }
    assert_eq!(mock.calls_async().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_failure() {
    const CALLERS: usize = 200;
    let server = MockServer::start_async().await;
    // The endpoint answers only once every caller is queued behind the first one's fetch
    // (a caller counts itself just before asking; it queues in that same poll).
    let started = Arc::new(AtomicUsize::new(0));
    let queued = Arc::clone(&started);
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(move |_| {
                let deadline = Instant::now() + Duration::from_secs(20);
                while queued.load(Ordering::SeqCst) < CALLERS && Instant::now() < deadline {
                    std::thread::yield_now();
                }
                json_response(401, &entra_error("invalid_client", 7_000_215))
            });
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let credentials = credentials.clone();
            let started = Arc::clone(&started);
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                credentials.access_token(GRAPH_SCOPE).await
            })
        })
        .collect();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert!(error.is_auth(), "{error}");
        assert!(
            matches!(error, Error::TokenRequest { status: 401, .. }),
            "{error:?}"
        );
    }
    // Every caller queued behind the failing fetch and got its error without asking again.
    assert_eq!(mock.calls_async().await, 1);
}

/// Hands out `t0`, `t1`, … each valid for `left` from now and obtained `age` ago, and
/// counts its fetches.
#[derive(Debug)]
struct NumberedSource {
    fetches: AtomicUsize,
    left: Duration,
    age: Duration,
}

impl NumberedSource {
    fn new(left: Duration, age: Duration) -> Arc<Self> {
        Arc::new(Self {
            fetches: AtomicUsize::new(0),
            left,
            age,
        })
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl TokenProvider for NumberedSource {
    async fn token(&self, _scope: &str) -> mail_connector::Result<AccessToken> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst);
        let now = SystemTime::now();
        Ok(AccessToken::new(format!("t{n}"), now + self.left).with_issued_at(now - self.age))
    }
}

fn from_source(source: Arc<dyn TokenProvider>) -> mail_connector::credentials::CredentialsBuilder {
    Credentials::token_provider(source)
}

#[tokio::test]
async fn a_token_inside_the_refresh_margin_is_fetched_anew() {
    // Hour-long tokens with two minutes left: inside the default 5-minute margin.
    let source = NumberedSource::new(Duration::from_secs(120), Duration::from_secs(3480));
    let credentials = from_source(source.clone()).build().unwrap();
    assert_eq!(
        credentials
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "t0"
    );
    assert_eq!(
        credentials
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "t1"
    );
    assert_eq!(source.fetches(), 2);

    // With a smaller margin the same token is fresh enough.
    let source = NumberedSource::new(Duration::from_secs(120), Duration::from_secs(3480));
    let credentials = from_source(source.clone())
        .refresh_margin(Duration::from_secs(60))
        .build()
        .unwrap();
    let first = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    let second = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(first.expose_secret(), second.expose_secret());
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn short_lived_tokens_are_reused_although_the_margin_is_longer() {
    // Five-minute tokens: the default 5-minute margin is capped at half their lifetime.
    let source = NumberedSource::new(Duration::from_secs(300), Duration::ZERO);
    let credentials = from_source(source.clone()).build().unwrap();
    for _ in 0..10 {
        assert_eq!(
            credentials
                .access_token(GRAPH_SCOPE)
                .await
                .unwrap()
                .expose_secret(),
            "t0"
        );
    }
    assert_eq!(source.fetches(), 1);

    // A margin longer than the lifetime is capped the same way.
    let source = NumberedSource::new(Duration::from_secs(240), Duration::ZERO);
    let credentials = from_source(source.clone())
        .refresh_margin(Duration::from_secs(600))
        .build()
        .unwrap();
    for _ in 0..10 {
        credentials.access_token(SMTP_SCOPE).await.unwrap();
    }
    assert_eq!(source.fetches(), 1);

    // From the token endpoint too: its tokens are timed from the request.
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200).json_body(token_body("five-minutes", 300));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    for _ in 0..10 {
        credentials.access_token(GRAPH_SCOPE).await.unwrap();
    }
    assert_eq!(mock.calls_async().await, 1);
}

#[tokio::test]
async fn refresh_in_hint_triggers_an_early_refresh() {
    let server = MockServer::start_async().await;
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(move |_| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                json_response(
                    200,
                    &serde_json::json!({"token_type":"Bearer","expires_in":3599,"refresh_in":0,"access_token":format!("t{n}")}),
                )
            });
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

/// A token response that is valid for `expires_in` seconds but due for refresh at once
/// (`refresh_in: 0`), so the next call tries to refresh it.
fn due_token_body(access_token: &str, expires_in: u64) -> serde_json::Value {
    serde_json::json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_in": 0,
        "access_token": access_token,
    })
}

#[tokio::test]
async fn a_failed_refresh_falls_back_to_the_still_valid_token() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(in_sequence(vec![
                json_response(200, &due_token_body("still-valid", 200)),
                json_response(400, &entra_error("invalid_client", 7_000_222)),
                json_response(200, &token_body("after-invalidate", 3599)),
            ]));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let first = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    let second = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(second.expose_secret(), first.expose_secret());
    assert_eq!(mock.calls_async().await, 2, "the refresh was attempted");

    // Inside the cooldown (30 s by default) the still-valid token is served without asking.
    for _ in 0..2 {
        let started = Instant::now();
        let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
        assert_eq!(token.expose_secret(), "still-valid");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        mock.calls_async().await,
        2,
        "no request during the cooldown"
    );

    // A rejected token is fetched anew at once: the cooldown does not hold that back.
    credentials.invalidate(&first);
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), "after-invalidate");
    assert_eq!(mock.calls_async().await, 3);
}

#[tokio::test]
async fn a_refresh_is_one_request_that_does_not_wait_out_retry_after() {
    let server = MockServer::start_async().await;
    let unavailable = httpmock::HttpMockResponse::builder()
        .status(503)
        .header("retry-after", "1")
        .body("busy")
        .build();
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(in_sequence(vec![
                json_response(200, &due_token_body("still-valid", 200)),
                unavailable,
            ]));
        })
        .await;
    // The default retry policy would retry the 503 three times, a second apart.
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    let started = Instant::now();
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), "still-valid");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        mock.calls_async().await,
        2,
        "one refresh request, no retries"
    );
}

#[tokio::test]
async fn the_cooldown_follows_retry_after_when_the_endpoint_sends_one() {
    for (retry_after, cooldown, calls_after_third) in [
        // The server says "now": try again at once despite a long configured cooldown.
        ("0", Duration::from_secs(3600), 3),
        // The server says "in an hour": wait despite a configured cooldown of zero.
        ("3600", Duration::ZERO, 2),
    ] {
        let server = MockServer::start_async().await;
        let throttled = httpmock::HttpMockResponse::builder()
            .status(429)
            .header("retry-after", retry_after)
            .body("slow down")
            .build();
        let mock = server
            .mock_async(|when, then| {
                when.method(POST).path(token_path(TENANT));
                then.respond_with(in_sequence(vec![
                    json_response(200, &due_token_body("still-valid", 200)),
                    throttled,
                ]));
            })
            .await;
        let credentials = secret_settings(&server, TENANT)
            .credentials_builder()
            .unwrap()
            .refresh_cooldown(cooldown)
            .build()
            .unwrap();
        for _ in 0..3 {
            let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
            assert_eq!(token.expose_secret(), "still-valid");
        }
        assert_eq!(
            mock.calls_async().await,
            calls_after_third,
            "Retry-After: {retry_after}"
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_fetched_despite_the_cooldown() {
    /// A token valid for one second and due at once; then a failure; then a good token.
    #[derive(Debug, Default)]
    struct Flaky(AtomicUsize);

    #[async_trait::async_trait]
    impl TokenProvider for Flaky {
        async fn token(&self, _scope: &str) -> mail_connector::Result<AccessToken> {
            let now = SystemTime::now();
            match self.0.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(
                    AccessToken::new("short", now + Duration::from_secs(1)).with_refresh_at(now)
                ),
                1 => Err(Error::transport(
                    "sidecar",
                    "not ready",
                    Transience::Transient,
                )),
                _ => Ok(AccessToken::new("renewed", now + Duration::from_secs(3600))),
            }
        }
    }
    let source = Arc::new(Flaky::default());
    let credentials = from_source(source.clone()).build().unwrap();
    let first = credentials.access_token(SMTP_SCOPE).await.unwrap();
    assert_eq!(first.expose_secret(), "short");
    // The refresh fails: the still-valid token is served, and a 30 s cooldown starts.
    assert_eq!(
        credentials
            .access_token(SMTP_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "short"
    );
    assert_eq!(source.0.load(Ordering::SeqCst), 2);
    // Wait for the token to expire (the clock has to pass; nothing is synchronised here).
    let wait = first
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    assert_eq!(
        credentials
            .access_token(SMTP_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "renewed"
    );
    assert_eq!(source.0.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn only_an_expired_token_makes_callers_fail() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(in_sequence(vec![
                json_response(200, &token_body("expired-at-once", 0)),
                json_response(400, &entra_error("invalid_client", 7_000_222)),
            ]));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(
        matches!(error, Error::TokenRequest { status: 400, .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalidation_after_401_refetches_once_for_many_reporters() {
    let server = MockServer::start_async().await;
    let (count, responder) = numbered_tokens(3599);
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(responder);
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let rejected = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(rejected.expose_secret(), "token-1");

    // 100 senders got 401 for the same token, and each reports it, then asks again.
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let credentials = credentials.clone();
            let rejected = rejected.clone();
            tokio::spawn(async move {
                credentials.invalidate(&rejected);
                credentials.access_token(GRAPH_SCOPE).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().expose_secret(), "token-2");
    }
    assert_eq!(count.load(Ordering::SeqCst), 2);

    // A late report of the old token does not drop the new one.
    credentials.invalidate(&rejected);
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
    // Nor does a token that was never issued.
    credentials.invalidate(&AccessToken::new("other", SystemTime::now()));
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after_seconds() {
    let server = MockServer::start_async().await;
    let throttled = httpmock::HttpMockResponse::builder()
        .status(429)
        .header("retry-after", "1")
        .body(r#"{"error":"temporarily_unavailable","error_codes":[90055]}"#)
        .build();
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(in_sequence(vec![
                throttled,
                json_response(200, &token_body("after-429", 3599)),
            ]));
        })
        .await;
    let credentials = secret_settings(&server, TENANT)
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .build()
        .unwrap();
    let started = Instant::now();
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(token.expose_secret(), "after-429");
    assert_eq!(mock.calls_async().await, 2);
}

#[tokio::test]
async fn unavailable_is_retried_after_fractional_retry_after_until_retries_run_out() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(503).header("retry-after", "0.25").body("busy");
        })
        .await;
    let credentials = secret_settings(&server, TENANT)
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(2))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(mock.calls_async().await, 3);
    assert!(error.is_transient(), "{error}");
    assert!(!error.is_auth());
    assert!(error.to_string().contains("503"), "{error}");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(400)
                .json_body(entra_error("invalid_scope", 70_011));
        })
        .await;
    let credentials = secret_settings(&server, TENANT)
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(5))
        .build()
        .unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert_eq!(mock.calls_async().await, 1);
    assert!(!error.is_transient());
}

#[tokio::test]
async fn entra_errors_name_the_setup_step_and_setting() {
    let server = MockServer::start_async().await;
    // (code, error, status, words the remedy must contain)
    let cases: &[(u64, &str, u16, &[&str])] = &[
        (
            7_000_215,
            "invalid_client",
            401,
            &["Value", "`client_secret`", "ID"],
        ),
        (
            7_000_222,
            "invalid_client",
            401,
            &[
                "Certificates & secrets",
                "`client_secret`",
                "`client_secret_expires`",
            ],
        ),
        (
            700_016,
            "unauthorized_client",
            400,
            &["`oauth_client_id`", "`tenant_id`", "admin-consent"],
        ),
        (
            700_011,
            "unauthorized_client",
            400,
            &["`oauth_client_id`", "`tenant_id`"],
        ),
        (90_002, "invalid_tenant", 400, &["`tenant_id`", "`cloud`"]),
        (90_038, "invalid_request", 400, &["`cloud`"]),
        (70_011, "invalid_scope", 400, &["/.default"]),
        (1_002_012, "invalid_scope", 400, &["/.default"]),
        (
            700_027,
            "invalid_client",
            401,
            &["upload the certificate", "`client_private_key_file`"],
        ),
        (700_024, "invalid_client", 401, &["clock"]),
        (65_001, "invalid_grant", 400, &["Grant admin consent"]),
        (
            500_011,
            "invalid_resource",
            400,
            &["Office 365 Exchange Online", "`tenant_id`", "`cloud`"],
        ),
        (
            500_014,
            "invalid_request",
            400,
            &["disabled", "re-enable", "Enterprise applications"],
        ),
    ];
    for (i, (code, error, status, words)) in cases.iter().enumerate() {
        let tenant = format!("case{i}.example.org");
        server
            .mock_async(|when, then| {
                when.method(POST).path(token_path(&tenant));
                then.status(*status).json_body(entra_error(error, *code));
            })
            .await;
        let credentials = secret_settings(&server, &tenant)
            .credentials_builder()
            .unwrap()
            .retry_policy(fast_retry(0))
            .build()
            .unwrap();
        let failure = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
        let remedy = failure.remedy().unwrap();
        for word in *words {
            assert!(
                remedy.contains(word),
                "AADSTS{code}: `{word}` missing in: {remedy}"
            );
        }
        let text = failure.to_string();
        assert!(text.contains(&format!("AADSTS{code}")), "{text}");
        assert!(
            text.contains("0b6f6a4c-1d2e-4f3a-9b8c-7d6e5f4a3b2c"),
            "trace id: {text}"
        );
        assert!(
            text.contains("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"),
            "correlation id: {text}"
        );
        assert!(failure.is_auth(), "AADSTS{code}");
        assert!(!failure.is_transient(), "AADSTS{code}");
        let Error::TokenRequest { trace_id, .. } = &failure else {
            panic!("{failure:?}")
        };
        assert_eq!(
            trace_id.as_deref(),
            Some("0b6f6a4c-1d2e-4f3a-9b8c-7d6e5f4a3b2c")
        );
    }

    // An error without a mapped code falls back to its `error` value.
    let tenant = "unmapped.example.org";
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(tenant));
            then.status(400).json_body(
                serde_json::json!({"error":"temporarily_unavailable","error_codes":[1]}),
            );
        })
        .await;
    let credentials = secret_settings(&server, tenant)
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(0))
        .build()
        .unwrap();
    let failure = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(failure.is_transient() && !failure.is_auth(), "{failure}");

    // Transient codes: throttling backs off; a detected loop means tokens are not reused.
    let transient: &[(u64, &str, &[&str], &str)] = &[
        (90_055, "invalid_request", &["throttling"], "loop"),
        (
            50_196,
            "invalid_request",
            &["one `Credentials`", "share it", "`TokenCacheStore`"],
            "throttling",
        ),
    ];
    for (code, error, words, absent) in transient {
        let tenant = format!("transient{code}.example.org");
        server
            .mock_async(|when, then| {
                when.method(POST).path(token_path(&tenant));
                then.status(400).json_body(entra_error(error, *code));
            })
            .await;
        let credentials = secret_settings(&server, &tenant)
            .credentials_builder()
            .unwrap()
            .retry_policy(fast_retry(0))
            .build()
            .unwrap();
        let failure = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
        let remedy = failure.remedy().unwrap();
        for word in *words {
            assert!(
                remedy.contains(word),
                "AADSTS{code}: `{word}` missing in: {remedy}"
            );
        }
        assert!(!remedy.contains(absent), "AADSTS{code}: {remedy}");
        assert!(failure.is_transient() && !failure.is_auth(), "{failure}");
    }
}

#[tokio::test]
async fn entra_errors_marked_transient_are_retried() {
    for (error, code) in [("temporarily_unavailable", 1), ("invalid_request", 90_055)] {
        let server = MockServer::start_async().await;
        let mock = server
            .mock_async(|when, then| {
                when.method(POST).path(token_path(TENANT));
                then.respond_with(in_sequence(vec![
                    json_response(400, &entra_error(error, code)),
                    json_response(200, &token_body("after-retry", 3599)),
                ]));
            })
            .await;
        let credentials = secret_settings(&server, TENANT)
            .credentials_builder()
            .unwrap()
            .retry_policy(fast_retry(3))
            .build()
            .unwrap();
        let token = credentials.access_token(GRAPH_SCOPE).await;
        assert_eq!(
            token.map(|t| t.expose_secret().to_owned()).ok().as_deref(),
            Some("after-retry"),
            "{error} AADSTS{code}"
        );
        assert_eq!(mock.calls_async().await, 2, "{error} AADSTS{code}");
    }
}

#[tokio::test]
async fn an_unreachable_login_host_is_transient_with_a_connectivity_remedy() {
    // Bind a port, then close it, so nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = secret_settings(&MockServer::start_async().await, TENANT);
    settings.authority_host = Some(format!("http://127.0.0.1:{port}"));
    let credentials = settings
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(1))
        .build()
        .unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(!error.is_auth());
    assert!(error.remedy().unwrap().contains("`authority_host`"));
    assert!(matches!(error, Error::TokenEndpoint { .. }), "{error:?}");
}

#[tokio::test]
async fn a_response_that_is_not_a_token_is_reported_without_its_body() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200)
                .body("<html>proxy login page secret-ish</html>");
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(!error.to_string().contains("secret-ish"), "{error}");
    assert!(
        error.to_string().contains("not a token response"),
        "{error}"
    );
}

async fn check_with_roles(roles: &[&str], expires: Option<&str>) -> Vec<mail_connector::CheckStep> {
    let server = MockServer::start_async().await;
    let token = jwt(serde_json::json!({
        "aud": "https://graph.microsoft.com", "tid": TENANT, "roles": roles, "exp": 4_102_444_800_u64
    }));
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200).json_body(token_body(&token, 3599));
        })
        .await;
    let mut settings = secret_settings(&server, TENANT);
    settings.client_secret_expires = expires.map(|e| e.parse().unwrap());
    let credentials = settings.credentials().unwrap();
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    let claims = token.claims().unwrap();
    assert_eq!(claims.tid.as_deref(), Some(TENANT));
    assert_eq!(claims.exp, Some(4_102_444_800));
    credentials.check_steps(GRAPH_SCOPE, &["Mail.Send"]).await
}

fn date_in(days: i64) -> String {
    let date = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

#[tokio::test]
async fn check_reports_a_missing_application_permission_with_the_consent_url() {
    let steps = check_with_roles(&[], Some(&date_in(400))).await;
    let names: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["token", "permission", "secret expiry"]);
    assert_eq!(steps[0].status, CheckStatus::Ok);
    assert!(steps[0].detail.contains(TENANT), "{}", steps[0].detail);
    let permission = &steps[1];
    assert_eq!(permission.status, CheckStatus::Failed);
    assert!(permission.detail.contains("Mail.Send"));
    let remedy = permission.remedy.as_deref().unwrap();
    assert!(
        remedy.contains("Application permission") && remedy.contains("admin consent"),
        "{remedy}"
    );
    assert!(
        remedy.contains(&format!("/{TENANT}/adminconsent?client_id={CLIENT_ID}")),
        "{remedy}"
    );
    assert_eq!(steps[2].status, CheckStatus::Ok);
}

#[tokio::test]
async fn check_passes_with_the_role_and_warns_about_the_secret_expiry() {
    let steps = check_with_roles(&["Mail.Send"], Some(&date_in(10))).await;
    assert_eq!(steps[1].status, CheckStatus::Ok, "{steps:?}");
    assert_eq!(steps[2].status, CheckStatus::Warning);
    assert!(
        steps[2]
            .remedy
            .as_deref()
            .unwrap()
            .contains("`client_secret_expires`")
    );
    let steps = check_with_roles(&["Mail.Send"], Some(&date_in(-1))).await;
    assert_eq!(steps[2].status, CheckStatus::Failed);
    let steps = check_with_roles(&["Mail.Send"], None).await;
    assert_eq!(steps[2].status, CheckStatus::Warning);
}

#[tokio::test]
async fn check_reports_a_failed_token_step() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(401)
                .json_body(entra_error("invalid_client", 7_000_215));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    let steps = credentials.check_steps(GRAPH_SCOPE, &["Mail.Send"]).await;
    assert_eq!(steps[0].name, "token");
    assert_eq!(steps[0].status, CheckStatus::Failed);
    assert!(
        steps[0]
            .remedy
            .as_deref()
            .unwrap()
            .contains("`client_secret`")
    );
}

#[tokio::test]
async fn basic_and_anonymous_credentials() {
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(AuthMode::Basic);
    settings.user_name = Some("relay@contoso.com".into());
    settings.password = Some(Secret::new("hunter2-password"));
    let basic = settings.credentials().unwrap();
    assert!(!basic.is_oauth());
    let (user, password) = basic.user_password().unwrap();
    assert_eq!(
        (user, password.expose_secret()),
        ("relay@contoso.com", "hunter2-password")
    );
    let error = basic.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(error.to_string().contains("auth_mode"), "{error}");
    assert_eq!(
        basic.check_steps(GRAPH_SCOPE, &["Mail.Send"]).await[0].status,
        CheckStatus::Ok
    );

    settings.password = None;
    let error = settings.credentials().unwrap_err();
    assert!(error.to_string().contains("`password`"), "{error}");

    settings.auth_mode = Some(AuthMode::None);
    let anonymous = settings.credentials().unwrap();
    assert!(anonymous.user_password().is_none() && !anonymous.is_oauth());
}

#[test]
fn oauth_needs_a_secret_or_both_certificate_files() {
    let server = MockServer::start();
    let mut settings = secret_settings(&server, TENANT);
    settings.client_secret = None;
    let error = settings.validate().unwrap_err().to_string();
    assert!(
        error.contains("`client_secret`")
            && error.contains("`client_certificate_file`")
            && error.contains("`client_private_key_file`"),
        "{error}"
    );
    assert!(settings.credentials().is_err());

    settings.client_certificate_file = Some(fixture("test-client.pem"));
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("`client_private_key_file`"), "{error}");

    settings.client_private_key_file = Some(fixture("test-client.key"));
    settings.validate().unwrap();

    settings.client_private_key_file = Some(fixture("missing.key"));
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("missing.key"), "{error}");

    let from_env = ConnectorSettings::from_env_vars([
        (
            "MAIL_CONNECTOR_CLIENT_CERTIFICATE_FILE",
            "/etc/mail/cert.pem",
        ),
        (
            "MAIL_CONNECTOR_CLIENT_PRIVATE_KEY_FILE",
            "/etc/mail/key.pem",
        ),
        (
            "MAIL_CONNECTOR_OAUTH_SCOPE",
            "https://graph.microsoft.us/.default",
        ),
    ])
    .unwrap();
    assert_eq!(
        from_env.client_private_key_file.unwrap().to_str(),
        Some("/etc/mail/key.pem")
    );
    assert_eq!(
        from_env.oauth_scope.as_deref(),
        Some("https://graph.microsoft.us/.default")
    );
}

#[tokio::test]
async fn a_custom_token_source_is_cached_too() {
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl mail_connector::TokenProvider for Counting {
        async fn token(&self, scope: &str) -> mail_connector::Result<AccessToken> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken::new(
                format!("{scope}#{n}"),
                SystemTime::now() + Duration::from_secs(3600),
            ))
        }
    }
    let credentials = Credentials::from_token_provider(Counting::default());
    assert!(credentials.is_oauth());
    for _ in 0..3 {
        let token = credentials.access_token(SMTP_SCOPE).await.unwrap();
        assert_eq!(token.expose_secret(), format!("{SMTP_SCOPE}#0"));
    }
}

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
    for (what, value) in [
        ("client secret", SECRET),
        ("access token", TOKEN),
        ("password", PASSWORD),
        ("private key", key_line.as_str()),
        ("assertion", assertion.as_str()),
    ] {
        assert!(
            !printed.contains(value),
            "the {what} was printed:\n{printed}"
        );
    }
    // The assertion's signature part alone must not leak either.
    let signature = assertion.rsplit('.').next().unwrap();
    assert!(!printed.contains(signature));
    assert!(printed.contains("[redacted]"));
}

/// A shared store whose `remove` can be made to hang, to cancel a caller inside it.
#[derive(Debug, Default)]
struct StallingStore {
    inner: mail_connector::credentials::InMemoryTokenCache,
    stall_remove: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl mail_connector::credentials::TokenCacheStore for StallingStore {
    async fn get(&self, key: &str) -> Option<AccessToken> {
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, token: AccessToken) {
        self.inner.put(key, token).await;
    }

    async fn remove(&self, key: &str) {
        if self.stall_remove.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.remove(key).await;
    }
}

#[tokio::test]
async fn a_caller_cancelled_while_the_store_forgets_a_rejected_token_leaves_it_rejected() {
    let store = Arc::new(StallingStore::default());
    let source = NumberedSource::new(Duration::from_secs(3600), Duration::ZERO);
    let credentials = from_source(source.clone())
        .cache_store(store.clone())
        .build()
        .unwrap();
    let rejected = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    credentials.invalidate(&rejected);

    // The caller is cancelled while the store removes the rejected token: `remove` never
    // completes, so the timeout drops the call right there.
    store.stall_remove.store(true, Ordering::SeqCst);
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        credentials.access_token(GRAPH_SCOPE),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the call should have been stuck in `remove`"
    );
    store.stall_remove.store(false, Ordering::SeqCst);

    // The store still holds the rejected token, but it is not handed out again.
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), "t1");
    assert_eq!(source.fetches(), 2);
    // …and the store now holds the new one (a token source's key has no tenant or client).
    let key = format!("token-source|||{GRAPH_SCOPE}");
    let stored = mail_connector::credentials::TokenCacheStore::get(&*store, &key).await;
    assert_eq!(stored.unwrap().expose_secret(), "t1");
}

#[tokio::test]
async fn a_cancelled_fetch_neither_strands_waiters_nor_breaks_later_calls() {
    let server = MockServer::start_async().await;
    // The first request hangs (the caller will be gone long before it answers).
    let slow = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200)
                .delay(Duration::from_secs(30))
                .json_body(token_body("too-late", 3599))
                .up_to_n_times(1);
        })
        .await;
    let fast = server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200).json_body(token_body("fresh", 3599));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();

    let fetcher = {
        let credentials = credentials.clone();
        tokio::spawn(async move { credentials.access_token(GRAPH_SCOPE).await })
    };
    // Wait until the fetcher's request reached the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.calls_async().await == 0 {
        assert!(Instant::now() < deadline, "the first request never arrived");
        tokio::task::yield_now().await;
    }
    // A second caller queues behind it (it counts itself in the poll that queues it).
    let queued = Arc::new(AtomicUsize::new(0));
    let waiter = {
        let credentials = credentials.clone();
        let queued = Arc::clone(&queued);
        tokio::spawn(async move {
            queued.fetch_add(1, Ordering::SeqCst);
            credentials.access_token(GRAPH_SCOPE).await
        })
    };
    while queued.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }

    fetcher.abort();
    assert!(fetcher.await.unwrap_err().is_cancelled());
    let token = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter hung after the fetcher was cancelled")
        .unwrap()
        .unwrap();
    assert_eq!(token.expose_secret(), "fresh");
    assert_eq!(fast.calls_async().await, 1);

    // Later calls use that token, and fetch normally after it is rejected.
    assert_eq!(
        credentials
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap()
            .expose_secret(),
        "fresh"
    );
    credentials.invalidate(&token);
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(fast.calls_async().await, 2);
}

#[tokio::test]
async fn waiters_get_the_same_error_as_the_caller_that_fetched() {
    /// Fails once released, with its own error as the source; counts its calls.
    #[derive(Debug, Default)]
    struct Refusing {
        calls: AtomicUsize,
        release: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl TokenProvider for Refusing {
        async fn token(&self, _scope: &str) -> mail_connector::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.release.notified().await;
            Err(Error::transport_source(
                "workload identity",
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the workload identity was refused",
                ),
                Transience::Permanent,
            ))
        }
    }
    const CALLERS: usize = 6;
    let source = Arc::new(Refusing::default());
    let credentials = from_source(source.clone()).build().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let credentials = credentials.clone();
            let started = Arc::clone(&started);
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                credentials.access_token(SMTP_SCOPE).await
            })
        })
        .collect();
    // Every caller is queued (it counts itself in the poll that queues it) and the first
    // one is inside the source.
    while started.load(Ordering::SeqCst) < CALLERS || source.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    source.release.notify_one();
    let mut texts = Vec::new();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert!(matches!(error, Error::Transport { .. }), "{error:?}");
        assert!(!error.is_transient(), "{error}");
        // Every waiter gets the whole error, its source chain included.
        let source = std::error::Error::source(&error).expect("the source is kept");
        assert_eq!(source.to_string(), "the workload identity was refused");
        texts.push(error.to_string());
    }
    assert_eq!(
        source.calls.load(Ordering::SeqCst),
        1,
        "waiters shared the fetch"
    );
    assert!(texts.iter().all(|t| t == &texts[0]), "{texts:?}");
}

#[tokio::test]
async fn logs_never_hold_the_client_secret_or_the_token() {
    const TOKEN: &str = "eyJ-LOGGED-TOKEN-must-not-appear";
    let (logs, _guard) = support::capture_logs();

    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.respond_with(in_sequence(vec![
                json_response(200, &due_token_body(TOKEN, 3599)),
                json_response(401, &entra_error("invalid_client", 7_000_215)),
            ]));
        })
        .await;
    let credentials = secret_settings(&server, TENANT).credentials().unwrap();
    // A successful fetch, then a refresh that fails and falls back to the same token.
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), TOKEN);
    credentials.access_token(GRAPH_SCOPE).await.unwrap();

    let text = logs.text();
    assert!(text.contains("access token issued"), "{text}");
    assert!(text.contains("token refresh failed"), "{text}");
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(
        !text.contains(SECRET),
        "the client secret was logged:\n{text}"
    );
    assert!(
        !text.contains(TOKEN),
        "the access token was logged:\n{text}"
    );
}
