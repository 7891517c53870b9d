//! What a send puts on the wire: Graph's JSON names, a bearer token, sender policy, limits.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use httpmock::{Method::POST, MockServer};
use mail_connector::{Email, Error, Importance, MailTransport};
use serde_json::json;

use super::helpers::*;
use crate::support;
use crate::support::*;

#[tokio::test]
async fn sends_the_documented_json_with_a_bearer_token() {
    let server = MockServer::start_async().await;
    let token = token_for(&["Mail.Send"]);
    let token_mock = mock_token(&server, &token);
    let send = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header_exists("client-request-id")
            .json_body(json!({
                "message": {
                    "subject": "Meet for lunch?",
                    "body": {"contentType": "Text", "content": "The new cafeteria is open."},
                    "toRecipients": [{"emailAddress": {"address": "samanthab@contoso.com", "name": "Samantha Booth"}}]
                },
                "saveToSentItems": true
            }));
        then.status(202).header("request-id", "req-1");
    });
    let graph = transport(&settings(&server));
    let report = graph.send(&simple_email()).await.unwrap();
    assert_eq!(report.messages[0].id.as_deref(), Some("req-1"));
    assert_eq!(report.recipients().count(), 1);
    // A second send reuses the cached token.
    graph.send(&simple_email()).await.unwrap();
    send.assert_calls(2);
    token_mock.assert_calls(1);
}

/// async_trait allocates each send's whole future. Within a kibibyte, glibc serves it from its
/// per-thread cache (requests of up to 1,032 bytes); over it, from its slow path, which also
/// consolidates freed chunks: it measurably slowed every send (docs/performance.md).
#[tokio::test]
async fn the_future_each_send_allocates_stays_within_a_kibibyte() {
    let server = MockServer::start_async().await;
    let graph = transport(&settings(&server));
    let email = simple_email();
    // Made, never polled: nothing is sent.
    let send = graph.send(&email);
    let size = std::mem::size_of_val(&*send);
    assert!(
        size <= 1024,
        "a Graph send's future is {size} bytes; keep the state of rare waits out of line"
    );
}

#[tokio::test]
async fn every_property_uses_graphs_names() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let png = png_bytes();
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH).json_body(json!({
            "message": {
                "subject": "Grüße aus Köln — report ✅",
                "body": {"contentType": "HTML", "content": "<p>Hello,</p><p>the report is attached.</p><img src=\"cid:logo\">"},
                "toRecipients": [
                    {"emailAddress": {"address": "ann@example.org", "name": "Ann Example"}},
                    {"emailAddress": {"address": "bob@example.org"}}
                ],
                "ccRecipients": [{"emailAddress": {"address": "jane@example.org", "name": "Doe, Jane"}}],
                "bccRecipients": [{"emailAddress": {"address": "audit@example.org"}}],
                "replyTo": [{"emailAddress": {"address": "support@example.org"}}],
                "importance": "high",
                "internetMessageHeaders": [{"name": "X-Report-Id", "value": "42"}],
                "attachments": [
                    {"@odata.type": "#microsoft.graph.fileAttachment", "name": "report.csv",
                     "contentType": "text/csv", "contentBytes": "aWQsdG90YWwKMSw0Mgo=", "isInline": false},
                    {"@odata.type": "#microsoft.graph.fileAttachment", "name": "logo.png",
                     "contentType": "image/png", "contentBytes": base64_std(&png),
                     "isInline": true, "contentId": "logo"}
                ]
            },
            "saveToSentItems": false
        }));
        then.status(202);
    });
    let mut settings = settings(&server);
    settings.save_to_sent_items = false;
    let email = rebuild_with_importance(rich_email(), Importance::High);
    transport(&settings).send(&email).await.unwrap();
    send.assert();
}

#[tokio::test]
async fn a_foreign_sender_is_refused_before_any_request_unless_send_as_is_allowed() {
    let server = MockServer::start_async().await;
    let token = mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH).json_body_includes(
            r#"{"message":{"from":{"emailAddress":{"address":"ceo@contoso.com"}}}}"#,
        );
        then.status(202);
    });
    let email = Email::builder()
        .from("ceo@contoso.com")
        .to("ann@example.org")
        .build()
        .unwrap();
    let error = transport(&settings(&server))
        .send(&email)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidMessage { field, .. } if field == "from"),
        "{error:?}"
    );
    assert!(error.to_string().contains("allow_send_as"), "{error}");
    token.assert_calls(0);
    send.assert_calls(0);

    let mut allowed = settings(&server);
    allowed.allow_send_as = true;
    transport(&allowed).send(&email).await.unwrap();
    send.assert_calls(1);
}

/// The mailbox's own address in another case, or with its IDN domain in the other form, is
/// the mailbox: no send-as needed. Addresses go to Graph as over SMTP, an IDN domain in ASCII.
#[tokio::test]
async fn the_mailbox_in_another_case_or_idn_form_is_not_send_as() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let path = "/v1.0/users/no-reply@xn--bcher-kva.de/sendMail";
    // The specific mock first: httpmock serves the first one that matches.
    let ascii = server.mock(|when, then| {
        when.method(POST).path(path).json_body_includes(
            r#"{"message":{"from":{"emailAddress":{"address":"no-reply@xn--bcher-kva.de",
                "name":"Notifications"}},
              "toRecipients":[{"emailAddress":{"address":"ann@xn--bcher-kva.de"}}]}}"#,
        );
        then.status(202);
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(path);
        then.status(202);
    });
    let mut settings = settings(&server);
    settings.user_name = Some("no-reply@xn--bcher-kva.de".into());
    let transport = transport(&settings);
    let email = Email::builder()
        .from("No-Reply@XN--BCHER-KVA.de")
        .to("ann@example.org")
        .build()
        .unwrap();
    transport.send(&email).await.unwrap();
    send.assert_calls(1);
    let email = Email::builder()
        .from("Notifications <no-reply@Bücher.de>")
        .to("ann@bücher.de")
        .build()
        .unwrap();
    transport.send(&email).await.unwrap();
    ascii.assert_calls(1);
    let other = Email::builder()
        .from("no-reply@bucher.de")
        .to("ann@example.org")
        .build()
        .unwrap();
    let error = transport.send(&other).await.unwrap_err();
    assert!(error.to_string().contains("allow_send_as"), "{error}");
    send.assert_calls(1);
    ascii.assert_calls(1);
}

#[tokio::test]
async fn the_recipient_limit_splits_over_graph() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    // The specific mock first: httpmock serves the first one that matches.
    let first = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH).json_body_includes(
            r#"{"message":{"toRecipients":[{"emailAddress":{"address":"to0@example.org"}},{"emailAddress":{"address":"to1@example.org"}}]}}"#,
        );
        then.status(202);
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let mut settings = settings(&server);
    settings.recipient_limit = 2;
    let transport = settings.build().unwrap();
    let report = transport.send(&email_to_many(3, 1, 1)).await.unwrap();
    assert_eq!(report.messages.len(), 3);
    assert_eq!(send.calls() + first.calls(), 3);
    first.assert_calls(1);
}

#[tokio::test]
async fn never_more_than_the_limit_in_flight_under_200_concurrent_sends() {
    let (base, stats) = support::loopback::start(Duration::from_millis(15)).await;
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let mut settings = settings(&server);
    settings.graph_endpoint = Some(base);
    let graph = Arc::new(transport(&settings));
    let email = simple_email();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let graph = Arc::clone(&graph);
            let email = email.clone();
            tokio::spawn(async move { graph.send(&email).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(stats.requests.load(Ordering::SeqCst), 200);
    let max = stats.max_in_flight.load(Ordering::SeqCst);
    assert_eq!(max, 4, "at most 4 in flight, and the limit is used");
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn rebuild_with_importance(email: Email, importance: Importance) -> Email {
    // HTML only: with both bodies the email would need Graph's MIME form.
    let builder = Email::builder()
        .subject(email.subject())
        .html(email.html().unwrap())
        .importance(importance);
    support::random_email::copied_into(builder, &email)
        .build()
        .unwrap()
}

/// Graph's activity logs (and proxies) see which client sent each request: the crate's
/// `User-Agent` over the client it made for Graph and the login host, the caller's own over a
/// client the caller gave.
#[tokio::test]
async fn each_request_carries_the_crates_user_agent_or_the_callers() {
    const OURS: &str = concat!("mail-connector/", env!("CARGO_PKG_VERSION"));
    const THEIRS: &str = "billing-service/2.1";
    for callers_client in [false, true] {
        let server = MockServer::start_async().await;
        let body = support::token_body(&token_for(&["Mail.Send"]), 3600);
        let agent = if callers_client { THEIRS } else { OURS };
        let token_mock = server.mock(|when, then| {
            when.method(POST)
                .path(support::token_path(TENANT))
                .header("user-agent", agent);
            then.status(200).json_body(body);
        });
        let send = server.mock(|when, then| {
            when.method(POST)
                .path(SEND_PATH)
                .header("user-agent", agent);
            then.status(202);
        });
        let settings = settings(&server);
        let mut builder = settings.builder();
        if callers_client {
            builder = builder.http_client(
                mail_connector::reqwest::Client::builder()
                    .redirect(mail_connector::reqwest::redirect::Policy::none())
                    .user_agent(THEIRS)
                    .build()
                    .unwrap(),
            );
        }
        let graph = builder.graph_builder().unwrap().build().unwrap();
        graph.send(&simple_email()).await.unwrap();
        token_mock.assert_calls(1);
        send.assert_calls(1);
    }
}

/// A send waiting for a request slot gives up at its deadline, saying it sent nothing, while
/// the request holding the slot waits for Graph. The holder is a draft's deletion (after a
/// large attachment's upload was refused), which has a deadline of its own, longer than the
/// sends': so the slot is certainly still held when the waiting send's deadline passes.
#[tokio::test]
async fn a_send_still_waiting_for_a_slot_at_its_deadline_is_not_sent() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    mock_refused_upload(&server, 400);
    // The deletion arrives, says so, and is answered only when the test is done.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<()>();
    let arrived_tx = std::sync::Mutex::new(arrived_tx);
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    server.mock(|when, then| {
        when.method(httpmock::Method::DELETE)
            .path(format!("{MESSAGES}/d1"));
        then.respond_with(move |_: &httpmock::HttpMockRequest| {
            let _ = arrived_tx.lock().unwrap().send(());
            let _ = released
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(60));
            httpmock::HttpMockResponse::builder().status(204).build()
        });
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .max_concurrency(1)
        .send_deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let holding = graph.clone();
    let holder = tokio::spawn(async move { holding.send(&large_email()).await });
    tokio::time::timeout(Duration::from_secs(20), arrived.recv())
        .await
        .expect("the draft's deletion never came")
        .unwrap();
    let error = graph.send(&simple_email()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("before the request could be sent"),
        "{error}"
    );
    assert_eq!(error.delivery(), mail_connector::Delivery::NotSent);
    assert!(error.is_transient(), "{error}");
    send.assert_calls(0);
    let _ = release.send(());
    holder.await.unwrap().unwrap_err();
}

/// A prepared message (`mailctl send --eml`) from another mailbox: the error says to change
/// its `From` header, not to "leave From unset", which a prepared message cannot do.
#[tokio::test]
async fn a_prepared_message_from_another_mailbox_is_told_to_change_its_from_header() {
    let server = MockServer::start_async().await;
    let token = mock_token(&server, &token_for(&["Mail.Send"]));
    let email =
        Email::from_mime("From: ceo@contoso.com\r\nTo: ann@example.org\r\n\r\nHi\r\n").unwrap();
    let error = transport(&settings(&server))
        .send(&email)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("the prepared message's `From` header"),
        "{text}"
    );
    assert!(text.contains("allow_send_as"), "{text}");
    assert!(!text.contains("leave From unset"), "{text}");
    token.assert_calls(0);
}

/// An address listed twice (in To and in Bcc, in another case): Graph is given the lists as
/// written (Exchange delivers one copy to a mailbox named twice), and the report names the
/// recipient once, in its first place, as SMTP's does.
#[tokio::test]
async fn an_address_listed_twice_is_reported_once() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH).json_body_includes(
            json!({
                "message": {
                    "toRecipients": [{"emailAddress": {"address": "ann@example.org"}}],
                    "bccRecipients": [{"emailAddress": {"address": "Ann@Example.org"}}]
                }
            })
            .to_string(),
        );
        then.status(202);
    });
    let email = Email::builder()
        .to("ann@example.org")
        .bcc("Ann@Example.org")
        .subject("Hello")
        .text("Hello")
        .build()
        .unwrap();
    let report = transport(&settings(&server)).send(&email).await.unwrap();
    let reported: Vec<String> = report.recipients().map(|r| r.to_string()).collect();
    assert_eq!(reported, ["To: ann@example.org"]);
    send.assert();
}

/// Through a caller's own HTTP client every body is watched (to tell a request that never
/// left from one that did); each still goes with its length, not chunked: Graph's documents
/// ask for `Content-Length` on each range of an upload session.
#[tokio::test]
async fn through_a_callers_client_each_body_goes_with_its_length() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let with_length =
        |path: String, method: httpmock::Method, status: u16, answer: serde_json::Value| {
            server.mock(move |when, then| {
                when.method(method)
                    .path(path)
                    .header_exists("content-length")
                    .header_missing("transfer-encoding");
                then.status(status).json_body(answer);
            })
        };
    let send_mail = with_length(SEND_PATH.to_owned(), POST, 202, json!({}));
    let draft = with_length(MESSAGES.to_owned(), POST, 201, json!({"id": "d1"}));
    let session = with_length(
        format!("{MESSAGES}/d1/attachments/createUploadSession"),
        POST,
        201,
        json!({"uploadUrl": server.url("/upload/s")}),
    );
    let range = with_length(
        "/upload/s".to_owned(),
        httpmock::Method::PUT,
        201,
        json!({}),
    );
    let draft_send = with_length(format!("{MESSAGES}/d1/send"), POST, 202, json!({}));
    let graph = settings(&server)
        .builder()
        .http_client(mail_connector::reqwest::Client::new())
        .graph_builder()
        .unwrap()
        .build()
        .unwrap();
    graph.send(&simple_email()).await.unwrap();
    graph.send(&large_email()).await.unwrap();
    for (mock, what) in [
        (&send_mail, "sendMail"),
        (&draft, "the draft"),
        (&session, "the upload session"),
        (&range, "the range"),
        (&draft_send, "the draft's send"),
    ] {
        assert_eq!(mock.calls(), 1, "{what}");
    }
}

/// Five `X-` headers, the most Graph's JSON form takes, go in it as they are: neither moved
/// to the MIME form nor refused.
#[tokio::test]
async fn five_x_headers_go_in_the_json_form() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let headers: Vec<_> = (1..=5)
        .map(|i| json!({"name": format!("X-Tag-{i}"), "value": format!("v{i}")}))
        .collect();
    let send = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("content-type", "application/json")
            .json_body_includes(
                json!({"message": {"internetMessageHeaders": headers}}).to_string(),
            );
        then.status(202);
    });
    let email = (1..=5)
        .fold(Email::builder().to("ann@example.org").text("t"), |b, i| {
            b.header(format!("X-Tag-{i}"), format!("v{i}"))
        })
        .build()
        .unwrap();
    transport(&settings(&server)).send(&email).await.unwrap();
    send.assert();
}
