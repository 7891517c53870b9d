//! Several recipients, every one refused at `RCPT TO` and nothing delivered: the queue
//! treats the email as an ordinary failure — queued again (or failed with the gave-up text
//! when out of attempts) when every refusal was temporary, failed as a whole when every one
//! was permanent — never as a partly sent one. And a split row keeps the message's original
//! due time. On both stores.

use std::time::Duration;

use mail_connector::queue::{EnqueueOptions, MessageId, Queue, State, Worker, WorkerReport};
use mail_connector::{Email, MailTransport, RecipientLimit, RetryPolicy, SmtpTransport};

use crate::helpers::{Backend, on_both_stores, open, row, smtp_to};
use crate::support::smtp_server::{RcptReply, ServerOptions, TestServer};

on_both_stores!(
    every_recipient_refused_for_now_is_an_ordinary_retry,
    every_recipient_refused_for_now_out_of_attempts_gives_up,
    every_recipient_refused_for_good_fails_the_message_as_one,
    a_split_row_keeps_the_original_due_time,
    authentication_required_at_rcpt_holds_the_message_at_once,
);

const ANN: &str = "ann@example.org";
const BOB: &str = "bob@example.org";

async fn server(reply: &str) -> TestServer {
    TestServer::start(ServerOptions {
        rcpt_replies: vec![RcptReply::always(ANN, reply), RcptReply::always(BOB, reply)],
        ..ServerOptions::default()
    })
    .await
}

/// No retry within the send: each queue attempt is one SMTP transaction. (The workers wait
/// for no retry: one due in a minute stays queued.)
fn smtp(server: &TestServer) -> SmtpTransport {
    smtp_to(server).retry_policy(retries(0)).build().unwrap()
}

fn retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_secs(60),
        max_backoff: Duration::from_secs(60),
        multiplier: 2.0,
        deadline: Some(Duration::from_secs(3600)),
    }
}

fn email() -> Email {
    Email::builder()
        .from("no-reply@example.org")
        .to(ANN)
        .to(BOB)
        .subject("both refused")
        .text("hello")
        .build()
        .unwrap()
}

async fn enqueue(queue: &Queue) -> MessageId {
    queue
        .enqueue(&email(), EnqueueOptions::new())
        .await
        .unwrap()
}

/// One worker pass through `transport`, up to `max_retries`, waiting for no retry.
async fn one_pass(
    queue: &Queue,
    transport: impl MailTransport + 'static,
    max_retries: u32,
) -> WorkerReport {
    Worker::new(queue, transport)
        .with_retry(retries(max_retries))
        .with_once_wait(Duration::ZERO)
        .run_once()
        .await
        .unwrap()
}

async fn only_message(queue: &Queue) -> mail_connector::queue::MessageSummary {
    let mut all = queue.list(None, 10).await.unwrap();
    assert_eq!(all.len(), 1, "no split rows: {all:?}");
    all.remove(0)
}

async fn every_recipient_refused_for_now_is_an_ordinary_retry(backend: Backend) {
    let server = server("450 4.2.1 Mailbox busy, try later").await;
    let (queue, _guard) = open(backend).await;
    let id = enqueue(&queue).await;
    let before = row(&queue, id.as_str()).await;
    let report = one_pass(&queue, smtp(&server), 5).await;
    assert_eq!((report.retried, report.partial), (1, 0), "{report:?}");
    let message = only_message(&queue).await;
    assert_eq!(message.id, id.as_str());
    assert_eq!(message.state, State::Queued, "{message:?}");
    assert_eq!(message.report, None, "nothing was delivered: {message:?}");
    assert_eq!(message.recipients, format!("To: {ANN}, To: {BOB}"));
    assert!(message.due_at > before.due_at, "{message:?}");
    let error = message.last_error.as_deref().unwrap();
    assert!(error.contains("450"), "{error}");
    assert_eq!(server.mail_from_commands(), 1);
}

async fn every_recipient_refused_for_now_out_of_attempts_gives_up(backend: Backend) {
    let server = server("450 4.2.1 Mailbox busy, try later").await;
    let (queue, _guard) = open(backend).await;
    let id = enqueue(&queue).await;
    let report = one_pass(&queue, smtp(&server), 0).await;
    assert_eq!((report.failed, report.partial), (1, 0), "{report:?}");
    let message = only_message(&queue).await;
    assert_eq!(message.id, id.as_str());
    assert_eq!(message.state, State::Failed, "{message:?}");
    assert_eq!(message.report, None, "{message:?}");
    let error = message.last_error.as_deref().unwrap();
    assert!(error.starts_with("gave up after 1 attempt(s)"), "{error}");
    assert!(error.contains("450"), "{error}");
}

async fn every_recipient_refused_for_good_fails_the_message_as_one(backend: Backend) {
    let server = server("550 5.1.1 User unknown").await;
    let (queue, _guard) = open(backend).await;
    let id = enqueue(&queue).await;
    let report = one_pass(&queue, smtp(&server), 5).await;
    assert_eq!((report.failed, report.partial), (1, 0), "{report:?}");
    let message = only_message(&queue).await;
    assert_eq!(message.id, id.as_str());
    assert_eq!(message.state, State::Failed, "{message:?}");
    assert_eq!(message.report, None, "{message:?}");
    assert_eq!(message.parent_id, None);
    assert_eq!(message.recipients, format!("To: {ANN}, To: {BOB}"));
    let error = message.last_error.as_deref().unwrap();
    assert!(error.contains("2 refused permanently"), "{error}");
    assert!(error.contains("550"), "{error}");
    // Both replies: the source's, then the other's.
    assert!(
        error.ends_with(&format!("; also refused: {BOB}: 550 5.1.1 User unknown")),
        "{error}"
    );
    let remedy = message.remedy.as_deref().unwrap();
    assert!(remedy.contains("check the address"), "{remedy}");
    assert_eq!(server.mail_from_commands(), 1);
}

/// ann refused for good, bob for now: bob stays in the message, due at its next attempt;
/// ann's split row, failed, keeps the due time the message had when it was taken.
async fn a_split_row_keeps_the_original_due_time(backend: Backend) {
    let server = TestServer::start(ServerOptions {
        rcpt_replies: vec![
            RcptReply::always(ANN, "550 5.1.1 User unknown"),
            RcptReply::always(BOB, "450 4.2.1 Mailbox busy, try later"),
        ],
        ..ServerOptions::default()
    })
    .await;
    let (queue, _guard) = open(backend).await;
    let id = enqueue(&queue).await;
    let original = row(&queue, id.as_str()).await;
    let report = one_pass(&queue, smtp(&server), 5).await;
    assert_eq!(report.partial, 1, "{report:?}");
    let message = row(&queue, id.as_str()).await;
    assert_eq!(message.state, State::Queued, "{message:?}");
    assert!(message.due_at > original.due_at, "{message:?}");
    let failed = queue.list(Some(State::Failed), 10).await.unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].parent_id.as_deref(), Some(id.as_str()));
    assert_eq!(failed[0].recipients, format!("To: {ANN}"));
    assert_eq!(failed[0].due_at, original.due_at, "{:?}", failed[0]);
}

/// One recipient per transaction, and a server that answers "authentication required" at
/// `RCPT TO`: the session's failure, not ann's. The message fails at once, whole, with the
/// settings' remedy — not ann split off as an address to check and bob tried next time.
async fn authentication_required_at_rcpt_holds_the_message_at_once(backend: Backend) {
    let server = server("530 5.7.57 Client not authenticated to send mail").await;
    let (queue, _guard) = open(backend).await;
    let id = enqueue(&queue).await;
    let report = one_pass(&queue, RecipientLimit::new(smtp(&server), 1), 5).await;
    // The session's settings, not the recipients: the whole email waits for the admin.
    assert_eq!(
        (report.retried, report.held, report.partial),
        (1, 1, 0),
        "{report:?}"
    );
    let message = only_message(&queue).await;
    assert_eq!(message.id, id.as_str());
    assert_eq!(message.state, State::Queued, "{message:?}");
    assert_eq!(message.recipients, format!("To: {ANN}, To: {BOB}"));
    let error = message.last_error.as_deref().unwrap();
    assert!(
        error.contains("held") && error.contains("auth_mode"),
        "{error}"
    );
    assert!(!error.contains("check these addresses"), "{error}");
    assert_eq!(server.rcpt_commands(BOB), 0, "never tried");
}
