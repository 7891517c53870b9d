//! Turns an [`Email`] into an RFC 5322 / MIME message with lettre's builder.
//!
//! Shared by the outbox and SMTP transports, so both put the same bytes on disk and on the
//! wire. lettre encodes non-ASCII headers (RFC 2047), folds long lines and picks transfer
//! encodings that keep every line within 998 octets.

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as MimeAttachment, MultiPart, SinglePart};

use crate::error::{Error, Result};
use crate::message::{Email, Importance, Mailbox};

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

/// Builds the MIME message; attachments stored in files are read here.
pub(crate) async fn build_message(
    email: &Email,
    sender: &Mailbox,
    bcc: BccHeader,
) -> Result<lettre::Message> {
    let mut builder = lettre::Message::builder()
        .from(to_lettre(sender)?)
        .subject(email.subject())
        .date_now()
        .message_id(None);
    for mailbox in email.to() {
        builder = builder.to(to_lettre(mailbox)?);
    }
    for mailbox in email.cc() {
        builder = builder.cc(to_lettre(mailbox)?);
    }
    for mailbox in email.bcc() {
        builder = builder.bcc(to_lettre(mailbox)?);
    }
    for mailbox in email.reply_to() {
        builder = builder.reply_to(to_lettre(mailbox)?);
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
        builder = builder.raw_header(header("Importance", value)?);
    }
    for (name, value) in email.headers() {
        builder = builder.raw_header(header(name, value)?);
    }

    let body = body_part(email);
    let mut inline = Vec::new();
    let mut regular = Vec::new();
    for attachment in email.attachments() {
        let content_type = ContentType::parse(attachment.content_type()).map_err(|_| {
            Error::invalid_message("attachments.content_type", attachment.content_type())
        })?;
        let bytes = attachment.load().await?.into_owned();
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

fn body_part(email: &Email) -> Part {
    match (email.text(), email.html()) {
        (Some(text), Some(html)) => Part::Multi(MultiPart::alternative_plain_html(
            text.to_owned(),
            html.to_owned(),
        )),
        (None, Some(html)) => Part::Single(SinglePart::html(html.to_owned())),
        (text, None) => Part::Single(SinglePart::plain(text.unwrap_or_default().to_owned())),
    }
}

fn header(name: &str, value: &str) -> Result<HeaderValue> {
    let header_name = HeaderName::new_from_ascii(name.to_owned())
        .map_err(|_| Error::invalid_message("headers", format!("`{name}` is not a header name")))?;
    Ok(HeaderValue::new(header_name, value.to_owned()))
}
