//! Long signed headers: signed on a stack sized for them, up to the limit, and refused past it.

use mail_connector::MailTransport;
use mail_connector::dkim::DkimSigner;

use crate::helpers::{
    email_with_large_signed_headers, outbox_file, rsa_key, signing_outbox, smtp_settings, verify,
};
use crate::support::smtp_server::{ServerOptions, TestServer};

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
    let outbox = signing_outbox(dir.path(), signer);
    // Each recipient takes 22 bytes (`r00000@example.org,\r\n `) of the `To` header; the
    // subject about 28 KB.
    let near = (MAX_SIGNED_HEADER_BYTES - 36 * 1024) / 22;
    let file = outbox_file(&outbox, &email_with_large_signed_headers(near)).await;
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
