//! `mailctl worker` through PostgreSQL outages, on a cluster of the test's own that it stops
//! and starts again: a worker started while the database is down says so on stderr, keeps
//! trying and delivers once it is back; a running worker whose database restarts says so
//! and carries on. Each message is delivered once.
//!
//! While the server is down, a stand-in on its port accepts each connection and closes it,
//! as a pooler or load balancer in front of a stopped server does. (A port that refuses
//! connections outright fails an open at once too: see opening.rs.) The stand-in counts the
//! connections, so the test knows the worker met the outage.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_connector::queue::{EnqueueOptions, Queue};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::fleet::{Seen, graph_server, subject_email};
use crate::postgres::OwnCluster;
use crate::support;

/// How long any one condition may take to come true.
const DEADLINE: Duration = Duration::from_secs(30);

/// A `mailctl worker` process, killed if the test ends early; its stderr kept line by line.
struct WorkerProcess {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl WorkerProcess {
    fn start(queue_url: &str, graph: &str, dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailctl"))
            .arg("worker")
            .current_dir(dir)
            .env_remove("MAIL_CONNECTOR_CONFIG")
            .env_remove("RUST_LOG")
            .env("MAIL_CONNECTOR_QUEUE_URL", queue_url)
            .env("MAIL_CONNECTOR_AUTH_MODE", "oauth")
            .env("MAIL_CONNECTOR_USER_NAME", "no-reply@contoso.com")
            .env("MAIL_CONNECTOR_OAUTH_CLIENT_ID", support::CLIENT_ID)
            .env("MAIL_CONNECTOR_TENANT_ID", support::TENANT)
            .env("MAIL_CONNECTOR_CLIENT_SECRET", support::SECRET)
            .env("MAIL_CONNECTOR_AUTHORITY_HOST", graph)
            .env("MAIL_CONNECTOR_GRAPH_ENDPOINT", graph)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in pipe.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Self { child, stderr }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until the worker's stderr has a line containing `text`.
    async fn wait_for_line(&mut self, text: &str) {
        let log = self.stderr.clone();
        let found = move || log.lock().unwrap().iter().any(|line| line.contains(text));
        until(&found, || {
            let exited = self.child.try_wait().unwrap();
            format!(
                "no `{text}` from the worker (exited: {exited:?}):\n{}",
                self.log()
            )
        })
        .await;
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` until it holds, panicking with `why()` after the deadline.
async fn until(done: &dyn Fn() -> bool, why: impl FnOnce() -> String) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "{}", why());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stands in on a stopped server's port: accepts each connection and closes it after the
/// client's first message, counting.
struct DownPort {
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl DownPort {
    async fn bind(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                // Read the client's first message (sqlx's 8-byte SSLRequest), then close: the
                // connection ends in the handshake, as with a pooler whose server is down.
                let mut request = [0u8; 8];
                let _ = stream.read_exact(&mut request).await;
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Self { connections, task }
    }

    async fn wait_for_connections(&self, n: usize) {
        let connections = self.connections.clone();
        until(&move || connections.load(Ordering::SeqCst) >= n, || {
            format!("fewer than {n} connections to the stopped database")
        })
        .await;
    }

    /// Frees the port (the listener goes with its task).
    async fn close(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn enqueue(url: &str, subjects: &[&str]) {
    let queue = Queue::open(url).await.unwrap();
    for subject in subjects {
        queue
            .enqueue(&subject_email(subject), EnqueueOptions::new())
            .await
            .unwrap();
    }
}

async fn wait_for_deliveries(seen: &Seen, n: usize, worker: &WorkerProcess) {
    until(&|| seen.arrivals.lock().unwrap().len() >= n, || {
        format!("fewer than {n} deliveries:\n{}", worker.log())
    })
    .await;
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// A cluster of its own with these messages queued, stopped, and a stand-in on its port.
async fn stopped_with(subjects: &[&str]) -> (OwnCluster, DownPort) {
    let cluster = blocking(OwnCluster::start).await;
    enqueue(&cluster.url(), subjects).await;
    stop(cluster).await
}

async fn stop(mut cluster: OwnCluster) -> (OwnCluster, DownPort) {
    cluster = blocking(move || {
        cluster.stop();
        cluster
    })
    .await;
    let down = DownPort::bind(cluster.port()).await;
    (cluster, down)
}

async fn restart(mut cluster: OwnCluster, down: DownPort) -> OwnCluster {
    down.close().await;
    blocking(move || {
        cluster.restart();
        cluster
    })
    .await
}

/// SIGTERM: a clean stop, counting what it delivered; each message delivered once.
async fn stop_worker(mut worker: WorkerProcess, seen: &Seen, messages: usize) {
    let pid = worker.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = worker.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "still running:\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}:\n{}", worker.log());
    // The reader thread may still be taking the last lines.
    worker
        .wait_for_line(&format!("worker done: {messages} sent"))
        .await;
    let subjects = seen.subjects();
    assert_eq!(subjects.len(), messages, "{subjects:?}");
    assert!(subjects.values().all(|n| *n == 1), "{subjects:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_while_the_database_is_down_waits_for_it() {
    let (graph, seen) = graph_server(Duration::ZERO, None).await;
    let (cluster, down) = stopped_with(&["m1", "m2", "m3"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut worker = WorkerProcess::start(&cluster.url(), &graph, dir.path());
    // It says so, with the fix, and keeps trying.
    worker
        .wait_for_line("the queue cannot be opened yet; trying again in ")
        .await;
    worker
        .wait_for_line("fix: check that the queue database (`queue_url`) is running")
        .await;
    down.wait_for_connections(2).await;
    let _cluster = restart(cluster, down).await;
    wait_for_deliveries(&seen, 3, &worker).await;
    worker.wait_for_line("mailctl: delivering with").await;
    stop_worker(worker, &seen, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_rides_out_a_database_restart() {
    let (graph, seen) = graph_server(Duration::ZERO, None).await;
    let cluster = blocking(OwnCluster::start).await;
    let url = cluster.url();
    enqueue(&url, &["before-1", "before-2"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut worker = WorkerProcess::start(&url, &graph, dir.path());
    wait_for_deliveries(&seen, 2, &worker).await;

    // Its claims fail (the server ended its connections; new ones are closed at once): it
    // says so, without `-v`, and keeps polling.
    let (cluster, down) = stop(cluster).await;
    down.wait_for_connections(1).await;
    worker
        .wait_for_line("mail queue: claim failed; trying again")
        .await;
    down.wait_for_connections(2).await;
    let _cluster = restart(cluster, down).await;
    enqueue(&url, &["after-1", "after-2"]).await;
    wait_for_deliveries(&seen, 4, &worker).await;
    stop_worker(worker, &seen, 4).await;
}
