//! Cached token reads (no network) and a cold token fetch against a loopback mock server.
//! Their allocations are counted by `benches/token_allocations.rs`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use httpmock::Method::POST;
use httpmock::MockServer;
use mail_connector::{AuthMode, ConnectorSettings};

const SCOPE: &str = "https://graph.microsoft.com/.default";

fn settings(server: &MockServer) -> ConnectorSettings {
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(AuthMode::OAuth);
    settings.oauth_client_id = Some("00000000-0000-0000-0000-000000000001".into());
    settings.tenant_id = Some("contoso.onmicrosoft.com".into());
    settings.client_secret = Some("bench-secret".into());
    settings.authority_host = Some(server.base_url());
    settings
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(MockServer::start_async());
    runtime.block_on(server.mock_async(|when, then| {
        when.method(POST)
            .path("/contoso.onmicrosoft.com/oauth2/v2.0/token");
        then.status(200).json_body(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": "bench-token"
        }));
    }));

    let warm = settings(&server).credentials().unwrap();
    runtime.block_on(warm.access_token(SCOPE)).unwrap();
    c.bench_function("credentials/cached_token", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(warm.access_token(SCOPE).await.unwrap()) });
    });

    // As a transport reads it: through the trait, whose async method returns a boxed future.
    let provider: std::sync::Arc<dyn mail_connector::TokenProvider> =
        std::sync::Arc::new(warm.clone());
    c.bench_function("credentials/cached_token_provider", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(provider.token(SCOPE).await.unwrap()) });
    });
    // As the Graph transport reads it first: a token at hand, without a future.
    c.bench_function("credentials/ready_token_provider", |b| {
        b.iter(|| black_box(provider.ready_token(SCOPE).unwrap()));
    });

    // A new provider each time: an empty cache, so every read is a token request.
    let client = reqwest::Client::new();
    c.bench_function("credentials/cold_fetch_loopback", |b| {
        b.to_async(&runtime).iter(|| async {
            let cold = settings(&server)
                .credentials_builder()
                .unwrap()
                .http_client(client.clone())
                .build()
                .unwrap();
            black_box(cold.access_token(SCOPE).await.unwrap())
        });
    });
}

criterion_group!(credentials, benches);
criterion_main!(credentials);
