//! Refused recipients are reported exactly.

use std::time::Duration;

use mail_connector::{Delivery, Email, Error, MailTransport, RetryPolicy, Secret, SmtpStage};

use super::helpers::*;
use crate::support::smtp_server::{RcptReply, ServerOptions, TestServer};

#[tokio::test]
async fn refused_recipients_are_reported_exactly() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["nobody@example.org".into(), "ghost@example.org".into()],
        ..ServerOptions::default()
    })
    .await;
    let transport = basic_settings(&server).build().unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .to("nobody@example.org")
        .bcc("ghost@example.org")
        .bcc("bob@example.org")
        .subject("Hi")
        .build()
        .unwrap();
    let error = transport.send(&email).await.unwrap_err();
    let Error::PartialDelivery {
        delivered,
        not_sent,
        uncertain,
        source,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    let addresses = |r: &mut dyn Iterator<Item = &mail_connector::Recipient>| {
        r.map(|r| r.mailbox.address().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        addresses(&mut delivered.recipients()),
        ["ann@example.org", "bob@example.org"]
    );
    assert_eq!(
        addresses(&mut not_sent.iter()),
        ["nobody@example.org", "ghost@example.org"]
    );
    assert!(uncertain.is_empty());
    assert!(
        matches!(
            **source,
            Error::Smtp {
                stage: SmtpStage::Rcpt,
                code: Some(550),
                ..
            }
        ),
        "{source:?}"
    );
    assert_eq!(
        server.messages()[0].rcpt_to,
        ["ann@example.org", "bob@example.org"]
    );

    // Everyone refused: nothing is sent, and the error names each refused recipient, as a
    // partial delivery that delivered nothing; its source is the first refusal.
    let email = Email::builder()
        .to("nobody@example.org")
        .to("ghost@example.org")
        .build()
        .unwrap();
    let error = transport.send(&email).await.unwrap_err();
    let Error::PartialDelivery {
        delivered,
        not_sent,
        refused_permanently,
        source,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert!(delivered.messages.is_empty());
    assert_eq!(not_sent, refused_permanently);
    assert_eq!(
        addresses(&mut not_sent.iter()),
        ["nobody@example.org", "ghost@example.org"]
    );
    assert!(
        matches!(
            &**source,
            Error::Smtp { stage: SmtpStage::Rcpt, code: Some(550), message, .. }
                if message.contains("nobody@example.org")
        ),
        "{error:?}"
    );
    assert_eq!(server.messages().len(), 1);
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(!error.is_transient());

    // One recipient, refused: the refusal itself is the error.
    let error = transport
        .send(&simple_email("ghost@example.org"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Smtp {
                stage: SmtpStage::Rcpt,
                code: Some(550),
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn every_recipient_refused_temporarily_is_retried_as_a_whole() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["nobody@example.org".into()],
        refused_reply: "450 4.2.1 Mailbox busy".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&simple_email("nobody@example.org"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Rcpt,
                code: Some(450),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert_eq!(server.mail_from_commands(), 4, "retried up to max_attempts");
}

#[tokio::test]
async fn a_421_at_rcpt_ends_the_session_instead_of_refusing_the_recipient() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["nobody@example.org".into()],
        refused_reply: "421 4.3.2 Service not available, closing transmission channel".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = starttls(&server)
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(RetryPolicy {
            max_retries: 1,
            ..fast_retry()
        })
        .build()
        .unwrap();
    let email = Email::builder()
        .to("nobody@example.org")
        .to("ann@example.org")
        .build()
        .unwrap();
    let error = transport.send(&email).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Rcpt,
                code: Some(421),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    assert!(server.messages().is_empty(), "no DATA on a closing session");
    assert_eq!(server.connections(), 2, "a new connection for the retry");
}

#[tokio::test]
async fn refused_recipients_stay_not_sent_when_the_data_goes_unanswered() {
    let server = TestServer::start(ServerOptions {
        silent_after_data: true,
        refused: vec!["nobody@example.org".into()],
        ..ServerOptions::default()
    })
    .await;
    // Ten seconds: reaching the data must not spend the deadline on a loaded machine; only
    // the silence after the data does.
    let transport = logged_in(&server)
        .send_deadline(Duration::from_secs(10))
        .build()
        .unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .to("nobody@example.org")
        .subject("Hi")
        .build()
        .unwrap();
    let error = transport.send(&email).await.unwrap_err();
    let Error::PartialDelivery {
        delivered,
        uncertain,
        not_sent,
        refused_permanently,
        refusals,
        source,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(delivered.recipients().count(), 0);
    let addresses = |r: &[mail_connector::Recipient]| {
        r.iter()
            .map(|r| r.mailbox.address().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(addresses(uncertain), ["ann@example.org"]);
    assert_eq!(addresses(not_sent), ["nobody@example.org"]);
    // Its 550 is its own: the data's fate does not change it.
    assert_eq!(addresses(refused_permanently), ["nobody@example.org"]);
    // So is its reply, kept beside the timeout that is the source.
    let [refusal] = &**refusals else {
        panic!("{refusals:?}")
    };
    assert_eq!(refusal.recipient.mailbox.address(), "nobody@example.org");
    assert_eq!(
        (refusal.code, refusal.enhanced_code.as_deref()),
        (550, Some("5.1.1"))
    );
    assert_eq!(refusal.text, "User unknown");
    assert!(refusal.is_permanent());
    let text = error.to_string();
    assert!(
        text.ends_with("; refused at RCPT TO: nobody@example.org: 550 5.1.1 User unknown"),
        "{text}"
    );
    assert!(
        matches!(
            **source,
            Error::Smtp {
                stage: SmtpStage::Data,
                ..
            }
        ),
        "{source:?}"
    );
    assert_eq!(error.delivery(), Delivery::Uncertain);
    assert!(!error.is_transient());
    assert_eq!(server.mail_from_commands(), 1, "must not be retried");
}

/// A non-ASCII address to a server without SMTPUTF8: the error names the address and its
/// field (here `cc`, not `to`), and what to do.
#[tokio::test]
async fn a_non_ascii_address_without_smtputf8_names_the_address_and_field() {
    let server = TestServer::start(ServerOptions {
        no_smtputf8: true,
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .cc("jürgen@example.org")
        .subject("Hello")
        .text("Hello there")
        .build()
        .unwrap();
    let error = transport.send(&email).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("jürgen@example.org"), "{message}");
    assert!(message.contains("cc: "), "{message}");
    assert!(message.contains("SMTPUTF8"), "{message}");
    assert_eq!(server.messages().len(), 0);
}

/// Addresses only the headers name (Reply-To, a From other than the mailbox) and a prepared
/// message's raw UTF-8 header need SMTPUTF8 as much as the envelope's: without it the server
/// is refused the message, naming the field; with it the message goes.
#[tokio::test]
async fn a_non_ascii_header_address_or_header_needs_smtputf8_too() {
    let no_utf8 = TestServer::start(ServerOptions {
        no_smtputf8: true,
        ..ServerOptions::default()
    })
    .await;
    let utf8 = TestServer::start(ServerOptions::default()).await;
    let reply_to = Email::builder()
        .to("ann@example.org")
        .reply_to("jürgen@example.org")
        .subject("Hello")
        .text("Hello there")
        .build()
        .unwrap();
    let other_from = Email::builder()
        .from("jürgen@example.org")
        .to("ann@example.org")
        .subject("Hello")
        .text("Hello there")
        .build()
        .unwrap();
    let prepared = Email::from_mime(
        "From: no-reply@example.org\r\nTo: ann@example.org\r\nSubject: Grüße\r\n\r\nHallo\r\n",
    )
    .unwrap();
    let cases = [
        (reply_to, "reply_to: ", "jürgen@example.org"),
        (other_from, "from: ", "jürgen@example.org"),
        (prepared, "mime: ", "header block is not ASCII"),
    ];
    for (email, field, named) in cases {
        let refused = logged_in(&no_utf8)
            .send_as(mail_connector::smtp::SendAsPolicy::AllowOtherFrom)
            .build()
            .unwrap();
        let error = refused.send(&email).await.unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(field) && message.contains(named) && message.contains("SMTPUTF8"),
            "{message}"
        );
        assert_eq!(error.delivery(), Delivery::NotSent);
        let sending = logged_in(&utf8)
            .send_as(mail_connector::smtp::SendAsPolicy::AllowOtherFrom)
            .build()
            .unwrap();
        sending.send(&email).await.unwrap();
    }
    assert_eq!(no_utf8.messages().len(), 0);
    assert_eq!(utf8.messages().len(), 3);
}

/// Every recipient of a message as an address.
fn addresses(recipients: &[mail_connector::Recipient]) -> Vec<&str> {
    recipients.iter().map(|r| r.mailbox.address()).collect()
}

/// The data refused with a reply after a recipient was refused at RCPT TO: nobody got it,
/// and the refusal's reply is kept beside the data's, which is the source.
#[tokio::test]
async fn refused_recipients_keep_their_replies_when_the_data_is_refused() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["nobody@example.org".into()],
        transient_data_failures: 1,
        transient_data_reply: "554 5.6.0 Message content rejected".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let email = email_to(&["ann@example.org", "nobody@example.org", "cy@example.org"]);
    let error = transport.send(&email).await.unwrap_err();
    let Error::PartialDelivery {
        delivered,
        uncertain,
        not_sent,
        refused_permanently,
        refusals,
        source,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(delivered.recipients().count(), 0);
    assert!(uncertain.is_empty(), "{uncertain:?}");
    assert_eq!(
        addresses(not_sent),
        ["ann@example.org", "nobody@example.org", "cy@example.org"],
        "everyone, in the envelope's order"
    );
    assert_eq!(addresses(refused_permanently), ["nobody@example.org"]);
    let [refusal] = &**refusals else {
        panic!("{refusals:?}")
    };
    assert_eq!(refusal.recipient.mailbox.address(), "nobody@example.org");
    assert_eq!((refusal.code, refusal.text.as_str()), (550, "User unknown"));
    assert!(
        matches!(
            **source,
            Error::Smtp {
                stage: SmtpStage::Data,
                code: Some(554),
                ..
            }
        ),
        "{source:?}"
    );
    let text = error.to_string();
    assert!(text.contains("Message content rejected"), "{text}");
    assert!(
        text.ends_with("; refused at RCPT TO: nobody@example.org: 550 5.1.1 User unknown"),
        "{text}"
    );
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(!error.is_transient(), "{error:?}");
    assert_eq!(server.mail_from_commands(), 1);
    assert!(server.messages().is_empty());
}

/// The data refused for now after a recipient was refused for now: retried within the send
/// as before, and the last attempt's refusal is kept; the whole is still worth a retry.
#[tokio::test]
async fn a_temporary_refusal_is_kept_when_the_data_is_refused_for_now_to_the_end() {
    let server = TestServer::start(ServerOptions {
        rcpt_replies: vec![RcptReply::always(
            "busy@example.org",
            "450 4.2.1 Mailbox busy, try later",
        )],
        transient_data_failures: 100,
        transient_data_reply: "451 4.3.0 Try again later".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server)
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    let error = transport
        .send(&email_to(&["ann@example.org", "busy@example.org"]))
        .await
        .unwrap_err();
    let Error::PartialDelivery {
        not_sent,
        refused_permanently,
        refusals,
        source,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(addresses(not_sent), ["ann@example.org", "busy@example.org"]);
    assert!(refused_permanently.is_empty());
    let [refusal] = &**refusals else {
        panic!("{refusals:?}")
    };
    assert_eq!((refusal.code, refusal.is_permanent()), (450, false));
    assert_eq!(source.status(), Some(451));
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(
        server.mail_from_commands(),
        4,
        "one attempt and three retries"
    );
}
