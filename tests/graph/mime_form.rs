//! Issue 12: what the JSON form cannot carry goes in Graph's MIME form — base64 of the whole
//! message, `Content-Type: text/plain` — and arrives with every part and header.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use httpmock::{HttpMockRequest, HttpMockResponse, Method::POST, MockServer};
use mail_connector::{Attachment, Email, MailTransport};
use mail_parser::{MessageParser, MimeHeaders};

use super::helpers::*;
use crate::support::*;

/// A sendMail mock that keeps every MIME body it receives (decoded from base64).
pub(crate) fn capture_mime(server: &MockServer) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&bodies);
    server.mock(move |when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("content-type", "text/plain");
        then.respond_with(move |request: &HttpMockRequest| {
            let mime = STANDARD
                .decode(request.body_ref())
                .expect("the body is standard base64");
            keep.lock().unwrap().push(mime);
            HttpMockResponse::builder()
                .status(202)
                .header("request-id", "req-mime")
                .build()
        });
    });
    bodies
}

pub(crate) fn threaded_email() -> Email {
    Email::builder()
        .to("Ann Example <ann@example.org>")
        .cc("carol@example.org")
        .bcc("audit@example.org")
        .subject("Your weekly digest — Grüße")
        .text("Plain text for text-only readers.")
        .html("<p>HTML <img src=\"cid:logo\"></p>")
        .attachment(Attachment::from_bytes("logo.png", png_bytes()).inline("logo"))
        .attachment(Attachment::from_bytes("report.csv", "a,b\n1,2\n"))
        .header("Message-ID", "<digest-2026-48@contoso.com>")
        .header("In-Reply-To", "<subscribe-1@contoso.com>")
        .header("References", "<subscribe-1@contoso.com>")
        .header(
            "List-Unsubscribe",
            "<https://contoso.com/unsubscribe?u=ann>, <mailto:unsubscribe@contoso.com>",
        )
        .header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        .header("X-Campaign", "weekly")
        .build()
        .unwrap()
}

#[tokio::test]
async fn text_html_inline_image_and_any_header_arrive_through_the_mime_form() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let json = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("content-type", "application/json");
        then.status(202);
    });
    let bodies = capture_mime(&server);
    let report = transport(&settings(&server))
        .send(&threaded_email())
        .await
        .unwrap();
    assert_eq!(report.messages[0].id.as_deref(), Some("req-mime"));
    assert_eq!(report.recipients().count(), 3);
    json.assert_calls(0);
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 1);
    let message = MessageParser::default().parse(&bodies[0]).unwrap();
    assert_eq!(message.message_id(), Some("digest-2026-48@contoso.com"));
    assert_eq!(
        message.in_reply_to().as_text(),
        Some("subscribe-1@contoso.com")
    );
    assert_eq!(
        message.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(message.header("List-Unsubscribe").is_some());
    assert_eq!(message.subject(), Some("Your weekly digest — Grüße"));
    assert_eq!(
        message.body_text(0).as_deref().map(str::trim),
        Some("Plain text for text-only readers.")
    );
    assert!(message.body_html(0).unwrap().contains("cid:logo"));
    let logo = message
        .attachments()
        .find(|a| a.content_id() == Some("logo"))
        .expect("the inline image");
    assert_eq!(logo.contents(), png_bytes());
    assert_eq!(
        message.from().unwrap().first().unwrap().address(),
        Some("no-reply@contoso.com")
    );
    // Exchange takes Bcc recipients from the header and strips it before delivery.
    assert_eq!(
        message.bcc().unwrap().first().unwrap().address(),
        Some("audit@example.org")
    );
}

#[tokio::test]
async fn both_bodies_alone_choose_the_mime_form_and_x_headers_alone_do_not() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let json = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("content-type", "application/json");
        then.status(202);
    });
    let bodies = capture_mime(&server);
    let graph = transport(&settings(&server));
    let both = Email::builder()
        .to("ann@example.org")
        .text("t")
        .html("<p>h</p>")
        .build()
        .unwrap();
    graph.send(&both).await.unwrap();
    let x_only = Email::builder()
        .to("ann@example.org")
        .html("<p>h</p>")
        .header("X-Tag", "1")
        .build()
        .unwrap();
    graph.send(&x_only).await.unwrap();
    let mut six = Email::builder().to("ann@example.org").text("t");
    for i in 0..6 {
        six = six.header(format!("X-H{i}"), "v");
    }
    graph.send(&six.build().unwrap()).await.unwrap();
    json.assert_calls(1);
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2);
    let six = MessageParser::default().parse(&bodies[1]).unwrap();
    assert!(six.header("X-H5").is_some(), "all six headers arrive");
}

#[tokio::test]
async fn a_prepared_message_is_sent_as_it_is_with_the_given_envelope_as_headers() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let bodies = capture_mime(&server);
    let graph = transport(&settings(&server));
    let raw = "From: no-reply@contoso.com\r\nTo: ann@example.org\r\nBcc: audit@example.org\r\n\
               Subject: prepared\r\nMessage-ID: <p1@contoso.com>\r\n\r\nbody\r\n";
    graph.send(&Email::from_mime(raw).unwrap()).await.unwrap();
    // Other envelope recipients: To/Cc/Bcc say them, everything else stays.
    let email = Email::builder()
        .mime(raw)
        .to("zoe@example.org")
        .build()
        .unwrap();
    graph.send(&email).await.unwrap();
    let bodies = bodies.lock().unwrap();
    assert_eq!(
        bodies[0],
        raw.as_bytes(),
        "unchanged: Exchange removes Bcc itself"
    );
    let rewritten = String::from_utf8(bodies[1].clone()).unwrap();
    assert_eq!(
        rewritten,
        "To: zoe@example.org\r\nFrom: no-reply@contoso.com\r\nSubject: prepared\r\n\
         Message-ID: <p1@contoso.com>\r\n\r\nbody\r\n"
    );
}
