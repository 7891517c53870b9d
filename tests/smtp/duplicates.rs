//! An address listed twice on one message (in To and Bcc, or twice in To in another case)
//! is one recipient: one `RCPT TO`, named once in the report.

use mail_connector::{Email, MailTransport, RecipientKind};

use super::helpers::*;
use crate::support::smtp_server::{ServerOptions, TestServer};

#[tokio::test]
async fn an_address_listed_twice_gets_one_rcpt_to_and_is_reported_once() {
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = logged_in(&server).build().unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .to("Ann@Example.org")
        .cc("bob@example.org")
        .bcc("ann@example.org")
        .bcc("bob@EXAMPLE.org")
        .subject("Hello")
        .text("Hello there")
        .build()
        .unwrap();
    let report = transport.send(&email).await.unwrap();
    let reported: Vec<(RecipientKind, String)> = report
        .recipients()
        .map(|r| (r.kind, r.mailbox.address().to_owned()))
        .collect();
    assert_eq!(
        reported,
        [
            (RecipientKind::To, "ann@example.org".to_owned()),
            (RecipientKind::Cc, "bob@example.org".to_owned()),
        ]
    );
    assert_eq!(server.rcpt_commands("ann@example.org"), 1);
    assert_eq!(server.rcpt_commands("bob@example.org"), 1);
    assert_eq!(
        server.messages()[0].rcpt_to,
        ["ann@example.org", "bob@example.org"]
    );
}
