//! Long signed headers: signed on a stack sized for them, up to the limit, and refused past it.

use mail_connector::dkim::DkimSigner;
use std::path::Path;

use mail_connector::{Email, MailTransport};

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

/// The length refused `email` is said to have, signed by `selector`: `None` when signed.
async fn refused_length(dir: &Path, pem: &str, selector: &str, email: &Email) -> Option<usize> {
    let signer = DkimSigner::new("example.org", selector, pem).unwrap();
    let text = signing_outbox(dir, signer)
        .send(email)
        .await
        .err()?
        .to_string();
    let (_, rest) = text.split_once(" are ")?;
    let (length, _) = rest.split_once(" bytes once written")?;
    Some(length.parse().unwrap_or_else(|_| panic!("{text}")))
}

/// What the signed headers of `email` come to besides the selector: a selector as long as
/// the limit has every message refused, saying its length.
async fn rest_of(dir: &Path, pem: &str, email: &Email) -> usize {
    use mail_connector::dkim::MAX_SIGNED_HEADER_BYTES as MAX;
    let length = refused_length(dir, pem, &"s".repeat(MAX), email)
        .await
        .unwrap();
    length
        .checked_sub(MAX)
        .unwrap_or_else(|| panic!("{length}"))
}

/// The limit counts the signed headers, the domain and selector, and an allowance for the
/// `DKIM-Signature` header: at exactly [`MAX_SIGNED_HEADER_BYTES`] a message is signed, and
/// the headers written, the signature's included, fit in it; one byte more is refused with
/// its length. The selector's length moves the total one byte at a time.
#[tokio::test]
async fn signed_headers_of_exactly_the_limit_sign_and_one_byte_more_is_refused() {
    use mail_connector::dkim::MAX_SIGNED_HEADER_BYTES as MAX;
    let (pem, record) = rsa_key();
    let dir = tempfile::tempdir().unwrap();
    // Recipients (22 bytes each) up to about 1,000 bytes under the limit.
    let few = rest_of(dir.path(), &pem, &email_with_large_signed_headers(1)).await;
    let email = email_with_large_signed_headers(1 + (MAX - few - 1000) / 22);
    let selector_len = MAX
        .checked_sub(rest_of(dir.path(), &pem, &email).await)
        .filter(|len| (1..2000).contains(len))
        .unwrap_or_else(|| panic!("the rest is not just under the limit"));

    let exact = "s".repeat(selector_len);
    assert_eq!(refused_length(dir.path(), &pem, &exact, &email).await, None);
    let signer = DkimSigner::new("example.org", &exact, &pem).unwrap();
    let file = outbox_file(&signing_outbox(dir.path(), signer), &email).await;
    let header_end = file.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(
        header_end <= MAX,
        "the headers written are {header_end} bytes, over the limit of {MAX}"
    );
    assert!(verify(&file, &record), "the signature verifies");

    let over = format!("{exact}s");
    assert_eq!(
        refused_length(dir.path(), &pem, &over, &email).await,
        Some(MAX + 1)
    );
}
