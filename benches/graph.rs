//! Graph throughput and memory against a loopback server (no network).
//!
//! `cargo bench --bench graph` prints:
//! - messages/second through `GraphTransport` at concurrency 1 and at the per-mailbox limit
//!   (4 in flight), next to a plain reqwest loop posting the same JSON — the floor of what any
//!   client can do — and the ratio between them;
//! - the peak memory (VmHWM) of sending one 100 MB file attachment through the draft and
//!   upload-session path, which streams the file in 3.2 MB chunks.
//!
//! The server answers each request after `LATENCY`, standing in for Graph's own work.
//! `GRAPH_BENCH_MESSAGES` sets how many messages each run sends (default 2000).

#[path = "../tests/support/loopback.rs"]
mod loopback;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use mail_connector::{
    AccessToken, Attachment, AuthMode, ConnectorSettings, Credentials, Email, GraphTransport,
    MailTransport, TokenProvider,
};

#[path = "support/graph_email.rs"]
mod graph_email;
use graph_email::{email, same_json};

const LATENCY: Duration = Duration::from_millis(1);

#[derive(Debug)]
struct StaticToken;

#[async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self, _scope: &str) -> mail_connector::Result<AccessToken> {
        Ok(AccessToken::new(
            "bench-token",
            SystemTime::now() + Duration::from_secs(3600),
        ))
    }
}

fn settings(base: &str) -> ConnectorSettings {
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(AuthMode::OAuth);
    settings.user_name = Some("no-reply@contoso.com".into());
    settings.oauth_client_id = Some("00000000-0000-0000-0000-000000000001".into());
    settings.tenant_id = Some("contoso.onmicrosoft.com".into());
    settings.client_secret = Some("unused: the bench uses a static token source".into());
    settings.graph_endpoint = Some(base.to_owned());
    settings
}

fn transport(base: &str) -> Arc<GraphTransport> {
    Arc::new(
        settings(base)
            .builder()
            .token_provider(Credentials::from_token_provider(StaticToken))
            .graph_builder()
            .unwrap()
            .build()
            .unwrap(),
    )
}

async fn through_transport(base: &str, messages: usize, concurrency: usize) -> f64 {
    let graph = transport(base);
    let email = Arc::new(email());
    let started = Instant::now();
    let per_worker = messages / concurrency;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let graph = Arc::clone(&graph);
            let email = Arc::clone(&email);
            tokio::spawn(async move {
                for _ in 0..per_worker {
                    graph.send(&email).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    (per_worker * concurrency) as f64 / started.elapsed().as_secs_f64()
}

async fn plain_reqwest(base: &str, messages: usize, concurrency: usize) -> f64 {
    let client = reqwest::Client::new();
    let url = format!("{base}/v1.0/users/no-reply@contoso.com/sendMail");
    let body = same_json();
    let started = Instant::now();
    let per_worker = messages / concurrency;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                for _ in 0..per_worker {
                    let response = client
                        .post(&url)
                        .bearer_auth("bench-token")
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 202);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    (per_worker * concurrency) as f64 / started.elapsed().as_secs_f64()
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn large_attachment_peak(base: &str, stats: &loopback::Stats) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hundred-megabytes.bin");
    let mut file = std::fs::File::create(&path).unwrap();
    let block: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    for _ in 0..100 {
        file.write_all(&block).unwrap();
    }
    drop((file, block));
    let email = Email::builder()
        .to("ann@example.org")
        .subject("100 MB")
        .attachment(Attachment::from_path(&path).unwrap())
        .build()
        .unwrap();
    let graph = transport(base);
    let before = peak_rss_kib();
    let started = Instant::now();
    graph.send(&email).await.unwrap();
    let elapsed = started.elapsed();
    let after = peak_rss_kib();
    let received = stats.body_bytes.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "100 MB attachment: peak RSS {:.1} MiB before, {:.1} MiB after (growth {:.1} MiB); \
         {:.1} MB uploaded in {elapsed:.2?}",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0,
        received as f64 / 1e6
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent; keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let messages: usize = std::env::var("GRAPH_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 40 } else { 2000 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (base, stats) = loopback::start(LATENCY).await;
        // First, while the process is small: the 100 MB streaming send.
        if !quick {
            large_attachment_peak(&base, &stats).await;
        }
        // Warm up connections and code paths.
        through_transport(&base, 40, 4).await;
        plain_reqwest(&base, 40, 4).await;
        for concurrency in [1, 4] {
            let ours = through_transport(&base, messages, concurrency).await;
            let floor = plain_reqwest(&base, messages, concurrency).await;
            println!(
                "concurrency {concurrency}: GraphTransport {ours:.0} msg/s, plain reqwest {floor:.0} msg/s, ratio {:.2}",
                ours / floor
            );
        }
    });
}
