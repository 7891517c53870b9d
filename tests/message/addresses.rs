//! Issue 8, item 17: an address either builds and can be sent as exactly one address, or
//! `build()` refuses it with an error naming it and the fix — never "missing destination
//! address" at every send.

use mail_connector::{Email, Error, MailTransport, Mailbox, OutboxTransport};
use mail_parser::MessageParser;

/// Addresses lettre's address parser accepts (or nearly), that cannot be one mailbox on the
/// wire, or are longer than RFC 5321 allows.
fn hostile() -> Vec<String> {
    vec![
        "\"a>,<evil@attacker.example\"@example.org".into(),
        "\"a\u{85}b\"@example.org".into(),
        "\"a\u{2028}b\"@example.org".into(),
        "\"a\u{2029}b\"@example.org".into(),
        "\"doe,jane\"@example.org".into(),
        "\"a<b\"@example.org".into(),
        "\"a;b\"@example.org".into(),
        "\"a\u{202e}gro.elpmaxe\"@example.org".into(),
        "\"a\u{200b}\"@example.org".into(),
        "\"a\tb\"@example.org".into(),
        "ann@example.org\r\nBcc: evil@attacker.example".into(),
        "\"a\r\nb\"@example.org".into(),
        "\"a\0b\"@example.org".into(),
        format!("{}@example.org", "a".repeat(65)),
        format!("ann@{}.example.org", "d".repeat(63).repeat(4)),
        // Found by fuzz/ (wire_mime): 61 characters, 63 octets, but its label is 70 octets as
        // IDNA (`xn--gre-…`), the form every header and envelope carries. It built, and
        // every send failed with "not a valid address".
        format!("b.c@Grüße{}", "a".repeat(56)),
        // 254 octets as written, 260 with the domain in its ASCII form.
        format!(
            "{}@{b60}.{b60}.{}.bücher.de",
            "a".repeat(64),
            "b".repeat(56),
            b60 = "b".repeat(60)
        ),
    ]
}

fn build_error(mailbox: mail_connector::Result<Mailbox>) -> Error {
    match mailbox.and_then(|m| Email::builder().to(m).text("hi").build()) {
        Ok(email) => panic!("built: {:?}", email.to()),
        Err(error) => error,
    }
}

#[test]
fn hostile_addresses_are_refused_at_build_naming_the_address_and_the_fix() {
    for address in hostile() {
        // As an address (today's way in for `"a>,<evil@…"@example.org`) and as text.
        for error in [
            build_error(Mailbox::new(None, &address)),
            build_error(Mailbox::new(Some("Ann"), &address)),
            build_error(address.parse()),
        ] {
            let Error::InvalidMessage { reason, .. } = &error else {
                panic!("{address:?}: {error:?}");
            };
            assert!(
                reason.contains("name@example.org") || reason.contains("RFC 5321"),
                "{address:?}: {reason}"
            );
            // The address (or its start, when it is too long) is named.
            assert!(
                reason.contains("@example.org`") || reason.contains(&address[..4]),
                "{address:?}: {reason}"
            );
            assert!(!error.is_transient());
            assert!(error.remedy().is_some(), "{address:?}");
        }
        // In the builder, the error names the field.
        let error = match Email::builder().cc("ann@example.org").to(&address).build() {
            Ok(_) => panic!("{address:?} built"),
            Err(error) => error,
        };
        assert!(error.to_string().contains("to[0]"), "{error}");
        assert!(
            Email::builder()
                .from(&address)
                .to("ann@example.org")
                .build()
                .is_err(),
            "{address:?}"
        );
    }
}

#[test]
fn names_that_a_header_would_split_are_refused() {
    for name in ["Ann\u{2028}Example", "An\u{85}n", "Ann\0"] {
        assert!(
            Mailbox::new(Some(name), "ann@example.org").is_err(),
            "{name:?}"
        );
    }
}

#[tokio::test]
async fn addresses_that_build_are_sent_as_exactly_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let outbox =
        OutboxTransport::new(dir.path()).with_sender("no-reply@example.org".parse().unwrap());
    let valid = [
        "ann@example.org",
        "o'brien+tag@sub.example.org",
        "Ann Example <ann@example.org>",
        "\"Doe, Jane\" <jane@example.org>",
        "Jöran <joran@example.org>",
        &format!("{}@example.org", "a".repeat(64)),
    ];
    for text in valid {
        let mailbox: Mailbox = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        // The same address given as an address, not as text to parse.
        Mailbox::new(mailbox.name(), mailbox.address()).unwrap_or_else(|e| panic!("{text}: {e}"));
        let email = Email::builder()
            .to(&mailbox)
            .cc(&mailbox)
            .text("hi")
            .build()
            .unwrap();
        let report = outbox.send(&email).await.unwrap();
        let raw = std::fs::read(report.messages[0].id.as_deref().unwrap()).unwrap();
        let message = MessageParser::default().parse(&raw).unwrap();
        let to = message.to().unwrap();
        assert_eq!(to.iter().count(), 1, "{text}");
        let first = to.first().unwrap();
        assert_eq!(first.address(), Some(mailbox.address()), "{text}");
        assert_eq!(first.name(), mailbox.name(), "{text}");
    }
}

/// The refusal of an address whose ASCII (IDNA) form is too long names the address, its
/// ASCII domain and the rule, in one readable sentence.
#[test]
fn an_address_too_long_in_ascii_says_so_in_words() {
    let address = format!("b.c@Grüße{}", "a".repeat(56));
    let text = build_error(address.parse::<Mailbox>()).to_string();
    assert!(text.contains("(its ASCII form, IDNA)"), "{text}");
    assert!(text.contains("xn--"), "{text}");
    assert!(text.contains("63 octets"), "{text}");
}

/// RFC 5321's limits are limits, not one octet less: a 64-octet local part and a 254-octet
/// address build, also when the address is 254 octets only once its IDN domain is in its
/// ASCII form; one octet more is refused, saying which rule and naming the address.
#[test]
fn an_address_of_exactly_the_longest_length_builds_and_one_octet_more_does_not() {
    let local = "a".repeat(64);
    let (b63, c63) = ("b".repeat(63), "c".repeat(63));
    // 64 + 1 + 64 + 64 + 57 + 4 = 254.
    let longest = format!("{local}@{b63}.{c63}.{}.org", "d".repeat(57));
    // 254 as IDNA (`xn--bcher-kva.de`, 16 octets), 248 as written.
    let longest_idn = format!("{local}@{b63}.{c63}.{}.bücher.de", "e".repeat(44));
    for address in [&longest, &longest_idn] {
        let mailbox = Mailbox::new(None, address).unwrap_or_else(|e| panic!("{address}: {e}"));
        let email = Email::builder().to(mailbox).text("hi").build();
        assert!(email.is_ok(), "{address}: {email:?}");
    }
    let too_long = format!("{local}@{b63}.{c63}.{}.org", "d".repeat(58));
    let text = build_error(too_long.parse()).to_string();
    assert!(text.contains("RFC 5321"), "{text}");
    assert!(text.contains("(64 and 255 here)"), "{text}");
    assert!(text.contains(&too_long[..40]), "{text}");
    let too_long_idn = format!("{local}@{b63}.{c63}.{}.bücher.de", "e".repeat(45));
    let text = build_error(too_long_idn.parse()).to_string();
    assert!(text.contains("254 octets RFC 5321 allows"), "{text}");
    assert!(text.contains("xn--bcher-kva.de"), "{text}");
}

/// A mailbox prints as a header would write it: a name of letters, digits, spaces, hyphens
/// and apostrophes as it is, any other name in quotes; and it reads back as itself.
#[test]
fn a_mailbox_prints_its_name_in_quotes_only_when_it_needs_them() {
    for (name, printed) in [
        ("Ann Example", "Ann Example <ann@example.org>"),
        ("Mary-Ann", "Mary-Ann <ann@example.org>"),
        ("Ann O'Brien", "Ann O'Brien <ann@example.org>"),
        ("Jöran", "Jöran <ann@example.org>"),
        ("Doe, Jane", "\"Doe, Jane\" <ann@example.org>"),
        ("Ann (IT)", "\"Ann (IT)\" <ann@example.org>"),
        (
            "Ann \"the\" Admin",
            "\"Ann \\\"the\\\" Admin\" <ann@example.org>",
        ),
    ] {
        let mailbox = Mailbox::new(Some(name), "ann@example.org").unwrap();
        assert_eq!(mailbox.to_string(), printed, "{name}");
        assert_eq!(Mailbox::parse(printed).unwrap(), mailbox, "{printed}");
    }
}
