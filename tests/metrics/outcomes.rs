//! The ends of a send that are neither plainly sent nor plainly failed: an SMTP email that
//! some recipients got and others not, a send its caller abandoned, and Graph's re-send with
//! a fresh token after a 401.

use httpmock::{HttpMockResponse, Method::POST, MockServer};
use mail_connector::metrics::{
    MESSAGES_FAILED, MESSAGES_SENT, MESSAGES_UNCERTAIN, RETRIES, SEND_DURATION,
};
use mail_connector::{Error, GraphTransport, MailTransport};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use crate::record::{
    PRIVATE, assert_nothing_private, counter, counter_total, email, histogram, recorded, smtp_to,
};
use crate::support::smtp_server::{ServerOptions, TestServer};
use crate::support::*;

/// The log line that ends the span with `marker` and says `what` ("send finished").
fn span_line(logs: &LogBuffer, what: &str, marker: &str) -> String {
    let text = logs.text();
    text.lines()
        .find(|line| line.contains(what) && line.contains(marker))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no `{what}` line with {marker} in:\n{text}"))
}

/// A Graph transport sending as `mailbox`, with its token from `server` and Graph at
/// `endpoint`.
fn graph_at(server: &MockServer, endpoint: String, mailbox: &str) -> GraphTransport {
    server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.status(200)
            .json_body(token_body("the-access-token", 3600));
    });
    let mut settings = secret_settings(server, TENANT);
    settings.user_name = Some(mailbox.to_owned());
    settings.graph_endpoint = Some(endpoint);
    settings
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .build()
        .unwrap()
}

#[test]
fn a_partly_delivered_smtp_email_counts_as_sent_for_the_delivered_part() {
    let (logs, _guard) = capture_logs();
    let mut port = 0;
    let mut id = String::new();
    let all = recorded(|| async {
        let server = TestServer::start(ServerOptions {
            refused: vec!["hidden-audit@contoso.com".into()],
            ..ServerOptions::default()
        })
        .await;
        port = server.port();
        let error = smtp_to(&server, "no-reply@example.org", "correct horse")
            .send(&email())
            .await
            .unwrap_err();
        let Error::PartialDelivery {
            delivered,
            not_sent,
            ..
        } = &error
        else {
            panic!("expected a partial delivery: {error:?}");
        };
        assert_eq!(not_sent.len(), 1);
        id = delivered.messages[0]
            .id
            .clone()
            .expect("an id for the delivered part");
        assert_eq!(server.messages().len(), 1);
    });
    let smtp = [("transport", "smtp"), ("mailbox", "no-reply@example.org")];
    assert_eq!(counter(&all, MESSAGES_SENT, &smtp), 1);
    let refused = [
        ("transport", "smtp"),
        ("mailbox", "no-reply@example.org"),
        ("error", "permanent"),
    ];
    assert_eq!(counter(&all, MESSAGES_FAILED, &refused), 1);
    assert_eq!(counter_total(&all, MESSAGES_FAILED), 1);
    assert_eq!(counter_total(&all, MESSAGES_UNCERTAIN), 0);
    let partial = [
        ("transport", "smtp"),
        ("mailbox", "no-reply@example.org"),
        ("outcome", "partial"),
    ];
    assert_eq!(histogram(&all, SEND_DURATION, &partial).len(), 1);
    assert_nothing_private(&all, PRIVATE);
    let line = span_line(&logs, "send finished", &format!("port={port}"));
    assert!(line.contains("outcome=\"partial\""), "{line}");
    assert!(line.contains(&format!("message_id=\"{id}\"")), "{line}");
}

#[test]
fn a_send_abandoned_by_its_caller_counts_as_uncertain() {
    let (logs, _guard) = capture_logs();
    let mailbox = "abandoned@contoso.com";
    let all = recorded(|| async {
        let server = MockServer::start_async().await;
        // A Graph that receives the request and holds it until the test lets go.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (arrived, request_arrived) = oneshot::channel::<()>();
        let (release, released) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 1024];
            assert!(stream.read(&mut buffer).await.unwrap() > 0);
            arrived.send(()).unwrap();
            let _ = released.await;
        });
        let transport = graph_at(&server, endpoint, mailbox);
        let message = email();
        tokio::select! {
            _ = transport.send(&message) => panic!("a held request cannot finish"),
            _ = request_arrived => {}
        }
        // The send future is dropped: its caller gave up, as on a timeout.
        let _ = release.send(());
    });
    let graph = [("transport", "graph"), ("mailbox", mailbox)];
    assert_eq!(counter(&all, MESSAGES_UNCERTAIN, &graph), 1);
    assert_eq!(counter_total(&all, MESSAGES_SENT), 0);
    assert_eq!(counter_total(&all, MESSAGES_FAILED), 0);
    let uncertain = [
        ("transport", "graph"),
        ("mailbox", mailbox),
        ("outcome", "uncertain"),
    ];
    assert_eq!(histogram(&all, SEND_DURATION, &uncertain).len(), 1);
    let line = span_line(&logs, "send abandoned", &format!("mailbox={mailbox}"));
    assert!(line.contains("outcome=\"uncertain\""), "{line}");
    assert!(line.contains("duration_ms="), "{line}");
    assert!(!line.contains("message_id="), "{line}");
}

#[test]
fn a_resend_with_a_fresh_token_counts_as_an_attempt_not_a_retry() {
    let (logs, _guard) = capture_logs();
    let mailbox = "fresh-token@contoso.com";
    let all = recorded(|| async {
        let server = MockServer::start_async().await;
        let send = server.mock(|when, then| {
            when.method(POST)
                .path(format!("/v1.0/users/{mailbox}/sendMail"));
            then.respond_with(in_sequence(vec![
                HttpMockResponse::builder().status(401).build(),
                HttpMockResponse::builder()
                    .status(202)
                    .header("request-id", "req-after-401")
                    .build(),
            ]));
        });
        graph_at(&server, server.base_url(), mailbox)
            .send(&email())
            .await
            .unwrap();
        assert_eq!(send.calls(), 2);
    });
    assert_eq!(
        counter(
            &all,
            MESSAGES_SENT,
            &[("transport", "graph"), ("mailbox", mailbox)]
        ),
        1
    );
    assert_eq!(counter_total(&all, RETRIES), 0);
    let line = span_line(&logs, "send finished", &format!("mailbox={mailbox}"));
    assert!(line.contains("message_id=\"req-after-401\""), "{line}");
    assert!(line.contains("attempts=2"), "{line}");
}

/// The undelivered rest of a partial delivery counts as `permanent` when some recipient was
/// refused for good, even beside a temporary refusal (the error's source), and as
/// `transient` when every refusal was temporary.
#[test]
fn a_partial_delivery_counts_its_rest_as_permanent_when_any_was_refused_for_good() {
    use mail_connector::Email;

    let mailbox = "no-reply@example.org";
    let failed = |to: &'static [&'static str]| {
        recorded(move || async move {
            let server = TestServer::start(ServerOptions::gone_and_busy()).await;
            let email = to
                .iter()
                .fold(Email::builder(), |b, to| b.to(*to))
                .subject("Hi")
                .text("Hello")
                .build()
                .unwrap();
            let error = smtp_to(&server, mailbox, "correct horse")
                .send(&email)
                .await
                .unwrap_err();
            assert!(matches!(error, Error::PartialDelivery { .. }), "{error:?}");
            assert_eq!(server.messages().len(), 1);
        })
    };
    let labels = |error| {
        [
            ("transport", "smtp"),
            ("mailbox", mailbox),
            ("error", error),
        ]
    };

    // A 450 after the 550: the source is the 450, but gone is refused for good.
    let all = failed(&["ann@example.org", "gone@example.org", "busy@example.org"]);
    assert_eq!(counter(&all, MESSAGES_FAILED, &labels("permanent")), 1);
    assert_eq!(counter_total(&all, MESSAGES_FAILED), 1);

    // Only a 450: the rest is worth a retry.
    let all = failed(&["ann@example.org", "busy@example.org"]);
    assert_eq!(counter(&all, MESSAGES_FAILED, &labels("transient")), 1);
    assert_eq!(counter_total(&all, MESSAGES_FAILED), 1);
    let smtp = [("transport", "smtp"), ("mailbox", mailbox)];
    assert_eq!(counter(&all, MESSAGES_SENT, &smtp), 1);
}
