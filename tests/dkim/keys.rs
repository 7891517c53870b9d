//! Key files: what each holds is named when it cannot sign, and the key never shows.

use mail_connector::dkim::DkimSigner;
use mail_connector::{ConnectorSettings, MailTransport};

use crate::helpers::{
    ed25519_key, email, outbox_file, rsa_fixture_key, rsa_key, signing_outbox, smtp_settings,
    verify,
};
use crate::support::smtp_server::{ServerOptions, TestServer};

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
        let outbox = signing_outbox(&dir.path().join("outbox"), signer);
        let file = outbox_file(&outbox, &email()).await;
        assert!(verify(&file, &record), "{name}: the signature verifies");
    }
}

/// An RSA key of 1024 bits, the least receivers take, signs and verifies; a shorter one is
/// refused with its size and that minimum, naming the key file's setting.
#[tokio::test]
async fn rsa_keys_of_1024_bits_sign_and_shorter_ones_are_refused() {
    let (pem, record) = rsa_fixture_key("dkim-rsa-1024.key");
    let signer = DkimSigner::new("example.org", "mail", &pem).unwrap();
    assert_eq!(signer.algorithm(), "rsa-sha256");
    let dir = tempfile::tempdir().unwrap();
    let file = outbox_file(&signing_outbox(dir.path(), signer), &email()).await;
    assert!(verify(&file, &record), "the signature verifies");

    let (short, _) = rsa_fixture_key("dkim-rsa-512.key");
    let error = DkimSigner::new("example.org", "mail", &short).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("an RSA key of 512 bits") && text.contains("under 1024 bits"),
        "{text}"
    );
    match error {
        mail_connector::Error::InvalidSettings { problems, .. } => {
            assert_eq!(problems[0].field, "dkim_private_key_file");
        }
        other => panic!("{other:?}"),
    }
}

/// A `BEGIN` line that lost its closing dashes runs on into the key: the error then quotes
/// nothing of it, only that the PEM block is not a private key.
#[test]
fn a_pem_label_running_into_the_key_is_not_quoted() {
    let pem = "-----BEGIN EC PRIVATE KEY\nMHcCAQEEIBkg4LVWM\n-----END EC PRIVATE KEY-----\n";
    let text = DkimSigner::new("example.org", "mail", pem)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("a PEM block that is not a private key"),
        "{text}"
    );
    assert!(
        !text.contains("MHcCAQ"),
        "key material in the error: {text}"
    );
}
