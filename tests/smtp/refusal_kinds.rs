//! Which replies at `RCPT TO` refuse one recipient, and which of those are temporary:
//! several recipients all refused for now are retried within the send as a whole; a
//! `552` (too many recipients) is temporary (RFC 5321 §4.5.3.1.10); an "authentication
//! required" reply is the session's, not the recipient's.

use mail_connector::{Delivery, Error, MailTransport, SmtpStage};

use super::helpers::*;
use crate::support::smtp_server::{RcptReply, ServerOptions, TestServer};

#[tokio::test]
async fn several_recipients_all_refused_temporarily_are_retried_as_a_whole() {
    let busy = "450 4.2.1 Mailbox busy";
    let server = TestServer::start(ServerOptions {
        rcpt_replies: vec![
            RcptReply::always("ann@example.org", busy),
            RcptReply::always("bob@example.org", busy),
        ],
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&email_to(&["ann@example.org", "bob@example.org"]))
        .await
        .unwrap_err();
    let p = partial(&error);
    assert_eq!(p.delivered_messages, 0);
    assert_eq!(p.not_sent.len(), 2);
    assert!(p.refused_permanently.is_empty());
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(server.mail_from_commands(), 4, "retried up to max_attempts");
    assert_eq!(server.rcpt_commands("bob@example.org"), 4);
}

#[tokio::test]
async fn a_552_at_rcpt_is_a_temporary_refusal() {
    let server = TestServer::start(ServerOptions {
        rcpt_replies: vec![RcptReply::always(
            "bob@example.org",
            "552 5.5.3 Too many recipients",
        )],
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&email_to(&["ann@example.org", "bob@example.org"]))
        .await
        .unwrap_err();
    let p = partial(&error);
    let source = p.source;
    assert_eq!(p.delivered.len(), 1);
    assert_eq!(p.not_sent.len(), 1);
    assert!(p.refused_permanently.is_empty(), "{error:?}");
    assert!(source.is_transient(), "{source:?}");
    let remedy = source.remedy().unwrap_or_default();
    assert!(!remedy.contains("too large"), "{remedy}");

    // Alone, the 552 is the error: temporary, retried within the send.
    let error = transport
        .send(&email_to(&["bob@example.org"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Rcpt,
                code: Some(552),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert_eq!(server.rcpt_commands("bob@example.org"), 1 + 4);
}

#[tokio::test]
async fn authentication_required_at_rcpt_fails_the_send_not_the_recipient() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["ann@example.org".into(), "bob@example.org".into()],
        refused_reply: "530 5.7.57 Client not authenticated to send mail".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&email_to(&["ann@example.org", "bob@example.org"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Rcpt,
                code: Some(530),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_auth());
    assert!(!error.is_transient());
    assert_eq!(error.delivery(), Delivery::NotSent);
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("auth_mode"), "{remedy}");
    assert_eq!(server.rcpt_commands("bob@example.org"), 0, "never tried");
    assert!(server.messages().is_empty());
}
