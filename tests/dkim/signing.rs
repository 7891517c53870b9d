//! Signed messages verify, over SMTP and in the outbox, whatever their body or domain;
//! prepared messages are sent unsigned.

use mail_connector::dkim::DkimSigner;
use mail_connector::{CheckStatus, Email, MailTransport};

use crate::helpers::{
    ed25519_key, email, outbox_file, rsa_key, signing_outbox, smtp_settings, verify,
};
use crate::support;
use crate::support::smtp_server::{ServerOptions, TestServer};

#[tokio::test]
async fn smtp_messages_signed_with_rsa_and_ed25519_verify_and_tampering_fails() {
    for (name, (pem, record)) in [("rsa", rsa_key()), ("ed25519", ed25519_key())] {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("dkim.key");
        std::fs::write(&key_file, &pem).unwrap();
        let server = TestServer::start(ServerOptions::default()).await;
        let transport = smtp_settings(&server, &key_file).build().unwrap();
        transport.send(&email()).await.unwrap();
        let data = server.messages().remove(0).data;
        let text = String::from_utf8_lossy(&data);
        assert!(text.contains("DKIM-Signature:"), "{name}: {text}");
        assert!(!text.contains("audit@example.org"), "{name}: Bcc stays out");
        assert!(verify(&data, &record), "{name}: the signature verifies");
        // The same message with one body byte changed no longer verifies.
        let tampered = String::from_utf8(data.clone())
            .unwrap()
            .replacen("Plain text.", "Plain text!", 1)
            .into_bytes();
        assert_ne!(tampered, data);
        assert!(!verify(&tampered, &record), "{name}: tampering is detected");
        // Signed with one key, checked against another: no.
        let other = if name == "rsa" {
            ed25519_key().1
        } else {
            rsa_key().1
        };
        assert!(
            !verify(&data, &other),
            "{name}: another key does not verify"
        );
        // `check` reports the signer.
        let report = transport.check().await.unwrap();
        let step = report.steps.iter().find(|s| s.name == "dkim").unwrap();
        assert_eq!(step.status, CheckStatus::Ok, "{report}");
        assert!(
            step.detail.contains("mail._domainkey.example.org"),
            "{report}"
        );
    }
}

#[tokio::test]
async fn outbox_files_are_signed_like_smtp() {
    let (pem, record) = rsa_key();
    let dir = tempfile::tempdir().unwrap();
    let signer = DkimSigner::new("example.org", "mail", &pem).unwrap();
    assert_eq!(signer.algorithm(), "rsa-sha256");
    let debug = format!("{signer:?}");
    assert!(
        debug.contains("[redacted]") && !debug.contains("PRIVATE"),
        "{debug}"
    );
    let file = outbox_file(&signing_outbox(dir.path(), signer), &email()).await;
    // The outbox keeps Bcc as a record; Bcc is not a signed header, so it verifies either way.
    assert!(verify(&file, &record));
}

/// An email with no text (a subject alone, an empty text, blank lines, spaces) has a blank
/// body, which relaxed canonicalisation makes empty; lettre hashed it as a line break, so
/// its signature failed at every receiver. Over SMTP and in the outbox, it verifies, and so
/// do the bodies around it.
#[tokio::test]
async fn an_email_with_a_blank_body_is_signed_so_that_it_verifies() {
    let email = |text: Option<&str>, html: Option<&str>| {
        let mut builder = Email::builder().to("ann@example.org").subject("Reminder");
        if let Some(text) = text {
            builder = builder.text(text);
        }
        if let Some(html) = html {
            builder = builder.html(html);
        }
        builder.build().unwrap()
    };
    let emails = [
        ("subject alone", email(None, None)),
        ("empty text", email(Some(""), None)),
        ("blank lines", email(Some("\n\r\n\n"), None)),
        ("spaces", email(Some("  \t \n "), None)),
        ("empty HTML", email(None, Some(""))),
        ("empty text and HTML", email(Some(""), Some(""))),
        ("text", email(Some("Hello\n\n"), None)),
    ];
    let (pem, record) = ed25519_key();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dkim.key");
    std::fs::write(&key_file, &pem).unwrap();
    let server = TestServer::start(ServerOptions::default()).await;
    let smtp = smtp_settings(&server, &key_file).build().unwrap();
    let outbox = signing_outbox(
        &dir.path().join("outbox"),
        DkimSigner::new("example.org", "mail", &pem).unwrap(),
    );
    for (index, (name, email)) in emails.iter().enumerate() {
        smtp.send(email).await.unwrap();
        let data = server.messages().remove(index).data;
        assert!(
            verify(&data, &record),
            "{name} over SMTP:\n{}",
            String::from_utf8_lossy(&data)
        );
        let file = outbox_file(&outbox, email).await;
        assert!(
            verify(&file, &record),
            "{name} in the outbox:\n{}",
            String::from_utf8_lossy(&file)
        );
    }
}

/// A prepared message is sent unsigned even with DKIM set up: one warning per send says so,
/// with its Message-ID and without its content.
#[tokio::test]
async fn a_prepared_message_is_sent_unsigned_with_one_warning() {
    let (logs, _guard) = support::capture_logs();
    let (pem, _) = rsa_key();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dkim.key");
    std::fs::write(&key_file, &pem).unwrap();
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = smtp_settings(&server, &key_file).build().unwrap();
    let raw = "From: no-reply@example.org\r\nTo: ann@example.org\r\n\
               Message-ID: <unsigned-warning-1@example.org>\r\nSubject: s\r\n\r\n\
               confidential body text\r\n";
    transport
        .send(&Email::from_mime(raw).unwrap())
        .await
        .unwrap();
    let data = server.messages().remove(0).data;
    assert!(!String::from_utf8_lossy(&data).contains("DKIM-Signature"));
    let text = logs.text();
    let warnings: Vec<_> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("unsigned-warning-1@example.org"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains("unsigned"),
        "{text}"
    );
    assert!(!text.contains("confidential body text"), "{text}");
}

/// An IDN signing domain signs as its ASCII form (the `d=` tag is ASCII, and the DNS record
/// is published under that name), and the signature verifies; the signer says so.
#[tokio::test]
async fn an_idn_signing_domain_signs_as_its_ascii_form() {
    let (pem, record) = rsa_key();
    let signer = DkimSigner::new("Bücher.de", "mail", &pem).unwrap();
    assert_eq!(signer.domain(), "xn--bcher-kva.de");
    assert_eq!(signer.selector(), "mail");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dkim.key");
    std::fs::write(&key_file, &pem).unwrap();
    let server = TestServer::start(ServerOptions::default()).await;
    let mut settings = smtp_settings(&server, &key_file);
    settings.dkim_domain = Some("Bücher.de".into());
    let transport = settings.build().unwrap();
    transport.send(&email()).await.unwrap();
    let data = server.messages().remove(0).data;
    let text = String::from_utf8_lossy(&data);
    assert!(text.contains("d=xn--bcher-kva.de;"), "{text}");
    assert!(verify(&data, &record), "the signature verifies");
    let report = transport.check().await.unwrap();
    let step = report.steps.iter().find(|s| s.name == "dkim").unwrap();
    assert!(
        step.detail.contains("mail._domainkey.xn--bcher-kva.de"),
        "{report}"
    );
}

/// A one-part body is signed with relaxed canonicalisation (`c=relaxed/relaxed`), so a relay
/// that collapses runs of spaces keeps the signature valid; only a blank body is signed
/// `simple`.
#[tokio::test]
async fn a_text_body_is_signed_relaxed_so_a_relay_collapsing_spaces_keeps_it_valid() {
    let (pem, record) = ed25519_key();
    let dir = tempfile::tempdir().unwrap();
    let outbox = signing_outbox(
        dir.path(),
        DkimSigner::new("example.org", "mail", &pem).unwrap(),
    );
    let email = Email::builder()
        .to("ann@example.org")
        .subject("Spaces")
        .text("Two  spaces.\nEnd.")
        .build()
        .unwrap();
    let file = String::from_utf8(outbox_file(&outbox, &email).await).unwrap();
    assert!(file.contains("c=relaxed/relaxed;"), "{file}");
    assert!(verify(file.as_bytes(), &record), "the signature verifies");
    let relayed = file.replacen("Two  spaces.", "Two spaces.", 1);
    assert_ne!(relayed, file);
    assert!(verify(relayed.as_bytes(), &record), "{relayed}");
}
