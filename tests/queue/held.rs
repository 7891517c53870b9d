//! A failure that is the admin's to fix for the whole sender mailbox (a refused permission,
//! an expired secret, authentication required) holds the mailbox instead of failing its
//! messages: they stay queued, the mailbox is paused, and they go once the admin has fixed
//! it — until their age limit. A permanent failure of the message itself still fails it.

use std::time::Duration;

use httpmock::prelude::*;
use mail_connector::queue::{EnqueueOptions, MessageId, Queue, State, Worker, WorkerReport};
use mail_connector::{
    Attachment, ConnectorSettings, Email, MailTransport, RecipientLimit, RetryPolicy,
};

use crate::helpers::{Backend, Scripted, graph_to, on_both_stores, open, row, smtp_to, transient};
use crate::support::smtp_server::{ServerOptions, TestServer};

on_both_stores!(
    a_refused_permission_holds_the_mailbox_until_an_admin_fixes_it,
    a_held_message_fails_at_its_age_limit,
    a_permanent_failure_of_the_message_is_failed_with_its_remedy,
    a_message_refused_after_its_data_fails_alone,
    a_draft_refused_its_permission_fails_alone,
    the_recipients_a_split_did_not_reach_are_held,
    holds_do_not_use_up_the_attempts,
    a_draft_refused_for_the_mailbox_holds_it,
    a_host_without_a_managed_identity_holds_the_mailbox,
);

/// No backoff: a held message waits the shortest hold (a second).
fn no_backoff(deadline: Duration) -> RetryPolicy {
    RetryPolicy {
        max_retries: 0,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        multiplier: 2.0,
        deadline: Some(deadline),
    }
}

fn unsigned(subject: &str) -> Email {
    Email::builder()
        .to("a@example.org")
        .subject(subject)
        .text("hello")
        .build()
        .unwrap()
}

fn graph_error(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}

/// Graph refusing every POST to a path holding `path` for the lack of a permission.
async fn access_denied<'a>(server: &'a MockServer, path: &str) -> httpmock::Mock<'a> {
    server
        .mock_async(|when, then| {
            when.method(POST).path_includes(path);
            then.status(403)
                .json_body(graph_error("ErrorAccessDenied", "Access is denied."));
        })
        .await
}

/// One `run_once` of a worker taking one message at a time, holds no shorter than a second.
async fn one_run(
    queue: &Queue,
    transport: std::sync::Arc<dyn MailTransport>,
    age_limit: Duration,
) -> WorkerReport {
    Worker::with_transport(queue, transport)
        .with_retry(no_backoff(age_limit))
        .with_concurrency(1)
        .run_once()
        .await
        .unwrap()
}

/// An email with an attachment too large for `sendMail`: Graph takes it through a draft.
fn large_email() -> Email {
    Email::builder()
        .to("a@example.org")
        .subject("large")
        .text("hello")
        .attachment(Attachment::from_bytes(
            "big.bin",
            vec![7u8; 4 * 1024 * 1024],
        ))
        .build()
        .unwrap()
}

async fn enqueue(queue: &Queue, subject: &str) -> MessageId {
    queue
        .enqueue(&unsigned(subject), EnqueueOptions::new())
        .await
        .unwrap()
}

async fn a_refused_permission_holds_the_mailbox_until_an_admin_fixes_it(backend: Backend) {
    let server = MockServer::start_async().await;
    let transport = graph_to(&server).await;
    let denied = access_denied(&server, "/sendMail").await;
    let (queue, _guard) = open(backend).await;
    let first = enqueue(&queue, "first").await;
    let second = enqueue(&queue, "second").await;
    // Attempts would have run out at once: a held message is not counted out.
    let worker = || {
        Worker::with_transport(&queue, transport.clone())
            .with_retry(no_backoff(Duration::from_secs(600)))
            .with_concurrency(1)
            .with_once_wait(Duration::from_secs(60))
    };
    let report = worker().run_once().await.unwrap();
    assert_eq!(
        (report.retried, report.held, report.failed),
        (1, 1, 0),
        "{report:?}"
    );
    // The run neither waits for the held message nor tries the mailbox's other one.
    assert_eq!(denied.calls_async().await, 1);
    let held = row(&queue, first.as_str()).await;
    assert_eq!((held.state, held.attempts), (State::Queued, 0), "{held:?}");
    let error = held.last_error.unwrap();
    for part in ["held", "ErrorAccessDenied", "Mail.Send"] {
        assert!(error.contains(part), "{part}: {error}");
    }
    let waiting = row(&queue, second.as_str()).await;
    assert_eq!((waiting.state, waiting.attempts), (State::Queued, 0));
    // `queue status` shows the mailbox paused.
    let stats = queue.stats().await.unwrap();
    let json = serde_json::to_value(&stats).unwrap();
    assert!(json["mailboxes"][0]["paused_until"].is_string(), "{json}");

    // The admin grants the permission: both go once the mailbox's pause is over.
    denied.delete_async().await;
    let sent = server
        .mock_async(|when, then| {
            when.method(POST).path_includes("/sendMail");
            then.status(202);
        })
        .await;
    let all_sent = async {
        loop {
            let rows = queue.list(Some(State::Sent), 10).await.unwrap();
            if rows.len() == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let resumed = worker().with_poll_interval(Duration::from_millis(20));
    let report = tokio::time::timeout(Duration::from_secs(30), resumed.run(all_sent))
        .await
        .expect("the held mailbox resumes after its pause")
        .unwrap();
    assert_eq!(report.sent, 2, "{report:?}");
    assert_eq!(sent.calls_async().await, 2);
}

async fn a_held_message_fails_at_its_age_limit(backend: Backend) {
    let server = MockServer::start_async().await;
    let transport = graph_to(&server).await;
    access_denied(&server, "/sendMail").await;
    let (queue, _guard) = open(backend).await;
    let id = enqueue(&queue, "too old").await;
    // The shortest hold (a second) would take it past its age limit.
    let report = one_run(&queue, transport, Duration::from_millis(500)).await;
    assert_eq!((report.failed, report.held), (1, 0), "{report:?}");
    let message = row(&queue, id.as_str()).await;
    assert_eq!(message.state, State::Failed, "{message:?}");
    let error = message.last_error.unwrap();
    assert!(error.contains("past the age limit"), "{error}");
    assert!(message.remedy.unwrap().contains("Mail.Send"));
}

async fn a_permanent_failure_of_the_message_is_failed_with_its_remedy(backend: Backend) {
    let server = MockServer::start_async().await;
    let transport = graph_to(&server).await;
    server
        .mock_async(|when, then| {
            when.method(POST).path_includes("/sendMail");
            then.status(400).json_body(graph_error(
                "ErrorMessageSizeExceeded",
                "The message exceeds the maximum supported size.",
            ));
        })
        .await;
    let (queue, _guard) = open(backend).await;
    let id = enqueue(&queue, "too big").await;
    one_run(&queue, transport, Duration::from_secs(600)).await;
    let message = row(&queue, id.as_str()).await;
    assert_eq!((message.state, message.attempts), (State::Failed, 1));
    let error = message.last_error.unwrap();
    assert!(error.contains("ErrorMessageSizeExceeded"), "{error}");
    assert!(message.remedy.unwrap().contains("MaxSendSize"));
}

async fn a_message_refused_after_its_data_fails_alone(backend: Backend) {
    // A 5.7.x after the data is about that message (here its content), not the mailbox:
    // holding it would stop the mailbox's other mail behind one the server never takes.
    let server = TestServer::start(ServerOptions {
        transient_data_failures: 1,
        transient_data_reply: "550 5.7.1 Message rejected as spam by Content Filtering".into(),
        ..ServerOptions::default()
    })
    .await;
    let smtp = smtp_to(&server)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let (queue, _guard) = open(backend).await;
    let spam = enqueue(&queue, "spam").await;
    let fine = enqueue(&queue, "fine").await;
    let report = Worker::new(&queue, smtp)
        .with_concurrency(1)
        .run_once()
        .await
        .unwrap();
    assert_eq!((report.failed, report.sent), (1, 1), "{report:?}");
    let refused = row(&queue, spam.as_str()).await;
    assert_eq!(refused.state, State::Failed, "{refused:?}");
    assert!(!refused.last_error.unwrap().contains("held"));
    assert_eq!(row(&queue, fine.as_str()).await.state, State::Sent);
}

async fn a_draft_refused_its_permission_fails_alone(backend: Backend) {
    // Only an email with large attachments goes through a draft, which needs
    // `Mail.ReadWrite`: without it, that email fails; the mailbox's others still go.
    let server = MockServer::start_async().await;
    let transport = graph_to(&server).await;
    let drafts = access_denied(&server, "/messages").await;
    let sent = server
        .mock_async(|when, then| {
            when.method(POST).path_includes("/sendMail");
            then.status(202);
        })
        .await;
    let (queue, _guard) = open(backend).await;
    let large = large_email();
    let large = queue.enqueue(&large, EnqueueOptions::new()).await.unwrap();
    let small = enqueue(&queue, "small").await;
    let report = one_run(&queue, transport, Duration::from_secs(600)).await;
    assert_eq!((report.failed, report.sent), (1, 1), "{report:?}");
    assert_eq!(
        (drafts.calls_async().await, sent.calls_async().await),
        (1, 1)
    );
    let refused = row(&queue, large.as_str()).await;
    assert_eq!(refused.state, State::Failed, "{refused:?}");
    assert!(refused.remedy.unwrap().contains("Mail.ReadWrite"));
    assert_eq!(row(&queue, small.as_str()).await.state, State::Sent);
}

async fn the_recipients_a_split_did_not_reach_are_held(backend: Backend) {
    // A recipient limit of 1: Ann's part goes, then Graph refuses Bob's for a permission.
    // Ann is done; Bob waits for the admin with the mailbox, not failed.
    let server = MockServer::start_async().await;
    let transport = graph_to(&server).await;
    let to_ann = server
        .mock_async(|when, then| {
            when.method(POST)
                .path_includes("/sendMail")
                .body_includes("ann@example.org");
            then.status(202);
        })
        .await;
    let to_bob = server
        .mock_async(|when, then| {
            when.method(POST)
                .path_includes("/sendMail")
                .body_includes("bob@example.org");
            then.status(403)
                .json_body(graph_error("ErrorAccessDenied", "Access is denied."));
        })
        .await;
    let (queue, _guard) = open(backend).await;
    let email = Email::builder()
        .to("ann@example.org")
        .to("bob@example.org")
        .subject("both")
        .text("hello")
        .build()
        .unwrap();
    let id = queue.enqueue(&email, EnqueueOptions::new()).await.unwrap();
    let report = Worker::new(&queue, RecipientLimit::new(transport, 1))
        .with_retry(no_backoff(Duration::from_secs(600)))
        .with_concurrency(1)
        .with_once_wait(Duration::from_secs(60))
        .run_once()
        .await
        .unwrap();
    assert_eq!((report.partial, report.held), (1, 1), "{report:?}");
    assert_eq!(
        (to_ann.calls_async().await, to_bob.calls_async().await),
        (1, 1)
    );
    let rest = row(&queue, id.as_str()).await;
    assert_eq!(rest.state, State::Queued, "{rest:?}");
    assert_eq!(rest.recipients, "To: bob@example.org");
    let error = rest.last_error.unwrap();
    assert!(
        error.contains("held") && error.contains("Mail.Send"),
        "{error}"
    );
    assert!(rest.report.unwrap().contains("ann@example.org"));
    let stats = queue.stats().await.unwrap();
    assert!(stats.mailboxes[0].paused_until.is_some(), "{stats:?}");
}

async fn holds_do_not_use_up_the_attempts(backend: Backend) {
    // Two holds, then (the admin's fix in) a transient failure and a success: with two
    // attempts allowed, the holds must not have spent them.
    let admin = || ConnectorSettings::from_toml_str("auth_mode = \"kerberos\"").unwrap_err();
    let transport = Scripted::new(vec![Err(admin()), Err(admin()), Err(transient()), Ok(())]);
    let (queue, _guard) = open(backend).await;
    let id = enqueue(&queue, "patient").await;
    let mut policy = no_backoff(Duration::from_secs(600));
    policy.max_retries = 1;
    let sent = async {
        while row(&queue, id.as_str()).await.state != State::Sent {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let worker = Worker::new(&queue, transport.clone())
        .with_retry(policy)
        .with_poll_interval(Duration::from_millis(20));
    let report = tokio::time::timeout(Duration::from_secs(30), worker.run(sent))
        .await
        .expect("sent once the holds are over")
        .unwrap();
    assert_eq!((report.held, report.sent), (2, 1), "{report:?}");
    assert_eq!(transport.seen().len(), 4);
    let message = row(&queue, id.as_str()).await;
    assert_eq!(
        message.attempts, 2,
        "the holds are not counted: {message:?}"
    );
}

async fn a_draft_refused_for_the_mailbox_holds_it(backend: Backend) {
    // A wrong User Name fails the draft as it fails `sendMail`: the mailbox's, held.
    let server = MockServer::start_async().await;
    let transport = graph_to(&server).await;
    let drafts = server
        .mock_async(|when, then| {
            when.method(POST).path_includes("/messages");
            then.status(404).json_body(graph_error(
                "ErrorInvalidUser",
                "The requested user 'no-reply@contoso.com' is invalid.",
            ));
        })
        .await;
    let (queue, _guard) = open(backend).await;
    let large = large_email();
    let large = queue.enqueue(&large, EnqueueOptions::new()).await.unwrap();
    let report = one_run(&queue, transport, Duration::from_secs(600)).await;
    assert_eq!((report.held, report.failed), (1, 0), "{report:?}");
    assert_eq!(drafts.calls_async().await, 1);
    let held = row(&queue, large.as_str()).await;
    assert_eq!(held.state, State::Queued, "{held:?}");
    assert!(held.last_error.unwrap().contains("user_name"));
}

async fn a_host_without_a_managed_identity_holds_the_mailbox(backend: Backend) {
    // No identity endpoint on this host (a port nothing listens on): no token for any
    // message until the admin enables the identity, so the mailbox waits.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let settings = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
         oauth_credential = \"managed_identity\"\n\
         managed_identity_endpoint = \"http://{closed}/metadata/identity/oauth2/token\"\n"
    ))
    .unwrap();
    let transport = settings.build().unwrap();
    let (queue, _guard) = open(backend).await;
    let id = enqueue(&queue, "no identity").await;
    let report = one_run(&queue, transport, Duration::from_secs(600)).await;
    assert_eq!((report.held, report.failed), (1, 0), "{report:?}");
    let held = row(&queue, id.as_str()).await;
    assert_eq!(held.state, State::Queued, "{held:?}");
    let error = held.last_error.unwrap();
    assert!(error.contains("no managed identity"), "{error}");
}
