//! Issue 8, items 2 and 14: what the MIME builder puts on the wire under hostile input.
//!
//! Bodies and text attachments must never carry a bare CR, a bare LF or a NUL (SMTP smuggling),
//! and header lines must stay within RFC 5322's 998 octets (78 where they can be folded) and
//! decode back to exactly what was given — an ASCII text that merely looks like an encoded word
//! included.

#[cfg(feature = "smtp")]
use std::time::Duration;

#[cfg(feature = "smtp")]
use mail_connector::ConnectorSettings;
use mail_connector::{Attachment, Email, EmailBuilder, MailTransport, Mailbox, OutboxTransport};
use mail_parser::{MessageParser, MimeHeaders};

#[cfg(feature = "smtp")]
use crate::lenient_smtp;

/// The commands a smuggler hides after a fake end of data.
const INJECTED: &str = "MAIL FROM:<ceo@victim.example>\r\nRCPT TO:<finance@victim.example>\r\nDATA\r\nSubject: forged\r\n\r\nPay the invoice.\r\n";

/// Every way to end a line early that a lenient receiver may honour, and a NUL.
fn hostile_text() -> String {
    format!(
        "Hello\r.\r\n{INJECTED}.\r\nbare CR\r.\rbare LF\n.\nmixed\n\r.\r\nnul\0here\x1b[31m\x7fend"
    )
}

/// What the text above becomes once every line break is CRLF.
fn normalised(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

async fn render(email: &Email) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let outbox =
        OutboxTransport::new(dir.path()).with_sender("no-reply@example.org".parse().unwrap());
    let report = outbox.send(email).await.unwrap();
    std::fs::read(report.messages[0].id.as_deref().unwrap()).unwrap()
}

/// Fails when any CR is not followed by LF, any LF not preceded by CR, or a NUL appears.
fn assert_clean_line_endings(raw: &[u8]) {
    for (i, &b) in raw.iter().enumerate() {
        assert_ne!(b, 0, "NUL at {i}");
        if b == b'\r' {
            assert_eq!(raw.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
        if b == b'\n' {
            assert!(i > 0 && raw[i - 1] == b'\r', "bare LF at {i}");
        }
    }
}

fn header_lines(raw: &[u8]) -> Vec<&[u8]> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    raw[..end].split(|&b| b == b'\n').collect()
}

#[tokio::test]
async fn hostile_bodies_and_text_attachments_reach_the_wire_with_crlf_only() {
    let text = hostile_text();
    let email = Email::builder()
        .to("ann@example.org")
        .subject("smuggling")
        .text(text.clone())
        .html(format!("<p>{text}</p>"))
        .attachment(
            Attachment::from_bytes("notes.txt", text.clone().into_bytes())
                .with_content_type("text/plain; charset=utf-8"),
        )
        .build()
        .unwrap();
    let raw = render(&email).await;
    assert_clean_line_endings(&raw);

    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.body_text(0).as_deref(), Some(&*normalised(&text)));
    assert_eq!(
        message.body_html(0).as_deref(),
        Some(&*normalised(&format!("<p>{text}</p>")))
    );
    // The attachment is a file: its bytes come back exactly as given.
    let attachment = message.attachment(0).unwrap();
    assert_eq!(attachment.attachment_name(), Some("notes.txt"));
    assert_eq!(attachment.contents(), text.as_bytes());
}

#[tokio::test]
async fn a_text_only_body_with_a_bare_cr_is_normalised() {
    // The simplest case of the issue: ASCII, short lines, today sent 7bit with the CR intact.
    let text = format!("Hi\r.\r\n{INJECTED}");
    let email = Email::builder()
        .to("ann@example.org")
        .text(text.clone())
        .build()
        .unwrap();
    let raw = render(&email).await;
    assert_clean_line_endings(&raw);
    let message = MessageParser::default().parse(&raw).unwrap();
    // The message's own final CRLF is part of a 7bit body as parsed.
    let body = message.body_text(0).unwrap();
    assert_eq!(body.trim_end(), normalised(&text).trim_end());
    // An attachment of plain ASCII with bare line breaks is also kept off the wire as is.
    let email = Email::builder()
        .to("ann@example.org")
        .text("see attached")
        .attachment(Attachment::from_bytes(
            "a.csv",
            b"a,b\r.\r\nQUIT\n1,2\n".to_vec(),
        ))
        .build()
        .unwrap();
    let raw = render(&email).await;
    assert_clean_line_endings(&raw);
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        message.attachment(0).unwrap().contents(),
        b"a,b\r.\r\nQUIT\n1,2\n"
    );
}

#[cfg(feature = "smtp")]
#[tokio::test]
async fn a_lenient_end_of_data_receiver_records_exactly_one_message() {
    let server = lenient_smtp::LenientServer::start().await;
    let transport = ConnectorSettings::from_toml_str(&format!(
        "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\nuser_name = \"no-reply@example.org\"\n\
         auth_mode = \"none\"\nuse_ssl = false\n",
        server.port()
    ))
    .unwrap()
    .build()
    .unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .subject("smuggling")
        .text(format!("Hi\r.\r\n{INJECTED}.\r\nQUIT\r\n"))
        .build()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), transport.send(&email))
        .await
        .expect("the send ends")
        .unwrap();

    let messages = server.messages();
    assert_eq!(messages.len(), 1, "a forged second message: {messages:?}");
    assert_eq!(messages[0].rcpt_to, ["ann@example.org"]);
    assert_clean_line_endings(&messages[0].data);
    let message = MessageParser::default().parse(&messages[0].data).unwrap();
    let body = message.body_text(0).unwrap();
    assert!(body.contains(INJECTED), "{body:?}");
}

#[cfg(feature = "smtp")]
#[tokio::test]
async fn a_prepared_message_with_bare_line_breaks_cannot_smuggle_a_second_message() {
    let server = lenient_smtp::LenientServer::start().await;
    let transport = ConnectorSettings::from_toml_str(&format!(
        "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\nuser_name = \"no-reply@example.org\"\n\
         auth_mode = \"none\"\nuse_ssl = false\n",
        server.port()
    ))
    .unwrap()
    .build()
    .unwrap();
    let raw = format!(
        "From: no-reply@example.org\nTo: ann@example.org\nSubject: prepared\n\nHi\r.\r\n{INJECTED}.\n\r.\rQUIT\n"
    );
    let email = Email::from_mime(raw).unwrap();
    assert_clean_line_endings(email.mime().unwrap());
    tokio::time::timeout(Duration::from_secs(30), transport.send(&email))
        .await
        .expect("the send ends")
        .unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "a forged second message: {messages:?}");
    assert_eq!(messages[0].rcpt_to, ["ann@example.org"]);
    assert_clean_line_endings(&messages[0].data);
}

/// The error of a build that must fail (without printing a huge email when it does not).
fn build_error(builder: EmailBuilder) -> mail_connector::Error {
    match builder.build() {
        Ok(_) => panic!("the email was built"),
        Err(error) => error,
    }
}

// ---- item 14: long header lines and encoded-word look-alikes ----

async fn assert_headers_fit_and_round_trip(builder: EmailBuilder, subject: &str, x: &str) {
    let email = builder
        .to("ann@example.org")
        .subject(subject)
        .header("X-Long", x)
        .text("body")
        .build()
        .unwrap();
    let raw = render(&email).await;
    assert_clean_line_endings(&raw);
    for line in header_lines(&raw) {
        // Every header line fits in 78 octets plus CR: each word long enough to need more is
        // encoded, and encoded words fold.
        assert!(
            line.len() <= 79,
            "{} octets: {:?}",
            line.len(),
            String::from_utf8_lossy(&line[..line.len().min(120)])
        );
    }
    let message = MessageParser::new()
        .with_minimal_headers()
        .header_text(mail_parser::HeaderName::Other("X-Long".into()))
        .parse(&raw)
        .unwrap();
    assert_eq!(message.subject(), Some(subject));
    assert_eq!(
        message.header("X-Long").and_then(|h| h.as_text()),
        Some(x),
        "X-Long"
    );
    assert!(message.header("Bcc").is_none(), "a Bcc header appeared");
}

#[tokio::test]
async fn long_words_in_subject_and_headers_are_folded_or_encoded() {
    let subject = "S".repeat(2_000);
    let x = "x".repeat(5_000);
    assert_headers_fit_and_round_trip(Email::builder(), &subject, &x).await;
    // Long words between short ones, non-ASCII, several spaces and a tab.
    let subject = format!(
        "Report {}  for Köln\tand {} done",
        "A".repeat(300),
        "é".repeat(200)
    );
    let x = format!("id={} short words", "0123456789".repeat(40));
    assert_headers_fit_and_round_trip(Email::builder(), &subject, &x).await;
    // A long run of spaces cannot fold where it is written raw: it is encoded instead.
    let spaces = format!("a{}b", " ".repeat(5_000));
    let some = format!("a{}b c", " ".repeat(70));
    assert_headers_fit_and_round_trip(Email::builder(), &spaces, &some).await;
    // A word with the spaces after it fits a line only when both together do.
    let words_and_runs = format!("{}{}", "L".repeat(60), " ".repeat(16)).repeat(5);
    assert_headers_fit_and_round_trip(Email::builder(), &words_and_runs, &words_and_runs).await;
    for run in [17, 40] {
        let before_a_long_word = format!(
            "{} x{}{} y",
            "w".repeat(50),
            " ".repeat(run),
            "L".repeat(60)
        );
        assert_headers_fit_and_round_trip(Email::builder(), &before_a_long_word, "x").await;
    }
}

#[tokio::test]
async fn text_that_looks_like_an_encoded_word_decodes_to_itself() {
    // base64 of "\r\nBcc: evil@attacker.example": decoded raw, it would show a Bcc line.
    let lookalike = "=?utf-8?b?DQpCY2M6IGV2aWxAYXR0YWNrZXIuZXhhbXBsZQ==?=";
    assert_headers_fit_and_round_trip(Email::builder(), lookalike, lookalike).await;
    let subject = format!("Re: {lookalike} and =?iso-8859-1?q?caf=E9?= inside{lookalike}text");
    assert_headers_fit_and_round_trip(Email::builder(), &subject, &subject).await;
    // A display name that looks like one is encoded too (by lettre's quoted-string writer).
    let email = Email::builder()
        .to(Mailbox::new(Some(lookalike), "ann@example.org").unwrap())
        .text("body")
        .build()
        .unwrap();
    let raw = render(&email).await;
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        message.to().unwrap().first().unwrap().name(),
        Some(lookalike)
    );
}

#[tokio::test]
async fn a_huge_subject_or_header_is_refused_at_build_with_the_limit() {
    let error = build_error(
        Email::builder()
            .to("ann@example.org")
            .subject("S".repeat(1_000_000)),
    );
    let text = error.to_string();
    assert!(text.contains("subject"), "{text}");
    assert!(text.contains("16384"), "{text}");
    let error = build_error(
        Email::builder()
            .to("ann@example.org")
            .header("X-Big", "v".repeat(1_000_000)),
    );
    assert!(error.to_string().contains("headers[0]"), "{error}");
    // At the limit, it builds and fits.
    let subject = "S".repeat(16_384);
    assert_headers_fit_and_round_trip(Email::builder(), &subject, "x").await;
}

#[tokio::test]
async fn long_display_names_fit_the_line_limit() {
    let name = "N".repeat(200);
    let quoted = format!("{} {}", "Doe,".repeat(40), "Ann");
    let email = Email::builder()
        .to(Mailbox::new(Some(&name), "ann@example.org").unwrap())
        .cc(Mailbox::new(Some(&quoted), "jane@example.org").unwrap())
        .text("body")
        .build()
        .unwrap();
    let raw = render(&email).await;
    for line in header_lines(&raw) {
        assert!(line.len() <= 999, "{} octets", line.len());
    }
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.to().unwrap().first().unwrap().name(), Some(&*name));
    assert_eq!(
        message.cc().unwrap().first().unwrap().name(),
        Some(&*quoted)
    );
    // Longer names are refused with the limit.
    let Err(error) = Mailbox::new(Some(&"N".repeat(1_000)), "ann@example.org") else {
        panic!("a 1,000-character name was accepted");
    };
    assert!(error.to_string().contains("256"), "{error}");
}

#[tokio::test]
async fn long_attachment_names_and_content_ids_fit_the_line_limit() {
    let name = format!("{}.txt", "n".repeat(2_000));
    let email = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_bytes(name.clone(), b"x".to_vec()).inline("c".repeat(200)))
        .attachment(Attachment::from_bytes(name.clone(), b"y".to_vec()))
        .build()
        .unwrap();
    let raw = render(&email).await;
    assert!(raw.split(|&b| b == b'\n').all(|line| line.len() <= 999));
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        message.attachment(1).unwrap().attachment_name(),
        Some(&*name)
    );
    // A Content-ID is a single word that cannot fold: it is limited.
    let error = build_error(
        Email::builder()
            .to("ann@example.org")
            .attachment(Attachment::from_bytes("a.png", b"x".to_vec()).inline("c".repeat(5_000))),
    );
    assert!(error.to_string().contains("at most 200"), "{error}");
}

#[tokio::test]
async fn nothing_folds_before_the_first_word_so_it_fits_the_first_line_or_is_encoded() {
    // Nothing can fold between a header's name and its first word: a long name with a long
    // first word, or spaces before it, would make a line over 78 octets as written.
    let name = format!("X-{}", "N".repeat(38));
    let cases = [
        (name.as_str(), format!("{} tail", "w".repeat(50))),
        (
            "X-Long",
            format!("{}{} tail", " ".repeat(16), "w".repeat(60)),
        ),
        ("X-Long", format!("   {} tail", "é".repeat(40))),
        // Short enough: written as it is.
        (name.as_str(), format!("{} tail", "w".repeat(30))),
    ];
    // A name so long (up to the 64 characters allowed) that not even one encoded character
    // fits after it: the value begins on the next line.
    let longest = format!("X-{}", "L".repeat(62));
    let long_names = [
        (longest.as_str(), format!("{} tail", "w".repeat(20))),
        (longest.as_str(), "é tail".to_owned()),
        (longest.as_str(), "😀 tail".to_owned()),
        (
            longest.as_str(),
            format!("{}{} tail", " ".repeat(17), "w".repeat(5)),
        ),
        (&longest[..58], "😀 tail".to_owned()),
        (&longest[..56], "😀 tail".to_owned()),
        (longest.as_str(), "short".to_owned()),
    ];
    for (header, value) in cases.iter().chain(&long_names) {
        let email = Email::builder()
            .to("ann@example.org")
            .header(*header, value.as_str())
            .text("body")
            .build()
            .unwrap();
        let raw = render(&email).await;
        for line in header_lines(&raw) {
            assert!(
                line.len() <= 79,
                "{} octets: {:?}",
                line.len(),
                String::from_utf8_lossy(line)
            );
        }
        let message = MessageParser::new()
            .with_minimal_headers()
            .header_text(mail_parser::HeaderName::Other((*header).to_owned().into()))
            .parse(&raw)
            .unwrap();
        assert_eq!(
            message.header(*header).and_then(|h| h.as_text()),
            Some(value.as_str()),
            "{header}"
        );
    }
    let short = Email::builder()
        .to("ann@example.org")
        .header(&name, cases[3].1.as_str())
        .text("body")
        .build()
        .unwrap();
    let raw = String::from_utf8(render(&short).await).unwrap();
    let first_word = cases[3].1.split(' ').next().unwrap();
    assert!(raw.contains(&format!("{name}: {first_word}")), "{raw}");
}
