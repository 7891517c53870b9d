//! A partial SMTP delivery with recipients refused permanently (550) and temporarily (450):
//! the accepted recipient is done, the permanently refused one becomes a `failed` message of
//! its own and is never tried again, the temporarily refused one is retried — in either
//! order of the refusals, on both stores. A later part refused for the sender is no
//! recipient's refusal: the rest is not retried.

use std::time::Duration;

use mail_connector::queue::{EnqueueOptions, MessageSummary, Queue, State, Worker};
use mail_connector::{Email, RecipientLimit, RetryPolicy, SmtpTransport};

use crate::helpers::{Backend, on_both_stores, open, row, smtp_to};
use crate::support::smtp_server::{RcptReply, ServerOptions, TestServer};

on_both_stores!(
    a_permanent_refusal_before_a_temporary_one_fails_only_its_recipient,
    a_temporary_refusal_before_a_permanent_one_fails_only_the_permanent_one,
    a_permanent_refusal_does_not_keep_the_parts_after_it_from_going,
    a_recipient_limit_of_one_sends_the_parts_after_a_refused_one,
    a_part_refused_wholly_fails_only_its_permanent_refusals,
    a_later_part_refused_for_the_sender_is_not_retried,
    the_data_refused_for_good_after_a_refusal_is_not_retried,
);

const GONE: &str = "gone@example.org";
const BUSY: &str = "busy@example.org";

/// `gone` is refused with 550 at every RCPT TO, `busy` with 450 at its first only.
async fn server() -> TestServer {
    TestServer::start(ServerOptions {
        rcpt_replies: vec![
            RcptReply::always(GONE, "550 5.1.1 User unknown"),
            RcptReply::once(BUSY, "450 4.2.1 Mailbox busy, try later"),
        ],
        ..ServerOptions::default()
    })
    .await
}

fn smtp(server: &TestServer) -> SmtpTransport {
    smtp_to(server).build().unwrap()
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_retries: 5,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        multiplier: 2.0,
        deadline: Some(Duration::from_secs(600)),
    }
}

fn email_to(to: &[&str]) -> Email {
    to.iter()
        .fold(Email::builder().from("no-reply@example.org"), |b, to| {
            b.to(*to)
        })
        .subject("mixed")
        .text("hello")
        .build()
        .unwrap()
}

/// Every recipient named in a row's report.
fn reported(message: &MessageSummary) -> Vec<String> {
    let report: serde_json::Value =
        serde_json::from_str(message.report.as_deref().expect("a report")).unwrap();
    report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["recipients"].as_array().unwrap())
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

/// The one `failed` message: a split of `parent` holding `GONE` alone.
async fn assert_gone_failed_alone(queue: &Queue, parent: &str) {
    let failed = queue.list(Some(State::Failed), 10).await.unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let failed = &failed[0];
    assert_ne!(failed.id, parent);
    assert_eq!(failed.parent_id.as_deref(), Some(parent));
    assert_eq!(failed.recipients, format!("To: {GONE}"));
    let error = failed.last_error.as_deref().unwrap();
    assert!(error.contains("refused permanently"), "{error}");
    // The server's reply to it, whichever refusal was the error's source.
    assert!(
        error.ends_with(": gone@example.org: 550 5.1.1 User unknown"),
        "{error}"
    );
    let remedy = failed.remedy.as_deref().unwrap();
    assert!(remedy.contains("check these addresses"), "{remedy}");
    assert!(remedy.contains("do not resend to them"), "{remedy}");
    assert!(
        queue
            .list(Some(State::Uncertain), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        queue
            .list(Some(State::Queued), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn deliver_mixed(backend: Backend, order: [&str; 3]) {
    let server = server().await;
    let (queue, _guard) = open(backend).await;
    let id = queue
        .enqueue(&email_to(&order), EnqueueOptions::new())
        .await
        .unwrap();
    let report = Worker::new(&queue, smtp(&server))
        .with_retry(fast())
        .run_once()
        .await
        .unwrap();
    assert_eq!((report.partial, report.sent), (1, 1), "{report:?}");

    let original = row(&queue, id.as_str()).await;
    assert_eq!(original.state, State::Sent, "{original:?}");
    assert_eq!(original.recipients, format!("To: {BUSY}"));
    let reported = reported(&original);
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert!(reported[0].contains("ann@example.org"), "{reported:?}");
    assert!(reported[1].contains(BUSY), "{reported:?}");
    assert_gone_failed_alone(&queue, id.as_str()).await;

    // At the server: ann once, busy twice (refused, then accepted), gone once only.
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].rcpt_to, ["ann@example.org"]);
    assert_eq!(messages[1].rcpt_to, [BUSY]);
    assert_eq!(server.rcpt_commands(GONE), 1, "never tried again");
    assert_eq!(server.rcpt_commands(BUSY), 2);
    assert_eq!(server.rcpt_commands("ann@example.org"), 1);
}

async fn a_permanent_refusal_before_a_temporary_one_fails_only_its_recipient(backend: Backend) {
    deliver_mixed(backend, ["ann@example.org", GONE, BUSY]).await;
}

async fn a_temporary_refusal_before_a_permanent_one_fails_only_the_permanent_one(backend: Backend) {
    deliver_mixed(backend, ["ann@example.org", BUSY, GONE]).await;
}

/// ann, gone and cy through a recipient limit of `limit` (with gone in ann's part or not):
/// the 550 for gone does not keep cy's part from going, and the message is left `failed`
/// for gone alone, its report naming ann and cy. The server, for what else to check.
async fn ann_gone_cy_limited_to(backend: Backend, limit: usize) -> TestServer {
    let server = server().await;
    let (queue, _guard) = open(backend).await;
    let id = queue
        .enqueue(
            &email_to(&["ann@example.org", GONE, "cy@example.org"]),
            EnqueueOptions::new(),
        )
        .await
        .unwrap();
    Worker::new(&queue, RecipientLimit::new(smtp(&server), limit))
        .with_retry(fast())
        .run_once()
        .await
        .unwrap();
    let original = row(&queue, id.as_str()).await;
    assert_eq!(original.state, State::Failed, "{original:?}");
    assert_eq!(original.recipients, format!("To: {GONE}"));
    let reported = reported(&original);
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert!(reported[0].contains("ann@example.org"), "{reported:?}");
    assert!(reported[1].contains("cy@example.org"), "{reported:?}");
    let error = original.last_error.as_deref().unwrap();
    assert!(
        error.ends_with(": gone@example.org: 550 5.1.1 User unknown"),
        "{error}"
    );
    let remedy = original.remedy.as_deref().unwrap();
    assert!(remedy.contains("check these addresses"), "{remedy}");
    assert_eq!(
        queue.list(None, 10).await.unwrap().len(),
        1,
        "nothing split off"
    );
    assert_eq!(server.rcpt_commands(GONE), 1);
    assert_eq!(server.rcpt_commands("cy@example.org"), 1);
    server
}

/// Two recipients per message: the first part is [ann, gone], and the 550 for gone does not
/// keep cy's part from going.
async fn a_permanent_refusal_does_not_keep_the_parts_after_it_from_going(backend: Backend) {
    ann_gone_cy_limited_to(backend, 2).await;
}

/// One recipient per message: the part of gone alone is refused with a plain 550; cy's part
/// after it still goes.
async fn a_recipient_limit_of_one_sends_the_parts_after_a_refused_one(backend: Backend) {
    let server = ann_gone_cy_limited_to(backend, 1).await;
    assert_eq!(server.rcpt_commands("ann@example.org"), 1);
}

/// Two per message, the first part [gone, busy] refused wholly (550, 450): cy's part still
/// goes; only gone fails, and busy (refused for now) is retried and gets it.
async fn a_part_refused_wholly_fails_only_its_permanent_refusals(backend: Backend) {
    let server = server().await;
    let (queue, _guard) = open(backend).await;
    let id = queue
        .enqueue(
            &email_to(&[GONE, BUSY, "cy@example.org"]),
            EnqueueOptions::new(),
        )
        .await
        .unwrap();
    Worker::new(&queue, RecipientLimit::new(smtp(&server), 2))
        .with_retry(fast())
        .run_once()
        .await
        .unwrap();
    let original = row(&queue, id.as_str()).await;
    assert_eq!(original.state, State::Sent, "{original:?}");
    assert_eq!(original.recipients, format!("To: {BUSY}"));
    let reported = reported(&original);
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert!(reported[0].contains("cy@example.org"), "{reported:?}");
    assert!(reported[1].contains(BUSY), "{reported:?}");
    assert_gone_failed_alone(&queue, id.as_str()).await;
    assert_eq!(server.rcpt_commands(GONE), 1, "never tried again");
    assert_eq!(server.rcpt_commands(BUSY), 2);
    assert_eq!(server.rcpt_commands("cy@example.org"), 1);
    // cy at once, busy at the retry.
    let delivered: Vec<Vec<String>> = server.messages().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(delivered, [["cy@example.org"], [BUSY]]);
}

/// One per message: gone's part is refused at RCPT TO (550), cy's at the end of its data
/// for the sender (Exchange's daily limit, 554 5.2.0). That refusal is not gone's: retrying
/// cy would fail the same way, so cy fails at once, with the sender's fix.
async fn a_later_part_refused_for_the_sender_is_not_retried(backend: Backend) {
    let server = TestServer::start(ServerOptions {
        rcpt_replies: vec![RcptReply::always(GONE, "550 5.1.1 User unknown")],
        transient_data_failures: 1,
        transient_data_reply:
            "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException".into(),
        ..ServerOptions::default()
    })
    .await;
    let (queue, _guard) = open(backend).await;
    let id = queue
        .enqueue(&email_to(&[GONE, "cy@example.org"]), EnqueueOptions::new())
        .await
        .unwrap();
    Worker::new(&queue, RecipientLimit::new(smtp(&server), 1))
        .with_retry(fast())
        .run_once()
        .await
        .unwrap();
    let original = row(&queue, id.as_str()).await;
    assert_eq!(original.state, State::Failed, "{original:?}");
    assert_eq!(original.recipients, "To: cy@example.org");
    let error = original.last_error.as_deref().unwrap();
    assert!(error.contains("554 5.2.0"), "{error}");
    assert_eq!(
        server.rcpt_commands("cy@example.org"),
        1,
        "never tried again"
    );
    assert!(server.messages().is_empty());
}

/// ann accepted and gone refused (550) at RCPT TO, then the data refused for good (554): the
/// error keeps gone's refusal, and nobody is tried again — ann's copy would be refused the
/// same way, gone's too.
async fn the_data_refused_for_good_after_a_refusal_is_not_retried(backend: Backend) {
    let server = TestServer::start(ServerOptions {
        rcpt_replies: vec![RcptReply::always(GONE, "550 5.1.1 User unknown")],
        transient_data_failures: 100,
        transient_data_reply: "554 5.6.0 Message content rejected".into(),
        ..ServerOptions::default()
    })
    .await;
    let (queue, _guard) = open(backend).await;
    queue
        .enqueue(&email_to(&["ann@example.org", GONE]), EnqueueOptions::new())
        .await
        .unwrap();
    Worker::new(&queue, smtp(&server))
        .with_retry(fast())
        .run_once()
        .await
        .unwrap();
    let rows = queue.list(None, 10).await.unwrap();
    let states: Vec<State> = rows.iter().map(|r| r.state).collect();
    assert!(states.iter().all(|s| *s == State::Failed), "{rows:?}");
    let errors: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.last_error.as_deref())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Message content rejected")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("gone@example.org: 550 5.1.1 User unknown")),
        "{errors:?}"
    );
    assert_eq!(server.mail_from_commands(), 1);
    assert!(server.messages().is_empty());
}
