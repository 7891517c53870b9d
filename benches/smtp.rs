//! Sends N messages concurrently to a loopback SMTP server that answers at once (STARTTLS +
//! AUTH LOGIN) and acknowledges at once (`quick_ack`), side by side in one criterion group on
//! one runtime (2 worker threads):
//!
//! - `crate_pooled_3_connections`: one `SmtpTransport`, at most 3 connections;
//! - `lettre_pooled_3_connections`: lettre's own `AsyncSmtpTransport<Tokio1Executor>` with
//!   its pool (`PoolConfig` max_size 3), the same TLS (the fixture's CA), the same AUTH LOGIN
//!   credentials, and the same content, each `lettre::Message` built per send as a lettre
//!   user would (the crate builds its MIME per send too). Lettre's pool size bounds the idle
//!   connections, not the open ones, so its sends go through a 3-permit semaphore, as a
//!   lettre user staying within a server's 3-connection limit would do;
//! - `lettre_pooled_3_connections_delayed_ack`: the same lettre transport against a server
//!   whose kernel delays its ACKs as usual. lettre's own sockets keep Nagle's algorithm on
//!   and it writes the message and the final `.` separately, so each message waits for the
//!   server's delayed ACK (about 40 ms); this crate opens its sockets with `TCP_NODELAY`;
//! - `one_connection_per_message`: a transport (and so a connection) per message, 3 at once.
//!
//! Run: `cargo bench --bench smtp -- --warm-up-time 1 --measurement-time 3`
//!
//! Criterion prints messages per second (`thrpt`). Each variant talks to a server of its own,
//! so the connections it opened and the most that were open at once, counted at the server,
//! are its own; they are printed for the first batch and for the whole run.

#[path = "../tests/support/smtp_server.rs"]
mod smtp_server;

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use mail_connector::{Email, MailTransport, Secret, SmtpTransport};
use smtp_server::{ServerOptions, TestServer};
use tokio::sync::Semaphore;

const MESSAGES: usize = 50;
const CONNECTIONS: usize = 3;
const USER: &str = "no-reply@example.org";
const PASSWORD: &str = "correct horse";
const SUBJECT: &str = "Benchmark";

fn body() -> String {
    "A short notification body.\n".repeat(20)
}

fn recipient(i: usize) -> String {
    format!("user{i}@example.org")
}

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
        .to(recipient(i).as_str())
        .subject(SUBJECT)
        .text(body())
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

/// lettre's pooled transport with what a lettre user adds to stay within the server's
/// connection limit: a semaphore, since lettre's pool size caps only the idle connections.
struct Lettre {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    permits: Semaphore,
}

fn lettre_transport(server: &TestServer) -> Arc<Lettre> {
    let ca = Certificate::from_pem(server.ca_pem.as_bytes()).expect("CA");
    let tls = TlsParameters::builder("127.0.0.1".to_owned())
        .add_root_certificate(ca)
        .build()
        .expect("TLS parameters");
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(USER.to_owned(), PASSWORD.to_owned()))
        .authentication(vec![Mechanism::Login])
        .pool_config(PoolConfig::new().max_size(CONNECTIONS as u32))
        .build();
    Arc::new(Lettre {
        transport,
        permits: Semaphore::new(CONNECTIONS),
    })
}

/// The same message as [`email`], as a lettre user builds it.
fn lettre_message(i: usize) -> lettre::Message {
    lettre::Message::builder()
        .from(USER.parse().expect("from"))
        .to(recipient(i).parse().expect("to"))
        .subject(SUBJECT)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(body())
        .expect("lettre message")
}

/// N concurrent sends through lettre's pool, at most `CONNECTIONS` at once when `capped`.
async fn lettre_batch(lettre: &Arc<Lettre>, capped: bool) {
    let sends: Vec<_> = (0..MESSAGES)
        .map(|i| {
            let lettre = lettre.clone();
            tokio::spawn(async move {
                let _permit = match capped {
                    true => Some(lettre.permits.acquire().await.expect("permit")),
                    false => None,
                };
                lettre.transport.send(lettre_message(i)).await
            })
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
    let limit = Arc::new(Semaphore::new(CONNECTIONS));
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

/// "opened N, at most M at once", as the server counted them.
fn connections(server: &TestServer) -> String {
    format!(
        "opened {}, at most {} at once",
        server.connections(),
        server.max_active()
    )
}

/// The size of the first message the server received, as it stored it.
fn first_message_bytes(server: &TestServer) -> usize {
    server.messages().first().map_or(0, |m| m.data.len())
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // lettre's pool spawns a task when it (or a connection it lends) is dropped.
    let _context = runtime.enter();
    let start = |quick_ack| {
        runtime.block_on(TestServer::start(ServerOptions {
            mechanisms: vec!["LOGIN"],
            quick_ack,
            ..ServerOptions::default()
        }))
    };
    let (crate_server, lettre_server) = (start(true), start(true));
    let (delayed_ack_server, single_server) = (start(false), start(true));

    // One batch each before timing: the connections a batch opens.
    let pooled = Arc::new(transport(&crate_server, CONNECTIONS));
    runtime.block_on(pooled_batch(&pooled));
    let lettre = lettre_transport(&lettre_server);
    runtime.block_on(lettre_batch(&lettre, true));
    let lettre_delayed_ack = lettre_transport(&delayed_ack_server);
    runtime.block_on(lettre_batch(&lettre_delayed_ack, true));
    runtime.block_on(one_connection_per_message(fresh_transports(&single_server)));
    println!("connections for a first batch of {MESSAGES} messages, counted at the server:");
    println!("  crate pooled:     {}", connections(&crate_server));
    println!("  lettre pooled:    {}", connections(&lettre_server));
    println!("  lettre, delayed:  {}", connections(&delayed_ack_server));
    println!("  one-per-message:  {}", connections(&single_server));
    println!(
        "  (one message's data: {} bytes from the crate, {} from lettre)",
        first_message_bytes(&crate_server),
        first_message_bytes(&lettre_server)
    );
    {
        // Without the semaphore, lettre's pool opens a connection for every send that finds
        // no idle one; shown once, not timed.
        let server = start(true);
        let uncapped = lettre_transport(&server);
        runtime.block_on(lettre_batch(&uncapped, false));
        println!(
            "  (lettre pooled without the semaphore: {})",
            connections(&server)
        );
    }

    let mut group = c.benchmark_group("smtp_send");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("crate_pooled_3_connections", |b| {
        b.to_async(&runtime).iter(|| pooled_batch(&pooled));
    });
    group.bench_function("lettre_pooled_3_connections", |b| {
        b.to_async(&runtime).iter(|| lettre_batch(&lettre, true));
    });
    group.bench_function("lettre_pooled_3_connections_delayed_ack", |b| {
        b.to_async(&runtime)
            .iter(|| lettre_batch(&lettre_delayed_ack, true));
    });
    group.bench_function("one_connection_per_message", |b| {
        b.to_async(&runtime).iter_batched(
            || fresh_transports(&single_server),
            one_connection_per_message,
            BatchSize::PerIteration,
        );
    });
    group.finish();
    println!("connections over the whole run, counted at the server:");
    println!(
        "  crate pooled:     {} (the transport counts {})",
        connections(&crate_server),
        pooled.connections_opened()
    );
    println!("  lettre pooled:    {}", connections(&lettre_server));
    println!("  lettre, delayed:  {}", connections(&delayed_ack_server));
    println!("  one-per-message:  {}", connections(&single_server));
}

criterion_group!(benches, bench);
criterion_main!(benches);
