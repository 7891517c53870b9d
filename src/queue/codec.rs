//! The one place an [`Email`] becomes the bytes the queue stores, and back.
//!
//! The stored form is a 4-byte tag (`MCQ1`), a big-endian `u32` length, a JSON document with
//! the headers, bodies and attachment metadata, then each attachment's bytes in order. The
//! attachments are raw, not base64 inside the JSON, so a large attachment costs its own size.
//! Attachments made from a file are read here, at enqueue time: the file may be gone by the
//! time a worker delivers the email.

use serde::{Deserialize, Serialize};

use super::store::queue_error;
use crate::error::{Error, Result};
use crate::message::{Attachment, AttachmentContent, Email, Importance, Mailbox};

/// The largest email the queue stores, bodies and attachments together: 150 MiB, the largest
/// message Exchange Online accepts (its SMTP `SIZE`, and Graph's upload-session ceiling).
pub const MAX_STORED_BYTES: u64 = 150 * 1024 * 1024;

const TAG: &[u8; 4] = b"MCQ1";

#[derive(Serialize, Deserialize)]
struct StoredMailbox {
    name: Option<String>,
    address: String,
}

#[derive(Serialize, Deserialize)]
struct StoredAttachment {
    name: String,
    content_type: String,
    content_id: Option<String>,
    len: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredEmail {
    from: Option<StoredMailbox>,
    to: Vec<StoredMailbox>,
    cc: Vec<StoredMailbox>,
    bcc: Vec<StoredMailbox>,
    reply_to: Vec<StoredMailbox>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    importance: String,
    headers: Vec<(String, String)>,
    attachments: Vec<StoredAttachment>,
}

fn stored(mailboxes: &[Mailbox]) -> Vec<StoredMailbox> {
    mailboxes
        .iter()
        .map(|m| StoredMailbox {
            name: m.name().map(str::to_owned),
            address: m.address().to_owned(),
        })
        .collect()
}

fn too_large(size: u64) -> Error {
    Error::invalid_message(
        "attachments",
        format!(
            "the email is {size} bytes with its attachments; the queue stores at most \
             {MAX_STORED_BYTES} bytes (150 MiB, the largest message Exchange Online accepts): \
             send smaller attachments, or a link to the file instead"
        ),
    )
}

/// The email's size before its files are read: bodies plus attachment sizes.
fn declared_size(email: &Email) -> u64 {
    let text = email.text().map_or(0, str::len) + email.html().map_or(0, str::len);
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
/// [`Error::InvalidMessage`] naming `attachments` when the email is larger than
/// [`MAX_STORED_BYTES`]; [`Error::Io`] when an attachment's file cannot be read.
pub(crate) async fn encode(email: &Email) -> Result<Vec<u8>> {
    let size = declared_size(email);
    if size > MAX_STORED_BYTES {
        return Err(too_large(size));
    }
    let mut contents: Vec<Vec<u8>> = Vec::with_capacity(email.attachments().len());
    let mut total = size;
    for attachment in email.attachments() {
        let bytes = match attachment.content() {
            AttachmentContent::Bytes(bytes) => bytes.to_vec(),
            AttachmentContent::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| Error::io("read the attachment", path, e))?;
                // The file may have grown since the attachment was made.
                total = total - attachment.size() + bytes.len() as u64;
                if total > MAX_STORED_BYTES {
                    return Err(too_large(total));
                }
                bytes
            }
        };
        contents.push(bytes);
    }
    let document = StoredEmail {
        from: email.from().map(|m| StoredMailbox {
            name: m.name().map(str::to_owned),
            address: m.address().to_owned(),
        }),
        to: stored(email.to()),
        cc: stored(email.cc()),
        bcc: stored(email.bcc()),
        reply_to: stored(email.reply_to()),
        subject: email.subject().to_owned(),
        text: email.text().map(str::to_owned),
        html: email.html().map(str::to_owned),
        importance: match email.importance() {
            Importance::Low => "low",
            Importance::Normal => "normal",
            Importance::High => "high",
        }
        .to_owned(),
        headers: email.headers().to_vec(),
        attachments: email
            .attachments()
            .iter()
            .zip(&contents)
            .map(|(a, bytes)| StoredAttachment {
                name: a.name().to_owned(),
                content_type: a.content_type().to_owned(),
                content_id: a.content_id().map(str::to_owned),
                len: bytes.len() as u64,
            })
            .collect(),
    };
    let json = serde_json::to_vec(&document)
        .map_err(|e| queue_error("encode the email", e.to_string(), false, None))?;
    let json_len = u32::try_from(json.len()).map_err(|_| too_large(json.len() as u64))?;
    let mut out = Vec::with_capacity(8 + json.len() + contents.iter().map(Vec::len).sum::<usize>());
    out.extend_from_slice(TAG);
    out.extend_from_slice(&json_len.to_be_bytes());
    out.extend_from_slice(&json);
    for bytes in contents {
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

fn corrupt(reason: impl Into<String>) -> Error {
    queue_error(
        "read the stored email",
        format!("the stored email is damaged: {}", reason.into()),
        false,
        Some("the message cannot be delivered; enqueue the email again"),
    )
}

/// Decodes what [`encode`] stored.
///
/// # Errors
///
/// [`Error::Queue`] when the bytes are not a stored email; the email's own validation
/// errors when it no longer passes them.
pub(crate) fn decode(bytes: &[u8]) -> Result<Email> {
    let (tag, rest) = bytes.split_at_checked(4).ok_or_else(|| corrupt("too short"))?;
    if tag != TAG {
        return Err(corrupt("unknown format tag"));
    }
    let (len, rest) = rest.split_at_checked(4).ok_or_else(|| corrupt("too short"))?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let (json, mut rest) = rest
        .split_at_checked(len)
        .ok_or_else(|| corrupt("truncated header"))?;
    let document: StoredEmail =
        serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?;
    let mailbox = |m: StoredMailbox| Mailbox::new(m.name.as_deref(), &m.address);
    let mut builder = Email::builder().subject(document.subject);
    if let Some(from) = document.from {
        builder = builder.from(mailbox(from)?);
    }
    for m in document.to {
        builder = builder.to(mailbox(m)?);
    }
    for m in document.cc {
        builder = builder.cc(mailbox(m)?);
    }
    for m in document.bcc {
        builder = builder.bcc(mailbox(m)?);
    }
    for m in document.reply_to {
        builder = builder.reply_to(mailbox(m)?);
    }
    if let Some(text) = document.text {
        builder = builder.text(text);
    }
    if let Some(html) = document.html {
        builder = builder.html(html);
    }
    builder = builder.importance(match document.importance.as_str() {
        "low" => Importance::Low,
        "high" => Importance::High,
        _ => Importance::Normal,
    });
    for (name, value) in document.headers {
        builder = builder.header(name, value);
    }
    for a in document.attachments {
        let len = usize::try_from(a.len).map_err(|_| corrupt("attachment too large"))?;
        let (content, after) = rest
            .split_at_checked(len)
            .ok_or_else(|| corrupt("truncated attachment"))?;
        rest = after;
        let mut attachment =
            Attachment::from_bytes(a.name, content.to_vec()).with_content_type(a.content_type);
        if let Some(id) = a.content_id {
            attachment = attachment.inline(id);
        }
        builder = builder.attachment(attachment);
    }
    builder.build()
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
        std::fs::remove_file(&path).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.from().unwrap().to_string(), "Sender <no-reply@example.org>");
        assert_eq!(recipients_line(&back), recipients_line(&email));
        assert_eq!(back.reply_to()[0].address(), "help@example.org");
        assert_eq!(back.subject(), "Nightly report ✅");
        assert_eq!((back.text(), back.html()), (Some("text"), Some("<p>html</p>")));
        assert_eq!(back.importance(), Importance::High);
        assert_eq!(back.headers(), email.headers());
        let a = &back.attachments()[0];
        assert_eq!((a.name(), a.content_type()), ("report.csv", "text/csv"));
        assert!(matches!(a.content(), AttachmentContent::Bytes(b) if b == b"a,b\n1,2\n"));
        let b = &back.attachments()[1];
        assert_eq!(b.content_id(), Some("logo"));
        assert!(matches!(b.content(), AttachmentContent::Bytes(b) if b == [0, 1, 2, 255]));
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        for bytes in [&b""[..], b"MCQ1", b"XXXX\0\0\0\x01{", b"MCQ1\0\0\0\xff{}"] {
            let error = decode(bytes).unwrap_err();
            assert!(error.to_string().contains("damaged"), "{error}");
        }
    }
}
