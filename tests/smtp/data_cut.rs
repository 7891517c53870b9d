//! A message whose data is cut off before its end (CRLF.CRLF) cannot have been taken by any
//! server: it is not sent (and retried), never "uncertain". Once its end is on its way, a
//! missing reply leaves it uncertain (see `replies`).

use std::time::Duration;

use mail_connector::{Attachment, Delivery, Email, MailTransport};

use super::helpers::*;
use crate::support::smtp_server::{DataCut, ServerOptions, TestServer};

/// An email of about `megabytes` MB on the wire (an attachment, base64).
fn large(megabytes: usize) -> Email {
    Email::builder()
        .to("ann@example.org")
        .subject("large")
        .text("see the attachment")
        .attachment(Attachment::from_bytes(
            "data.bin",
            vec![7u8; megabytes * 3 / 4 * 1024 * 1024],
        ))
        .build()
        .unwrap()
}

/// The connection reset in the middle of the data: not sent, so the send tries again on a
/// new connection, and the message arrives once.
#[tokio::test]
async fn a_message_cut_off_before_its_end_is_not_sent_and_is_retried() {
    let server = TestServer::start(ServerOptions {
        cut_data: Some(DataCut {
            after: 64 * 1024,
            times: 1,
            stall: false,
        }),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let report = transport.send(&large(4)).await.unwrap();
    assert_eq!(report.recipients().count(), 1);
    assert_eq!(server.messages().len(), 1, "delivered once");
    assert_eq!(server.connections(), 2, "the cut one, then a new one");

    // Cut off every time: the send ends not sent, worth a retry later.
    let server = TestServer::start(ServerOptions {
        cut_data: Some(DataCut {
            after: 64 * 1024,
            times: usize::MAX,
            stall: false,
        }),
        ..ServerOptions::default()
    })
    .await;
    let error = logged_in(&server)
        .build()
        .unwrap()
        .send(&large(4))
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent, "{error:?}");
    assert!(error.is_transient(), "{error:?}");
    assert!(server.messages().is_empty());
}

/// A server that stops reading in the middle of the data until the send deadline: the end
/// of the data was never written, so the message is not sent (not "may have been
/// delivered"), and the error says so.
///
/// The deadline (a minute) must pass in the stall, never before the data starts: rendering
/// the 18 MB attachment, TLS and login on a loaded machine took more than the 8 s it had
/// (failed at `MAIL` with 16 test threads beside four busy loops). The test waits the whole
/// deadline out, so it runs for a minute beside the others.
#[tokio::test]
async fn a_deadline_in_the_middle_of_the_data_is_not_sent() {
    let server = TestServer::start(ServerOptions {
        cut_data: Some(DataCut {
            after: 64 * 1024,
            times: 1,
            stall: true,
        }),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server)
        .send_deadline(Duration::from_secs(60))
        .build()
        .unwrap();
    // More than loopback's socket buffers can hold, so the writer waits for the server.
    let error = transport.send(&large(24)).await.unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent, "{error:?}");
    assert!(error.is_transient(), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("still being written") && !message.contains("may have been"),
        "{message}"
    );
    assert!(server.messages().is_empty());
}
