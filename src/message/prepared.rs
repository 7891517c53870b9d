//! Prepared messages: RFC 5322 bytes made elsewhere (another library, a template service, an
//! outbox file, a [`lettre::Message`]) sent as they are.
//!
//! Its bytes are first made sendable ([`normalise`](super::normalise): CRLF line ends, no
//! byte-order mark or mbox `From ` line in front). The
//! message is read with a real parser (mail-parser), only for what sending needs: the
//! sender, the recipients in `To`, `Cc` and `Bcc` (unless the caller gives the envelope), the
//! subject (for logs) and the `Message-ID`. The bytes themselves are never rewritten, apart
//! from the header edits a transport must make: removing `Bcc` before the message goes to
//! recipients (and over SMTP adding a `Message-ID` at the sender's domain and a `Date` when
//! the message lacks them), and (over Graph, which takes recipients from the headers) writing the given
//! envelope as `To`/`Cc`/`Bcc`. Those edits cut header fields out at the offsets the parser
//! reports. A message with more than one `From`, `To`, `Cc` or `Bcc` header (RFC 5322 allows
//! one each) is refused: the parser reads only the last of them.

use std::sync::Arc;

use mail_parser::{Address, HeaderName, MessageParser};

use super::{Email, Mailbox};
use crate::error::{Error, Result};

/// The largest prepared message accepted, in bytes (Graph's upload path stops at 150 MB).
pub(crate) const MAX_PREPARED_BYTES: usize = 160 * 1024 * 1024;

/// What the builder reads from a prepared message's headers.
pub(super) struct Parsed {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub subject: String,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::invalid_message("mime", reason)
}

fn mailboxes(field: &str, address: Option<&Address<'_>>) -> Result<Vec<Mailbox>> {
    let Some(address) = address else {
        return Ok(Vec::new());
    };
    address
        .iter()
        .enumerate()
        .map(|(index, addr)| {
            // An item the parser could read no address from (`To: Bob <b@x.org>, broken`) is
            // refused: dropped, its recipient would silently get nothing.
            let Some(email) = addr.address.as_deref() else {
                let item = addr.name.as_deref().unwrap_or_default();
                return Err(invalid(format!(
                    "the `{field}` header's item {index} (`{}`) has no address: write each \
                     recipient as `Name <address>` or `address`, separated by commas",
                    crate::message::header::preview(item)
                )));
            };
            Mailbox::new(addr.name.as_deref().filter(|n| !n.is_empty()), email).map_err(|e| {
                // The reason alone: the error's own prefix would say "invalid email" twice.
                let reason = match e {
                    Error::InvalidMessage { reason, .. } => reason,
                    other => other.to_string(),
                };
                invalid(format!("the `{field}` header's address {index}: {reason}"))
            })
        })
        .collect()
}

/// Reads the headers sending needs.
///
/// # Errors
///
/// [`Error::InvalidMessage`] (field `mime`) when the bytes are not an RFC 5322 message, have
/// no `From`, or carry an address that is not valid.
pub(super) fn parse(bytes: &[u8]) -> Result<Parsed> {
    if bytes.len() > MAX_PREPARED_BYTES {
        return Err(invalid(format!(
            "the message is {} bytes; at most {MAX_PREPARED_BYTES} are accepted",
            bytes.len()
        )));
    }
    let message = MessageParser::default()
        .parse_headers(bytes)
        .filter(|m| !m.headers().is_empty())
        .ok_or_else(|| invalid("not an RFC 5322 message: no header could be read"))?;
    // RFC 5322 allows one of each; mail-parser reads only the last of a repeated one, while
    // the Bcc cut removes them all: the recipients of the others would be silently lost.
    for name in ["From", "To", "Cc", "Bcc"] {
        let count = message
            .headers()
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .count();
        if count > 1 {
            return Err(invalid(format!(
                "the message has {count} `{name}` headers; RFC 5322 allows one: put all their \
                 addresses in one `{name}` header"
            )));
        }
    }
    let from = mailboxes("From", message.from())?
        .into_iter()
        .next()
        .ok_or_else(|| invalid("the message has no `From` header; a prepared message needs one"))?;
    Ok(Parsed {
        from,
        to: mailboxes("To", message.to())?,
        cc: mailboxes("Cc", message.cc())?,
        bcc: mailboxes("Bcc", message.bcc())?,
        subject: message.subject().unwrap_or_default().to_owned(),
    })
}

/// The message's `Message-ID` (`<id>`), when it has one.
pub(crate) fn message_id(bytes: &[u8]) -> Option<String> {
    let message = MessageParser::default().parse_headers(bytes)?;
    message.message_id().map(|id| format!("<{id}>"))
}

/// The bytes with every header field named in `names` cut out, then `prepend` (complete
/// header lines, CRLF-terminated) put in front. The body and every other header stay byte for
/// byte.
pub(crate) fn edit_headers(bytes: &[u8], names: &[&str], prepend: &str) -> Vec<u8> {
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    if let Some(message) = MessageParser::default().parse_headers(bytes) {
        for header in message.headers() {
            let name = header.name.as_str();
            if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                cuts.push((header.offset_field as usize, header.offset_end as usize));
            }
        }
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_add(prepend.len()));
    out.extend_from_slice(prepend.as_bytes());
    let mut at = 0;
    for (start, end) in cuts {
        if start < at || end > bytes.len() || start > end {
            continue;
        }
        out.extend_from_slice(&bytes[at..start]);
        at = end;
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

/// The prepared message with its `To`, `Cc` and `Bcc` headers saying the email's envelope:
/// unchanged when they already do, rewritten (those three headers only) when the caller gave
/// other recipients. For Graph, which takes the recipients from the headers, and for a record
/// of the message (the outbox, `to_mime`), which must say whom it was for.
///
/// # Errors
///
/// [`Error::InvalidMessage`] when an address cannot be written.
pub(crate) fn with_envelope_headers(email: &Email) -> Result<Vec<u8>> {
    let Some(mime) = email.mime() else {
        return Err(invalid("not a prepared message"));
    };
    let parsed = parse(mime)?;
    let same = |a: &[Mailbox], b: &[Mailbox]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(a, b)| a.address().eq_ignore_ascii_case(b.address()))
    };
    if same(&parsed.to, email.to())
        && same(&parsed.cc, email.cc())
        && same(&parsed.bcc, email.bcc())
    {
        return Ok(mime.to_vec());
    }
    let mut lines = String::new();
    for (name, list) in [("To", email.to()), ("Cc", email.cc()), ("Bcc", email.bcc())] {
        if !list.is_empty() {
            lines.push_str(&crate::mime::address_header_line(name, list)?);
        }
    }
    Ok(edit_headers(mime, &["To", "Cc", "Bcc"], &lines))
}

/// The prepared message without its attachment parts, and those attachments: for Graph,
/// whose MIME form takes one request of 2,000,000 bytes at most, while attachments can be added
/// to a draft apart. The parts are cut out at the offsets mail-parser reports, each with its
/// boundary delimiter, after checking that the bytes there are that delimiter; `None` when
/// there is nothing to cut or a part is not where the parser says. An attached message
/// (`message/rfc822`) stays.
#[cfg(feature = "graph")]
pub(crate) fn split_attachments(mime: &[u8]) -> Option<(Vec<u8>, Vec<super::Attachment>)> {
    use mail_parser::{MimeHeaders as _, PartType};

    // mail-parser 0.11 panics ("Invalid part ID, could not find multipart") on some
    // messages whose attached `message/rfc822` parts are not messages (found by fuzz/); such
    // a message has nothing this can cut, which the caller reports. The process's panic
    // hook still sees that panic (and a `panic = "abort"` build still aborts): only a send
    // of such a message over 2 MB through Graph gets here.
    let message = std::panic::catch_unwind(|| MessageParser::default().parse(mime))
        .ok()
        .flatten()?;
    let mut cuts = Vec::new();
    let mut attachments = Vec::new();
    for &id in &message.attachments {
        let part = message.parts.get(id as usize)?;
        if matches!(part.body, PartType::Message(_)) {
            continue;
        }
        let parent = message.parts.iter().find(|p| match &p.body {
            PartType::Multipart(children) => children.contains(&id),
            _ => false,
        })?;
        let boundary = parent.content_type()?.attribute("boundary")?;
        let delimiter = format!("--{boundary}\r\n");
        let (start, end) = (part.offset_header as usize, part.offset_end as usize);
        let from = start.checked_sub(delimiter.len())?;
        if mime.get(from..start)? != delimiter.as_bytes() || mime.get(end..end + 2)? != b"\r\n" {
            return None;
        }
        cuts.push((from, end + 2));
        let content_type = part
            .content_type()
            .map(|c| match c.subtype() {
                Some(sub) => format!("{}/{sub}", c.ctype()),
                None => c.ctype().to_owned(),
            })
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        // mail-parser gives a text part's content decoded to UTF-8 whatever its charset was
        // (a Latin-1 file included): say so, or the receiver reads it in the wrong one.
        let content_type = match part.body {
            PartType::Text(_) | PartType::Html(_) => format!("{content_type}; charset=utf-8"),
            _ => content_type,
        };
        let name = part.attachment_name().unwrap_or("attachment").to_owned();
        let attachment = super::Attachment::from_bytes(name, part.contents().to_vec())
            .with_content_type(content_type);
        attachments.push(match part.content_id() {
            Some(cid) => attachment.inline(cid),
            None => attachment,
        });
    }
    if cuts.is_empty() {
        return None;
    }
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(mime.len());
    let mut at = 0;
    for (from, to) in cuts {
        if from < at {
            return None;
        }
        out.extend_from_slice(&mime[at..from]);
        at = to;
    }
    out.extend_from_slice(&mime[at..]);
    Some((out, attachments))
}

/// Whether a header named `name` is among the message's headers.
pub(crate) fn has_header(bytes: &[u8], name: &HeaderName<'_>) -> bool {
    MessageParser::default()
        .parse_headers(bytes)
        .is_some_and(|m| m.headers().iter().any(|h| &h.name == name))
}

/// The prepared bytes shared by clones of an email.
pub(super) type Bytes = Arc<[u8]>;

impl Email {
    /// An email that sends `mime`, a complete RFC 5322 message prepared elsewhere, as it is;
    /// the recipients are its `To`, `Cc` and `Bcc` headers. Use
    /// [`EmailBuilder::mime`](super::EmailBuilder::mime) to give the envelope recipients
    /// instead.
    ///
    /// ```
    /// use mail_connector::Email;
    ///
    /// let raw = "From: Reports <reports@example.org>\r\nTo: ann@example.org\r\n\
    ///            Bcc: audit@example.org\r\nSubject: Hi\r\n\r\nHello\r\n";
    /// let email = Email::from_mime(raw)?;
    /// assert_eq!(email.recipient_count(), 2);
    /// assert_eq!(email.subject(), "Hi");
    /// assert_eq!(email.mime(), Some(raw.as_bytes()));
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    ///
    /// Every transport removes the `Bcc` header before the message reaches a recipient (SMTP
    /// sends Bcc recipients in the envelope only; Graph's Exchange takes them from the header
    /// and strips it); the outbox keeps it, as a record. `Resent-Bcc` (and the other
    /// `Resent-*` headers) are neither read for recipients nor removed: give a resent
    /// message's recipients with [`EmailBuilder::mime`](super::EmailBuilder::mime) and the
    /// envelope setters, and leave `Resent-Bcc` out of the bytes.
    ///
    /// The bytes go as they are, so a message with 8-bit data (raw UTF-8 in a body part
    /// sent `Content-Transfer-Encoding: 8bit`, or in a header) needs an SMTP server that
    /// offers 8BITMIME (and SMTPUTF8 for the header); SMTP refuses it before `MAIL FROM` to
    /// one that does not. Quoted-printable or base64 parts and encoded-word headers go
    /// anywhere.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] (field `mime`) when the bytes are not an RFC 5322 message,
    /// have no `From`, repeat a `From`, `To`, `Cc` or `Bcc` header, carry an invalid address,
    /// or name no recipient.
    pub fn from_mime(mime: impl Into<Vec<u8>>) -> Result<Email> {
        Email::builder().mime(mime).build()
    }

    /// The prepared message this email sends, when it was made from one
    /// ([`Email::from_mime`], a [`lettre::Message`]).
    #[must_use]
    pub fn mime(&self) -> Option<&[u8]> {
        self.prepared.as_deref()
    }
}

/// A [`lettre::Message`] becomes a prepared email: the bytes lettre would send, with its
/// `Bcc` recipients kept (lettre drops the `Bcc` header when it builds a message and keeps
/// only their addresses in its envelope; they are written back as a `Bcc` header, which every
/// transport removes before delivery, so Graph can deliver to them too). The recipients are
/// the message's envelope (`Message::envelope`, which a custom envelope may make differ from
/// the headers), each in the role its `To`/`Cc`/`Bcc` header gives it, `Bcc` when none does.
impl TryFrom<lettre::Message> for Email {
    type Error = Error;

    fn try_from(message: lettre::Message) -> Result<Email> {
        TryFrom::try_from(&message)
    }
}

impl TryFrom<&lettre::Message> for Email {
    type Error = Error;

    fn try_from(message: &lettre::Message) -> Result<Email> {
        let mut bytes = message.formatted();
        let parsed = parse(&bytes)?;
        // The recipients are the envelope's (a custom one may leave out a `To` address), each
        // in the role its headers give it; one in no header is a Bcc recipient.
        let find = |list: &[Mailbox], address: &str| {
            list.iter()
                .find(|m| m.address().eq_ignore_ascii_case(address))
                .cloned()
        };
        let (mut to, mut cc, mut bcc) = (Vec::new(), Vec::new(), Vec::new());
        for address in message.envelope().to() {
            let address = address.as_ref();
            if let Some(mailbox) = find(&parsed.to, address) {
                to.push(mailbox);
            } else if let Some(mailbox) = find(&parsed.cc, address) {
                cc.push(mailbox);
            } else if let Some(mailbox) = find(&parsed.bcc, address) {
                bcc.push(mailbox);
            } else {
                bcc.push(Mailbox::new(None, address)?);
            }
        }
        if !bcc.is_empty() && !has_header(&bytes, &HeaderName::Bcc) {
            // lettre drops the Bcc header when it builds a message and keeps those recipients
            // in its envelope only: written back, so Graph (which reads the headers) has them.
            let line = crate::mime::address_header_line("Bcc", &bcc)?;
            bytes = edit_headers(&bytes, &[], &line);
        }
        let builder = Email::builder().mime(bytes);
        let builder = to.into_iter().fold(builder, super::EmailBuilder::to);
        let builder = cc.into_iter().fold(builder, super::EmailBuilder::cc);
        bcc.into_iter()
            .fold(builder, super::EmailBuilder::bcc)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = "From: a@example.org\r\nTo: b@example.org\r\nBcc: c@example.org,\r\n d@example.org\r\nSubject: x\r\n\r\nbody\r\n";

    #[test]
    fn cutting_a_folded_header_leaves_the_rest_byte_for_byte() {
        let out = edit_headers(RAW.as_bytes(), &["bcc"], "X-New: 1\r\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "X-New: 1\r\nFrom: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn the_last_header_can_be_cut() {
        let raw = "From: a@example.org\r\nBcc: c@example.org\r\n\r\nbody\r\n";
        let out = edit_headers(raw.as_bytes(), &["Bcc"], "");
        assert_eq!(out, b"From: a@example.org\r\n\r\nbody\r\n");
    }

    #[cfg(feature = "graph")]
    #[test]
    fn attachments_are_cut_out_with_their_delimiter() {
        let raw = "From: a@example.org\r\nTo: b@example.org\r\n\
                   Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\npreamble\r\n\
                   --BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
                   --BB\r\nContent-Type: application/pdf\r\n\
                   Content-Disposition: attachment; filename=big.pdf\r\n\
                   Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\nBBBB\r\n\
                   --BB\r\nContent-Type: text/csv\r\n\
                   Content-Disposition: attachment; filename=small.csv\r\n\r\na\r\n--BB--\r\n";
        let (rest, attachments) = split_attachments(raw.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(rest).unwrap(),
            "From: a@example.org\r\nTo: b@example.org\r\n\
             Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\npreamble\r\n\
             --BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n--BB--\r\n"
        );
        assert_eq!(attachments.len(), 2);
        assert_eq!(attachments[0].name(), "big.pdf");
        assert_eq!(attachments[0].content_type(), "application/pdf");
        assert_eq!(attachments[0].size(), 6);
        assert_eq!(attachments[1].name(), "small.csv");
        let plain = "From: a@example.org\r\nTo: b@example.org\r\n\r\nhello\r\n";
        assert!(split_attachments(plain.as_bytes()).is_none());
    }

    /// A Latin-1 text attachment arrives as the same text, in UTF-8, saying so.
    #[cfg(feature = "graph")]
    #[test]
    fn a_text_attachment_keeps_its_text_with_the_charset_it_is_in() {
        let raw = "From: a@example.org\r\nTo: b@example.org\r\n\
                   Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n\
                   --BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
                   --BB\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
                   Content-Disposition: attachment; filename=notes.txt\r\n\
                   Content-Transfer-Encoding: base64\r\n\r\nY2Fm6Q==\r\n--BB--\r\n";
        let (_, attachments) = split_attachments(raw.as_bytes()).unwrap();
        assert_eq!(attachments[0].content_type(), "text/plain; charset=utf-8");
        let crate::message::AttachmentContent::Bytes(bytes) = attachments[0].content() else {
            panic!("bytes")
        };
        assert_eq!(bytes, "café".as_bytes());
    }

    #[test]
    fn recipients_come_from_the_headers() {
        let parsed = parse(RAW.as_bytes()).unwrap();
        assert_eq!(parsed.from.address(), "a@example.org");
        assert_eq!(parsed.bcc.len(), 2);
        assert_eq!(parsed.subject, "x");
    }

    #[test]
    fn not_a_message_is_refused() {
        for raw in ["", "\r\n\r\nbody", "To: b@example.org\r\n\r\nno from"] {
            let error = parse(raw.as_bytes()).err().unwrap().to_string();
            assert!(error.contains("mime"), "{raw:?}: {error}");
        }
    }
}
