//! Prepared messages over SMTP.

use mail_connector::{Email, MailTransport};
use mail_parser::MessageParser;

use super::helpers::*;
use crate::support::smtp_server::{ServerOptions, TestServer};

/// A prepared message without `Message-ID` or `Date` gets both (Gmail refuses mail without a
/// Message-ID), the id at its sender's domain, reported; one that has them keeps them.
#[tokio::test]
async fn a_prepared_message_without_message_id_or_date_gets_them() {
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = basic_settings(&server).build().unwrap();
    let raw = "From: Reports <no-reply@example.org>\r\nTo: ann@example.org\r\n\
               Bcc: audit@example.org\r\nSubject: x\r\n\r\nbody\r\n";
    let report = transport
        .send(&Email::from_mime(raw).unwrap())
        .await
        .unwrap();
    let received = server.messages().remove(0);
    let parsed = MessageParser::default().parse(&received.data).unwrap();
    let id = parsed.message_id().expect("a Message-ID was added");
    assert!(id.ends_with("@example.org"), "{id}");
    assert!(parsed.date().is_some(), "a Date was added");
    assert_eq!(
        report.messages[0].id.as_deref(),
        Some(format!("<{id}>").as_str())
    );
    let text = String::from_utf8(received.data).unwrap();
    assert!(text.contains("\r\nSubject: x\r\n\r\nbody\r\n"), "{text}");
    assert!(!text.contains("audit@"), "{text}");

    let dated = "From: no-reply@example.org\r\nTo: ann@example.org\r\n\
                 Date: Mon, 2 Feb 2026 10:00:00 +0000\r\nMessage-ID: <mine@example.org>\r\n\
                 Subject: y\r\n\r\nbody\r\n";
    transport
        .send(&Email::from_mime(dated).unwrap())
        .await
        .unwrap();
    assert_eq!(server.messages().remove(1).data, dated.as_bytes());
}

/// A prepared message with an 8-bit body (raw UTF-8, `Content-Transfer-Encoding: 8bit`) is
/// not sent to a server without 8BITMIME, which may mangle or bounce it: the error names
/// the message and the fix. A server with 8BITMIME gets it byte for byte.
#[tokio::test]
async fn an_8bit_prepared_body_needs_8bitmime() {
    let raw = "From: no-reply@example.org\r\nTo: ann@example.org\r\n\
               Date: Mon, 2 Feb 2026 10:00:00 +0000\r\nMessage-ID: <greetings@example.org>\r\n\
               Subject: Greetings\r\nMIME-Version: 1.0\r\n\
               Content-Type: text/plain; charset=utf-8\r\n\
               Content-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße\r\n";
    let email = Email::from_mime(raw).unwrap();

    let seven_bit = TestServer::start(ServerOptions {
        no_8bitmime: true,
        ..ServerOptions::default()
    })
    .await;
    let error = basic_settings(&seven_bit)
        .build()
        .unwrap()
        .send(&email)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("mime: ") && message.contains("8BITMIME"),
        "{message}"
    );
    assert!(message.contains("quoted-printable or base64"), "{message}");
    assert_eq!(error.delivery(), mail_connector::Delivery::NotSent);
    assert!(
        !error.is_transient(),
        "resending to this server cannot help"
    );
    assert_eq!(seven_bit.messages().len(), 0);

    let eight_bit = TestServer::start(ServerOptions::default()).await;
    basic_settings(&eight_bit)
        .build()
        .unwrap()
        .send(&email)
        .await
        .unwrap();
    assert_eq!(eight_bit.messages().remove(0).data, raw.as_bytes());
}
