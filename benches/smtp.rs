//! Sends N messages through `SmtpTransport`'s pool to a loopback SMTP server (STARTTLS +
//! AUTH LOGIN), against a baseline that opens one connection per message.
//!
//! Run: `cargo bench --bench smtp -- --warm-up-time 1 --measurement-time 3`
//!
//! Criterion prints messages per second (`thrpt`); the connections each variant opened per
//! batch are printed before the measurements.

#[path = "../tests/support/smtp_server.rs"]
mod smtp_server;

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mail_connector::{Email, MailTransport, Secret, SmtpTransport};
use smtp_server::{ServerOptions, TestServer};

const MESSAGES: usize = 50;
const USER: &str = "no-reply@example.org";
const PASSWORD: &str = "correct horse";

fn transport(server: &TestServer, max_connections: usize) -> SmtpTransport {
    SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(USER, Secret::new(PASSWORD))
        .max_concurrency(max_connections)
        .build()
        .expect("transport")
}

fn email(i: usize) -> Email {
    Email::builder()
        .to(format!("user{i}@example.org").as_str())
        .subject("Benchmark")
        .text("A short notification body.\n".repeat(20))
        .build()
        .expect("email")
}

/// N concurrent sends through one pooled transport.
async fn pooled_batch(transport: &Arc<SmtpTransport>) {
    let sends: Vec<_> = (0..MESSAGES)
        .map(|i| {
            let transport = transport.clone();
            tokio::spawn(async move { transport.send(&email(i)).await })
        })
        .collect();
    for send in sends {
        send.await.expect("task").expect("send");
    }
}

/// A fresh transport per message, built outside the timed part: building one loads the
/// system's root certificates, which is not what this baseline measures.
fn fresh_transports(server: &TestServer) -> Vec<SmtpTransport> {
    (0..MESSAGES).map(|_| transport(server, 1)).collect()
}

/// N concurrent sends, each on a transport (and so a connection) of its own, at most 3 at
/// once like the pool.
async fn one_connection_per_message(transports: Vec<SmtpTransport>) {
    let limit = Arc::new(tokio::sync::Semaphore::new(3));
    let sends: Vec<_> = transports
        .into_iter()
        .enumerate()
        .map(|(i, transport)| {
            let limit = limit.clone();
            tokio::spawn(async move {
                let _permit = limit.acquire().await.expect("permit");
                transport.send(&email(i)).await
            })
        })
        .collect();
    for send in sends {
        send.await.expect("task").expect("send");
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN"],
        ..ServerOptions::default()
    }));

    // Connections per batch, measured at the server.
    let pooled = Arc::new(transport(&server, 3));
    let before = server.connections();
    runtime.block_on(pooled_batch(&pooled));
    let pooled_connections = server.connections() - before;
    let pooled_max_active = server.max_active();
    let before = server.connections();
    runtime.block_on(one_connection_per_message(fresh_transports(&server)));
    let baseline_connections = server.connections() - before;
    println!(
        "connections opened for {MESSAGES} messages: pooled {pooled_connections} \
         (max simultaneous at the server {pooled_max_active}), one-per-message \
         {baseline_connections}"
    );

    let mut group = c.benchmark_group("smtp_send");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("pooled_3_connections", |b| {
        b.to_async(&runtime).iter(|| pooled_batch(&pooled));
    });
    group.bench_function("one_connection_per_message", |b| {
        b.to_async(&runtime).iter_batched(
            || fresh_transports(&server),
            one_connection_per_message,
            BatchSize::PerIteration,
        );
    });
    group.finish();
    println!(
        "pooled transport opened {} connections over the whole run",
        pooled.connections_opened()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
