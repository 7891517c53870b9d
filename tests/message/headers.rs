//! Issue 12: headers a caller sets reach the wire as given (structured ones verbatim, others
//! RFC 2047-encoded when not ASCII), and the generated Message-ID names the sender's domain.

use mail_connector::{Email, MailTransport, OutboxTransport};
use mail_parser::{HeaderName, HeaderValue, MessageParser};

async fn written(email: &Email) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxTransport::new(dir.path())
        .with_sender("Reports <reports@mail.example.org>".parse().unwrap());
    let report = outbox.send(email).await.unwrap();
    std::fs::read(report.messages[0].id.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn structured_headers_are_written_verbatim_and_threading_parses() {
    let long_url = format!(
        "<https://example.org/unsubscribe?token={}>",
        "t".repeat(120)
    );
    let email = Email::builder()
        .to("ann@example.org")
        .text("Hello")
        .header("Message-ID", "<reply-2@example.org>")
        .header("In-Reply-To", "<question-1@example.org>")
        .header("References", "<root@example.org> <question-1@example.org>")
        .header(
            "List-Unsubscribe",
            format!("{long_url}, <mailto:u@example.org>"),
        )
        .header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        .build()
        .unwrap();
    let raw = written(&email).await;
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(!text.contains("=?"), "no encoded words:\n{text}");
    assert!(text.contains(&long_url), "the URL stays whole:\n{text}");
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.message_id(), Some("reply-2@example.org"));
    assert_eq!(
        message.in_reply_to().as_text(),
        Some("question-1@example.org")
    );
    assert_eq!(
        message.references().as_text_list().unwrap(),
        ["root@example.org", "question-1@example.org"]
    );
    assert_eq!(
        message.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    let unsubscribe = message.header("List-Unsubscribe").unwrap();
    let HeaderValue::Address(address) = unsubscribe else {
        panic!("{unsubscribe:?}");
    };
    let urls: Vec<_> = address.iter().filter_map(|a| a.address()).collect();
    assert_eq!(
        urls,
        [&long_url[1..long_url.len() - 1], "mailto:u@example.org"]
    );
    // Every line stays within the limit, folded at spaces.
    for line in text.split("\r\n") {
        assert!(line.len() <= 998, "{line}");
    }
}

#[tokio::test]
async fn other_headers_are_rfc_2047_encoded_and_decode_back() {
    let email = Email::builder()
        .to("ann@example.org")
        .header("Keywords", "Grüße, 日本語")
        .header("X-Note", "naïve café")
        .build()
        .unwrap();
    let raw = written(&email).await;
    assert!(raw.is_ascii(), "7-bit headers");
    let message = MessageParser::default()
        .header_text(HeaderName::Other("X-Note".into()))
        .parse(&raw)
        .unwrap();
    let note = message.header("X-Note").unwrap().as_text().unwrap();
    assert_eq!(note, "naïve café");
    assert!(String::from_utf8_lossy(&raw).contains("Keywords: =?utf-8?"));
}

#[tokio::test]
async fn the_generated_message_id_is_at_the_senders_domain_not_the_host() {
    let email = Email::builder()
        .to("ann@example.org")
        .text("x")
        .build()
        .unwrap();
    let first = written(&email).await;
    let second = written(&email).await;
    let id = |raw: &[u8]| {
        MessageParser::default()
            .parse(raw)
            .unwrap()
            .message_id()
            .unwrap()
            .to_owned()
    };
    let (a, b) = (id(&first), id(&second));
    assert!(a.ends_with("@mail.example.org"), "{a}");
    assert_ne!(a, b, "unique per message");
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    if !host.is_empty() {
        assert!(
            !a.contains(host) || "mail.example.org".contains(host),
            "{a}"
        );
    }
}

/// Runs of spaces between the ids or URLs of a structured header mean nothing: one space
/// stays, and the lines fold (a run kept whole made a line of thousands of octets).
#[tokio::test]
async fn structured_headers_keep_one_space_between_items() {
    let email = Email::builder()
        .to("ann@example.org")
        .text("x")
        .header(
            "References",
            format!("<a@example.org>{}<b@example.org>", " ".repeat(5_000)),
        )
        .header("In-Reply-To", format!("<b@example.org>{}", " ".repeat(200)))
        .build()
        .unwrap();
    let raw = written(&email).await;
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(
        text.contains("References: <a@example.org> <b@example.org>\r\n"),
        "{text}"
    );
    assert!(text.contains("In-Reply-To: <b@example.org>\r\n"), "{text}");
    assert!(text.lines().all(|line| line.len() <= 78), "{text}");
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.in_reply_to().as_text(), Some("b@example.org"));
}

/// A Message-ID is ASCII: at a sender's domain that is not, the id names its IDNA form
/// rather than becoming an encoded word. And the message model needs no Tokio runtime: a
/// downstream transport on another executor renders with `to_mime`, file attachments too.
#[test]
fn to_mime_works_without_tokio_and_writes_an_ascii_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello").unwrap();
    let email = Email::builder()
        .from("Berichte <berichte@bücher.example>")
        .to("ann@example.org")
        .text("x")
        .attachment(mail_connector::Attachment::from_path(&path).unwrap())
        .build()
        .unwrap();
    let mut rendering = std::pin::pin!(email.to_mime());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mime = loop {
        if let std::task::Poll::Ready(mime) = rendering.as_mut().poll(&mut cx) {
            break mime.unwrap();
        }
    };
    let message = MessageParser::default().parse(&mime).unwrap();
    let id = message.message_id().unwrap();
    assert!(id.ends_with("@xn--bcher-kva.example"), "{id}");
    let header = String::from_utf8_lossy(&mime);
    let line = header
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        .unwrap();
    assert!(!line.contains("=?"), "{line}");
    assert_eq!(message.attachment(0).unwrap().contents(), b"hello");
}

#[tokio::test]
async fn to_mime_gives_what_the_outbox_writes() {
    let email = Email::builder()
        .from("reports@example.org")
        .to("ann@example.org")
        .bcc("audit@example.org")
        .subject("Report")
        .text("text")
        .html("<p>html</p>")
        .header("Message-ID", "<fixed@example.org>")
        .build()
        .unwrap();
    let mime = email.to_mime().await.unwrap();
    let message = MessageParser::default().parse(&mime).unwrap();
    assert_eq!(message.message_id(), Some("fixed@example.org"));
    assert_eq!(message.body_text(0).unwrap().trim(), "text");
    assert_eq!(message.body_html(0).unwrap().trim(), "<p>html</p>");
    assert!(message.bcc().is_some(), "a record keeps Bcc");
    // No sender: a clear error.
    let error = Email::builder()
        .to("ann@example.org")
        .build()
        .unwrap()
        .to_mime()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("from"), "{error}");
}

/// A header the message may carry more than once (`Keywords`, `Comments`, `X-` headers, …),
/// set more than once, reaches the wire once for each time it was set, in order: lettre keeps
/// one header of a name, and each one set replaced the one before.
#[tokio::test]
async fn a_header_set_twice_is_written_twice() {
    let email = Email::builder()
        .to("ann@example.org")
        .header("X-Tag", "first")
        .header("Keywords", "alpha")
        .header("x-tag", "second Grüße")
        .header("Keywords", "beta")
        .header("List-Help", "<mailto:help@example.org>")
        .header("List-Help", "<https://example.org/help>")
        .build()
        .unwrap();
    let raw = written(&email).await;
    let message = MessageParser::default()
        .header_text(HeaderName::Other("X-Tag".into()))
        .parse(&raw)
        .unwrap();
    let values = |name: &str| -> Vec<String> {
        message
            .headers()
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .map(|h| match &h.value {
                HeaderValue::Text(text) => text.to_string(),
                HeaderValue::TextList(list) => list.join(","),
                other => format!("{other:?}"),
            })
            .collect()
    };
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(values("X-Tag"), ["first", "second Grüße"], "{text}");
    assert_eq!(values("Keywords"), ["alpha", "beta"], "{text}");
    assert_eq!(
        text.matches("List-Help: <").count(),
        2,
        "both List-Help headers:\n{text}"
    );
    // Each on a line of its own, in the order set.
    let first = text.find("X-Tag: first\r\n").expect(&text);
    let second = text.find("x-tag: ").expect(&text);
    assert!(first < second, "{text}");
}

/// A structured header's word of exactly the longest length (900 bytes) is sent whole on
/// one line the recipient's client can read; one byte more is refused at build.
#[tokio::test]
async fn a_structured_word_of_the_longest_length_is_sent_whole() {
    let url = |len: usize| format!("<https://example.org/{}>", "u".repeat(len - 22));
    let longest = url(900);
    assert_eq!(longest.len(), 900);
    let email = Email::builder()
        .to("ann@example.org")
        .text("x")
        .header("List-Unsubscribe", longest.as_str())
        .build()
        .unwrap();
    let raw = written(&email).await;
    let text = String::from_utf8(raw).unwrap();
    assert!(text.contains(&format!("{longest}\r\n")), "{text}");
    let refused = Email::builder()
        .to("ann@example.org")
        .header("List-Unsubscribe", url(901))
        .build()
        .unwrap_err()
        .to_string();
    assert!(refused.contains("longer than 900"), "{refused}");
}

/// An address list is written one mailbox a line, separated by commas, so that the
/// recipient's client shows every recipient and reads each one apart.
#[tokio::test]
async fn an_address_list_separates_its_mailboxes_with_commas() {
    let email = Email::builder()
        .to("Ann Example <ann@example.org>")
        .to("bob@example.org")
        .cc("Zoë <zoe@example.org>")
        .cc("cy@example.org")
        .text("x")
        .build()
        .unwrap();
    let raw = written(&email).await;
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(
        text.contains("\r\nTo: \"Ann Example\" <ann@example.org>,\r\n bob@example.org\r\n"),
        "{text}"
    );
    // A name that is not ASCII is an encoded word, never raw UTF-8.
    assert!(
        text.contains("\r\nCc: =?utf-8?b?Wm/Dqw==?= <zoe@example.org>,\r\n cy@example.org\r\n"),
        "{text}"
    );
    let message = MessageParser::default().parse(&raw).unwrap();
    let addresses = |list: Option<&mail_parser::Address>| -> Vec<(Option<String>, String)> {
        list.unwrap()
            .iter()
            .map(|a| (a.name().map(str::to_owned), a.address().unwrap().to_owned()))
            .collect()
    };
    assert_eq!(
        addresses(message.to()),
        [
            (Some("Ann Example".to_owned()), "ann@example.org".to_owned()),
            (None, "bob@example.org".to_owned()),
        ]
    );
    assert_eq!(
        addresses(message.cc()),
        [
            (Some("Zoë".to_owned()), "zoe@example.org".to_owned()),
            (None, "cy@example.org".to_owned()),
        ]
    );
}
