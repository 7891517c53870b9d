//! Recipients refused permanently (5xx) and temporarily (4xx) in one transaction: the error
//! says which of the recipients not sent are worth trying again.

use mail_connector::{Email, Error, MailTransport, Recipient, RecipientLimit, SmtpStage};

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

fn addresses(recipients: &[Recipient]) -> Vec<String> {
    recipients
        .iter()
        .map(|r| r.mailbox.address().to_owned())
        .collect()
}

fn email_to(to: &[&str]) -> Email {
    to.iter()
        .fold(Email::builder(), |b, to| b.to(*to))
        .subject("Hi")
        .text("Hello")
        .build()
        .unwrap()
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
        let Error::PartialDelivery {
            delivered,
            not_sent,
            refused_permanently,
            uncertain,
            source,
            ..
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!(delivered.recipients().count(), 1, "{order:?}");
        assert_eq!(addresses(not_sent), order[1..], "{order:?}");
        assert_eq!(addresses(refused_permanently), ["gone@example.org"]);
        assert!(uncertain.is_empty());
        assert!(
            matches!(
                &**source,
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
    let Error::PartialDelivery {
        not_sent,
        refused_permanently,
        source,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(addresses(not_sent), ["gone@example.org"]);
    assert_eq!(addresses(refused_permanently), ["gone@example.org"]);
    assert_eq!(source.status(), Some(550));
    assert!(!source.is_transient());

    // Only temporary ones: none is refused permanently, and the source says retry.
    let error = transport
        .send(&email_to(&["ann@example.org", "busy@example.org"]))
        .await
        .unwrap_err();
    let Error::PartialDelivery {
        refused_permanently,
        source,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert!(refused_permanently.is_empty());
    assert!(source.is_transient());
    assert!(
        !error.to_string().contains("refused permanently"),
        "{error}"
    );
}

/// The recipient limit keeps a part's permanent refusals when it merges the part's partial
/// delivery into its own; the parts it never sent are not among them.
#[tokio::test]
async fn the_recipient_limit_carries_the_permanent_refusals_of_a_part() {
    let server = server().await;
    let transport = RecipientLimit::new(logged_in(&server).build().unwrap(), 2);
    let email = email_to(&["ann@example.org", "gone@example.org", "cy@example.org"]);
    let error = transport.send(&email).await.unwrap_err();
    let Error::PartialDelivery {
        delivered,
        not_sent,
        refused_permanently,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(delivered.recipients().count(), 1);
    assert_eq!(addresses(not_sent), ["gone@example.org", "cy@example.org"]);
    assert_eq!(addresses(refused_permanently), ["gone@example.org"]);
    assert_eq!(server.rcpt_commands("cy@example.org"), 0);
}
