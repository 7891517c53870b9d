//! The one place an [`Email`] becomes the bytes the queue stores, and back: the email's
//! serde form (see the message module docs) as JSON, attachments included in base64.
//! Attachments made from a file are read here, at enqueue time: the file may be gone by the
//! time a worker delivers the email. Decoding goes through the email builder, so a stored
//! email is checked again before it is sent.

use super::store::queue_error;
use crate::error::{Error, Result};
use crate::message::{Attachment, Email};

/// The largest email the queue stores, bodies and attachments together (before base64), or
/// a prepared message's bytes:
/// 150 MiB, the largest message Exchange Online accepts (its SMTP `SIZE`, and Graph's
/// upload-session ceiling).
pub const MAX_STORED_BYTES: u64 = 150 * 1024 * 1024;

fn too_large(email: &Email, size: u64) -> Error {
    let (field, what) = match email.mime() {
        Some(_) => ("mime", "the prepared message is"),
        None => ("attachments", "the email is"),
    };
    Error::invalid_message(
        field,
        format!(
            "{what} {size} bytes with its attachments; the queue stores at most \
             {MAX_STORED_BYTES} bytes (150 MiB, the largest message Exchange Online accepts): \
             send smaller attachments, or a link to the file instead"
        ),
    )
}

/// The email's size: a prepared message's bytes (`Email::from_mime`, which may be larger
/// than the queue stores), bodies, and attachment sizes.
fn size(email: &Email) -> u64 {
    let text = email.text().map_or(0, str::len)
        + email.html().map_or(0, str::len)
        + email.mime().map_or(0, <[u8]>::len);
    email
        .attachments()
        .iter()
        .map(Attachment::size)
        .fold(text as u64, u64::saturating_add)
}

/// Encodes `email` for storage, reading attachments made from files.
///
/// # Errors
///
/// [`Error::InvalidMessage`] naming `attachments` (`mime` for a prepared message) when the
/// email is larger than
/// [`MAX_STORED_BYTES`] (checked before and after the files are read: one may have grown);
/// [`Error::Io`] when an attachment's file cannot be read.
pub(crate) async fn encode(email: &Email) -> Result<Vec<u8>> {
    let declared = size(email);
    if declared > MAX_STORED_BYTES {
        return Err(too_large(email, declared));
    }
    let loaded = email.clone().load_attachments().await?;
    let actual = size(&loaded);
    if actual > MAX_STORED_BYTES {
        return Err(too_large(&loaded, actual));
    }
    serde_json::to_vec(&loaded)
        .map_err(|e| queue_error("encode the email", e.to_string(), false, None))
}

/// Decodes what [`encode`] stored.
///
/// # Errors
///
/// [`Error::Queue`] when the bytes are not a stored email, or the email no longer passes the
/// builder's checks.
pub(crate) fn decode(bytes: &[u8]) -> Result<Email> {
    serde_json::from_slice(bytes).map_err(|e| {
        queue_error(
            "read the stored email",
            format!("the stored email is damaged: {e}"),
            false,
            Some("the message cannot be delivered; enqueue the email again"),
        )
    })
}

/// The email's recipients in one line, for listings: `To: ann@example.org, Bcc: …`.
pub(crate) fn recipients_line(email: &Email) -> String {
    email
        .recipients()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Importance;

    #[tokio::test]
    async fn round_trips_every_field_and_reads_files_at_encode_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.csv");
        std::fs::write(&path, b"a,b\n1,2\n").unwrap();
        let email = Email::builder()
            .from("Sender <no-reply@example.org>")
            .to("Ann Example <ann@example.org>")
            .cc("b@example.org")
            .bcc("c@example.org")
            .reply_to("help@example.org")
            .subject("Nightly report ✅")
            .text("text")
            .html("<p>html</p>")
            .importance(Importance::High)
            .header("X-Report-Id", "42")
            .attachment(Attachment::from_path(&path).unwrap())
            .attachment(Attachment::from_bytes("logo.png", vec![0, 1, 2, 255]).inline("logo"))
            .build()
            .unwrap();
        let bytes = encode(&email).await.unwrap();
        let expected = email.clone().load_attachments().await.unwrap();
        std::fs::remove_file(&path).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back, expected);
        assert_eq!(
            back.from().unwrap().to_string(),
            "Sender <no-reply@example.org>"
        );
        assert_eq!(recipients_line(&back), recipients_line(&email));
        assert_eq!(back.reply_to()[0].address(), "help@example.org");
        assert_eq!(back.subject(), "Nightly report ✅");
        assert_eq!(
            (back.text(), back.html()),
            (Some("text"), Some("<p>html</p>"))
        );
        assert_eq!(back.importance(), Importance::High);
        assert_eq!(back.headers(), email.headers());
        let a = &back.attachments()[0];
        assert_eq!((a.name(), a.content_type()), ("report.csv", "text/csv"));
        assert!(matches!(a.content(), crate::AttachmentContent::Bytes(b) if b == b"a,b\n1,2\n"));
        let b = &back.attachments()[1];
        assert_eq!(b.content_id(), Some("logo"));
        assert!(matches!(b.content(), crate::AttachmentContent::Bytes(b) if b == [0, 1, 2, 255]));
    }

    /// 150 MiB, written out: the limit the docs promise, not the constant under test.
    const LIMIT: usize = 150 * 1024 * 1024;

    #[tokio::test]
    async fn an_email_of_exactly_150_mib_is_stored_whole() {
        let email = Email::builder()
            .to("ann@example.org")
            .attachment(Attachment::from_bytes("backup.bin", vec![7u8; LIMIT]))
            .build()
            .unwrap();
        let back = decode(&encode(&email).await.unwrap()).unwrap();
        let stored = &back.attachments()[0];
        assert_eq!(stored.size(), LIMIT as u64);
        let crate::AttachmentContent::Bytes(bytes) = stored.content() else {
            panic!("the stored attachment is not in the stored email");
        };
        assert!(bytes.len() == LIMIT && bytes.iter().all(|&b| b == 7));
    }

    #[tokio::test]
    async fn the_bodies_count_toward_the_limit() {
        // A one-byte text part and a 150 MiB HTML part: one byte over, with no attachment.
        let email = Email::builder()
            .to("ann@example.org")
            .text("x")
            .html("x".repeat(LIMIT))
            .build()
            .unwrap();
        refused_as_too_large(&email, &format!("{} bytes", LIMIT + 1)).await;
    }

    /// `email` is refused as too large to queue, with an error that says `said`.
    async fn refused_as_too_large(email: &Email, said: &str) {
        let error = encode(email).await.unwrap_err();
        assert!(matches!(error, Error::InvalidMessage { .. }), "{error:?}");
        assert!(error.to_string().contains(said), "{error}");
    }

    /// A sparse file of `len` bytes (nothing written to disk).
    fn sparse_file(dir: &tempfile::TempDir, len: u64) -> std::path::PathBuf {
        let path = dir.path().join("export.bin");
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
        path
    }

    #[tokio::test]
    async fn a_file_declared_over_the_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = sparse_file(&dir, LIMIT as u64 + 1);
        let email = Email::builder()
            .to("ann@example.org")
            .attachment(Attachment::from_path(&path).unwrap())
            .build()
            .unwrap();
        // Gone by enqueue: only the size recorded when it was attached can refuse it.
        std::fs::remove_file(&path).unwrap();
        refused_as_too_large(&email, "150 MiB").await;
    }

    #[tokio::test]
    async fn a_file_that_grew_over_the_limit_after_it_was_attached_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = sparse_file(&dir, 10);
        let email = Email::builder()
            .to("ann@example.org")
            .attachment(Attachment::from_path(&path).unwrap())
            .build()
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(LIMIT as u64 + 1)
            .unwrap();
        refused_as_too_large(&email, &format!("{} bytes", LIMIT + 1)).await;
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        for bytes in [&b""[..], b"{", b"[]", br#"{"to": ["not an address"]}"#] {
            let error = decode(bytes).unwrap_err();
            assert!(error.to_string().contains("damaged"), "{error}");
        }
    }
}

#[tokio::test]
async fn an_email_over_the_limit_is_refused_naming_the_limit() {
    let big = vec![0u8; usize::try_from(MAX_STORED_BYTES).unwrap() + 1];
    let email = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_bytes("big.bin", big))
        .build()
        .unwrap();
    let error = encode(&email).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("attachments") && text.contains("150 MiB"),
        "{text}"
    );
}
