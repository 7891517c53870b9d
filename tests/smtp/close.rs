//! `SmtpTransport::close`, for a service that shuts down: the sends in flight end first, the
//! idle connections are said goodbye to, and later sends fail at once without being sent.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use mail_connector::{CheckStatus, Delivery, MailTransport};

use super::helpers::*;
use crate::support::smtp_server::{ServerOptions, TestServer};

#[tokio::test]
async fn close_waits_for_the_sends_in_flight_then_says_goodbye_and_refuses_more() {
    let server = TestServer::start(ServerOptions {
        hold_replies: Some(Duration::from_millis(200)),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let in_flight = tokio::spawn({
        let transport = transport.clone();
        async move { transport.send(&email_to(&["ann@example.org"])).await }
    });
    // The send is in its data, its reply held by the server, when the service shuts down.
    server.wait_for_data_ends(1).await;
    transport.close().await;
    // close() returned only once the send in flight had ended: delivered, and its
    // connection said goodbye to.
    assert_eq!(server.messages().len(), 1);
    in_flight.await.unwrap().unwrap();
    assert_eq!(server.state.quits.load(Ordering::SeqCst), 1);

    // After close, from any clone: not sent, worth a try after the restart, and at once.
    let error = transport
        .clone()
        .send(&email_to(&["bob@example.org"]))
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("closed"), "{error}");
    assert_eq!(server.mail_from_commands(), 1);
    let report = transport.check().await.unwrap();
    assert_eq!(report.status(), CheckStatus::Failed, "{report}");
    // Closing again does nothing more.
    transport.close().await;
    assert_eq!(server.state.quits.load(Ordering::SeqCst), 1);
}

/// With no connection limit (`max_concurrency(usize::MAX)`, as the builder documents),
/// `close` still waits for the send in flight: it does not return while the server holds
/// the reply to its data, and the connection is said goodbye to once the send is done.
#[tokio::test]
async fn close_without_a_connection_limit_still_waits_for_the_send_in_flight() {
    let answer = Arc::new(tokio::sync::Semaphore::new(0));
    let server = TestServer::start(ServerOptions {
        gated_data_end: Some(Arc::clone(&answer)),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server)
        .max_concurrency(usize::MAX)
        .build()
        .unwrap();
    let in_flight = tokio::spawn({
        let transport = transport.clone();
        async move { transport.send(&email_to(&["ann@example.org"])).await }
    });
    bounded(server.wait_for_data_ends(1)).await;
    // The server holds its reply until the gate opens: close must not be done yet.
    let mut close = std::pin::pin!(transport.close());
    let done_at_once =
        std::future::poll_fn(|cx| Poll::Ready(close.as_mut().poll(cx).is_ready())).await;
    assert!(!done_at_once, "close returned with a send in flight");
    answer.add_permits(1);
    bounded(close).await;
    assert_eq!(server.messages().len(), 1);
    assert!(
        in_flight.is_finished(),
        "close returned before the send ended"
    );
    in_flight.await.unwrap().unwrap();
    assert_eq!(server.state.quits.load(Ordering::SeqCst), 1);
}
