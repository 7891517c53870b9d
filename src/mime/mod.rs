//! Turns an [`Email`] into an RFC 5322 / MIME message with lettre's builder.
//!
//! Shared by the outbox and SMTP transports, so both put the same bytes on disk and on the
//! wire. What reaches the wire is 7-bit with CRLF line ends only:
//!
//! - Text and HTML bodies have every line break (CRLF, a bare CR, a bare LF) made CRLF, so no
//!   receiver can be made to see an early end of data (SMTP smuggling); a body with other
//!   control characters (NUL, ESC, …) is sent base64. lettre then picks 7bit, quoted-printable
//!   or base64 by content and line length.
//! - Attachments are files: base64, so their bytes arrive exactly as given — but for an
//!   attached message (`message/*` other than `message/global`, which must not be base64):
//!   as it is when it is 7-bit text, else as `application/octet-stream`.
//! - Structured headers (`Message-ID`, `In-Reply-To`, `References`, `List-*`, …) are written
//!   as given but for one space between items, folded only there. The `Message-ID` is the caller's, or a new unique one at
//!   the sender's domain (never the host name).
//! - The subject and other headers are written here, not by lettre: a word longer than 60
//!   characters, one with non-ASCII or a tab, and one that looks like an RFC 2047 encoded word
//!   (`=?…?=`) is itself encoded, in encoded words of at most 75 characters, so every header
//!   line folds to 78 octets or less and decodes back to exactly the text given.
//! - Recipient headers are built once per role (To, Cc, Bcc, Reply-To): linear in the number
//!   of recipients.

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as MimeAttachment, Body, MultiPart, SinglePart};

mod headers;

pub(crate) use headers::{address_header_line, new_message_id};
use headers::{custom_headers, mailbox_list, to_lettre, unstructured_header};

use crate::error::{Error, Result};
use crate::message::{Email, Importance, Mailbox};

/// Whether the `Bcc` header stays in the formatted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BccHeader {
    /// Drop it: the message is going to recipients (SMTP); Bcc lives in the envelope only.
    Drop,
    /// Keep it: the message is a record (an outbox file), like a copy in Sent Items.
    Keep,
}

/// The bytes a transport sends for an email, and their `Message-ID`.
pub(crate) struct Rendered {
    pub bytes: Vec<u8>,
    #[cfg_attr(not(feature = "smtp"), allow(dead_code))] // the SMTP report's id
    pub message_id: Option<String>,
}

/// The bytes for `email` from `sender`: a prepared message as it is (for
/// [`BccHeader::Drop`], its `Bcc` header cut out and a `Message-ID` and a `Date` added when it
/// lacks them; for [`BccHeader::Keep`], a record, its `To`, `Cc` and `Bcc` saying the
/// envelope), otherwise the built MIME message, DKIM-signed when `dkim` is given.
pub(crate) async fn render(
    email: &Email,
    sender: &Mailbox,
    bcc: BccHeader,
    dkim: Option<&crate::dkim::DkimSigner>,
) -> Result<Rendered> {
    if let Some(mime) = email.mime() {
        let bytes = match bcc {
            // A record (the outbox, `to_mime`) says whom the message was for: the envelope,
            // when the caller gave other recipients than its headers name (each part of a
            // recipient-limit split its own), so that re-sending the file reaches them.
            BccHeader::Keep => crate::message::with_envelope_headers(email)?,
            // Going to recipients: no Bcc, and the Message-ID and Date receivers need.
            BccHeader::Drop => crate::message::edit_headers(
                mime,
                &["Bcc"],
                &missing_id_and_date(mime, email.from().unwrap_or(sender)),
            ),
        };
        let message_id = crate::message::prepared_message_id(&bytes);
        if dkim.is_some() {
            tracing::warn!(
                message_id = message_id.as_deref().unwrap_or("none"),
                "DKIM is configured but a prepared message is sent unsigned: only the emails \
                 this crate builds are signed; sign a prepared message where it is made"
            );
        }
        return Ok(Rendered { message_id, bytes });
    }
    let mut message = build_message(email, sender, bcc).await?;
    if let Some(signer) = dkim {
        // A body of one part, the only kind that can be blank (see `DkimSigner::sign`).
        let one_part =
            email.attachments().is_empty() && (email.text().is_none() || email.html().is_none());
        message = signer.sign(message, one_part).await?;
    }
    let message_id = message
        .headers()
        .get_raw("Message-ID")
        .map(|id| id.trim().to_owned());
    Ok(Rendered {
        bytes: message.formatted(),
        message_id,
    })
}

/// The `Message-ID` (a new one at `sender`'s domain) and `Date` header lines, written by
/// lettre, that a prepared message lacks: RFC 5322 requires a `Date`, and receivers such as
/// Gmail refuse mail without a `Message-ID`.
fn missing_id_and_date(mime: &[u8], sender: &Mailbox) -> String {
    use lettre::message::header::{Date, Headers};
    use mail_parser::HeaderName as Name;

    let mut headers = Headers::new();
    if !crate::message::has_header(mime, &Name::MessageId) {
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Message-ID"),
            new_message_id(sender),
        ));
    }
    if !crate::message::has_header(mime, &Name::Date) {
        headers.set(Date::now());
    }
    headers.to_string()
}

impl Email {
    /// The RFC 5322 / MIME message the transports send for this email, as the outbox writes it
    /// (with its `Bcc` header, which SMTP and Graph remove before delivery); a prepared message
    /// ([`Email::from_mime`]) as it is (SMTP adds a `Message-ID` and a `Date` when it lacks
    /// them), but for its `To`, `Cc` and `Bcc` when it was given other recipients: those then
    /// say the envelope, so that the record says whom it was for. A Tokio runtime is not
    /// needed. Each call makes a new `Date` and, unless the email sets
    /// one, a new `Message-ID` at the sender's domain.
    ///
    /// ```
    /// use mail_connector::Email;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let email = Email::builder()
    ///     .from("reports@example.org")
    ///     .to("ann@example.org")
    ///     .text("Hello")
    ///     .html("<p>Hello</p>")
    ///     .build()?;
    /// let mime = String::from_utf8(email.to_mime().await?).unwrap();
    /// assert!(mime.contains("multipart/alternative"));
    /// assert!(mime.contains("@example.org>"));
    /// # Ok::<(), mail_connector::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] (field `from`) when the email names no sender (transports use
    /// their mailbox; here there is none); [`Error::Io`] when an attachment's file cannot be
    /// read.
    pub async fn to_mime(&self) -> Result<Vec<u8>> {
        let sender = self.from().ok_or_else(|| {
            Error::invalid_message(
                "from",
                "the email names no sender; set `from` to render it without a transport",
            )
        })?;
        Ok(render(self, sender, BccHeader::Keep, None).await?.bytes)
    }

    /// The message as a transport hands it to a server for delivery, for transports outside
    /// this crate that send raw MIME (an HTTP relay, an SMTP client of their own): from the
    /// email's `from`, else from `sender` (the transport's own mailbox), and **without a
    /// `Bcc` header** — the Bcc recipients go in the envelope only
    /// ([`Email::recipients`] lists them all), or every recipient would see them. A prepared
    /// message ([`Email::from_mime`]) loses its `Bcc` header the same way and gains the
    /// `Message-ID` and `Date` it lacks. A Tokio runtime is not needed.
    ///
    /// ```
    /// use mail_connector::{Email, Mailbox};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let email = Email::builder()
    ///     .to("ann@example.org")
    ///     .bcc("audit@example.org")
    ///     .text("Hello")
    ///     .build()?;
    /// let sender: Mailbox = "no-reply@example.org".parse()?;
    /// let mime = String::from_utf8(email.to_wire_mime(&sender).await?).unwrap();
    /// assert!(mime.contains("From: no-reply@example.org"));
    /// assert!(!mime.contains("audit@example.org"));
    /// # Ok::<(), mail_connector::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] when an address cannot be written; [`Error::Io`] when an
    /// attachment's file cannot be read.
    pub async fn to_wire_mime(&self, sender: &Mailbox) -> Result<Vec<u8>> {
        let sender = self.from().unwrap_or(sender);
        Ok(render(self, sender, BccHeader::Drop, None).await?.bytes)
    }
}

/// Builds the MIME message; attachments stored in files are read here, and the CPU-bound
/// part (encoding bodies and attachments, thousands of recipients) runs on tokio's blocking
/// pool rather than on an async worker.
pub(crate) async fn build_message(
    email: &Email,
    sender: &Mailbox,
    bcc: BccHeader,
) -> Result<lettre::Message> {
    let mut contents = Vec::with_capacity(email.attachments().len());
    for attachment in email.attachments() {
        contents.push(attachment.load().await?.into_owned());
    }
    let email = email.clone();
    let sender = sender.clone();
    crate::offload::blocking(move || build_blocking(&email, &sender, bcc, contents))
        .await
        .map_err(|e| Error::invalid_message("email", format!("cannot build MIME: {e}")))?
}

fn build_blocking(
    email: &Email,
    sender: &Mailbox,
    bcc: BccHeader,
    contents: Vec<Vec<u8>>,
) -> Result<lettre::Message> {
    let message_id = match email.message_id() {
        Some(id) => id.to_owned(),
        None => new_message_id(sender),
    };
    let mut builder = lettre::Message::builder()
        .from(to_lettre(sender)?)
        .raw_header(unstructured_header("Subject", email.subject())?)
        .date_now()
        .message_id(Some(message_id));
    for (name, list) in [
        ("To", email.to()),
        ("Cc", email.cc()),
        ("Bcc", email.bcc()),
        ("Reply-To", email.reply_to()),
    ] {
        if let Some(value) = mailbox_list(name, list)? {
            builder = builder.raw_header(value);
        }
    }
    if bcc == BccHeader::Keep {
        builder = builder.keep_bcc();
    }
    let importance = match email.importance() {
        Importance::Normal => None,
        Importance::Low => Some("low"),
        Importance::High => Some("high"),
    };
    if let Some(value) = importance {
        builder = builder.raw_header(unstructured_header("Importance", value)?);
    }
    for header in custom_headers(email.headers())? {
        builder = builder.raw_header(header);
    }

    let body = body_part(email)?;
    let mut inline = Vec::new();
    let mut regular = Vec::new();
    for (attachment, bytes) in email.attachments().iter().zip(contents) {
        let (content_type, encoding) = attachment_encoding(attachment.content_type(), &bytes);
        let content_type = ContentType::parse(content_type).map_err(|_| {
            Error::invalid_message("attachments.content_type", attachment.content_type())
        })?;
        let bytes = Body::new_with_encoding(bytes, encoding)
            .map_err(|_| Error::invalid_message("attachments", "cannot encode the attachment"))?;
        match attachment.content_id() {
            Some(cid) => inline.push(
                MimeAttachment::new_inline_with_name(cid.to_owned(), attachment.name().to_owned())
                    .body(bytes, content_type),
            ),
            None => regular
                .push(MimeAttachment::new(attachment.name().to_owned()).body(bytes, content_type)),
        }
    }

    // multipart/mixed( multipart/related( body, inline… ), attachment… )
    let with_inline = if inline.is_empty() {
        body
    } else {
        let mut related = MultiPart::related().build();
        related = match body {
            Part::Single(part) => related.singlepart(part),
            Part::Multi(part) => related.multipart(part),
        };
        for part in inline {
            related = related.singlepart(part);
        }
        Part::Multi(related)
    };
    let message = if regular.is_empty() {
        match with_inline {
            Part::Single(part) => builder.singlepart(part),
            Part::Multi(part) => builder.multipart(part),
        }
    } else {
        let mut mixed = MultiPart::mixed().build();
        mixed = match with_inline {
            Part::Single(part) => mixed.singlepart(part),
            Part::Multi(part) => mixed.multipart(part),
        };
        for part in regular {
            mixed = mixed.singlepart(part);
        }
        builder.multipart(mixed)
    };
    message.map_err(|e| Error::invalid_message("email", format!("cannot build MIME: {e}")))
}

enum Part {
    Single(SinglePart),
    Multi(MultiPart),
}

fn body_part(email: &Email) -> Result<Part> {
    Ok(match (email.text(), email.html()) {
        (Some(text), Some(html)) => Part::Multi(
            MultiPart::alternative()
                .singlepart(text_part(ContentType::TEXT_PLAIN, text)?)
                .singlepart(text_part(ContentType::TEXT_HTML, html)?),
        ),
        (None, Some(html)) => Part::Single(text_part(ContentType::TEXT_HTML, html)?),
        (text, None) => Part::Single(text_part(
            ContentType::TEXT_PLAIN,
            text.unwrap_or_default(),
        )?),
    })
}

/// A text or HTML body with CRLF line ends only; base64 when it holds other control
/// characters, otherwise the encoding lettre finds best.
fn text_part(content_type: ContentType, text: &str) -> Result<SinglePart> {
    let text = crlf_line_ends(text);
    let has_control = text
        .bytes()
        .any(|b| b.is_ascii_control() && !matches!(b, b'\t' | b'\r' | b'\n'));
    let body = if has_control {
        Body::new_with_encoding(text, ContentTransferEncoding::Base64)
            .map_err(|_| Error::invalid_message("text", "cannot encode as base64"))?
    } else {
        Body::new(text)
    };
    Ok(SinglePart::builder().header(content_type).body(body))
}

/// The content type and transfer encoding an attachment is sent with. Base64, so that the
/// bytes of a file arrive exactly as given and none of them (a bare CR or LF included)
/// reaches the wire as it is — but a `message/*` part other than `message/global` (RFC 6532)
/// must not be base64 (RFC 2046 §5.2.1):
/// an attached message (`.eml`) that is valid 7-bit text goes as it is, any other one as
/// `application/octet-stream` (its file name still says what it is).
fn attachment_encoding<'a>(
    content_type: &'a str,
    bytes: &[u8],
) -> (&'a str, ContentTransferEncoding) {
    // `message/global` (RFC 6532) may be base64; the other `message/*` types may not.
    let is_message = content_type
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("message/"))
        && !content_type
            .get(8..14)
            .is_some_and(|t| t.eq_ignore_ascii_case("global"));
    match is_message {
        false => (content_type, ContentTransferEncoding::Base64),
        true if is_seven_bit_text(bytes) => (content_type, ContentTransferEncoding::SevenBit),
        true => ("application/octet-stream", ContentTransferEncoding::Base64),
    }
}

/// Whether `bytes` may be sent as 7bit (RFC 2045 §2.7): ASCII without NUL, CRLF line ends
/// only, lines of at most 998 octets.
fn is_seven_bit_text(bytes: &[u8]) -> bool {
    let mut line = 0usize;
    let mut previous = 0u8;
    for (i, &byte) in bytes.iter().enumerate() {
        match byte {
            0 | 128..=255 => return false,
            b'\r' if bytes.get(i + 1) != Some(&b'\n') => return false,
            b'\n' if previous != b'\r' => return false,
            b'\n' => line = 0,
            b'\r' => {}
            _ => {
                line += 1;
                if line > 998 {
                    return false;
                }
            }
        }
        previous = byte;
    }
    true
}

/// Makes every line break CRLF: CRLF stays, a bare CR or a bare LF becomes CRLF.
pub(crate) fn crlf_line_ends(text: &str) -> String {
    let mut out = String::with_capacity(text.len().saturating_add(text.len() / 16));
    let mut rest = text;
    while let Some(i) = rest.find(['\r', '\n']) {
        out.push_str(&rest[..i]);
        out.push_str("\r\n");
        let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[i + skip..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_bit_text_is_ascii_with_crlf_lines_of_998_octets_at_most() {
        assert!(is_seven_bit_text(b"From: a@b.example\r\n\r\nHi\r\n"));
        assert!(is_seven_bit_text(b""));
        assert!(!is_seven_bit_text(b"bare LF\n"));
        assert!(!is_seven_bit_text(b"bare CR\rx"));
        assert!(!is_seven_bit_text(b"ends in CR\r"));
        assert!(!is_seven_bit_text("Grüße\r\n".as_bytes()));
        assert!(!is_seven_bit_text(b"nul \0\r\n"));
        let mut long = vec![b'a'; 998];
        assert!(is_seven_bit_text(&long));
        long.push(b'a');
        assert!(!is_seven_bit_text(&long));
    }

    #[test]
    fn only_an_attached_message_is_not_base64() {
        let text = b"From: a@b.example\r\n\r\nHi\r\n";
        assert_eq!(
            attachment_encoding("application/pdf", text),
            ("application/pdf", ContentTransferEncoding::Base64)
        );
        assert_eq!(
            attachment_encoding("message/rfc822", text),
            ("message/rfc822", ContentTransferEncoding::SevenBit)
        );
        assert_eq!(
            attachment_encoding("Message/RFC822", "Grüße\r\n".as_bytes()),
            ("application/octet-stream", ContentTransferEncoding::Base64)
        );
        assert_eq!(
            attachment_encoding("message/global", "Grüße\r\n".as_bytes()),
            ("message/global", ContentTransferEncoding::Base64)
        );
    }
}
