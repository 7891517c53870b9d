//! The message model: builder validation, header injection, non-ASCII, attachments.

use mail_connector::{Attachment, AttachmentContent, Email, Error, Importance, Mailbox};

use crate::support;

fn field_of(error: Error) -> String {
    match error {
        Error::InvalidMessage { field, .. } => field,
        other => panic!("expected InvalidMessage, got {other:?}"),
    }
}

fn build_err(builder: mail_connector::EmailBuilder) -> (String, String) {
    let error = builder.build().expect_err("build must fail");
    let text = error.to_string();
    (field_of(error), text)
}

#[test]
fn needs_at_least_one_recipient() {
    let (field, text) = build_err(Email::builder().subject("x"));
    assert_eq!(field, "to");
    assert!(text.contains("no recipient"), "{text}");
    // Any one role is enough.
    assert!(Email::builder().bcc("a@example.org").build().is_ok());
    assert!(Email::builder().cc("a@example.org").build().is_ok());
}

#[test]
fn invalid_addresses_name_the_field_and_index() {
    for (builder, expected) in [
        (
            Email::builder().to("ok@example.org").to("not-an-address"),
            "to[1]",
        ),
        (Email::builder().to("ok@example.org").cc("a@@b"), "cc[0]"),
        (
            Email::builder().to("ok@example.org").bcc("Ann <ann@>"),
            "bcc[0]",
        ),
        (
            Email::builder().to("ok@example.org").reply_to("x y@z"),
            "reply_to[0]",
        ),
        (Email::builder().to("ok@example.org").from("nobody"), "from"),
    ] {
        let (field, text) = build_err(builder);
        assert_eq!(field, expected, "{text}");
    }
    // And each says what is wrong, in words.
    for (address, says) in [
        ("bob", "no `@`"),
        ("@example.org", "nothing before the `@`"),
        ("bob@", "no domain after the `@`"),
        ("Bob <bob@>", "no domain after the `@`"),
        ("bob@[192.0.2.1]", "IP address"),
        ("bob@example..org", "two in a row"),
    ] {
        let (field, text) = build_err(Email::builder().to(address));
        assert_eq!(field, "to[0]", "{address}: {text}");
        assert!(text.contains(says), "{address}: {text}");
        assert!(!text.contains("Invalid input"), "{address}: {text}");
    }
}

#[test]
fn display_names_and_quoted_names_parse() {
    let email = Email::builder()
        .to("Ann Example <ann@example.org>")
        .to("\"Doe, Jane\" <jane@example.org>")
        .to("plain@example.org")
        .build()
        .unwrap();
    let to = email.to();
    assert_eq!(to[0].name(), Some("Ann Example"));
    assert_eq!(to[0].address(), "ann@example.org");
    assert_eq!(to[1].name(), Some("Doe, Jane"));
    assert_eq!(to[2].name(), None);
}

#[test]
fn header_injection_is_refused_in_every_header_field() {
    let injected = "hello\r\nBcc: victim@example.org";
    let base = || Email::builder().to("ann@example.org");
    let cases: Vec<(mail_connector::EmailBuilder, &str)> = vec![
        (base().subject(injected), "subject"),
        (base().subject("line\nbreak"), "subject"),
        (base().subject("carriage\rreturn"), "subject"),
        (base().header("X-Custom", injected), "headers[0]"),
        (base().header("X-Bad\r\nBcc", "v"), "headers[0]"),
        (
            base().attachment(Attachment::from_bytes("a\r\nb.txt", "x")),
            "attachments[0].name",
        ),
        (
            base().attachment(
                Attachment::from_bytes("a.txt", "x").with_content_type("text/plain\r\nX-Evil: 1"),
            ),
            "attachments[0].content_type",
        ),
        (
            base().attachment(Attachment::from_bytes("a.png", "x").inline("cid\r\nX: y")),
            "attachments[0].content_id",
        ),
    ];
    for (builder, expected) in cases {
        let (field, text) = build_err(builder);
        assert_eq!(field, expected, "{text}");
    }
    // Display names: through the builder's text parsing and through Mailbox::new.
    let (field, _) = build_err(Email::builder().to("\"Ann\r\nBcc: x@y.z\" <ann@example.org>"));
    assert_eq!(field, "to[0]");
    let error = Mailbox::new(Some("Ann\nBcc: victim@example.org"), "ann@example.org").unwrap_err();
    assert!(error.to_string().contains("line break"), "{error}");
    let (field, _) = build_err(
        Email::builder()
            .to("ann@example.org")
            .reply_to("Bob\n<bob@example.org>"),
    );
    assert_eq!(field, "reply_to[0]");
}

#[test]
fn headers_the_crate_writes_are_refused_with_the_setter_to_use() {
    let base = || Email::builder().to("ann@example.org");
    let cases = [
        ("From", "`from`"),
        ("to", "`to`"),
        ("Cc", "`cc`"),
        ("BCC", "`bcc`"),
        ("Subject", "`subject`"),
        ("Date", "time of sending"),
        ("MIME-Version", "MIME writer"),
        ("Content-Type", "Content-*"),
        ("content-transfer-encoding", "Content-*"),
        ("Reply-To", "`reply_to`"),
        ("Importance", "`importance`"),
        ("Received", "trace header"),
        ("received-spf", "its own checks"),
        ("Authentication-Results", "its own checks"),
        ("Resent-Bcc", "sent again"),
        ("RESENT-FROM", "sent again"),
        ("ARC-Seal", "forward"),
        ("arc-authentication-results", "forward"),
    ];
    for (name, hint) in cases {
        let (field, text) = build_err(base().header(name, "v"));
        assert_eq!(field, "headers[0]", "{name}: {text}");
        assert!(text.contains("cannot be set as a header"), "{name}: {text}");
        assert!(text.contains(hint), "{name}: {text}");
    }
    for name in ["X Space", "X-Colon:", "", "Ünïcode"] {
        let (field, text) = build_err(base().header(name, "v"));
        assert_eq!(field, "headers[0]", "{name}: {text}");
        assert!(text.contains("not a valid header name"), "{name}: {text}");
    }
}

#[test]
fn standard_headers_can_be_set() {
    let email = Email::builder()
        .to("ann@example.org")
        .header("x-lower", "ok")
        .header("Message-ID", "<reply-2@example.org>")
        .header("In-Reply-To", "<question-1@example.org>")
        .header("References", "<root@example.org>  <question-1@example.org>")
        .header(
            "List-Unsubscribe",
            "<https://example.org/u?id=1>, <mailto:u@example.org>",
        )
        .header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        .header("Auto-Submitted", "auto-generated")
        .header("Keywords", "Grüße, report")
        .build()
        .unwrap();
    assert_eq!(email.headers().len(), 8);
    assert_eq!(email.message_id(), Some("<reply-2@example.org>"));
    assert_eq!(
        email.header("in-reply-to"),
        Some("<question-1@example.org>")
    );
}

#[test]
fn structured_headers_are_checked() {
    let base = || Email::builder().to("ann@example.org");
    let cases = [
        (
            base().header("Message-ID", "no-brackets@example.org"),
            "`<left@right>`",
        ),
        (base().header("Message-ID", "<a@b> <c@d>"), "one message id"),
        (base().header("Message-ID", "<no-at>"), "`<left@right>`"),
        // Each half of an id is there, without brackets inside, and the id is at most 250
        // characters.
        (
            base().header("Message-ID", "<@example.org>"),
            "`<left@right>`",
        ),
        (base().header("Message-ID", "<a@>"), "`<left@right>`"),
        (
            base().header("Message-ID", "<a<b@example.org>"),
            "`<left@right>`",
        ),
        (
            base().header("Message-ID", format!("<{}@example.org>", "a".repeat(240))),
            "`<left@right>`",
        ),
        (
            base().header("In-Reply-To", "<a@b> junk"),
            "separated by spaces",
        ),
        (base().header("References", ""), "separated by spaces"),
        (
            base().header("List-Unsubscribe", "<https://exämple.org/u>"),
            "printable ASCII",
        ),
        (
            base().header(
                "List-Unsubscribe",
                format!("<https://example.org/{}>", "u".repeat(1_000)),
            ),
            "longer than 900",
        ),
        (
            base()
                .header("Message-ID", "<a@example.org>")
                .header("message-id", "<b@example.org>"),
            "set twice",
        ),
    ];
    for (builder, expected) in cases {
        let (field, text) = build_err(builder);
        assert!(field.starts_with("headers["), "{text}");
        assert!(text.contains(expected), "{expected}: {text}");
    }
}

#[test]
fn non_ascii_subjects_and_names_are_allowed() {
    let email = Email::builder()
        .to("Jürgen Müller <juergen@example.org>")
        .to("山田太郎 <taro@example.jp>")
        .subject("Grüße — 日本語 ✅")
        .build()
        .unwrap();
    assert_eq!(email.subject(), "Grüße — 日本語 ✅");
    assert_eq!(email.to()[1].name(), Some("山田太郎"));
}

#[test]
fn attachment_names_cannot_carry_paths() {
    for name in ["../etc/passwd", "dir/file.txt", "C:\\secret.txt", "", "  "] {
        let (field, text) = build_err(
            Email::builder()
                .to("ann@example.org")
                .attachment(Attachment::from_bytes(name, "x")),
        );
        assert_eq!(field, "attachments[0].name", "{name:?}: {text}");
    }
}

/// A bidirectional override or isolate in a file name makes mail clients show another name
/// than was sent — `invoice\u{202E}fdp.exe` reads as `invoiceexe.pdf`, a program shown as a
/// PDF — so it is refused, as it is in addresses; right-to-left letters are fine.
#[test]
fn attachment_names_cannot_reorder_what_they_show() {
    for name in [
        "invoice\u{202E}fdp.exe",
        "report\u{202D}.pdf",
        "a\u{202A}b.txt",
        "x\u{2067}gpj.exe\u{2069}",
    ] {
        let (field, text) = build_err(
            Email::builder()
                .to("ann@example.org")
                .attachment(Attachment::from_bytes(name, "x")),
        );
        assert_eq!(field, "attachments[0].name", "{name:?}: {text}");
        assert!(text.contains("rename the file"), "{name:?}: {text}");
        // Quoted escaped: the error itself does not show a reordered name.
        assert!(
            !text.contains(['\u{202A}', '\u{202D}', '\u{202E}', '\u{2067}']),
            "{text}"
        );
    }
    let hebrew = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_bytes("דוח שנתי.pdf", "x"))
        .build();
    assert!(hebrew.is_ok(), "{hebrew:?}");
}

#[test]
fn content_types_are_guessed_and_can_be_overridden() {
    assert_eq!(
        Attachment::from_bytes("a.pdf", "x").content_type(),
        "application/pdf"
    );
    assert_eq!(
        Attachment::from_bytes("a.PNG", "x").content_type(),
        "image/png"
    );
    assert_eq!(
        Attachment::from_bytes("noext", "x").content_type(),
        "application/octet-stream"
    );
    let csv = Attachment::from_bytes("a.dat", "x").with_content_type("text/csv; charset=utf-8");
    assert_eq!(csv.content_type(), "text/csv; charset=utf-8");
    let (field, _) = build_err(
        Email::builder()
            .to("ann@example.org")
            .attachment(Attachment::from_bytes("a.dat", "x").with_content_type("not a type")),
    );
    assert_eq!(field, "attachments[0].content_type");
    for (content_type, says) in [
        ("text/csv; name=\"é.csv\"", "not ASCII"),
        ("multipart/mixed; boundary=\"x\"", "one part"),
    ] {
        let (field, text) = build_err(
            Email::builder()
                .to("ann@example.org")
                .attachment(Attachment::from_bytes("a.dat", "x").with_content_type(content_type)),
        );
        assert_eq!(field, "attachments[0].content_type", "{content_type}");
        assert!(text.contains(says), "{content_type}: {text}");
    }
}

#[tokio::test]
async fn attachments_from_bytes_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invoice.pdf");
    std::fs::write(&path, b"%PDF-1.4 fake").unwrap();
    let from_file = Attachment::from_path(&path).unwrap();
    assert_eq!(from_file.name(), "invoice.pdf");
    assert_eq!(from_file.content_type(), "application/pdf");
    assert_eq!(from_file.size(), 13);
    assert!(matches!(from_file.content(), AttachmentContent::File(p) if p == path));
    assert_eq!(&*from_file.load().await.unwrap(), b"%PDF-1.4 fake");

    let from_bytes = Attachment::from_bytes("a.bin", vec![0u8, 255, 7]);
    assert_eq!(from_bytes.size(), 3);
    assert_eq!(&*from_bytes.load().await.unwrap(), &[0u8, 255, 7]);

    let missing = Attachment::from_path(dir.path().join("missing.pdf")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing:?}");
    assert!(missing.to_string().contains("missing.pdf"), "{missing}");
    let folder = Attachment::from_path(dir.path()).unwrap_err();
    assert!(matches!(folder, Error::InvalidMessage { .. }), "{folder:?}");
}

#[test]
fn inline_attachments_need_a_valid_content_id() {
    let ok = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_bytes("logo.png", "x").inline("logo@example.org"))
        .build()
        .unwrap();
    assert!(ok.attachments()[0].is_inline());
    let (field, _) = build_err(
        Email::builder()
            .to("ann@example.org")
            .attachment(Attachment::from_bytes("logo.png", "x").inline("<logo>")),
    );
    assert_eq!(field, "attachments[0].content_id");
}

#[test]
fn recipients_keep_their_roles_in_order() {
    let email = support::rich_email();
    let kinds: Vec<_> = email.recipients().map(|r| r.kind.to_string()).collect();
    assert_eq!(kinds, ["To", "To", "Cc", "Bcc"]);
    assert_eq!(email.recipient_count(), 4);
    assert_eq!(email.importance(), Importance::Normal);
}

/// An email always has a recipient: a copy for no recipients is refused, naming the field,
/// and a copy for some keeps each one's role.
#[test]
fn a_copy_for_no_recipients_is_refused() {
    let email = support::rich_email();
    let Err(Error::InvalidMessage { field, reason, .. }) = email.with_recipients(&[]) else {
        panic!("a copy of an email without recipients was made")
    };
    assert_eq!(field, "to");
    assert!(reason.contains("at least one"), "{reason}");
    let bcc: Vec<_> = email.recipients().skip(3).collect();
    let copy = email.with_recipients(&bcc).unwrap();
    assert_eq!(copy.recipient_count(), 1);
    assert_eq!(copy.bcc()[0].address(), "audit@example.org");
}

/// Several addresses in one mailbox (a list pasted from a mail client, a setting holding
/// `a, b`) are refused saying so and how to give them, not that the text "contains a space"
/// (taking the space out leaves it as wrong as it was).
#[test]
fn several_addresses_in_one_mailbox_are_refused_as_such() {
    for text in [
        "ann@example.org, bob@example.org",
        "ann@example.org; bob@example.org",
        "ann@example.org,bob@example.org",
        "Ann <ann@example.org>, Bob <bob@example.org>",
        "Ann <ann@example.org>; bob@example.org",
    ] {
        let (field, error) = build_err(Email::builder().to("ok@example.org").cc(text));
        assert_eq!(field, "cc[0]", "{text}: {error}");
        assert!(error.contains("more than one address"), "{text}: {error}");
        assert!(error.contains("give each on its own"), "{text}: {error}");
        assert!(!error.contains("contains a space"), "{text}: {error}");
        assert!(!error.contains("Invalid input"), "{text}: {error}");
    }
    // One address with a comma in its quoted name is one mailbox, and builds.
    let email = Email::builder()
        .to("\"Doe, Jane\" <jane@example.org>")
        .build()
        .unwrap();
    assert_eq!(email.to()[0].name(), Some("Doe, Jane"));
}

/// One mailbox with a usual mistake is refused naming the mistake and the fix — never
/// called a list (it holds one address, or no comma) nor left at lettre's "Invalid input".
#[test]
fn one_mailbox_with_a_mistake_is_not_called_a_list() {
    for (text, says) in [
        (
            "Doe, Jane <jane@example.org>",
            "its name holds `,`, which a name may hold only in double quotes: write \
             `\"Doe, Jane\" <jane@example.org>`",
        ),
        (
            "IT; Support <it@example.org>",
            "write `\"IT; Support\" <it@example.org>`",
        ),
        ("a@b@example.org", "more than one `@`"),
        ("Ann <a@b@example.org>", "more than one `@`"),
        (
            "ann@example.org;",
            "its domain has a character no domain name has",
        ),
        (
            "ann@example.org,",
            "its domain has a character no domain name has",
        ),
        ("bob@.example.org", "a dot at an end"),
        ("bob@example.org.", "a dot at an end"),
    ] {
        let (field, error) = build_err(Email::builder().to("ok@example.org").cc(text));
        assert_eq!(field, "cc[0]", "{text}: {error}");
        assert!(error.contains(says), "{text}: {error}");
        assert!(!error.contains("more than one address"), "{text}: {error}");
        assert!(!error.contains("Invalid input"), "{text}: {error}");
    }
    // A mistake in the local part is not blamed on a domain of letters, `-` and `.`, nor on
    // one with a character lettre takes in a domain (`_`).
    for text in ["bo(b@my-example.org", "bo(b@my_host.org"] {
        let (_, error) = build_err(Email::builder().to(text));
        assert!(!error.contains("domain"), "{text}: {error}");
    }
    // A name's `"` may stand unquoted: the `,` is named.
    let (_, error) = build_err(Email::builder().to("Jane \"JD\" Doe, Sr <j@example.org>"));
    assert!(error.contains("its name holds `,`"), "{error}");
    assert!(
        error.contains(r#"write `"Jane \"JD\" Doe, Sr" <j@example.org>`"#),
        "{error}"
    );
    // No quoted form is suggested for an address this crate refuses anyway.
    let (_, error) = build_err(Email::builder().to("Doe, Jane <jane@[192.0.2.1]>"));
    assert!(!error.contains("write `\""), "{error}");
    // As suggested, it builds.
    let email = Email::builder()
        .to("\"Doe, Jane\" <jane@example.org>")
        .build()
        .unwrap();
    assert_eq!(email.to()[0].name(), Some("Doe, Jane"));
}
