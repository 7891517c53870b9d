//! Recipients refused permanently (5xx) and temporarily (4xx) in one transaction: the error
//! says which of the recipients not sent are worth trying again.

use mail_connector::{Error, MailTransport, RecipientLimit, SmtpStage};

use super::helpers::*;
use crate::support::smtp_server::{RcptReply, ServerOptions, TestServer};

const UNKNOWN: &str = "550 5.1.1 User unknown";
const BUSY: &str = "450 4.2.1 Mailbox busy, try later";

async fn server() -> TestServer {
    TestServer::start(ServerOptions {
        rcpt_replies: vec![
            RcptReply::always("gone@example.org", UNKNOWN),
            RcptReply::always("busy@example.org", BUSY),
        ],
        ..ServerOptions::default()
    })
    .await
}

/// Whichever refusal comes first, `source` is the temporary one (so a queue retries the
/// recipient it refused) and `refused_permanently` names the permanently refused one.
#[tokio::test]
async fn a_mix_of_permanent_and_temporary_refusals_names_each_and_reports_the_temporary() {
    for order in [
        ["ann@example.org", "gone@example.org", "busy@example.org"],
        ["ann@example.org", "busy@example.org", "gone@example.org"],
    ] {
        let server = server().await;
        let transport = logged_in(&server).build().unwrap();
        let error = transport.send(&email_to(&order)).await.unwrap_err();
        let p = partial(&error);
        let source = p.source;
        assert_eq!(p.delivered.len(), 1, "{order:?}");
        assert_eq!(p.not_sent, order[1..], "{order:?}");
        assert_eq!(p.refused_permanently, ["gone@example.org"]);
        assert!(p.uncertain.is_empty());
        assert!(
            matches!(
                source,
                Error::Smtp { stage: SmtpStage::Rcpt, code: Some(450), message, .. }
                    if message.contains("busy@example.org")
            ),
            "{order:?}: {source:?}"
        );
        assert!(source.is_transient());
        assert!(!error.is_transient(), "ann has it: never resend it whole");
        let text = error.to_string();
        assert!(text.contains("1 refused permanently"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        let remedy = error.remedy().unwrap();
        assert!(remedy.contains("refused permanently"), "{remedy}");
        // One transaction, no retry inside the send: ann would get it twice.
        assert_eq!(server.mail_from_commands(), 1);
        assert_eq!(server.rcpt_commands("gone@example.org"), 1);
    }
}

#[tokio::test]
async fn only_permanent_refusals_are_all_refused_permanently() {
    let server = server().await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&email_to(&["ann@example.org", "gone@example.org"]))
        .await
        .unwrap_err();
    let p = partial(&error);
    let source = p.source;
    assert_eq!(p.not_sent, ["gone@example.org"]);
    assert_eq!(p.refused_permanently, ["gone@example.org"]);
    assert_eq!(source.status(), Some(550));
    assert!(!source.is_transient());
    // Nobody is left to resend to: the remedy is the refusal's own, with no resend step.
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("check the address"), "{remedy}");
    assert!(!remedy.contains("resend only"), "{remedy}");

    // Only temporary ones: none is refused permanently, and the source says retry.
    let error = transport
        .send(&email_to(&["ann@example.org", "busy@example.org"]))
        .await
        .unwrap_err();
    let p = partial(&error);
    let source = p.source;
    assert!(p.refused_permanently.is_empty());
    assert!(source.is_transient());
    assert!(
        !error.to_string().contains("refused permanently"),
        "{error}"
    );
    // ann has it, and a busy mailbox has nothing to fix: the remedy is only whom to resend
    // to, never everyone (ann would get it twice), and nobody is uncertain.
    assert_eq!(
        error.remedy().as_deref(),
        Some("resend only to the recipients listed as not sent")
    );
}

/// The recipient limit keeps a part's permanent refusals when it merges the part's partial
/// delivery into its own, and sends the parts after it: a recipient refused on its own stops
/// nobody else's mail, as in one message.
#[tokio::test]
async fn the_recipient_limit_carries_the_permanent_refusals_of_a_part() {
    let server = server().await;
    let transport = RecipientLimit::new(logged_in(&server).build().unwrap(), 2);
    let email = email_to(&["ann@example.org", "gone@example.org", "cy@example.org"]);
    let error = transport.send(&email).await.unwrap_err();
    let p = partial(&error);
    assert_eq!(p.delivered, ["ann@example.org", "cy@example.org"]);
    assert_eq!(p.delivered_messages, 2);
    assert_eq!(p.not_sent, ["gone@example.org"]);
    assert_eq!(p.refused_permanently, ["gone@example.org"]);
    assert_eq!(server.rcpt_commands("cy@example.org"), 1);
    assert!(!error.is_transient(), "gone would be refused again");
    let text = error.to_string();
    assert!(text.contains("sent to 2 of 3 recipients"), "{text}");
}

/// Every recipient refused, several of them: nothing is sent, and the error is still a
/// partial delivery that names each group, so that nobody refused temporarily is lost.
#[tokio::test]
async fn every_recipient_refused_is_a_partial_delivery_with_nothing_delivered() {
    let server = server().await;
    let transport = logged_in(&server).build().unwrap();
    let email = email_to(&["gone@example.org", "busy@example.org"]);
    let error = transport.send(&email).await.unwrap_err();
    let p = partial(&error);
    let source = p.source;
    assert_eq!(p.delivered_messages, 0);
    assert!(p.uncertain.is_empty());
    assert_eq!(p.not_sent, ["gone@example.org", "busy@example.org"]);
    assert_eq!(p.refused_permanently, ["gone@example.org"]);
    assert_eq!(source.status(), Some(450), "{source:?}");
    assert!(!error.is_transient(), "gone would be refused again");
    let text = error.to_string();
    assert!(
        text.starts_with("the email was sent to none of its 2 recipients (1 refused permanently)"),
        "{text}"
    );
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("refused permanently"), "{remedy}");
    // A 5xx among the refusals: not retried inside the send, and no data was sent.
    assert_eq!(server.mail_from_commands(), 1);
    assert!(server.messages().is_empty());

    // Only permanent refusals: nobody is left to resend to, and the remedy says no more.
    let both_gone = TestServer::start(ServerOptions {
        rcpt_replies: vec![
            RcptReply::always("gone@example.org", UNKNOWN),
            RcptReply::always("lost@example.org", UNKNOWN),
        ],
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&both_gone).build().unwrap();
    let email = email_to(&["gone@example.org", "lost@example.org"]);
    let error = transport.send(&email).await.unwrap_err();
    let p = partial(&error);
    let source = p.source;
    assert_eq!(p.refused_permanently.len(), 2);
    assert_eq!(source.status(), Some(550));
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("check the address"), "{remedy}");
    assert!(!remedy.contains("resend only"), "{remedy}");
}

/// Every recipient refused with a 4xx: retried inside the send as before, as one transaction.
#[tokio::test]
async fn every_recipient_refused_temporarily_is_retried_within_the_send() {
    let server = TestServer::start(ServerOptions {
        rcpt_replies: vec![
            RcptReply::once("busy@example.org", BUSY),
            RcptReply::once("slow@example.org", BUSY),
        ],
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let email = email_to(&["busy@example.org", "slow@example.org"]);
    let report = transport.send(&email).await.unwrap();
    assert_eq!(report.recipients().count(), 2);
    assert_eq!(server.mail_from_commands(), 2);

    // Refused every time: the send ends with the temporary refusal, worth a later retry.
    let server = TestServer::start(ServerOptions {
        rcpt_replies: vec![
            RcptReply::always("busy@example.org", BUSY),
            RcptReply::always("slow@example.org", BUSY),
        ],
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport.send(&email).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(error.status(), Some(450));
    assert!(server.mail_from_commands() > 1);
    let text = error.to_string();
    assert!(!text.contains("refused permanently"), "{text}");
}

/// One recipient per message: the part of gone alone is refused (a plain 550), and cy's
/// part after it is still sent.
#[tokio::test]
async fn a_recipient_limit_of_one_sends_the_parts_after_a_refused_one() {
    let server = server().await;
    let transport = RecipientLimit::new(logged_in(&server).build().unwrap(), 1);
    let email = email_to(&["ann@example.org", "gone@example.org", "cy@example.org"]);
    let error = transport.send(&email).await.unwrap_err();
    let p = partial(&error);
    let source = p.source;
    assert_eq!(p.delivered, ["ann@example.org", "cy@example.org"]);
    assert_eq!(p.not_sent, ["gone@example.org"]);
    assert_eq!(p.refused_permanently, ["gone@example.org"]);
    assert_eq!(p.refusals.len(), 1);
    assert_eq!(source.status(), Some(550));
    assert_eq!(server.rcpt_commands("cy@example.org"), 1);
}

/// Two per message, the first part wholly refused (550 and 450): cy's part is still sent;
/// gone refused permanently, busy left to a retry, and the source the temporary refusal.
#[tokio::test]
async fn a_recipient_limit_part_wholly_refused_names_its_permanent_refusals() {
    let server = server().await;
    let transport = RecipientLimit::new(logged_in(&server).build().unwrap(), 2);
    let email = email_to(&["gone@example.org", "busy@example.org", "cy@example.org"]);
    let error = transport.send(&email).await.unwrap_err();
    let p = partial(&error);
    let source = p.source;
    assert_eq!(p.delivered, ["cy@example.org"]);
    assert_eq!(p.not_sent, ["gone@example.org", "busy@example.org"]);
    assert_eq!(p.refused_permanently, ["gone@example.org"]);
    assert!(source.is_transient(), "{source:?}");
    assert_eq!(source.status(), Some(450));
    assert!(!error.is_transient());
    assert_eq!(server.messages().len(), 1);
}
