//! The mailbox is the envelope sender; send-as follows the policy.

use mail_connector::{Email, MailTransport, Secret};
use mail_parser::MessageParser;

use super::helpers::*;
use crate::support::smtp_server::{ServerOptions, TestServer};

#[tokio::test]
async fn the_mailbox_is_the_envelope_sender_and_send_as_follows_the_policy() {
    let server = TestServer::start(ServerOptions::default()).await;
    let email = Email::builder()
        .from("Support <support@example.org>")
        .to("ann@example.org")
        .subject("Hi")
        .build()
        .unwrap();

    // From settings, another From needs `allow_send_as`, as with Graph.
    let refused = basic_settings(&server)
        .build()
        .unwrap()
        .send(&email)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("send-as"), "{refused}");
    assert!(server.messages().is_empty(), "refused before connecting");

    // Allowed: the From header is the email's, the envelope sender the mailbox.
    let mut settings = basic_settings(&server);
    settings.allow_send_as = true;
    let transport = settings.build().unwrap();
    transport.send(&email).await.unwrap();
    let received = server.messages().pop().unwrap();
    assert_eq!(received.mail_from, USER);
    let parsed = MessageParser::default().parse(&received.data).unwrap();
    assert_eq!(
        parsed.from().unwrap().first().unwrap().address(),
        Some("support@example.org")
    );

    let strict = starttls(&server)
        .basic_auth(USER, Secret::new(PASSWORD))
        .send_as(mail_connector::smtp::SendAsPolicy::MailboxOnly)
        .build()
        .unwrap();
    let error = strict.send(&email).await.unwrap_err();
    // The fix is a setting (`allow_send_as`), not the email: a settings error.
    assert!(error.is_settings(), "{error:?}");
    assert!(error.to_string().contains("allow_send_as"), "{error}");
    assert_eq!(server.messages().len(), 1, "refused before connecting");
    let own = Email::builder()
        .from(USER)
        .to("ann@example.org")
        .build()
        .unwrap();
    strict.send(&own).await.unwrap();
}

/// The mailbox's own address in another case, or with its IDN domain in the other form, is
/// the mailbox, even when only the mailbox may be the sender.
#[tokio::test]
async fn the_mailbox_in_another_case_or_idn_form_is_not_send_as() {
    let server = TestServer::start(ServerOptions {
        users: vec![("no-reply@xn--bcher-kva.de".into(), PASSWORD.into())],
        ..ServerOptions::default()
    })
    .await;
    let strict = starttls(&server)
        .basic_auth("no-reply@xn--bcher-kva.de", Secret::new(PASSWORD))
        .send_as(mail_connector::smtp::SendAsPolicy::MailboxOnly)
        .build()
        .unwrap();
    for from in [
        "No-Reply@XN--BCHER-KVA.de",
        "Notifications <no-reply@Bücher.de>",
    ] {
        let email = Email::builder()
            .from(from)
            .to("ann@example.org")
            .build()
            .unwrap();
        strict.send(&email).await.unwrap();
    }
    assert_eq!(server.messages().len(), 2);
    let other = Email::builder()
        .from("no-reply@bucher.de")
        .to("ann@example.org")
        .build()
        .unwrap();
    let error = strict.send(&other).await.unwrap_err();
    assert!(error.to_string().contains("allow_send_as"), "{error}");
    assert_eq!(server.messages().len(), 2);
}

/// A prepared message (`mailctl send --eml`) from another mailbox: the error says to change
/// its `From` header, not to "leave From unset", which a prepared message cannot do.
#[tokio::test]
async fn a_prepared_message_from_another_mailbox_is_told_to_change_its_from_header() {
    let server = TestServer::start(ServerOptions::default()).await;
    let email =
        Email::from_mime("From: ceo@example.org\r\nTo: ann@example.org\r\n\r\nHi\r\n").unwrap();
    let error = basic_settings(&server)
        .build()
        .unwrap()
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
    assert!(server.messages().is_empty(), "refused before connecting");
}
