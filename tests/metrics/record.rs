//! Counters and histograms recorded by real sends.

use std::future::Future;

use httpmock::{Method::POST, MockServer};
use mail_connector::metrics::{
    MESSAGES_FAILED, MESSAGES_SENT, MESSAGES_UNCERTAIN, RETRIES, SEND_DURATION,
    THROTTLE_WAIT_DURATION, THROTTLE_WAITS, TOKEN_FAILURES, TOKEN_FETCHES,
};
use mail_connector::{
    ConnectorSettings, Email, GraphTransport, MailTransport, OutboxTransport, Secret, SmtpTransport,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;

use crate::support::smtp_server::{RcptReply, ServerOptions, TestServer};
use crate::support::*;

/// One recorded metric: its name, its labels (sorted) and its value.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: DebugValue,
}

/// Runs `test` on a current-thread runtime with a recorder of its own, and returns what
/// was recorded.
pub(crate) fn recorded<F: Future<Output = ()>>(test: impl FnOnce() -> F) -> Vec<Recorded> {
    let recorder = DebuggingRecorder::new();
    let snapshotter: Snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(test());
    });
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            Recorded {
                name: key.name().to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    labels
}

/// The counter `name` with exactly these labels (0 when it was never recorded).
pub(crate) fn counter(all: &[Recorded], name: &str, pairs: &[(&str, &str)]) -> u64 {
    let wanted = labels(pairs);
    all.iter()
        .filter(|r| r.name == name && r.labels == wanted)
        .map(|r| match r.value {
            DebugValue::Counter(n) => n,
            ref other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

/// The counter `name` summed over all its label sets (0 when it was never recorded).
pub(crate) fn counter_total(all: &[Recorded], name: &str) -> u64 {
    all.iter()
        .filter(|r| r.name == name)
        .map(|r| match r.value {
            DebugValue::Counter(n) => n,
            ref other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

/// The values recorded in the histogram `name` with exactly these labels.
pub(crate) fn histogram(all: &[Recorded], name: &str, pairs: &[(&str, &str)]) -> Vec<f64> {
    let wanted = labels(pairs);
    all.iter()
        .filter(|r| r.name == name && r.labels == wanted)
        .flat_map(|r| match &r.value {
            DebugValue::Histogram(values) => {
                values.iter().map(|v| v.into_inner()).collect::<Vec<f64>>()
            }
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .collect()
}

/// No recorded name or label value holds a recipient, a subject, a body or a secret.
pub(crate) fn assert_nothing_private(all: &[Recorded], private: &[&str]) {
    let text = format!("{all:?}");
    assert_no_secrets(&text, private);
}

pub(crate) fn email() -> Email {
    Email::builder()
        .to("Samantha Booth <samanthab@contoso.com>")
        .bcc("hidden-audit@contoso.com")
        .subject("Quarterly numbers")
        .text("The body is private.")
        .build()
        .unwrap()
}

pub(crate) const PRIVATE: &[&str] = &[
    "samanthab",
    "hidden-audit",
    "Quarterly numbers",
    "The body is private",
    SECRET,
    "the-access-token",
];

fn graph_settings(server: &MockServer) -> ConnectorSettings {
    let mut settings = secret_settings(server, TENANT);
    settings.graph_endpoint = Some(server.base_url());
    settings
}

pub(crate) fn graph(server: &MockServer) -> GraphTransport {
    graph_settings(server)
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .build()
        .unwrap()
}

pub(crate) const SEND_PATH: &str = "/v1.0/users/no-reply@contoso.com/sendMail";

#[test]
fn graph_counts_a_sent_message_its_retry_and_the_throttling_wait() {
    let all = recorded(|| async {
        let server = MockServer::start_async().await;
        let token = server.mock(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200)
                .json_body(token_body("the-access-token", 3600));
        });
        let send = server.mock(|when, then| {
            when.method(POST).path(SEND_PATH);
            then.respond_with(in_sequence(vec![
                httpmock::HttpMockResponse::builder()
                    .status(429)
                    .header("retry-after", "0")
                    .build(),
                httpmock::HttpMockResponse::builder()
                    .status(202)
                    .header("request-id", "req-1")
                    .build(),
            ]));
        });
        let transport = graph(&server);
        transport.send(&email()).await.unwrap();
        assert_eq!(send.calls(), 2);
        assert_eq!(token.calls(), 1);
    });
    let graph = [("transport", "graph"), ("mailbox", "no-reply@contoso.com")];
    assert_eq!(counter(&all, MESSAGES_SENT, &graph), 1);
    assert_eq!(counter(&all, RETRIES, &[("transport", "graph")]), 1);
    assert_eq!(counter(&all, THROTTLE_WAITS, &[("transport", "graph")]), 1);
    assert_eq!(
        histogram(&all, THROTTLE_WAIT_DURATION, &[("transport", "graph")]).len(),
        1
    );
    let took = histogram(
        &all,
        SEND_DURATION,
        &[
            ("transport", "graph"),
            ("mailbox", "no-reply@contoso.com"),
            ("outcome", "sent"),
        ],
    );
    assert_eq!(took.len(), 1);
    assert!(took[0] > 0.0);
    assert_eq!(counter(&all, TOKEN_FETCHES, &[("credential", "secret")]), 1);
    assert_eq!(
        counter(&all, TOKEN_FAILURES, &[("credential", "secret")]),
        0
    );
    assert_eq!(counter_total(&all, MESSAGES_FAILED), 0);
    assert_eq!(counter_total(&all, MESSAGES_UNCERTAIN), 0);
    assert_nothing_private(&all, PRIVATE);
}

#[test]
fn graph_counts_uncertain_and_permanent_failures_apart() {
    let all = recorded(|| async {
        let server = MockServer::start_async().await;
        server.mock(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200)
                .json_body(token_body("the-access-token", 3600));
        });
        server.mock(|when, then| {
            when.method(POST).path(SEND_PATH).body_includes("Quarterly");
            // A 502 after the request was sent: Graph may have accepted it.
            then.status(502);
        });
        server.mock(|when, then| {
            when.method(POST).path(SEND_PATH).body_includes("Refused");
            then.status(403).json_body(json!({"error": {
                "code": "ErrorAccessDenied", "message": "Access is denied."}}));
        });
        let transport = graph(&server);
        let uncertain = transport.send(&email()).await.unwrap_err();
        assert_eq!(uncertain.delivery(), mail_connector::Delivery::Uncertain);
        let refused = Email::builder()
            .to("ann@example.org")
            .subject("Refused")
            .build()
            .unwrap();
        let error = transport.send(&refused).await.unwrap_err();
        assert!(!error.is_transient());
    });
    let graph = [("transport", "graph"), ("mailbox", "no-reply@contoso.com")];
    assert_eq!(counter(&all, MESSAGES_UNCERTAIN, &graph), 1);
    assert_eq!(
        counter(
            &all,
            MESSAGES_FAILED,
            &[
                ("transport", "graph"),
                ("mailbox", "no-reply@contoso.com"),
                ("error", "permanent")
            ]
        ),
        1
    );
    assert_eq!(counter(&all, MESSAGES_SENT, &graph), 0);
    assert_eq!(counter(&all, RETRIES, &[("transport", "graph")]), 0);
    let uncertain = [
        ("transport", "graph"),
        ("mailbox", "no-reply@contoso.com"),
        ("outcome", "uncertain"),
    ];
    assert_eq!(histogram(&all, SEND_DURATION, &uncertain).len(), 1);
    assert_nothing_private(&all, PRIVATE);
}

#[test]
fn a_refused_token_counts_as_a_token_failure_and_a_failed_message() {
    let all = recorded(|| async {
        let server = MockServer::start_async().await;
        let token = server.mock(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(401)
                .json_body(entra_error("invalid_client", 7000215));
        });
        let transport = graph(&server);
        let error = transport.send(&email()).await.unwrap_err();
        assert!(error.is_auth(), "{error:?}");
        assert_eq!(token.calls(), 1);
    });
    assert_eq!(counter(&all, TOKEN_FETCHES, &[("credential", "secret")]), 1);
    assert_eq!(
        counter(&all, TOKEN_FAILURES, &[("credential", "secret")]),
        1
    );
    assert_eq!(
        counter(
            &all,
            MESSAGES_FAILED,
            &[
                ("transport", "graph"),
                ("mailbox", "no-reply@contoso.com"),
                ("error", "permanent")
            ]
        ),
        1
    );
    assert_nothing_private(&all, PRIVATE);
}

/// Both recipients refused `432 4.3.2` at `RCPT TO` once: nothing delivered, a partial
/// delivery whose source is the throttling reply, retried as a whole after one counted wait.
#[test]
fn smtp_counts_a_throttle_wait_when_every_recipient_is_refused_432() {
    let all = recorded(|| async {
        let busy = "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded";
        let server = TestServer::start(ServerOptions {
            rcpt_replies: vec![
                RcptReply::once("samanthab@contoso.com", busy),
                RcptReply::once("hidden-audit@contoso.com", busy),
            ],
            ..ServerOptions::default()
        })
        .await;
        let transport = smtp_to(&server, "no-reply@example.org", "correct horse");
        transport.send(&email()).await.unwrap();
        assert_eq!(server.mail_from_commands(), 2);
        assert_eq!(server.messages()[0].rcpt_to.len(), 2);
    });
    let smtp = [("transport", "smtp"), ("mailbox", "no-reply@example.org")];
    assert_eq!(counter(&all, MESSAGES_SENT, &smtp), 1);
    assert_eq!(counter(&all, RETRIES, &[("transport", "smtp")]), 1);
    assert_eq!(counter(&all, THROTTLE_WAITS, &[("transport", "smtp")]), 1);
}

#[test]
fn smtp_counts_a_message_sent_after_a_throttled_attempt() {
    let all = recorded(|| async {
        let server = TestServer::start(ServerOptions {
            // `432 4.3.2` to the end of the data once: Exchange's throttling.
            transient_data_failures: 1,
            ..ServerOptions::default()
        })
        .await;
        let transport = smtp_to(&server, "no-reply@example.org", "correct horse");
        transport.send(&email()).await.unwrap();
        assert_eq!(server.messages().len(), 1);
        assert_eq!(server.rejected_data(), 1);
    });
    let smtp = [("transport", "smtp"), ("mailbox", "no-reply@example.org")];
    assert_eq!(counter(&all, MESSAGES_SENT, &smtp), 1);
    assert_eq!(counter(&all, RETRIES, &[("transport", "smtp")]), 1);
    assert_eq!(counter(&all, THROTTLE_WAITS, &[("transport", "smtp")]), 1);
    let sent = [
        ("transport", "smtp"),
        ("mailbox", "no-reply@example.org"),
        ("outcome", "sent"),
    ];
    assert_eq!(histogram(&all, SEND_DURATION, &sent).len(), 1);
    assert_eq!(counter_total(&all, MESSAGES_FAILED), 0);
    assert_eq!(counter_total(&all, MESSAGES_UNCERTAIN), 0);
    assert_nothing_private(&all, &PRIVATE[..4]);
}

/// Only load counts as throttling: a `432` reply, or the enhanced code `4.3.2` under
/// another reply code; any other temporary refusal is retried without a throttling wait.
#[test]
fn smtp_counts_only_throttling_replies_as_throttle_waits() {
    for (reply, throttled) in [
        (
            "451 4.7.0 Temporary server error, please try again later",
            0,
        ),
        ("432 Too many connections", 1),
        ("452 4.3.2 Sender thread limit exceeded", 1),
    ] {
        let all = recorded(|| async {
            let server = TestServer::start(ServerOptions {
                transient_mail_failures: 1,
                transient_reply: reply.into(),
                ..ServerOptions::default()
            })
            .await;
            let transport = smtp_to(&server, "no-reply@example.org", "correct horse");
            transport.send(&email()).await.unwrap();
            assert_eq!(server.messages().len(), 1, "{reply}");
        });
        let smtp = [("transport", "smtp")];
        assert_eq!(counter(&all, RETRIES, &smtp), 1, "{reply}");
        assert_eq!(counter(&all, THROTTLE_WAITS, &smtp), throttled, "{reply}");
    }
}

#[test]
fn smtp_counts_a_refused_login_as_a_permanent_failure() {
    let all = recorded(|| async {
        let server = TestServer::start(ServerOptions::default()).await;
        let transport = smtp_to(&server, "no-reply@example.org", SECRET);
        let error = transport.send(&email()).await.unwrap_err();
        assert!(error.is_auth(), "{error:?}");
    });
    let failed = [
        ("transport", "smtp"),
        ("mailbox", "no-reply@example.org"),
        ("error", "permanent"),
    ];
    assert_eq!(counter(&all, MESSAGES_FAILED, &failed), 1);
    assert_eq!(counter(&all, RETRIES, &[("transport", "smtp")]), 0);
    assert_nothing_private(&all, PRIVATE);
}

#[test]
fn the_outbox_counts_its_messages_by_sender() {
    let dir = tempfile::tempdir().unwrap();
    let all = recorded(|| async {
        let outbox =
            OutboxTransport::new(dir.path()).with_sender("alerts@example.org".parse().unwrap());
        outbox.send(&email()).await.unwrap();
        outbox.send(&email()).await.unwrap();
        // No sender at all: refused before anything is written, and counted as failed.
        let bare = OutboxTransport::new(dir.path());
        assert!(bare.send(&email()).await.is_err());
    });
    let outbox = [("transport", "outbox"), ("mailbox", "alerts@example.org")];
    assert_eq!(counter(&all, MESSAGES_SENT, &outbox), 2);
    assert_eq!(
        counter(
            &all,
            MESSAGES_FAILED,
            &[
                ("transport", "outbox"),
                ("mailbox", "unset"),
                ("error", "permanent")
            ]
        ),
        1
    );
    assert_nothing_private(&all, PRIVATE);
}

/// An SMTP transport to the fixture `server` (STARTTLS, trusting its CA), logging in as
/// `mailbox` with `password`, and retrying 3 times without waiting long.
pub(crate) fn smtp_to(server: &TestServer, mailbox: &str, password: &str) -> SmtpTransport {
    SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(mailbox, Secret::new(password))
        .retry_policy(fast_retry(3))
        .build()
        .unwrap()
}
