//! Issue 12: prepared messages (raw RFC 5322, a lettre::Message) as emails, and the serde
//! round trip of every kind of content.

use mail_connector::{Attachment, Email, Importance};

use crate::support::png_bytes;

const RAW: &str = "From: Reports <reports@example.org>\r\n\
To: Ann <ann@example.org>, bob@example.org\r\n\
Cc: carol@example.org\r\n\
Bcc: audit@example.org\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
Message-ID: <prepared-1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello\r\n";

#[test]
fn recipients_sender_and_subject_come_from_the_headers() {
    let email = Email::from_mime(RAW).unwrap();
    let to: Vec<_> = email.to().iter().map(|m| m.address()).collect();
    assert_eq!(to, ["ann@example.org", "bob@example.org"]);
    assert_eq!(email.to()[0].name(), Some("Ann"));
    assert_eq!(email.cc()[0].address(), "carol@example.org");
    assert_eq!(email.bcc()[0].address(), "audit@example.org");
    assert_eq!(email.from().unwrap().address(), "reports@example.org");
    assert_eq!(email.subject(), "Grüße");
    assert_eq!(email.mime(), Some(RAW.as_bytes()));
}

#[test]
fn given_recipients_replace_the_headers_as_the_envelope() {
    let email = Email::builder()
        .mime(RAW)
        .bcc("other@example.org")
        .build()
        .unwrap();
    assert_eq!(email.recipient_count(), 1);
    assert_eq!(email.bcc()[0].address(), "other@example.org");
    assert_eq!(email.mime(), Some(RAW.as_bytes()), "the bytes stay");
}

#[test]
fn a_prepared_message_takes_nothing_else() {
    let cases = [
        (Email::builder().mime(RAW).subject("x"), "subject"),
        (Email::builder().mime(RAW).text("x"), "text"),
        (Email::builder().mime(RAW).html("x"), "html"),
        (Email::builder().mime(RAW).header("X-A", "1"), "headers"),
        (
            Email::builder()
                .mime(RAW)
                .attachment(Attachment::from_bytes("a", "b")),
            "attachments",
        ),
        (Email::builder().mime(RAW).from("x@example.org"), "from"),
    ];
    for (builder, field) in cases {
        let error = builder.build().unwrap_err();
        let text = error.to_string();
        assert!(text.contains(field) && text.contains("prepared"), "{text}");
    }
}

#[test]
fn bad_prepared_messages_are_refused_clearly() {
    let cases = [
        ("", "no header"),
        ("To: ann@example.org\r\n\r\nx", "no `From`"),
        ("From: a@example.org\r\nSubject: x\r\n\r\nx", "no recipient"),
        (
            "From: a@example.org\r\nTo: not-an-address@\r\n\r\nx",
            "mime",
        ),
        (
            "From: a@example.org\r\nTo: Bob <bob@example..org>\r\n\r\nx",
            "the `To` header's address 0: `bob@example..org` is not a valid email address (its \
             domain is not a domain name",
        ),
        // An item without an address is not dropped (its recipient would get nothing).
        (
            "From: a@example.org\r\nTo: Bob <b@example.org>, broken, c@example.org\r\n\r\nx",
            "the `To` header's item 1 (`broken`) has no address",
        ),
    ];
    for (raw, expected) in cases {
        let error = Email::from_mime(raw).unwrap_err().to_string();
        assert!(error.contains(expected), "{raw:?}: {error}");
    }
    // Group syntax is no such item: an empty group names nobody, a group its members.
    let email = Email::from_mime(
        "From: a@example.org\r\nTo: undisclosed-recipients:;\r\nCc: Team: b@example.org, \
         c@example.org;\r\n\r\nx",
    )
    .unwrap();
    let cc: Vec<&str> = email.cc().iter().map(|m| m.address()).collect();
    assert_eq!(cc, ["b@example.org", "c@example.org"]);
    assert!(email.to().is_empty());
}

#[test]
fn a_lettre_message_converts_losing_nothing() {
    let message = lettre::Message::builder()
        .from("Reports <reports@example.org>".parse().unwrap())
        .to("Ann <ann@example.org>".parse().unwrap())
        .bcc("Audit <audit@example.org>".parse().unwrap())
        .subject("From lettre")
        .body(String::from("Hello"))
        .unwrap();
    let formatted = message.formatted();
    let email = Email::try_from(&message).unwrap();
    assert_eq!(email.to()[0].address(), "ann@example.org");
    assert_eq!(email.bcc()[0].address(), "audit@example.org");
    assert_eq!(email.bcc()[0].name(), None, "lettre keeps only the address");
    let mime = email.mime().unwrap();
    // lettre's bytes follow the Bcc line written back in front.
    assert!(mime.ends_with(&formatted), "the rest is lettre's bytes");
    assert!(mime.starts_with(b"Bcc: audit@example.org\r\n"));
    let owned = Email::try_from(message).unwrap();
    assert_eq!(owned, email);
}

/// One email of each kind: every field and header kind, file and byte attachments, inline
/// images, non-ASCII text, and prepared messages.
fn every_kind() -> Vec<Email> {
    let dir = std::env::temp_dir();
    let file = dir.join(format!("mc-serde-{}.txt", std::process::id()));
    std::fs::write(&file, "file attachment").unwrap();
    vec![
        Email::builder()
            .from("Reports <reports@example.org>")
            .to("Ann Example <ann@example.org>")
            .to("bob@example.org")
            .cc("Zoë Ü <zoe@example.org>")
            .bcc("audit@example.org")
            .reply_to("help@example.org")
            .subject("Nightly report ✅")
            .text("The report is attached.\r\nLine two")
            .html("<p>The report. <img src=\"cid:logo\"></p>")
            .attachment(Attachment::from_bytes("report.csv", "a,b\n1,2\n"))
            .attachment(Attachment::from_bytes("logo.png", png_bytes()).inline("logo"))
            .attachment(Attachment::from_path(&file).unwrap())
            .importance(Importance::Low)
            .header("Message-ID", "<id-1@example.org>")
            .header("In-Reply-To", "<q@example.org>")
            .header("References", "<r@example.org> <q@example.org>")
            .header("List-Unsubscribe", "<https://example.org/u>")
            .header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
            .header("X-Tag", "naïve")
            .build()
            .unwrap(),
        Email::builder().bcc("only@example.org").build().unwrap(),
        Email::builder()
            .to("ann@example.org")
            .html("<b>html only</b>")
            .importance(Importance::High)
            .build()
            .unwrap(),
        Email::from_mime(RAW).unwrap(),
        Email::builder()
            .mime(RAW)
            .to("envelope@example.org")
            .build()
            .unwrap(),
    ]
}

#[test]
fn serde_round_trip_of_every_kind_of_content() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for email in every_kind() {
        // An attachment still naming a file is refused when read back (see the wire
        // module's tests): as the docs say, load attachments before serialising.
        let email = runtime.block_on(email.load_attachments()).unwrap();
        let json = serde_json::to_string(&email).unwrap();
        let back: Email = serde_json::from_str(&json).unwrap();
        assert_eq!(back, email, "{json}");
        // And through a second serde format, as a queue might store it.
        let value = serde_json::to_value(&email).unwrap();
        let toml = toml::to_string(&value).unwrap();
        let back: Email = toml::from_str(&toml).unwrap();
        assert_eq!(back, email, "{toml}");
    }
    let prepared = serde_json::to_value(Email::from_mime(RAW).unwrap()).unwrap();
    assert!(prepared["mime"].is_string(), "{prepared}");
    assert!(prepared.get("subject").is_none(), "{prepared}");
}

/// RFC 5322 allows one `From`, `To`, `Cc` and `Bcc` header each; mail-parser reads only the
/// last of a repeated one while the Bcc cut removes every one, so `Bcc: s1` of
/// `Bcc: s1\r\nBcc: s2` was silently never delivered. A repeated one is refused, named.
#[test]
fn a_repeated_address_header_is_refused_with_its_name() {
    for name in ["From", "To", "Cc", "Bcc"] {
        let raw = format!(
            "From: a@example.org\r\nTo: b@example.org\r\n{name}: s1@example.org\r\n\
             {name}: s2@example.org\r\nSubject: x\r\n\r\nbody\r\n"
        );
        let text = Email::from_mime(raw).unwrap_err().to_string();
        assert!(
            text.contains(&format!("`{name}`")) && text.contains("one"),
            "{name}: {text}"
        );
    }
}

/// A `Bcc` header on the last line without a line ending is read (and cut) like any other.
#[test]
fn a_last_header_line_without_a_line_break_is_read() {
    let email =
        Email::from_mime("From: a@example.org\r\nTo: b@example.org\r\nBcc: s@example.org").unwrap();
    let bcc: Vec<_> = email.bcc().iter().map(|m| m.address()).collect();
    assert_eq!(bcc, ["s@example.org"]);
    assert!(email.mime().unwrap().ends_with(b"\r\n"));
}

/// A message saved with a UTF-8 byte-order mark in front (as Windows editors save `.eml`
/// files) is read, and sent, without it: before, its first header was unreadable, and the
/// message was refused as having "no `From` header" though it had one.
#[tokio::test]
async fn a_byte_order_mark_before_the_headers_is_dropped() {
    let raw =
        "\u{feff}From: a@example.org\r\nTo: b@example.org\r\nBcc: s@example.org\r\n\r\nHi\r\n";
    let email = Email::from_mime(raw).unwrap();
    assert_eq!(email.from().unwrap().address(), "a@example.org");
    assert_eq!(email.mime().unwrap(), &raw.as_bytes()[3..]);
    let sender = "a@example.org".parse().unwrap();
    let wire = email.to_wire_mime(&sender).await.unwrap();
    let wire = String::from_utf8(wire).unwrap();
    assert!(!wire.contains('\u{feff}'), "{wire}");
    assert!(!wire.contains("s@example.org"), "{wire}");
    // Only in front: one anywhere else is the message's own.
    let inside = "From: a@example.org\r\nTo: b@example.org\r\n\r\n\u{feff}Hi\r\n";
    assert_eq!(
        Email::from_mime(inside).unwrap().mime().unwrap(),
        inside.as_bytes()
    );
}

/// A message split out of an mbox file starts with the mbox's `From sender date` line, which
/// is no header (it has no colon): sent on, a receiver takes it for the start of the body, and
/// every header after it (`From:`, `To:`, `Subject:`) with it. It is dropped, as `sendmail`
/// drops it; a `From :` header (space before the colon, RFC 5322's obsolete form) stays.
#[tokio::test]
async fn an_mbox_from_line_in_front_is_dropped() {
    let headers = "From: b@example.org\r\nTo: c@example.org\r\nBcc: s@example.org\r\n\r\nHi\r\n";
    for separator in [
        "From a@example.org Sat Jan  3 01:05:34 1996\r\n",
        "From MAILER-DAEMON Fri Jul  8 12:08:34 2011\n",
    ] {
        let email = Email::from_mime(format!("{separator}{headers}")).unwrap();
        assert_eq!(email.mime().unwrap(), headers.as_bytes(), "{separator:?}");
        let sender = "b@example.org".parse().unwrap();
        let wire = String::from_utf8(email.to_wire_mime(&sender).await.unwrap()).unwrap();
        assert!(
            !wire.contains("From a@") && !wire.contains("MAILER-DAEMON"),
            "{wire}"
        );
        assert!(wire.contains("\r\nFrom: b@example.org\r\n"), "{wire}");
    }
    let obsolete = "From : b@example.org\r\nTo: c@example.org\r\n\r\nHi\r\n";
    let email = Email::from_mime(obsolete).unwrap();
    assert_eq!(email.mime().unwrap(), obsolete.as_bytes());
    assert_eq!(email.from().unwrap().address(), "b@example.org");
}

/// A lettre message with its own envelope goes to the envelope's recipients only, each in the
/// role its headers give it (`Bcc` for one in no header); before, a `To` address the envelope
/// left out was still sent to.
#[test]
fn a_lettre_message_with_its_own_envelope_goes_to_that_envelope() {
    let envelope = lettre::address::Envelope::new(
        Some("reports@example.org".parse().unwrap()),
        vec![
            "bob@example.org".parse().unwrap(),
            "carol@example.org".parse().unwrap(),
            "extra@example.org".parse().unwrap(),
        ],
    )
    .unwrap();
    let message = lettre::Message::builder()
        .from("Reports <reports@example.org>".parse().unwrap())
        .to("Ann <ann@example.org>".parse().unwrap())
        .to("Bob <bob@example.org>".parse().unwrap())
        .cc("carol@example.org".parse().unwrap())
        .envelope(envelope)
        .subject("Envelope")
        .body(String::from("Hello"))
        .unwrap();
    let email = Email::try_from(&message).unwrap();
    let addresses = |list: &[mail_connector::Mailbox]| {
        list.iter()
            .map(|m| m.address().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(addresses(email.to()), ["bob@example.org"]);
    assert_eq!(email.to()[0].name(), Some("Bob"));
    assert_eq!(addresses(email.cc()), ["carol@example.org"]);
    assert_eq!(addresses(email.bcc()), ["extra@example.org"]);
    assert_eq!(email.recipient_count(), 3);
}

/// A file larger than a prepared message may be is refused from its size, before it is read
/// (a sparse file of 64 GiB, more than this machine's memory: reading it first failed).
#[test]
fn a_prepared_message_file_too_large_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.eml");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    let error = Email::builder().mime_file(&path).build().unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("68719476736 bytes") && text.contains("at most"),
        "{text}"
    );
}
