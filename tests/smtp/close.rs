//! `SmtpTransport::close`, for a service that shuts down: the sends in flight end first, the
//! idle connections are said goodbye to, and later sends fail at once without being sent.

use std::sync::atomic::Ordering;
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
