//! Helpers shared by the DKIM tests: the independent verifier, the keys and their records,
//! the emails signed and the SMTP settings that sign them.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use mail_connector::dkim::DkimSigner;
use mail_connector::{Attachment, ConnectorSettings, Email, MailTransport, OutboxTransport};

use crate::support;
use crate::support::smtp_server::TestServer;

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

pub(crate) fn verify(message: &[u8], record: &str) -> bool {
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
pub(crate) fn rsa_key() -> (String, String) {
    rsa_fixture_key("test-client-pkcs1.key")
}

/// The RSA key (PKCS#1 PEM) of the fixture `name` and its DKIM record.
pub(crate) fn rsa_fixture_key(name: &str) -> (String, String) {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    use rsa::pkcs8::EncodePublicKey as _;
    let pem = std::fs::read_to_string(support::fixture(name)).unwrap();
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap();
    let public = rsa::RsaPublicKey::from(&private)
        .to_public_key_der()
        .unwrap();
    let record = format!("v=DKIM1; k=rsa; p={}", STANDARD.encode(public.as_bytes()));
    (pem, record)
}

/// An Ed25519 key (PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes) and its record.
pub(crate) fn ed25519_key() -> (String, String) {
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

pub(crate) fn email() -> Email {
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

pub(crate) fn smtp_settings(server: &TestServer, key_file: &std::path::Path) -> ConnectorSettings {
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

/// The longest subject the builder takes (16,384 bytes, all non-ASCII) and 1,000 `To`
/// recipients. lettre's relaxed header canonicalisation recurses once per character of the
/// signed headers; on the caller's thread (2 MB here, as on tokio's workers) this aborted the
/// process with a stack overflow.
pub(crate) fn email_with_large_signed_headers(recipients: usize) -> Email {
    let builder = Email::builder()
        .subject("ü".repeat(8192))
        .text("Many recipients.");
    (0..recipients)
        .fold(builder, |b, i| b.to(format!("r{i:05}@example.org")))
        .build()
        .unwrap()
}

/// An outbox in `dir` that signs with `signer`, sending as `no-reply@example.org`.
pub(crate) fn signing_outbox(dir: &Path, signer: DkimSigner) -> OutboxTransport {
    OutboxTransport::new(dir)
        .with_sender("no-reply@example.org".parse().unwrap())
        .with_dkim(signer)
}

/// The file `outbox` writes for `email`.
pub(crate) async fn outbox_file(outbox: &OutboxTransport, email: &Email) -> Vec<u8> {
    let report = outbox.send(email).await.unwrap();
    std::fs::read(report.messages[0].id.as_deref().unwrap()).unwrap()
}
