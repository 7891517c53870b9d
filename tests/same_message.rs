//! Issue 12: one message, every transport. The same emails go through Graph (a loopback
//! mock), SMTP (the test server) and the outbox; what each received, parsed by mail-parser,
//! has the same parts and headers. Prepared messages — raw RFC 5322 and a lettre::Message —
//! go through each unchanged apart from Bcc removal.

mod support;

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use httpmock::{HttpMockRequest, HttpMockResponse, Method::POST, MockServer};
use mail_connector::{Attachment, ConnectorSettings, Email, MailTransport};
use mail_parser::{HeaderName, Message, MessageParser, MimeHeaders};
use support::smtp_server::{ServerOptions, TestServer};

const MAILBOX: &str = "no-reply@example.org";

/// The three transports, and how to read back what each received.
struct Transports {
    graph: Arc<dyn MailTransport>,
    smtp: Arc<dyn MailTransport>,
    outbox: Arc<dyn MailTransport>,
    graph_bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    smtp_server: TestServer,
    outbox_dir: tempfile::TempDir,
    _graph_server: MockServer,
}

/// What one server received: the message bytes and the envelope recipients, if it has any.
struct Received {
    transport: &'static str,
    bytes: Vec<u8>,
    rcpt_to: Option<Vec<String>>,
}

async fn transports() -> Transports {
    let graph_server = MockServer::start_async().await;
    let token = support::jwt(serde_json::json!({"roles": ["Mail.Send"]}));
    let body = support::token_body(&token, 3600);
    graph_server.mock(|when, then| {
        when.method(POST).path(support::token_path(support::TENANT));
        then.status(200).json_body(body);
    });
    let graph_bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&graph_bodies);
    graph_server.mock(move |when, then| {
        when.method(POST)
            .path(format!("/v1.0/users/{MAILBOX}/sendMail"))
            .header("content-type", "text/plain");
        then.respond_with(move |request: &HttpMockRequest| {
            keep.lock()
                .unwrap()
                .push(STANDARD.decode(request.body_ref()).expect("base64 MIME"));
            HttpMockResponse::builder().status(202).build()
        });
    });
    let mut graph = support::secret_settings(&graph_server, support::TENANT);
    graph.user_name = Some(MAILBOX.into());
    graph.graph_endpoint = Some(graph_server.base_url());

    let smtp_server = TestServer::start(ServerOptions::default()).await;
    let smtp = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"basic\"\nuser_name = \"{MAILBOX}\"\npassword = \"correct horse\"\n\
         smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls_ca_file = {:?}\n",
        smtp_server.port(),
        smtp_server.ca_file.path().display().to_string()
    ))
    .unwrap();

    let outbox_dir = tempfile::tempdir().unwrap();
    let mut outbox = ConnectorSettings::default();
    outbox.user_name = Some(MAILBOX.into());
    outbox.outbox_dir = Some(outbox_dir.path().to_owned());

    Transports {
        graph: graph.build().unwrap(),
        smtp: smtp.build().unwrap(),
        outbox: outbox.build().unwrap(),
        graph_bodies,
        smtp_server,
        outbox_dir,
        _graph_server: graph_server,
    }
}

impl Transports {
    /// Sends `email` through all three and returns what each received.
    async fn send_everywhere(&self, email: &Email) -> Vec<Received> {
        for (name, transport) in [
            ("graph", &self.graph),
            ("smtp", &self.smtp),
            ("outbox", &self.outbox),
        ] {
            transport
                .send(email)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let graph = self.graph_bodies.lock().unwrap().pop().unwrap();
        let smtp = self.smtp_server.messages().pop().unwrap();
        let mut files: Vec<_> = std::fs::read_dir(self.outbox_dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let file = std::fs::read(files.last().unwrap()).unwrap();
        for path in files {
            std::fs::remove_file(path).unwrap();
        }
        vec![
            Received {
                transport: "graph",
                bytes: graph,
                rcpt_to: None,
            },
            Received {
                transport: "smtp",
                bytes: smtp.data,
                rcpt_to: Some(smtp.rcpt_to),
            },
            Received {
                transport: "outbox",
                bytes: file,
                rcpt_to: None,
            },
        ]
    }
}

/// What a recipient sees of a message, transport-independent: every header but the ones each
/// transport stamps (Date, a generated Message-ID, boundaries), every part's type and content.
fn seen(message: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for header in message.headers() {
        let name = header.name.as_str().to_ascii_lowercase();
        if matches!(name.as_str(), "date" | "bcc" | "content-type") {
            continue;
        }
        if name == "message-id" && !message.message_id().unwrap_or("").starts_with("fixed") {
            continue;
        }
        let raw = message.header_raw(header.name.clone()).unwrap_or_default();
        out.push(format!(
            "{name}: {}",
            raw.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    out.push(format!("subject = {:?}", message.subject()));
    for part in &message.parts {
        let content_type = part
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_default();
        out.push(format!(
            "part {content_type} id={:?} name={:?} {} bytes: {:?}",
            part.content_id(),
            part.attachment_name(),
            part.contents().len(),
            &part.contents()[..part.contents().len().min(40)]
        ));
    }
    out
}

fn bcc_of(message: &Message<'_>) -> Vec<String> {
    message
        .bcc()
        .map(|b| {
            b.iter()
                .filter_map(|a| a.address().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn emails() -> Vec<Email> {
    vec![
        // The email: both bodies, an inline image, unsubscribe and threading headers,
        // a caller's Message-ID.
        Email::builder()
            .to("Ann Example <ann@example.org>")
            .cc("carol@example.org")
            .bcc("audit@example.org")
            .reply_to("help@example.org")
            .subject("Weekly digest — Grüße ✅")
            .text("Plain text for text-only readers.\nLine two.")
            .html("<p>HTML <img src=\"cid:logo\"></p>")
            .attachment(Attachment::from_bytes("logo.png", support::png_bytes()).inline("logo"))
            .attachment(Attachment::from_bytes("report.csv", "a,b\n1,2\n"))
            .importance(mail_connector::Importance::High)
            .header("Message-ID", "<fixed-digest-48@example.org>")
            .header("In-Reply-To", "<subscribe-1@example.org>")
            .header("References", "<root@example.org> <subscribe-1@example.org>")
            .header(
                "List-Unsubscribe",
                "<https://example.org/unsubscribe?u=ann>, <mailto:u@example.org>",
            )
            .header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
            .header("X-Campaign", "naïve")
            .build()
            .unwrap(),
        // The JSON form carries this one over Graph; SMTP and the outbox get MIME.
        Email::builder()
            .to("ann@example.org")
            .subject("Text only")
            .text("Hello")
            .build()
            .unwrap(),
    ]
}

#[tokio::test]
async fn every_transport_delivers_the_same_parts_and_headers() {
    let transports = transports().await;
    let email = &emails()[0];
    let received = transports.send_everywhere(email).await;
    let parsed: Vec<_> = received
        .iter()
        .map(|r| {
            (
                r.transport,
                MessageParser::default().parse(&r.bytes).unwrap(),
            )
        })
        .collect();
    let reference = seen(&parsed[0].1);
    // Every header and part the issue names is there.
    let joined = reference.join("\n");
    for expected in [
        "message-id: <fixed-digest-48@example.org>",
        "in-reply-to: <subscribe-1@example.org>",
        "references: <root@example.org> <subscribe-1@example.org>",
        "list-unsubscribe: <https://example.org/unsubscribe?u=ann>, <mailto:u@example.org>",
        "list-unsubscribe-post: List-Unsubscribe=One-Click",
        "importance: high",
        "part text/plain",
        "part text/html",
        "part image/png id=Some(\"logo\")",
        "part text/csv",
    ] {
        assert!(joined.contains(expected), "{expected} missing:\n{joined}");
    }
    for (name, message) in &parsed[1..] {
        assert_eq!(seen(message), reference, "{name} differs from graph");
    }
    // Bcc: SMTP keeps it in the envelope only; Graph hands it to Exchange in the header
    // (Exchange strips it); the outbox records it.
    let [graph, smtp, outbox] = [&parsed[0].1, &parsed[1].1, &parsed[2].1];
    assert_eq!(bcc_of(graph), ["audit@example.org"]);
    assert!(bcc_of(smtp).is_empty());
    assert_eq!(bcc_of(outbox), ["audit@example.org"]);
    let rcpt = received[1].rcpt_to.as_ref().unwrap();
    assert!(
        rcpt.iter().any(|r| r.contains("audit@example.org")),
        "{rcpt:?}"
    );
}

#[tokio::test]
async fn a_text_only_email_is_the_same_message_over_smtp_and_the_outbox() {
    let transports = transports().await;
    // Graph's JSON form has no MIME to compare; the other two must agree.
    let email = &emails()[1];
    transports.smtp.send(email).await.unwrap();
    transports.outbox.send(email).await.unwrap();
    let smtp = transports.smtp_server.messages().pop().unwrap().data;
    let file = std::fs::read_dir(transports.outbox_dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = std::fs::read(file).unwrap();
    let (a, b) = (
        MessageParser::default().parse(&smtp).unwrap(),
        MessageParser::default().parse(&file).unwrap(),
    );
    assert_eq!(seen(&a), seen(&b));
}

const RAW: &str = "From: No Reply <no-reply@example.org>\r\n\
To: Ann <ann@example.org>\r\n\
Bcc: audit@example.org,\r\n secret@example.org\r\n\
Subject: Prepared elsewhere\r\n\
Message-ID: <prepared-7@example.org>\r\n\
X-Mailer: some other library\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Body line one.\r\n\
.leading dot\r\n";

fn without_bcc(raw: &str) -> String {
    raw.replace("Bcc: audit@example.org,\r\n secret@example.org\r\n", "")
}

#[tokio::test]
async fn a_raw_message_goes_through_each_transport_unchanged_apart_from_bcc() {
    let transports = transports().await;
    let email = Email::from_mime(RAW).unwrap();
    let received = transports.send_everywhere(&email).await;
    let [graph, smtp, outbox] = [&received[0], &received[1], &received[2]];
    // Graph: byte for byte, Bcc included (Exchange reads and strips it).
    assert_eq!(String::from_utf8_lossy(&graph.bytes), RAW);
    // SMTP: without the Bcc header; Bcc recipients in the envelope only; the `Date` it
    // lacked added in front.
    let smtp_text = String::from_utf8_lossy(&smtp.bytes);
    let (date, rest) = smtp_text.split_once("\r\n").unwrap();
    assert!(date.starts_with("Date: "), "{smtp_text}");
    assert_eq!(rest, without_bcc(RAW));
    let rcpt = smtp.rcpt_to.as_ref().unwrap();
    assert_eq!(rcpt.len(), 3, "{rcpt:?}");
    assert!(
        rcpt.iter().any(|r| r.contains("secret@example.org")),
        "{rcpt:?}"
    );
    // The outbox: the record, as given.
    assert_eq!(String::from_utf8_lossy(&outbox.bytes), RAW);
}

#[tokio::test]
async fn a_lettre_message_goes_through_each_transport_unchanged_apart_from_bcc() {
    let transports = transports().await;
    let message = lettre::Message::builder()
        .from("No Reply <no-reply@example.org>".parse().unwrap())
        .to("Ann <ann@example.org>".parse().unwrap())
        .bcc("audit@example.org".parse().unwrap())
        .subject("Built with lettre")
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(String::from("Hello from lettre\r\n"))
        .unwrap();
    let lettre_bytes = message.formatted();
    let email = Email::try_from(message).unwrap();
    let received = transports.send_everywhere(&email).await;
    let [graph, smtp, outbox] = [&received[0], &received[1], &received[2]];
    // SMTP: lettre's bytes after the `Message-ID` lettre did not write.
    let id_end = smtp.bytes.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let id_line = String::from_utf8_lossy(&smtp.bytes[..id_end]);
    assert!(
        id_line.starts_with("Message-ID: <") && id_line.ends_with("@example.org>\r\n"),
        "{id_line}"
    );
    assert_eq!(
        smtp.bytes[id_end..],
        lettre_bytes,
        "SMTP: then lettre's bytes"
    );
    let bcc_line = b"Bcc: audit@example.org\r\n";
    for other in [graph, outbox] {
        assert!(other.bytes.starts_with(bcc_line), "{}", other.transport);
        assert_eq!(
            &other.bytes[bcc_line.len()..],
            &lettre_bytes[..],
            "{}",
            other.transport
        );
    }
    let rcpt = smtp.rcpt_to.as_ref().unwrap();
    assert!(
        rcpt.iter().any(|r| r.contains("audit@example.org")),
        "{rcpt:?}"
    );
    let parsed = MessageParser::default().parse(&graph.bytes).unwrap();
    assert!(parsed.header(HeaderName::Bcc).is_some());
}
