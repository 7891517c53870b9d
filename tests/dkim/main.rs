//! Issue 12: DKIM. Messages signed by the SMTP and outbox transports verify against the
//! public key with an independent verifier — Python's dkimpy (`pip install dkimpy pynacl`;
//! `.ci/run` installs it), given the key record directly instead of DNS.

#[path = "../support/mod.rs"]
mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_connector::dkim::DkimSigner;
use mail_connector::{
    Attachment, CheckStatus, ConnectorSettings, Email, MailTransport, OutboxTransport,
};
use support::smtp_server::{ServerOptions, TestServer};

/// dkimpy's verdict on `message` with `record` as the TXT record of every selector.
const VERIFY: &str = r#"
import sys
try:
    import dkim
except ImportError:
    sys.exit("dkimpy is not installed: pip install dkimpy pynacl")
record = sys.argv[1].encode()
message = sys.stdin.buffer.read()
try:
    ok = dkim.verify(message, dnsfunc=lambda name, timeout=5: record)
except Exception as error:  # a key of the wrong kind: a failed verification
    print(error, file=sys.stderr)
    ok = False
print("pass" if ok else "fail")
"#;

fn verify(message: &[u8], record: &str) -> bool {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut child = Command::new(&python)
        .args(["-c", VERIFY, record])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} for the DKIM verifier: {e}"));
    child.stdin.take().unwrap().write_all(message).unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the verifier failed to run: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    match stdout.trim() {
        "pass" => true,
        "fail" => false,
        other => panic!("unexpected verifier output {other:?}"),
    }
}

/// An RSA key (PKCS#1 PEM, the repository's test fixture) and its DKIM record.
fn rsa_key() -> (String, String) {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    use rsa::pkcs8::EncodePublicKey as _;
    let pem = std::fs::read_to_string(support::fixture("test-client-pkcs1.key")).unwrap();
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap();
    let public = rsa::RsaPublicKey::from(&private)
        .to_public_key_der()
        .unwrap();
    let record = format!("v=DKIM1; k=rsa; p={}", STANDARD.encode(public.as_bytes()));
    (pem, record)
}

/// An Ed25519 key (PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes) and its record.
fn ed25519_key() -> (String, String) {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let pem = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap()
        .to_string();
    let record = format!(
        "v=DKIM1; k=ed25519; p={}",
        STANDARD.encode(key.verifying_key().to_bytes())
    );
    (pem, record)
}

fn email() -> Email {
    Email::builder()
        .to("Ann Example <ann@example.org>")
        .cc("carol@example.org")
        .bcc("audit@example.org")
        .subject("Signed — Grüße")
        .text("Plain text.\nSecond line.")
        .html("<p>HTML <img src=\"cid:logo\"></p>")
        .attachment(Attachment::from_bytes("logo.png", support::png_bytes()).inline("logo"))
        .header("List-Unsubscribe", "<https://example.org/u?id=1>")
        .header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        .header("In-Reply-To", "<q-1@example.org>")
        .build()
        .unwrap()
}

fn smtp_settings(server: &TestServer, key_file: &std::path::Path) -> ConnectorSettings {
    ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"basic\"\nuser_name = \"no-reply@example.org\"\npassword = \"correct horse\"\n\
         smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls_ca_file = {:?}\n\
         dkim_domain = \"example.org\"\ndkim_selector = \"mail\"\ndkim_private_key_file = {:?}\n",
        server.port(),
        server.ca_file.path().display().to_string(),
        key_file.display().to_string(),
    ))
    .unwrap()
}

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
    let outbox = OutboxTransport::new(dir.path())
        .with_sender("no-reply@example.org".parse().unwrap())
        .with_dkim(signer);
    let report = outbox.send(&email()).await.unwrap();
    let file = std::fs::read(report.messages[0].id.as_deref().unwrap()).unwrap();
    // The outbox keeps Bcc as a record; Bcc is not a signed header, so it verifies either way.
    assert!(verify(&file, &record));
}

#[tokio::test]
async fn the_private_key_never_appears_in_output() {
    let (pem, _) = rsa_key();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dkim.key");
    std::fs::write(&key_file, &pem).unwrap();
    let server = TestServer::start(ServerOptions::default()).await;
    let settings = smtp_settings(&server, &key_file);
    let transport = settings.smtp_builder().unwrap().build().unwrap();
    let signer = DkimSigner::new("example.org", "mail", &pem).unwrap();
    let report = transport.check().await.unwrap();
    // A key with one character changed: the error does not quote it.
    let broken = pem.replacen('M', "!", 1);
    let error = DkimSigner::new("example.org", "mail", &broken).unwrap_err();
    let output = format!("{transport:?}\n{signer:?}\n{report}\n{settings:?}\n{error}\n{error:?}");
    for line in body.as_bytes().chunks(16) {
        let piece = std::str::from_utf8(line).unwrap();
        assert!(!output.contains(piece), "key material in output:\n{output}");
    }
}

#[tokio::test]
async fn bad_dkim_settings_are_refused_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dkim.key");
    let server = TestServer::start(ServerOptions::default()).await;
    let field_of = |error: mail_connector::Error| match error {
        mail_connector::Error::InvalidSettings { problems, .. } => problems[0].field.clone(),
        other => panic!("{other:?}"),
    };
    let cases: [(&str, &str); 3] = [
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "not a private key",
        ),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "encrypted",
        ),
        ("hello", "neither PEM"),
    ];
    for (content, expected) in cases {
        std::fs::write(&key_file, content).unwrap();
        let error = smtp_settings(&server, &key_file).build().err().unwrap();
        let text = error.to_string();
        assert!(text.contains(expected), "{text}");
        assert_eq!(field_of(error), "dkim_private_key_file");
    }
    std::fs::remove_file(&key_file).unwrap();
    let error = smtp_settings(&server, &key_file).build().err().unwrap();
    assert!(error.to_string().contains("dkim.key"), "{error}");
    // One of three: the missing one is named.
    let mut settings = smtp_settings(&server, &key_file);
    settings.dkim_selector = None;
    assert_eq!(field_of(settings.build().err().unwrap()), "dkim_selector");
    // Graph: Exchange signs.
    let mut graph = ConnectorSettings::default();
    graph.auth_mode = Some(mail_connector::AuthMode::OAuth);
    graph.dkim_domain = Some("example.org".into());
    graph.dkim_selector = Some("mail".into());
    graph.dkim_private_key_file = Some(key_file);
    let text = graph.validate().unwrap_err().to_string();
    assert!(text.contains("Exchange Online signs Graph"), "{text}");
}

/// What an admin finds in the key file is named: an encrypted key in OpenSSL's traditional
/// form, an EC or OpenSSH key, a certificate. A key saved with a byte-order mark (as Windows
/// editors save a file) is a key like any other, and signs.
#[tokio::test]
async fn key_files_are_named_for_what_they_are_and_a_byte_order_mark_is_no_obstacle() {
    let block = |label: &str, headers: &str| {
        format!("-----BEGIN {label}-----\n{headers}MIIBAAAA\n-----END {label}-----\n")
    };
    let cases = [
        (
            block(
                "RSA PRIVATE KEY",
                "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\n",
            ),
            "the key is encrypted",
        ),
        (block("EC PRIVATE KEY", ""), "an EC (ECDSA) private key"),
        (block("OPENSSH PRIVATE KEY", ""), "an OpenSSH private key"),
        (block("DSA PRIVATE KEY", ""), "`DSA PRIVATE KEY`"),
        (
            block("CERTIFICATE", ""),
            "`CERTIFICATE` PEM block, not a private key",
        ),
    ];
    for (pem, expected) in cases {
        let error = DkimSigner::new("example.org", "mail", &pem).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(expected), "{expected}: {text}");
        assert!(
            !text.contains("not a private key") || expected.contains("CERTIFICATE"),
            "{text}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    for (name, (pem, record)) in [("rsa", rsa_key()), ("ed25519", ed25519_key())] {
        let key_file = dir.path().join(format!("{name}.key"));
        std::fs::write(&key_file, format!("\u{feff}{pem}")).unwrap();
        let signer = DkimSigner::from_key_file("example.org", "mail", &key_file)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let outbox = OutboxTransport::new(dir.path().join("outbox"))
            .with_sender("no-reply@example.org".parse().unwrap())
            .with_dkim(signer);
        let report = outbox.send(&email()).await.unwrap();
        let file = std::fs::read(report.messages[0].id.as_deref().unwrap()).unwrap();
        assert!(verify(&file, &record), "{name}: the signature verifies");
    }
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
    let outbox = OutboxTransport::new(dir.path().join("outbox"))
        .with_sender("no-reply@example.org".parse().unwrap())
        .with_dkim(DkimSigner::new("example.org", "mail", &pem).unwrap());
    for (index, (name, email)) in emails.iter().enumerate() {
        smtp.send(email).await.unwrap();
        let data = server.messages().remove(index).data;
        assert!(
            verify(&data, &record),
            "{name} over SMTP:\n{}",
            String::from_utf8_lossy(&data)
        );
        let report = outbox.send(email).await.unwrap();
        let file = std::fs::read(report.messages[0].id.as_deref().unwrap()).unwrap();
        assert!(
            verify(&file, &record),
            "{name} in the outbox:\n{}",
            String::from_utf8_lossy(&file)
        );
    }
}

/// The longest subject the builder takes (16,384 bytes, all non-ASCII) and 1,000 `To`
/// recipients. lettre's relaxed header canonicalisation recurses once per character of the
/// signed headers; on the caller's thread (2 MB here, as on tokio's workers) this aborted the
/// process with a stack overflow.
fn email_with_large_signed_headers(recipients: usize) -> Email {
    let builder = Email::builder()
        .subject("ü".repeat(8192))
        .text("Many recipients.");
    (0..recipients)
        .fold(builder, |b, i| b.to(format!("r{i:05}@example.org")))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_longest_subject_and_a_thousand_recipients_are_signed_and_verify() {
    assert_eq!("ü".repeat(8192).len(), 16_384);
    let (pem, record) = rsa_key();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dkim.key");
    std::fs::write(&key_file, &pem).unwrap();
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = smtp_settings(&server, &key_file).build().unwrap();
    transport
        .send(&email_with_large_signed_headers(1000))
        .await
        .unwrap();
    let received = server.messages().remove(0);
    assert_eq!(received.rcpt_to.len(), 1000);
    assert!(verify(&received.data, &record), "the signature verifies");
}

/// Signed headers just under [`MAX_SIGNED_HEADER_BYTES`] sign (in a debug build, whose
/// stack frames are the largest) on the stack computed for them, and verify; a few more
/// recipients are refused with an error naming the limit, before anything is written.
#[tokio::test]
async fn signed_headers_up_to_the_limit_sign_and_longer_ones_are_refused() {
    use mail_connector::dkim::MAX_SIGNED_HEADER_BYTES;
    let (pem, record) = rsa_key();
    let signer = DkimSigner::new("example.org", "mail", &pem).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxTransport::new(dir.path())
        .with_sender("no-reply@example.org".parse().unwrap())
        .with_dkim(signer);
    // Each recipient takes 22 bytes (`r00000@example.org,\r\n `) of the `To` header; the
    // subject about 28 KB.
    let near = (MAX_SIGNED_HEADER_BYTES - 36 * 1024) / 22;
    let report = outbox
        .send(&email_with_large_signed_headers(near))
        .await
        .unwrap();
    let file = std::fs::read(report.messages[0].id.as_deref().unwrap()).unwrap();
    let header_end = file.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(
        header_end > MAX_SIGNED_HEADER_BYTES - 16 * 1024,
        "the headers are {header_end} bytes: close to the limit"
    );
    assert!(verify(&file, &record), "the signature verifies");

    let over = MAX_SIGNED_HEADER_BYTES / 22;
    let error = outbox
        .send(&email_with_large_signed_headers(over))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&MAX_SIGNED_HEADER_BYTES.to_string()) && text.contains("Bcc"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing written"
    );
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
/// is published under that name), and the signature verifies.
#[tokio::test]
async fn an_idn_signing_domain_signs_as_its_ascii_form() {
    let (pem, record) = rsa_key();
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
