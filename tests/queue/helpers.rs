//! Shared by the queue tests: opening a queue on either store, a scripted transport, and
//! reading a message's row.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::smtp_server::{ServerOptions, TestServer};
use mail_connector::queue::{MessageSummary, Queue, State};
use mail_connector::{
    CheckReport, Email, Error, MailTransport, Result, SendReport, SentMessage, async_trait,
};

/// Which store a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A queue on a fresh database of `backend`; keep the returned guard alive.
pub async fn open(backend: Backend) -> (Queue, Option<tempfile::TempDir>) {
    let (queue, guard, _) = open_with_url(backend).await;
    (queue, guard)
}

/// As [`open`], with the PostgreSQL database's URL (for [`server_clock_passes`]).
pub async fn open_with_url(backend: Backend) -> (Queue, Option<tempfile::TempDir>, Option<String>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("queue.db").display());
            (Queue::open(&url).await.unwrap(), Some(dir), None)
        }
        Backend::Postgres => {
            let url = crate::postgres::database().await;
            (Queue::open(&url).await.unwrap(), None, Some(url))
        }
    }
}

/// PostgreSQL measures leases and rate windows by the server's clock, which a test cannot
/// set: `by` passes on it by moving every stored time that clock is compared with back by
/// `by`. SQLite (`url` is `None`) takes the caller's `now`, which the test sets instead.
pub async fn server_clock_passes(url: Option<&str>, by: Duration) {
    let Some(url) = url else { return };
    let ms = i64::try_from(by.as_millis()).unwrap();
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query("UPDATE mail_queue.attempts SET started_at = started_at - $1")
        .bind(ms)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE mail_queue.messages SET due_at = due_at - $1, \
         lease_until = lease_until - $1",
    )
    .bind(ms)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

/// Runs an async test body on both stores, as two tests.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_stores;

/// An email to `to` with this subject.
pub fn email(to: &str, subject: &str) -> Email {
    Email::builder()
        .from("no-reply@example.org")
        .to(to)
        .subject(subject)
        .text("hello")
        .build()
        .unwrap()
}

/// A transport answering each send with the next scripted result (then success), recording
/// every email it was given.
#[derive(Debug, Clone, Default)]
pub struct Scripted {
    script: Arc<Mutex<VecDeque<Result<()>>>>,
    pub seen: Arc<Mutex<Vec<Email>>>,
}

impl Scripted {
    pub fn new(script: Vec<Result<()>>) -> Self {
        Self {
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
        }
    }

    pub fn seen(&self) -> Vec<Email> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl MailTransport for Scripted {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        self.seen.lock().unwrap().push(email.clone());
        let next = self.script.lock().unwrap().pop_front();
        match next {
            Some(Err(error)) => Err(error),
            _ => Ok(SendReport::single(SentMessage::new(
                email.recipients().collect(),
                Some(format!("sent-{}", email.subject())),
            ))),
        }
    }

    async fn check(&self) -> Result<CheckReport> {
        Ok(CheckReport::default())
    }
}

/// The one message with this id.
pub async fn row(queue: &Queue, id: &str) -> MessageSummary {
    queue
        .list(None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == id)
        .unwrap_or_else(|| panic!("no message {id}"))
}

/// How many messages are in `state`.
pub async fn count(queue: &Queue, state: State) -> u64 {
    queue.stats().await.unwrap().states[&state]
}

/// A transient failure that certainly did not deliver.
pub fn transient() -> Error {
    Error::transport(
        "test",
        "busy, try later",
        mail_connector::Transience::Transient,
    )
}

/// An SMTP server that takes ann@example.org, refuses gone@example.org for good
/// (`550 5.1.1`) and busy@example.org for now (`450 4.2.1`), and an email from
/// no-reply@example.org to the three: a partial delivery whose three groups fare apart.
pub async fn partial_delivery(subject: &str) -> (TestServer, Email) {
    let server = TestServer::start(ServerOptions::gone_and_busy()).await;
    let email = Email::builder()
        .from("no-reply@example.org")
        .to("ann@example.org")
        .to("gone@example.org")
        .to("busy@example.org")
        .subject(subject)
        .text("hello")
        .build()
        .unwrap();
    (server, email)
}

/// A STARTTLS transport to the test `server`, as the mailbox the queue tests send from: add
/// a retry policy or build it as it is.
/// A Graph transport built from the settings, against `server`, whose token endpoint
/// answers (mock `sendMail` as the test needs).
pub async fn graph_to(server: &httpmock::MockServer) -> Arc<dyn mail_connector::MailTransport> {
    server
        .mock_async(|when, then| {
            when.method(httpmock::Method::POST)
                .path(crate::support::token_path(crate::support::TENANT));
            then.status(200)
                .json_body(crate::support::token_body("token", 3600));
        })
        .await;
    let mut settings = crate::support::secret_settings(server, crate::support::TENANT);
    settings.graph_endpoint = Some(server.base_url());
    settings.build().unwrap()
}

pub fn smtp_to(server: &TestServer) -> mail_connector::smtp::SmtpTransportBuilder {
    mail_connector::SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(
            "no-reply@example.org",
            mail_connector::Secret::new("correct horse"),
        )
}

/// That the rate limit held: any `per_window + 1` consecutive attempts, by when each claim
/// dated its own (ms, ascending), span at least `window`.
pub fn assert_rate_kept(started: &[i64], per_window: u32, window: Duration) {
    let per_window = per_window as usize;
    let window_ms = i64::try_from(window.as_millis()).unwrap();
    for run in started.windows(per_window + 1) {
        let span = run[per_window] - run[0];
        assert!(
            span >= window_ms,
            "{} attempts within {span} ms: {started:?}",
            per_window + 1
        );
    }
}
