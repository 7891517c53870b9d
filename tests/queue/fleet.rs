//! Worker processes against one PostgreSQL queue and a loopback Graph server that holds each
//! request: the server never sees more than the per-mailbox limit in flight, the rate limit
//! holds, and every message is delivered exactly once. The workers are this test binary,
//! re-executed to run `child_worker` (also used by the crash test).

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mail_connector::queue::{EnqueueOptions, MailboxLimits, Queue, State, Worker};
use mail_connector::{AuthMode, ConnectorSettings, Email};
use tokio::sync::{Notify, mpsc};

use crate::helpers::{assert_rate_kept, count};
use crate::support;

/// What the loopback Graph server saw.
#[derive(Default)]
pub struct Seen {
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Arrival time and subject of every sendMail request.
    pub arrivals: Mutex<Vec<(Instant, String)>>,
    /// While set, sendMail requests after the first `answer_first` are held until released.
    pub hold: AtomicBool,
    pub answer_first: AtomicUsize,
    pub release: Notify,
}

impl Seen {
    pub fn subjects(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for (_, subject) in self.arrivals.lock().unwrap().iter() {
            *counts.entry(subject.clone()).or_insert(0) += 1;
        }
        counts
    }
}

/// A Graph-shaped server: a token endpoint, and sendMail that takes `latency` (simulated
/// server work) and reports each held request on `held`.
pub async fn graph_server(
    latency: Duration,
    held: Option<mpsc::UnboundedSender<()>>,
) -> (String, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = shared.clone();
            let held = held.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    let held = held.clone();
                    async move {
                        let path = request.uri().path().to_owned();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        if path.ends_with("/token") {
                            let token = support::token_body("token", 3600).to_string();
                            return Ok::<_, Infallible>(json(200, token));
                        }
                        let json_body: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let subject = json_body["message"]["subject"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        if subject == WARM_UP {
                            // A worker fetching its token before it starts: not a delivery.
                            return Ok(json(202, String::new()));
                        }
                        let n = {
                            let mut arrivals = seen.arrivals.lock().unwrap();
                            arrivals.push((Instant::now(), subject));
                            arrivals.len()
                        };
                        let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
                        if seen.hold.load(Ordering::SeqCst)
                            && n > seen.answer_first.load(Ordering::SeqCst)
                        {
                            if let Some(held) = &held {
                                held.send(()).unwrap();
                            }
                            seen.release.notified().await;
                        }
                        tokio::time::sleep(latency).await;
                        seen.in_flight.fetch_sub(1, Ordering::SeqCst);
                        Ok(json(202, String::new()))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (base, seen)
}

fn json(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("request-id", "loopback")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Graph settings against the loopback server.
pub fn graph_settings(base: &str) -> ConnectorSettings {
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(AuthMode::OAuth);
    settings.user_name = Some("no-reply@contoso.com".into());
    settings.oauth_client_id = Some(support::CLIENT_ID.into());
    settings.tenant_id = Some(support::TENANT.into());
    settings.client_secret = Some(support::SECRET.into());
    settings.authority_host = Some(base.to_owned());
    settings.graph_endpoint = Some(base.to_owned());
    settings
}

/// What a worker process is told, through its environment.
pub struct ChildConfig<'a> {
    pub queue_url: &'a str,
    pub graph: &'a str,
    pub max_in_flight: u32,
    pub per_window: u32,
    pub window: Duration,
    pub lease: Duration,
}

/// Starts a worker process: this binary running `child_worker`.
pub fn spawn_worker(config: &ChildConfig<'_>) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fleet::child_worker",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("QUEUE_CHILD_URL", config.queue_url)
        .env("QUEUE_CHILD_GRAPH", config.graph)
        .env("QUEUE_CHILD_IN_FLIGHT", config.max_in_flight.to_string())
        .env("QUEUE_CHILD_RATE", config.per_window.to_string())
        .env(
            "QUEUE_CHILD_WINDOW_MS",
            config.window.as_millis().to_string(),
        )
        .env("QUEUE_CHILD_LEASE_MS", config.lease.as_millis().to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// The subject of the email a worker process sends outside the queue before it starts.
const WARM_UP: &str = "warm-up: not a delivery";

pub fn worker_for(queue: &Queue, graph: &str, config: &ChildConfig<'_>) -> Worker {
    worker_with(queue, graph_settings(graph).build().unwrap(), config)
}

fn worker_with(
    queue: &Queue,
    transport: Arc<dyn mail_connector::MailTransport>,
    config: &ChildConfig<'_>,
) -> Worker {
    Worker::with_transport(queue, transport)
        .with_limits(
            MailboxLimits::new(config.max_in_flight, config.per_window).with_window(config.window),
        )
        .with_lease(config.lease)
        .with_poll_interval(Duration::from_millis(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process, started by the fleet and crash tests"]
async fn child_worker() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let ms = |name: &str| Duration::from_millis(var(name).parse().unwrap());
    let url = var("QUEUE_CHILD_URL");
    let graph = var("QUEUE_CHILD_GRAPH");
    let config = ChildConfig {
        queue_url: &url,
        graph: &graph,
        max_in_flight: var("QUEUE_CHILD_IN_FLIGHT").parse().unwrap(),
        per_window: var("QUEUE_CHILD_RATE").parse().unwrap(),
        window: ms("QUEUE_CHILD_WINDOW_MS"),
        lease: ms("QUEUE_CHILD_LEASE_MS"),
    };
    let queue = Queue::open(&url).await.unwrap();
    // The token first: otherwise the first deliveries wait for it after their claims and
    // arrive late, bunched with the next window's, which the rate check would misread.
    let transport = graph_settings(&graph).build().unwrap();
    transport.send(&subject_email(WARM_UP)).await.unwrap();
    worker_with(&queue, transport, &config)
        .run_once()
        .await
        .unwrap();
}

/// The queue at `url`, with `messages` emails enqueued, subjects `m0`, `m1`, …
pub async fn queue_of(url: &str, messages: usize) -> Queue {
    let queue = Queue::open(url).await.unwrap();
    for i in 0..messages {
        queue
            .enqueue(&subject_email(&format!("m{i}")), EnqueueOptions::new())
            .await
            .unwrap();
    }
    queue
}

pub fn subject_email(subject: &str) -> Email {
    Email::builder()
        .to("ann@example.org")
        .subject(subject)
        .text("hello")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_keep_the_mailbox_limits_and_deliver_each_message_once() {
    const MESSAGES: usize = 24;
    const IN_FLIGHT: u32 = 2;
    const PER_WINDOW: u32 = 6;
    let window = Duration::from_millis(1000);
    let (graph, seen) = graph_server(Duration::from_millis(60), None).await;
    let url = crate::postgres::database().await;
    let queue = queue_of(&url, MESSAGES).await;
    record_rate_attempts(&url).await;
    let config = ChildConfig {
        queue_url: &url,
        graph: &graph,
        max_in_flight: IN_FLIGHT,
        per_window: PER_WINDOW,
        window,
        lease: Duration::from_secs(30),
    };
    let children: Vec<Child> = (0..3).map(|_| spawn_worker(&config)).collect();
    for mut child in children {
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "a worker process failed: {status}");
    }
    // Exactly once.
    let subjects = seen.subjects();
    assert_eq!(subjects.len(), MESSAGES, "{subjects:?}");
    assert!(subjects.values().all(|n| *n == 1), "{subjects:?}");
    assert_eq!(count(&queue, State::Sent).await, MESSAGES as u64);
    // In flight at the server: never over the limit.
    assert!(seen.max_in_flight.load(Ordering::SeqCst) <= IN_FLIGHT as usize);
    // The rate, where the workers keep it: any PER_WINDOW + 1 consecutive attempts, as the
    // claims dated them, span at least a window. (Not the arrivals at Graph: on a loaded
    // machine a request may reach it any time after its claim.)
    let started = rate_attempts(&url).await;
    assert_eq!(
        started.len(),
        MESSAGES,
        "one attempt per message: {started:?}"
    );
    assert_rate_kept(&started, PER_WINDOW, window);
}

/// Records each claim's attempt, dated as the claim dated it for the rate limit, in a table
/// of the test's own (the store deletes its own once out of the window): a trigger, so
/// that every process's claims are seen. A claim handed back (its attempt refunded, the row
/// not dated again) is taken off again; a hold, which also takes the attempt back but
/// dates the row and keeps its rate stamp, is not.
async fn record_rate_attempts(url: &str) {
    use mail_connector::queue::sqlx::{Connection, Executor, PgConnection};
    let mut conn = PgConnection::connect(url).await.unwrap();
    conn.execute(
        "CREATE TABLE public.test_rate_attempts (id TEXT NOT NULL, started_at BIGINT NOT NULL);
         CREATE FUNCTION public.test_rate_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF OLD.state = 'queued' AND NEW.state = 'sending' THEN
                 INSERT INTO public.test_rate_attempts VALUES (NEW.id, NEW.updated_at);
             ELSIF NEW.state = 'queued' AND NEW.attempts = OLD.attempts - 1
                 AND NEW.updated_at = OLD.updated_at THEN
                 DELETE FROM public.test_rate_attempts WHERE ctid = (SELECT ctid FROM
                     public.test_rate_attempts WHERE id = NEW.id
                     ORDER BY started_at DESC LIMIT 1);
             END IF;
             RETURN NULL;
         END $$;
         CREATE TRIGGER test_rate_attempt AFTER UPDATE ON mail_queue.messages
             FOR EACH ROW EXECUTE FUNCTION public.test_rate_attempt();",
    )
    .await
    .unwrap();
}

/// The attempts [`record_rate_attempts`] saw, by when each started (ms, the server's clock).
async fn rate_attempts(url: &str) -> Vec<i64> {
    use mail_connector::queue::sqlx::{Connection, PgConnection};
    let mut conn = PgConnection::connect(url).await.unwrap();
    let rows: Vec<(i64,)> = mail_connector::queue::sqlx::query_as(
        "SELECT started_at FROM public.test_rate_attempts ORDER BY started_at",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|(at,)| at).collect()
}
