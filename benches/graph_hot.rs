//! The Graph transport's own cost, against a loopback HTTPS sink that answers at once (no
//! server latency to hide behind), next to a plain reqwest loop posting the same JSON with
//! one token — the floor of what any client can do — in the same run.
//!
//! `cargo bench --bench graph_hot` prints, over HTTP/2 (what Graph and the login host choose
//! by ALPN) and then over HTTP/1.1 (a sink offering nothing else, as a proxy might), for 1
//! caller, 4 callers (the default in-flight cap) and 64 callers: sends per second and CPU per
//! send for both, and their ratios — and the ratios against the plain loop sending the request
//! the transport sends: with its 30 s request timeout (a timer per request in reqwest), its
//! `User-Agent` and a `client-request-id` per request, which sets what the transport chooses
//! to send apart from what its code costs; then the TLS connections a fresh transport opens
//! under 1,000 concurrent cold sends, counted at the sinks (token endpoint included): over HTTP/2
//! with the login host and Graph on one sink and on two, and over HTTP/1.1 on one.
//!
//! CPU is the whole process's (the sink included), summed from `/proc/self/task/*/schedstat`.
//! The sink also pays for what a client sends (a header more is encoded by the client and
//! decoded by the sink), so a third table runs the HTTP/2 comparison again with the sink on
//! a thread of its own, and gives each side's CPU without the sink's too. Environment:
//! - `GRAPH_HOT_SENDS`: sends per measurement (default 3,000; 200 without `--bench`);
//! - `GRAPH_HOT_ROUNDS`: rounds, each measuring the three back to back; medians are
//!   reported, the ratios as the median of each round's ratio, followed by the middle half
//!   of the rounds' ratios (lower to upper quartile) to show how far one run's noise goes
//!   (default 21);
//! - `GRAPH_HOT_ONLY=crate|reqwest|reqwest-same`: only that many sends, by `GRAPH_HOT_CALLERS` tasks
//!   (default 1), over `GRAPH_HOT_HTTP=2|1` (default 2), on a single-threaded runtime,
//!   printing nothing — for instruction counts under `valgrind --tool=callgrind` (run it
//!   with two counts and divide the difference); `GRAPH_HOT_THREADS=2` runs it on that many
//!   worker threads instead, for `perf`; `GRAPH_HOT_SINK_APART=1` runs the sink on a thread
//!   of its own, so that `--separate-threads=yes` counts the client's instructions apart
//!   (the first thread's file) from the sink's (the second's). aws-lc seeds its random
//!   generator from CPU jitter once per process, for a count that differs from run to run;
//!   `--toggle-collect=aws_lc_0_47_0_jent_measure_jitter --collect-atstart=yes` (in that
//!   order) leaves it out.

#[path = "../tests/support/tls_sink.rs"]
mod tls_sink;

use std::sync::Arc;
use std::time::Instant;

use mail_connector::{AuthMode, ConnectorSettings, Email, GraphTransport, MailTransport};

#[path = "support/graph_email.rs"]
mod graph_email;
use graph_email::{email, same_json};

#[path = "support/sink_apart.rs"]
mod sink_apart;
use sink_apart::SinkRuntime;

const MAILBOX: &str = "no-reply@contoso.com";
const TENANT: &str = "contoso.onmicrosoft.com";

fn settings(base: &str, ca_file: &std::path::Path) -> ConnectorSettings {
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(AuthMode::OAuth);
    settings.user_name = Some(MAILBOX.into());
    settings.oauth_client_id = Some("00000000-0000-0000-0000-000000000001".into());
    settings.tenant_id = Some(TENANT.into());
    settings.client_secret = Some("bench-secret".into());
    settings.authority_host = Some(base.to_owned());
    settings.graph_endpoint = Some(base.to_owned());
    settings.tls_ca_file = Some(ca_file.to_owned());
    settings
}

/// A transport as an application builds one: from the settings, with its own clients.
fn transport(base: &str, ca_file: &std::path::Path) -> Arc<GraphTransport> {
    Arc::new(
        settings(base, ca_file)
            .builder()
            .graph_builder()
            .unwrap()
            .build()
            .unwrap(),
    )
}

/// The plain loop's client: reqwest's defaults, trusting the sink, following no redirect;
/// with `same`, the transport's timeouts (reqwest then keeps a timer per request) and
/// `User-Agent`.
fn plain_client(pem: &str, same: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder();
    let builder = match same {
        true => builder
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("mail-connector/", env!("CARGO_PKG_VERSION"))),
        false => builder,
    };
    builder
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// The plain loop's one token, fetched once as the crate fetches it.
async fn plain_token(client: &reqwest::Client, base: &str) -> String {
    let answer: serde_json::Value = client
        .post(format!("{base}/{TENANT}/oauth2/v2.0/token"))
        .form(&[("grant_type", "client_credentials"), ("client_secret", "x")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

#[derive(Clone)]
enum Sender {
    Crate(Arc<GraphTransport>, Arc<Email>),
    Plain {
        client: reqwest::Client,
        url: Arc<str>,
        token: Arc<str>,
        body: Arc<Vec<u8>>,
        /// Whether each request carries a new `client-request-id`, as the transport's do,
        /// and whether one has been let into HTTP/2's header table yet.
        client_request_id: Option<Arc<std::sync::atomic::AtomicBool>>,
    },
}

impl Sender {
    async fn send(&self) {
        match self {
            Self::Crate(graph, email) => {
                graph.send(email).await.unwrap();
            }
            Self::Plain {
                client,
                url,
                token,
                body,
                client_request_id,
            } => {
                let mut request = client.post(&**url);
                if let Some(named) = client_request_id {
                    request = request.header("client-request-id", client_request_id_value(named));
                }
                let response = request
                    .bearer_auth(&**token)
                    .header("content-type", "application/json")
                    .body(Vec::clone(body))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202);
            }
        }
    }
}

/// A random `client-request-id`, made as the transport makes it (a fast thread-local
/// generator) and marked, as it marks it, never to enter HTTP/2's header table but for the
/// first (which teaches the connection the header's name): the rule of the transport's
/// `MailboxState::request_id_enters_table`, which the crate does not export.
fn client_request_id_value(named: &std::sync::atomic::AtomicBool) -> reqwest::header::HeaderValue {
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_ne_bytes()).into_uuid();
    let mut value = reqwest::header::HeaderValue::from_str(
        id.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    )
    .unwrap();
    let first = !named.swap(true, std::sync::atomic::Ordering::Relaxed);
    value.set_sensitive(!first);
    value
}

/// Sends per second, and CPU nanoseconds per send of the whole process and of all but the
/// sink's thread (the same when the sink is not apart), for `sends` sends by `callers` tasks.
async fn measure(sender: &Sender, sends: usize, callers: usize) -> (f64, f64, f64) {
    let per_caller = sends / callers;
    let (cpu, sink_cpu) = sink_apart::cpu_ns();
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let sender = sender.clone();
            tokio::spawn(async move {
                for _ in 0..per_caller {
                    sender.send().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let (cpu_now, sink_now) = sink_apart::cpu_ns();
    let cpu = cpu_now.saturating_sub(cpu);
    let client = cpu.saturating_sub(sink_now.saturating_sub(sink_cpu));
    let done = (per_caller * callers) as f64;
    (
        done / elapsed.as_secs_f64(),
        cpu as f64 / done,
        client as f64 / done,
    )
}

/// One round: (sends/s, CPU ns per send, CPU ns per send but the sink's) of the transport,
/// the plain loop, and the plain loop sending the transport's request.
type Round = [(f64, f64, f64); 3];

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The middle half of `values` (from the lower to the upper quartile), as `lo–hi`: how far
/// a ratio moves from round to round, beside its median.
fn middle_half(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    let last = values.len() - 1;
    format!(
        "{:.2}–{:.2}",
        values[last / 4],
        values[(3 * last).div_ceil(4)]
    )
}

/// A fresh transport (cold token cache, empty pool) on fresh sinks, `sends` sends at once:
/// the connections opened to the login host and to Graph (one sink, or two), and the token
/// requests.
async fn cold_connections(
    dir: &std::path::Path,
    sends: usize,
    protocols: tls_sink::Protocols,
    two_hosts: bool,
) -> (usize, usize, usize) {
    let login = tls_sink::start_with(protocols).await;
    let graph_sink = match two_hosts {
        true => Some(tls_sink::start_with(protocols).await),
        false => None,
    };
    let graph_host = graph_sink.as_ref().unwrap_or(&login);
    let ca_file = dir.join("cold-ca.pem");
    let pem = format!("{}{}", login.certificate_pem, graph_host.certificate_pem);
    std::fs::write(&ca_file, pem).unwrap();
    let mut settings = settings(&login.base, &ca_file);
    settings.graph_endpoint = Some(graph_host.base.clone());
    let graph = Arc::new(settings.builder().graph_builder().unwrap().build().unwrap());
    let email = Arc::new(email());
    let tasks: Vec<_> = (0..sends)
        .map(|_| {
            let (graph, email) = (Arc::clone(&graph), Arc::clone(&email));
            tokio::spawn(async move { graph.send(&email).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let tokens = login
        .stats
        .token_requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let to_graph = graph_sink
        .as_ref()
        .map_or(0, tls_sink::TlsSink::connections);
    (login.connections(), to_graph, tokens)
}

/// The transport, the plain loop, and the plain loop sending the transport's request (its
/// default timeouts, `User-Agent` and a `client-request-id` per request).
async fn senders(sink: &tls_sink::TlsSink, ca_file: &std::path::Path) -> [Sender; 3] {
    let ours = Sender::Crate(transport(&sink.base, ca_file), Arc::new(email()));
    let url: Arc<str> = format!("{}/v1.0/users/{MAILBOX}/sendMail", sink.base).into();
    let body = Arc::new(same_json());
    let mut plain = Vec::new();
    for same in [false, true] {
        let client = plain_client(&sink.certificate_pem, same);
        let token = plain_token(&client, &sink.base).await;
        plain.push(Sender::Plain {
            client,
            url: Arc::clone(&url),
            token: token.into(),
            body: Arc::clone(&body),
            client_request_id: same.then(Arc::default),
        });
    }
    let same = plain.pop().unwrap();
    [ours, plain.pop().unwrap(), same]
}

/// Only `sends` sends of one kind by `callers` tasks, on one thread: for callgrind.
fn only(kind: &str, sends: usize, callers: usize, protocols: tls_sink::Protocols) {
    // `GRAPH_HOT_THREADS=2`: on a runtime of that many worker threads instead, for `perf`.
    let runtime = match std::env::var("GRAPH_HOT_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        Some(threads) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .unwrap();
    let apart = std::env::var("GRAPH_HOT_SINK_APART").is_ok_and(|v| v == "1");
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sink_runtime = apart.then(SinkRuntime::new);
        let sink = start_sink(protocols, sink_runtime.as_ref()).await;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &sink.certificate_pem).unwrap();
        let [ours, plain, same] = senders(&sink, &ca_file).await;
        let sender = match kind {
            "crate" => ours,
            "reqwest-same" => same,
            _ => plain,
        };
        // Warm: the token fetched, the connection open.
        sender.send().await;
        measure(&sender, sends, callers).await;
    });
}

/// A sink on this runtime, or on `apart`'s thread.
async fn start_sink(
    protocols: tls_sink::Protocols,
    apart: Option<&SinkRuntime>,
) -> tls_sink::TlsSink {
    match apart {
        Some(runtime) => runtime.start(tls_sink::start_with(protocols)).await,
        None => tls_sink::start_with(protocols).await,
    }
}

/// The throughput and CPU table for one protocol; with `apart`, the sink on a thread of its
/// own, and the CPU without the sink's too.
async fn compare(
    protocols: tls_sink::Protocols,
    name: &str,
    sends: usize,
    rounds: usize,
    apart: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let sink_runtime = apart.then(SinkRuntime::new);
    let sink = start_sink(protocols, sink_runtime.as_ref()).await;
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &sink.certificate_pem).unwrap();
    let senders = senders(&sink, &ca_file).await;
    // Warm up connections and code paths.
    for sender in &senders {
        measure(sender, 400, 4).await;
    }

    println!(
        "{name}, zero-latency HTTPS sink, {sends} sends per measurement, medians of {rounds} rounds \
         (in brackets: the middle half of the rounds' ratios)"
    );
    let mut four_in_flight = 0.0;
    for callers in [1, 4, 64] {
        // Each round measures the three back to back, so that a change in the machine's
        // load between rounds moves all; the ratios are taken per round.
        let mut rounds_seen = Vec::new();
        for started_with in (0..senders.len()).cycle().take(rounds) {
            // Each round starts with the next of the three, so that none always runs first
            // (or right after another one's 64 callers).
            let mut round = [(0.0, 0.0, 0.0); 3];
            for step in 0..senders.len() {
                let which = (started_with + step) % senders.len();
                round[which] = measure(&senders[which], sends, callers).await;
            }
            rounds_seen.push(round);
        }
        let pick = |f: &dyn Fn(&Round) -> f64| median(rounds_seen.iter().map(f).collect());
        let spread = |f: &dyn Fn(&Round) -> f64| middle_half(rounds_seen.iter().map(f).collect());
        let (rate, cpu) = (pick(&|r| r[0].0), pick(&|r| r[0].1));
        let (floor, floor_cpu) = (pick(&|r| r[1].0), pick(&|r| r[1].1));
        let rate_ratio = pick(&|r| r[0].0 / r[1].0);
        let cpu_ratio = pick(&|r| r[0].1 / r[1].1);
        let same_rate_ratio = pick(&|r| r[0].0 / r[2].0);
        let same_cpu_ratio = pick(&|r| r[0].1 / r[2].1);
        let (rate_spread, cpu_spread) =
            (spread(&|r| r[0].0 / r[1].0), spread(&|r| r[0].1 / r[1].1));
        let (same_rate_spread, same_cpu_spread) =
            (spread(&|r| r[0].0 / r[2].0), spread(&|r| r[0].1 / r[2].1));
        if callers == 4 {
            four_in_flight = rate;
        }
        let vs_four = match callers {
            64 => format!(", {:.2} of 4 callers", rate / four_in_flight),
            _ => String::new(),
        };
        println!(
            "{callers:>2} callers: GraphTransport {rate:>6.0}/s {:>5.1} µs CPU/send | \
             plain reqwest {floor:>6.0}/s {:>5.1} µs CPU/send | throughput ratio \
             {rate_ratio:.2} ({rate_spread}), CPU ratio {cpu_ratio:.2} ({cpu_spread}){vs_four}",
            cpu / 1e3,
            floor_cpu / 1e3,
        );
        println!(
            "           against plain reqwest sending the same request (timeouts, User-Agent, \
             client-request-id): throughput ratio {same_rate_ratio:.2} ({same_rate_spread}), \
             CPU ratio {same_cpu_ratio:.2} ({same_cpu_spread})"
        );
        if apart {
            let (client, floor_client) = (pick(&|r| r[0].2), pick(&|r| r[1].2));
            let ratio = |other: usize| {
                let of = move |r: &Round| r[0].2 / r[other].2;
                format!("{:.2} ({})", pick(&of), spread(&of))
            };
            println!(
                "           the client's CPU alone (the sink's thread left out): GraphTransport \
                 {:.1} µs/send, plain reqwest {:.1} µs/send; CPU ratio {}, against the same \
                 request {}",
                client / 1e3,
                floor_client / 1e3,
                ratio(1),
                ratio(2),
            );
        }
    }
}

fn main() {
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    let quick = !std::env::args().any(|a| a == "--bench");
    if let Ok(kind) = std::env::var("GRAPH_HOT_ONLY") {
        let callers = env("GRAPH_HOT_CALLERS").unwrap_or(1);
        let protocols = match env("GRAPH_HOT_HTTP") {
            Some(1) => tls_sink::Protocols::Http1Only,
            _ => tls_sink::Protocols::Http2AndHttp1,
        };
        only(
            &kind,
            env("GRAPH_HOT_SENDS").unwrap_or(1000),
            callers,
            protocols,
        );
        return;
    }
    // Many short rounds rather than a few long ones: a virtual machine's speed drifts over
    // seconds, and each round's ratio is taken between measurements a moment apart.
    let sends = env("GRAPH_HOT_SENDS").unwrap_or(if quick { 200 } else { 3_000 });
    let rounds = env("GRAPH_HOT_ROUNDS").unwrap_or(if quick { 1 } else { 21 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use tls_sink::Protocols::{Http1Only, Http2AndHttp1};
        compare(Http2AndHttp1, "HTTP/2", sends, rounds, false).await;
        compare(Http1Only, "HTTP/1.1", sends, rounds, false).await;
        compare(
            Http2AndHttp1,
            "HTTP/2, the sink on a thread of its own",
            sends,
            rounds,
            true,
        )
        .await;

        let dir = tempfile::tempdir().unwrap();
        let cold = if quick { 100 } else { 1000 };
        println!("{cold} concurrent cold sends (in-flight cap 4), TLS connections opened:");
        for (protocols, two_hosts, name) in [
            (
                Http2AndHttp1,
                false,
                "HTTP/2, login host and Graph on one sink",
            ),
            (Http2AndHttp1, true, "HTTP/2, login host and Graph apart"),
            (
                Http1Only,
                false,
                "HTTP/1.1, login host and Graph on one sink",
            ),
        ] {
            let (login, graph, tokens) =
                cold_connections(dir.path(), cold, protocols, two_hosts).await;
            let graph = match two_hosts {
                true => format!(" + {graph} to Graph"),
                false => String::new(),
            };
            println!("  {name}: {login}{graph}, {tokens} token request(s)");
        }
    });
}
