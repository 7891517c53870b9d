//! A send dropped before it ends (a timeout around it, a worker shutting down) and its
//! draft: deleted when nothing can send it any more, kept once its `/send` is on its way,
//! and never made or deleted by requests nobody waits for.

use std::sync::Arc;

use httpmock::{Method::DELETE, Method::POST, MockServer};
use mail_connector::MailTransport;
use serde_json::json;

use super::draft_failures::parts_email;
use super::gate::{self, Held};
use super::helpers::*;

/// A send dropped while its attachment uploads (a timeout around it, a worker shutting
/// down) deletes its draft in a task of its own.
#[tokio::test]
async fn a_send_dropped_mid_upload_deletes_its_draft() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    mock_draft(&server);
    // The upload host: takes the request and never answers; says when a request arrived.
    let upload_host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upload_url = format!("http://{}/upload/s", upload_host.local_addr().unwrap());
    mock_upload_session(&server, &upload_url);
    let (deleted_tx, mut deleted) = tokio::sync::mpsc::unbounded_channel::<()>();
    let deleted_tx = std::sync::Mutex::new(deleted_tx);
    server.mock(|when, then| {
        when.method(DELETE).path(format!("{MESSAGES}/d1"));
        then.respond_with(move |_: &httpmock::HttpMockRequest| {
            let _ = deleted_tx.lock().unwrap().send(());
            httpmock::HttpMockResponse::builder().status(204).build()
        });
    });
    let graph = transport(&settings(&server));
    let send = tokio::spawn(async move { graph.send(&large_email()).await });
    // Bounded: a send that never starts the upload (or ends without it) fails the test
    // rather than hanging it.
    let mut head = [0u8; 16];
    let _upload = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let (mut upload, _) = upload_host.accept().await.unwrap();
        tokio::io::AsyncReadExt::read_exact(&mut upload, &mut head)
            .await
            .unwrap();
        upload
    })
    .await
    .expect("the upload of the attachment never started");
    assert!(head.starts_with(b"PUT /upload/s"), "{head:?}");
    send.abort();
    assert!(send.await.unwrap_err().is_cancelled());
    tokio::time::timeout(std::time::Duration::from_secs(20), deleted.recv())
        .await
        .expect("the draft was not deleted")
        .unwrap();
}

/// Once the draft's `/send` is on its way, a dropped send leaves the draft alone: Graph may
/// be sending it (the request itself still finishes). One slot: the `/send` holds it until
/// the gate lets it through, a deletion spawned at the drop would queue for it before the
/// next send, and so would have run by the time that send is done.
#[tokio::test]
async fn a_send_dropped_during_the_drafts_send_keeps_the_draft() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    server.mock(|when, then| {
        when.method(POST).path(MESSAGES);
        then.status(201).json_body(json!({"id": "d2"}));
    });
    server.mock(|when, then| {
        when.method(POST).path(format!("{MESSAGES}/d2/attachments"));
        then.status(201).json_body(json!({"id": "a"}));
    });
    let send_draft = server.mock(|when, then| {
        when.method(POST).path(format!("{MESSAGES}/d2/send"));
        then.status(202);
    });
    let delete = server.mock(|when, then| {
        when.method(DELETE).path(format!("{MESSAGES}/d2"));
        then.status(204);
    });
    server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let held_send = Held::new("POST", format!("{MESSAGES}/d2/send"));
    let mut settings = settings(&server);
    settings.graph_endpoint =
        Some(gate::start(server.base_url(), vec![Arc::clone(&held_send)]).await);
    let graph = settings
        .graph_builder()
        .unwrap()
        .max_concurrency(1)
        .build()
        .unwrap();
    let sending = graph.clone();
    let send = tokio::spawn(async move { sending.send(&parts_email()).await });
    held_send.arrived().await;
    send.abort();
    assert!(send.await.unwrap_err().is_cancelled());
    // On this one-thread runtime, a deletion spawned at the drop reaches the slot's queue now,
    // while the held `/send` has the slot.
    tokio::task::yield_now().await;
    held_send.release();
    graph.send(&simple_email()).await.unwrap();
    send_draft.assert_calls(1);
    delete.assert_calls(0);
}

/// A send dropped while Graph is still making its draft (a timeout around the send, a
/// worker shutting down) deletes the draft once Graph has made it: the request to make it
/// still finishes, and its draft would otherwise stay in the Drafts folder, the whole
/// message in it.
#[tokio::test]
async fn a_send_dropped_while_its_draft_is_made_deletes_the_draft() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    server.mock(|when, then| {
        when.method(POST).path(MESSAGES);
        then.status(201).json_body(json!({"id": "d1"}));
    });
    let (deleted_tx, mut deleted) = tokio::sync::mpsc::unbounded_channel::<()>();
    let deleted_tx = std::sync::Mutex::new(deleted_tx);
    server.mock(|when, then| {
        when.method(DELETE).path(format!("{MESSAGES}/d1"));
        then.respond_with(move |_: &httpmock::HttpMockRequest| {
            let _ = deleted_tx.lock().unwrap().send(());
            httpmock::HttpMockResponse::builder().status(204).build()
        });
    });
    // Graph is still making the draft for as long as the gate holds the request.
    let held_create = Held::new("POST", MESSAGES);
    let mut settings = settings(&server);
    settings.graph_endpoint =
        Some(gate::start(server.base_url(), vec![Arc::clone(&held_create)]).await);
    let graph = transport(&settings);
    let send = tokio::spawn(async move { graph.send(&parts_email()).await });
    held_create.arrived().await;
    send.abort();
    assert!(send.await.unwrap_err().is_cancelled());
    held_create.release();
    tokio::time::timeout(std::time::Duration::from_secs(20), deleted.recv())
        .await
        .expect("the draft made for a dropped send was not deleted")
        .unwrap();
}

/// A send dropped while Graph throttles the making of its draft (429, `Retry-After: 1`,
/// then 201): nobody waits for the draft any more, so the create is not tried again — it
/// would make a draft only to delete it, and hold a request slot of the mailbox meanwhile.
/// (A create in flight at the drop still finishes, and its draft is deleted: see
/// `a_send_dropped_while_its_draft_is_made_deletes_the_draft`.)
#[tokio::test]
async fn a_send_dropped_while_its_draft_is_throttled_does_not_make_it() {
    let (logs, _guard) = crate::support::capture_logs();
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    // A mailbox of this test's own, which names its send's lines in the shared logs.
    let mailbox = "throttled-draft@contoso.com";
    let messages = format!("/v1.0/users/{mailbox}/messages");
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<()>();
    let arrived_tx = std::sync::Mutex::new(arrived_tx);
    let answers = crate::support::in_sequence(vec![
        httpmock::HttpMockResponse::builder()
            .status(429)
            .header("retry-after", "1")
            .build(),
        crate::support::json_response(201, &json!({"id": "d6"})),
    ]);
    let create = server.mock(|when, then| {
        when.method(POST).path(&messages);
        then.respond_with(move |request: &httpmock::HttpMockRequest| {
            let _ = arrived_tx.lock().unwrap().send(());
            answers(request)
        });
    });
    let delete = server.mock(|when, then| {
        when.method(DELETE).path(format!("{messages}/d6"));
        then.status(204);
    });
    let mut settings = settings(&server);
    settings.user_name = Some(mailbox.into());
    let graph = transport(&settings);
    let send = tokio::spawn(async move { graph.send(&parts_email()).await });
    // Bounded: a send that never asks for the draft fails the test rather than hanging it.
    tokio::time::timeout(std::time::Duration::from_secs(20), arrived.recv())
        .await
        .expect("the draft was never asked for")
        .unwrap();
    send.abort();
    assert!(send.await.unwrap_err().is_cancelled());
    // Where the retry would have been sent, the send's task says it is not (or, without
    // the rule, the second create arrives).
    let given_up = || {
        logs.text().lines().any(|line| {
            line.contains(&format!("mailbox={mailbox}"))
                && line.contains("nobody waits for its answer")
        })
    };
    wait_until("the create's end", || given_up() || create.calls() > 1).await;
    create.assert_calls(1);
    delete.assert_calls(0);
}

/// A send dropped while the draft of a message certainly not sent is being deleted (here
/// the deletion waits out a 503's `Retry-After`): the deletion still finishes, and the
/// draft, the whole message in it, is not left in the Drafts folder.
#[tokio::test]
async fn a_send_dropped_while_its_unsent_draft_is_deleted_still_deletes_it() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    server.mock(|when, then| {
        when.method(POST).path(MESSAGES);
        then.status(201).json_body(json!({"id": "d7"}));
    });
    server.mock(|when, then| {
        when.method(POST).path(format!("{MESSAGES}/d7/attachments"));
        then.status(201).json_body(json!({"id": "a"}));
    });
    // Refused outright: certainly not sent, so the draft is deleted.
    server.mock(|when, then| {
        when.method(POST).path(format!("{MESSAGES}/d7/send"));
        then.status(400)
            .json_body(graph_error("ErrorInvalidRecipients", "no"));
    });
    let (deleted_tx, mut deleted) = tokio::sync::mpsc::unbounded_channel::<Option<u16>>();
    let deleted_tx = std::sync::Mutex::new(deleted_tx);
    let answers = crate::support::in_sequence(vec![
        httpmock::HttpMockResponse::builder()
            .status(503)
            .header("retry-after", "1")
            .build(),
        httpmock::HttpMockResponse::builder().status(204).build(),
    ]);
    server.mock(|when, then| {
        when.method(DELETE).path(format!("{MESSAGES}/d7"));
        then.respond_with(move |request: &httpmock::HttpMockRequest| {
            let answer = answers(request);
            let _ = deleted_tx.lock().unwrap().send(answer.status);
            answer
        });
    });
    let graph = transport(&settings(&server));
    let send = tokio::spawn(async move { graph.send(&parts_email()).await });
    // Bounded: a send that never deletes its draft fails the test rather than hanging it.
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), deleted.recv())
        .await
        .expect("the unsent draft was never deleted");
    assert_eq!(first, Some(Some(503)));
    send.abort();
    assert!(send.await.unwrap_err().is_cancelled());
    let second = tokio::time::timeout(std::time::Duration::from_secs(20), deleted.recv())
        .await
        .expect("the deletion of a dropped send's unsent draft did not go on");
    assert_eq!(second, Some(Some(204)));
}
