//! Turns an [`Email`] into an RFC 5322 / MIME message with lettre's builder.
//!
//! Shared by the outbox and SMTP transports, so both put the same bytes on disk and on the
//! wire. What reaches the wire is 7-bit with CRLF line ends only:
//!
//! - Text and HTML bodies have every line break (CRLF, a bare CR, a bare LF) made CRLF, so no
//!   receiver can be made to see an early end of data (SMTP smuggling); a body with other
//!   control characters (NUL, ESC, …) is sent base64. lettre then picks 7bit, quoted-printable
//!   or base64 by content and line length.
//! - Attachments are files: always base64, so their bytes arrive exactly as given.
//! - Structured headers (`Message-ID`, `In-Reply-To`, `References`, `List-*`, …) are written
//!   as given, folded only at spaces. The `Message-ID` is the caller's, or a new unique one at
//!   the sender's domain (never the host name).
//! - The subject and other headers are written here, not by lettre: a word longer than 60
//!   characters, one with non-ASCII or a tab, and one that looks like an RFC 2047 encoded word
//!   (`=?…?=`) is itself encoded, in encoded words of at most 75 characters, so every header
//!   line folds to 78 octets or less and decodes back to exactly the text given.
//! - Recipient headers are built once per role (To, Cc, Bcc, Reply-To): linear in the number
//!   of recipients.

use std::fmt::Write as _;

use email_encoding::headers::writer::EmailWriter;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as MimeAttachment, Body, Mailboxes, MultiPart, SinglePart};

use crate::error::{Error, Result};
use crate::message::{Email, Importance, Mailbox, is_structured};

/// The longest word of a header value written as it is; longer words are encoded so that the
/// line can fold.
const MAX_RAW_WORD: usize = 60;

/// Whether the `Bcc` header stays in the formatted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BccHeader {
    /// Drop it: the message is going to recipients (SMTP); Bcc lives in the envelope only.
    #[cfg_attr(not(feature = "smtp"), allow(dead_code))] // used by the SMTP transport
    Drop,
    /// Keep it: the message is a record (an outbox file), like a copy in Sent Items.
    Keep,
}

fn to_lettre(mailbox: &Mailbox) -> Result<lettre::message::Mailbox> {
    let address = mailbox.address().parse().map_err(|e| {
        Error::invalid_message(
            "address",
            format!("`{}` is not a valid address ({e})", mailbox.address()),
        )
    })?;
    Ok(lettre::message::Mailbox::new(
        mailbox.name().map(str::to_owned),
        address,
    ))
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
        // Going to recipients: no Bcc, and the Message-ID and Date receivers need. A record
        // (the outbox, `to_mime`) stays as given.
        let (cut, added): (&[&str], String) = match bcc {
            BccHeader::Keep => (&[], String::new()),
            BccHeader::Drop => (
                &["Bcc"],
                missing_id_and_date(mime, email.from().unwrap_or(sender)),
            ),
        };
        let bytes = match bcc {
            // A record says whom the message was for: the envelope, when the caller gave
            // other recipients than its headers name (each part of a recipient-limit split
            // its own), so that re-sending the file reaches the same people.
            BccHeader::Keep => crate::message::with_envelope_headers(email)?,
            BccHeader::Drop if cut.is_empty() && added.is_empty() => mime.to_vec(),
            BccHeader::Drop => crate::message::edit_headers(mime, cut, &added),
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
        message = signer.sign(message).await?;
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

/// An address-list header (To, Cc, Bcc, Reply-To) built once, one mailbox per line.
///
/// lettre writes a list on a single line (20,000 recipients made one line of 500 KB) and
/// rebuilds the whole header for each mailbox added (quadratic). The raw value stays lettre's
/// own text of the list, which it parses back to derive the SMTP envelope.
fn mailbox_list(name: &'static str, list: &[Mailbox]) -> Result<Option<HeaderValue>> {
    if list.is_empty() {
        return Ok(None);
    }
    let mailboxes = list.iter().map(to_lettre).collect::<Result<Vec<_>>>()?;
    let mut encoded = String::new();
    write_mailboxes(name, &mailboxes, &mut encoded)
        .map_err(|_| Error::invalid_message(name, "cannot encode the address list"))?;
    let raw = Mailboxes::from(mailboxes).to_string();
    Ok(Some(HeaderValue::dangerous_new_pre_encoded(
        HeaderName::new_from_ascii_str(name),
        raw,
        encoded,
    )))
}

/// A complete `Name: a, b` header line (CRLF-terminated) for a list of mailboxes, encoded
/// and folded as the MIME writer does it.
pub(crate) fn address_header_line(name: &'static str, list: &[Mailbox]) -> Result<String> {
    let mailboxes = list.iter().map(to_lettre).collect::<Result<Vec<_>>>()?;
    let mut line = format!("{name}: ");
    write_mailboxes(name, &mailboxes, &mut line)
        .map_err(|_| Error::invalid_message(name, "cannot encode the address list"))?;
    line.push_str("\r\n");
    Ok(line)
}

fn write_mailboxes(
    name: &str,
    mailboxes: &[lettre::message::Mailbox],
    out: &mut String,
) -> std::fmt::Result {
    let mut writer = EmailWriter::new(out, name.len().saturating_add(2), 0, false);
    for (index, mailbox) in mailboxes.iter().enumerate() {
        if index > 0 {
            writer.write_char(',')?;
            writer.new_line()?;
            writer.space();
        }
        // As lettre writes one mailbox: the name quoted or RFC 2047-encoded, then `<address>`.
        if let Some(display) = &mailbox.name {
            email_encoding::headers::quoted_string::encode(display, &mut writer)?;
            writer.space();
            writer.write_char('<')?;
        }
        writer.write_str(mailbox.email.as_ref())?;
        if mailbox.name.is_some() {
            writer.write_char('>')?;
        }
    }
    Ok(())
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
        .raw_header(unstructured("Subject", email.subject())?)
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
        builder = builder.raw_header(unstructured("Importance", value)?);
    }
    for (name, value) in email.headers() {
        if name.eq_ignore_ascii_case("Message-ID") {
            continue; // set above
        }
        let header = match is_structured(name) {
            true => structured(name, value)?,
            false => unstructured(name, value)?,
        };
        builder = builder.raw_header(header);
    }

    let body = body_part(email)?;
    let mut inline = Vec::new();
    let mut regular = Vec::new();
    for (attachment, bytes) in email.attachments().iter().zip(contents) {
        let content_type = ContentType::parse(attachment.content_type()).map_err(|_| {
            Error::invalid_message("attachments.content_type", attachment.content_type())
        })?;
        // Always base64: the bytes of a file arrive exactly as given, and none of them (a
        // bare CR or LF in a text file included) reaches the wire as it is.
        let bytes = Body::new_with_encoding(bytes, ContentTransferEncoding::Base64)
            .map_err(|_| Error::invalid_message("attachments", "cannot encode as base64"))?;
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

/// A unique Message-ID at the sender's domain: `<random@domain>`. Not the host name, which
/// would tell every recipient the name of the machine that sent it (and look like spam).
///
/// A domain that is not ASCII is written as IDNA (`xn--…`): a Message-ID is ASCII, and one
/// with other characters would be sent as an encoded word, which is no Message-ID at all.
pub(crate) fn new_message_id(sender: &Mailbox) -> String {
    let domain = sender
        .address()
        .rsplit_once('@')
        .map_or("localhost", |(_, domain)| domain);
    let id = uuid::Uuid::new_v4().simple();
    if domain.is_ascii() {
        return format!("<{id}@{domain}>");
    }
    match url::Host::parse(domain) {
        Ok(url::Host::Domain(ascii)) => format!("<{id}@{ascii}>"),
        _ => format!("<{id}@localhost>"),
    }
}

/// A structured header (`Message-ID`, `References`, `List-Unsubscribe`, …), written as given
/// and folded only at its spaces: an encoded word would make its ids and URLs unreadable.
/// The builder checked that the value is printable ASCII with no word too long for a line.
fn structured(name: &str, value: &str) -> Result<HeaderValue> {
    let header_name = HeaderName::new_from_ascii(name.to_owned())
        .map_err(|_| Error::invalid_message("headers", format!("`{name}` is not a header name")))?;
    let mut encoded = String::with_capacity(value.len().saturating_add(8));
    let mut writer = EmailWriter::new(&mut encoded, name.len().saturating_add(2), 0, false);
    for word in value.split_inclusive(' ') {
        writer
            .folding()
            .write_str(word)
            .map_err(|_| Error::invalid_message("headers", format!("cannot write `{name}`")))?;
    }
    drop(writer);
    Ok(HeaderValue::dangerous_new_pre_encoded(
        header_name,
        value.to_owned(),
        encoded.trim_end().to_owned(),
    ))
}

/// An unstructured header (the subject, an `X-` header) encoded and folded here: words that
/// are too long, not printable ASCII, or look like encoded words are RFC 2047-encoded.
fn unstructured(name: &str, value: &str) -> Result<HeaderValue> {
    let header_name = HeaderName::new_from_ascii(name.to_owned())
        .map_err(|_| Error::invalid_message("headers", format!("`{name}` is not a header name")))?;
    let mut encoded = String::with_capacity(value.len().saturating_mul(2));
    encode_words(name, value, &mut encoded)
        .map_err(|_| Error::invalid_message("headers", format!("cannot encode `{name}`")))?;
    Ok(HeaderValue::dangerous_new_pre_encoded(
        header_name,
        value.to_owned(),
        encoded,
    ))
}

fn encode_words(name: &str, value: &str, out: &mut String) -> std::fmt::Result {
    let mut writer = EmailWriter::new(out, name.len().saturating_add(2), 0, false);
    let mut pending = String::new();
    for word in value.split_inclusive(' ') {
        let only_spaces = word.bytes().all(|b| b == b' ');
        if only_spaces && !pending.is_empty() {
            // Extra spaces after an encoded run go inside it, where a decoder keeps them.
            pending.push_str(word);
        } else if writes_raw(word) {
            flush_encoded(&mut pending, &mut writer, false)?;
            writer.folding().write_str(word)?;
        } else {
            pending.push_str(word);
        }
    }
    flush_encoded(&mut pending, &mut writer, true)
}

/// Whether a word (with its trailing spaces) can be written as it is.
fn writes_raw(word: &str) -> bool {
    let word = word.trim_end_matches(' ');
    word.len() <= MAX_RAW_WORD && word.bytes().all(|b| b.is_ascii_graphic()) && !word.contains("=?")
}

/// Encodes the words gathered so far, spaces between them included; before a word written
/// as is, one space stays outside the encoded text to separate them.
fn flush_encoded(
    pending: &mut String,
    writer: &mut EmailWriter<'_>,
    last: bool,
) -> std::fmt::Result {
    if pending.is_empty() {
        return Ok(());
    }
    let words = match pending.strip_suffix(' ') {
        Some(words) if !last => words,
        _ => pending.as_str(),
    };
    email_encoding::headers::rfc2047::encode(words, writer)?;
    if words.len() < pending.len() {
        writer.space();
    }
    pending.clear();
    Ok(())
}
