//! Internationalised domain names: an address whose local part is ASCII goes on the
//! envelope and in the headers with its domain in ASCII (IDNA, `xn--…`), so a server without
//! SMTPUTF8 takes it; only a local part that is not ASCII needs SMTPUTF8.

use mail_connector::{Email, MailTransport, Mailbox};

use super::helpers::*;
use crate::support::smtp_server::{ServerOptions, TestServer};

/// The header block of a message: everything before the first empty line.
fn header_block(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    text.split("\r\n\r\n").next().unwrap().to_owned()
}

/// `ann@bücher.de` to a server without SMTPUTF8: sent, the sender, every recipient and every
/// header address written `…@xn--bcher-kva.de`; the report keeps the addresses as given.
#[tokio::test]
async fn an_idn_domain_is_sent_in_ascii_to_a_server_without_smtputf8() {
    let server = TestServer::start(ServerOptions {
        no_smtputf8: true,
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server)
        .sender(Mailbox::parse("berichte@bücher.de").unwrap())
        .build()
        .unwrap();
    let email = Email::builder()
        .to("Ann <ann@bücher.de>")
        .cc("bob@münchen.example")
        .bcc("carl@bücher.de")
        .reply_to("hilfe@bücher.de")
        .subject("Hallo")
        .text("Hallo")
        .build()
        .unwrap();
    let report = transport.send(&email).await.unwrap();
    let reported: Vec<String> = report
        .recipients()
        .map(|r| r.mailbox.address().to_owned())
        .collect();
    assert_eq!(
        reported,
        ["ann@bücher.de", "bob@münchen.example", "carl@bücher.de"]
    );
    let messages = server.messages();
    let [received] = messages.as_slice() else {
        panic!("{messages:?}")
    };
    assert_eq!(received.mail_from, "berichte@xn--bcher-kva.de");
    assert_eq!(
        received.rcpt_to,
        [
            "ann@xn--bcher-kva.de",
            "bob@xn--mnchen-3ya.example",
            "carl@xn--bcher-kva.de"
        ]
    );
    let headers = header_block(&received.data);
    assert!(headers.is_ascii(), "{headers}");
    for line in [
        "From: berichte@xn--bcher-kva.de",
        "To: Ann <ann@xn--bcher-kva.de>",
        "Cc: bob@xn--mnchen-3ya.example",
        "Reply-To: hilfe@xn--bcher-kva.de",
    ] {
        assert!(headers.contains(line), "{line} in\n{headers}");
    }
}

/// The outbox and `to_mime` write the same headers: an IDN domain in ASCII, the Bcc too.
#[tokio::test]
async fn the_outbox_form_writes_idn_domains_in_ascii() {
    let email = Email::builder()
        .from("berichte@bücher.de")
        .to("ann@bücher.de")
        .bcc("carl@bücher.de")
        .text("Hallo")
        .build()
        .unwrap();
    let headers = header_block(&email.to_mime().await.unwrap());
    assert!(headers.is_ascii(), "{headers}");
    assert!(headers.contains("Bcc: carl@xn--bcher-kva.de"), "{headers}");
}

/// A local part that is not ASCII still needs SMTPUTF8, whatever its domain: refused by a
/// server without it, naming the address; sent as it is, domain and all, by one with it.
#[tokio::test]
async fn a_non_ascii_local_part_still_needs_smtputf8() {
    let no_utf8 = TestServer::start(ServerOptions {
        no_smtputf8: true,
        ..ServerOptions::default()
    })
    .await;
    let utf8 = TestServer::start(ServerOptions::default()).await;
    let email = simple_email("jürgen@bücher.de");
    let error = logged_in(&no_utf8)
        .build()
        .unwrap()
        .send(&email)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("jürgen@bücher.de") && message.contains("SMTPUTF8"),
        "{message}"
    );
    logged_in(&utf8)
        .build()
        .unwrap()
        .send(&email)
        .await
        .unwrap();
    assert_eq!(no_utf8.messages().len(), 0);
    assert_eq!(utf8.messages()[0].rcpt_to, ["jürgen@bücher.de"]);
}
