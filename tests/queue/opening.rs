//! Opening the queue while its database is down, and with a `queue_url` that is wrong: the
//! library waits out the first (`OpenWait`, which `mailctl worker` uses too) and fails at
//! once on the second, naming `queue_url` and the fix, never its password. A refused
//! connection is said at once, not after sqlx's 30 s acquire timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mail_connector::queue::sqlx::{Connection, Executor, PgConnection};
use mail_connector::queue::{OpenWait, Queue};
use mail_connector::{ConnectorSettings, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::postgres::OwnCluster;
use crate::support::smtp_server::{ServerOptions, TestServer};
use crate::support::{assert_no_secrets, capture_logs, logged_line};

/// In every URL these tests open: it must never show.
const PASSWORD: &str = "pg-Open-7c1d";

/// Longer than any of these opens takes, far shorter than sqlx's 30 s acquire timeout: an
/// open still running then has hung, and fails the test.
const HUNG: Duration = Duration::from_secs(20);

/// How long any one condition may take to come true.
const DEADLINE: Duration = Duration::from_secs(30);

/// A port on loopback that nobody listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn url_at(port: u16) -> String {
    format!("postgres://mailer:{PASSWORD}@127.0.0.1:{port}/mail")
}

/// A wait forever that counts its waits, reporting them to the test instead of the log.
fn counting_wait() -> (OpenWait, Arc<AtomicUsize>) {
    let waits = Arc::new(AtomicUsize::new(0));
    let counted = waits.clone();
    let wait = OpenWait::forever().on_wait(move |_, _| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    (wait, waits)
}

/// Opens `url` waiting forever: it must come back (within [`HUNG`]) with an error that is
/// the admin's to fix, without a single wait.
async fn fails_at_once(url: &str) -> Error {
    let (wait, waits) = counting_wait();
    let opened = tokio::time::timeout(HUNG, Queue::open_waiting(url, &wait))
        .await
        .expect("a wrong queue_url was waited on as if the database were down");
    let error = opened.expect_err("opened a wrong queue_url");
    assert_eq!(waits.load(Ordering::SeqCst), 0, "waited on: {error}");
    assert!(!error.is_transient(), "{error}");
    let remedy = error.remedy().unwrap_or_default();
    assert!(remedy.contains("`queue_url`"), "{error}: {remedy}");
    for text in [error.to_string(), format!("{error:?}"), remedy] {
        assert_no_secrets(&text, &[PASSWORD]);
    }
    error
}

/// A loopback server that answers whatever comes with an HTTP 400, as a web server on the
/// port would.
async fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 64];
                let _ = stream.read(&mut request).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    port
}

/// A refused connection comes back at once as a transient error with its fix — not after
/// the pool's 30 s acquire timeout, which kept the first "cannot be opened" line waiting.
#[tokio::test]
async fn a_refused_connection_fails_at_once_and_for_now() {
    let url = url_at(closed_port());
    let opened = tokio::time::timeout(HUNG, Queue::open(&url))
        .await
        .expect("a refused connection was not said at once");
    let error = opened.expect_err("nobody listens there");
    assert!(error.is_transient(), "{error}");
    let remedy = error.remedy().unwrap_or_default();
    assert!(remedy.contains("`queue_url`) is running"), "{remedy}");
    assert_no_secrets(&format!("{error} {error:?} {remedy}"), &[PASSWORD]);
}

/// An HTTP server on the port is a wrong `queue_url`, not a database that is down.
#[tokio::test]
async fn an_http_port_is_a_wrong_queue_url() {
    let error = fails_at_once(&url_at(http_server().await)).await;
    assert!(error.to_string().contains("not PostgreSQL"), "{error}");
}

/// So is an SMTP server, which greets first (the repo's test server).
#[tokio::test]
async fn an_smtp_port_is_a_wrong_queue_url() {
    let smtp = TestServer::start(ServerOptions::default()).await;
    let error = fails_at_once(&url_at(smtp.port())).await;
    assert!(error.to_string().contains("not PostgreSQL"), "{error}");
}

/// A postmaster that cannot start a backend for the connection (out of processes or memory
/// while a fleet reconnects after a restart) answers the SSLRequest with an ErrorResponse
/// (`E`), as libpq knows: an outage to wait out, not a server that is not PostgreSQL.
#[tokio::test]
async fn a_postmaster_that_cannot_start_a_backend_is_waited_on() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                let _ = stream.read_exact(&mut request).await;
                let fields = b"SFATAL\0C53200\0Mout of memory\0Dcould not fork new process \
                    for connection\0\0";
                let mut answer = vec![b'E'];
                answer.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                answer.extend_from_slice(fields);
                let _ = stream.write_all(&answer).await;
            });
        }
    });
    let opened = tokio::time::timeout(HUNG, Queue::open(&url_at(port)))
        .await
        .expect("the answer was not read at once");
    let error = opened.expect_err("no backend was started");
    assert!(error.is_transient(), "{error}");
    assert!(!error.to_string().contains("not PostgreSQL"), "{error}");
    let remedy = error.remedy().unwrap_or_default();
    assert!(remedy.contains("`queue_url`) is running"), "{remedy}");
}

/// A database the server does not have (3D000): fails at once, saying to create it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_does_not_exist_is_a_wrong_queue_url() {
    let url = crate::postgres::database().await;
    let (server, _) = url.rsplit_once('/').unwrap();
    let url =
        format!("{server}/no_such_database").replace("postgres@", &format!("postgres:{PASSWORD}@"));
    let error = fails_at_once(&url).await;
    assert!(
        error.remedy().unwrap().contains("create the database"),
        "{error}"
    );
}

/// A wrong password (28P01) on a server that asks for one: fails at once, saying to check
/// it, and the library's wait and `mailctl worker` alike give up rather than knock forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_wrong_queue_url() {
    let cluster = tokio::task::spawn_blocking(|| OwnCluster::start_with_password_for("mailer"))
        .await
        .unwrap();
    let mut admin = PgConnection::connect(&cluster.url()).await.unwrap();
    admin
        .execute("CREATE ROLE mailer LOGIN PASSWORD 'the-right-one'")
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = format!(
        "postgres://mailer:{PASSWORD}@127.0.0.1:{}/postgres",
        cluster.port()
    );
    let error = fails_at_once(&url).await;
    assert!(error.remedy().unwrap().contains("password"), "{error}");

    // `mailctl worker` gives up too, with the fix, rather than wait.
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mailctl"))
            .arg("worker")
            .current_dir(dir.path())
            .env_remove("MAIL_CONNECTOR_CONFIG")
            .env_remove("RUST_LOG")
            .env("MAIL_CONNECTOR_QUEUE_URL", &url)
            .env("MAIL_CONNECTOR_USER_NAME", "no-reply@contoso.com")
            .env("MAIL_CONNECTOR_OUTBOX_DIR", dir.path().join("outbox"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(!stderr.contains("cannot be opened yet"), "{stderr}");
    assert!(stderr.contains("password in `queue_url`"), "{stderr}");
    assert_no_secrets(&stderr, &[PASSWORD]);
}

/// A service's worker started while the database is down waits for it and opens once it is
/// back, saying each wait to the service's callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_waits_for_a_database_that_is_down() {
    let (proxy, url) = crate::proxy::Proxy::start(&crate::postgres::database().await).await;
    proxy.down.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ConnectorSettings::default();
    settings.user_name = Some("no-reply@example.org".into());
    settings.outbox_dir = Some(dir.path().join("outbox"));
    settings.queue_url = Some(url.into());
    let (wait, waits) = counting_wait();
    let opening = tokio::spawn(async move { settings.queue_worker_waiting(&wait).await });

    let started = Instant::now();
    while waits.load(Ordering::SeqCst) < 2 {
        if opening.is_finished() {
            panic!("gave up waiting: {:?}", opening.await.unwrap().map(|_| ()));
        }
        assert!(started.elapsed() < DEADLINE, "no wait reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!opening.is_finished());
    proxy.down.store(false, Ordering::SeqCst);
    let worker = tokio::time::timeout(DEADLINE, opening)
        .await
        .expect("still waiting once the database was back")
        .unwrap()
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap().sent, 0);
}

/// A failover's address still on the demoted standby when the queue first migrates (its
/// `CREATE SCHEMA` refused as read-only, 25006) is an outage, not a missing privilege: the
/// open waits, and opens once the database takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_standby_while_migrating_is_waited_out() {
    let url = crate::postgres::database().await;
    let (server, name) = url.rsplit_once('/').unwrap();
    let (admin_url, name) = (format!("{server}/postgres"), name.to_owned());
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    let read_only = format!("ALTER DATABASE {name} SET default_transaction_read_only = on");
    admin.execute(read_only.as_str()).await.unwrap();
    let (wait, waits) = counting_wait();
    let opening = tokio::spawn(async move { Queue::open_waiting(&url, &wait).await });

    let started = Instant::now();
    while waits.load(Ordering::SeqCst) < 1 {
        if opening.is_finished() {
            panic!(
                "gave up on a read-only standby: {:?}",
                opening.await.unwrap().err()
            );
        }
        assert!(started.elapsed() < DEADLINE, "no wait reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let writable = format!("ALTER DATABASE {name} RESET default_transaction_read_only");
    admin.execute(writable.as_str()).await.unwrap();
    let queue = tokio::time::timeout(DEADLINE, opening)
        .await
        .expect("still waiting once the database took writes")
        .unwrap()
        .unwrap();
    queue.stats().await.unwrap();
}

/// A user without the CREATE privilege the first migration needs (42501) is the one
/// migration failure that is a mistake to fix: it fails at once, saying to grant it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_may_not_create_the_schema_is_told_to_get_the_privilege() {
    let url = crate::postgres::database().await;
    let (server, name) = url.rsplit_once('/').unwrap();
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let user = format!("{name}_reader");
    let create = format!("CREATE ROLE {user} LOGIN");
    admin.execute(create.as_str()).await.unwrap();
    let url = format!("{server}/{name}").replace("postgres@", &format!("{user}@"));
    let (wait, waits) = counting_wait();
    let opened = tokio::time::timeout(HUNG, Queue::open_waiting(&url, &wait))
        .await
        .expect("a missing privilege was waited on as if the database were down");
    let error = opened.expect_err("opened without the CREATE privilege");
    assert_eq!(waits.load(Ordering::SeqCst), 0, "waited on: {error}");
    assert!(!error.is_transient(), "{error}");
    let remedy = error.remedy().unwrap_or_default();
    assert!(remedy.contains("CREATE privilege"), "{error}: {remedy}");
    assert!(remedy.contains("`queue_url`"), "{error}: {remedy}");
}

/// Without a callback each wait is a `tracing` warning with the fix, never the password; a
/// wait with a limit gives up with the last transient error.
#[tokio::test]
async fn each_wait_is_a_warning_and_a_limit_ends_the_waiting() {
    let (logs, _guard) = capture_logs();
    let port = closed_port();
    let url = url_at(port);
    let wait = OpenWait::up_to(Duration::from_millis(1500));
    let opened = tokio::time::timeout(HUNG, Queue::open_waiting(&url, &wait))
        .await
        .expect("waited past its limit");
    let error = opened.expect_err("nobody listens there");
    assert!(error.is_transient(), "{error}");
    let line = logged_line(&logs, &["cannot be opened yet", "`queue_url`) is running"]);
    assert!(line.contains("WARN"), "{line}");
    assert_no_secrets(&logs.text(), &[PASSWORD]);
}

/// A mistake in the delivery settings is said at once, not only once the database is back.
#[tokio::test]
async fn a_worker_waiting_for_its_database_first_checks_its_settings() {
    let mut settings = ConnectorSettings::default();
    settings.queue_url = Some(url_at(closed_port()).into());
    let (wait, waits) = counting_wait();
    let opened = tokio::time::timeout(HUNG, settings.queue_worker_waiting(&wait))
        .await
        .expect("waited for the database before checking the settings");
    let error = opened.expect_err("no transport is configured");
    assert!(error.is_settings(), "{error}");
    assert_eq!(waits.load(Ordering::SeqCst), 0, "{error}");
}
