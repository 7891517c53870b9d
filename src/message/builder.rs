//! [`EmailBuilder`], which collects an email's parts and validates them all in
//! [`EmailBuilder::build`].

use super::header::{check_custom_header, check_header_size, check_header_text};
use super::{Attachment, Email, Importance, Mailbox, ToMailbox};
use crate::error::{Error, Result};

/// Builds an [`Email`]; errors are kept until [`EmailBuilder::build`].
#[derive(Debug, Default)]
#[must_use]
pub struct EmailBuilder {
    from: Option<Result<Mailbox>>,
    to: Vec<Result<Mailbox>>,
    cc: Vec<Result<Mailbox>>,
    bcc: Vec<Result<Mailbox>>,
    reply_to: Vec<Result<Mailbox>>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    attachments: Vec<Attachment>,
    importance: Importance,
    headers: Vec<(String, String)>,
    mime: Option<Result<Vec<u8>>>,
}

impl EmailBuilder {
    /// Sets the sender. Usually left unset: the transport uses its configured mailbox, and
    /// Graph refuses another sender unless send-as is allowed.
    pub fn from(mut self, mailbox: impl ToMailbox) -> Self {
        self.from = Some(mailbox.to_mailbox());
        self
    }

    /// Adds a `To` recipient (`ann@example.org` or `Ann <ann@example.org>`).
    pub fn to(mut self, mailbox: impl ToMailbox) -> Self {
        self.to.push(mailbox.to_mailbox());
        self
    }

    /// Adds a `Cc` recipient.
    pub fn cc(mut self, mailbox: impl ToMailbox) -> Self {
        self.cc.push(mailbox.to_mailbox());
        self
    }

    /// Adds a `Bcc` recipient.
    pub fn bcc(mut self, mailbox: impl ToMailbox) -> Self {
        self.bcc.push(mailbox.to_mailbox());
        self
    }

    /// Adds a `Reply-To` mailbox.
    pub fn reply_to(mut self, mailbox: impl ToMailbox) -> Self {
        self.reply_to.push(mailbox.to_mailbox());
        self
    }

    /// Sets the subject. Non-ASCII is fine; line breaks are refused by `build`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// Sets the plain-text body.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Sets the HTML body.
    pub fn html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    /// Adds an attachment.
    pub fn attachment(mut self, attachment: Attachment) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Sets the importance.
    pub fn importance(mut self, importance: Importance) -> Self {
        self.importance = importance;
        self
    }

    /// Adds a header: `Message-ID` (instead of the generated one), `In-Reply-To` and
    /// `References` (so that a reply threads), `List-Unsubscribe` and `List-Unsubscribe-Post`
    /// (RFC 8058 one-click unsubscribe), `X-` headers, or any other header the crate does not
    /// write itself.
    ///
    /// Refused by [`build`](Self::build): `From`, `Sender`, `To`, `Cc`, `Bcc`, `Reply-To`,
    /// `Subject`, `Date`, `Importance`, `MIME-Version`, `Content-*`, `Return-Path` and
    /// `DKIM-Signature` (each has its own setter or is written by the crate), and control
    /// characters. Non-ASCII values are RFC 2047-encoded on the wire, except in structured
    /// headers (`Message-ID`, `In-Reply-To`, `References`, `List-*`, `Auto-Submitted`, …),
    /// which are sent as written and must be printable ASCII. A header a message may carry
    /// more than once (`Keywords`, `Comments`, `X-` headers, …) may be added more than once:
    /// each is written, in the order added. Over Graph, an email with
    /// headers other than at most five `X-` headers is sent in Graph's MIME form (the `graph`
    /// module's docs say which form is used when).
    ///
    /// ```
    /// use mail_connector::Email;
    ///
    /// let email = Email::builder()
    ///     .to("ann@example.org")
    ///     .subject("Re: your question")
    ///     .text("Here is the answer.")
    ///     .header("Message-ID", "<answer-42@example.org>")
    ///     .header("In-Reply-To", "<question-41@example.org>")
    ///     .header("References", "<question-41@example.org>")
    ///     .header("List-Unsubscribe", "<https://example.org/unsubscribe?u=ann>")
    ///     .header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    ///     .build()?;
    /// assert_eq!(email.message_id(), Some("<answer-42@example.org>"));
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends `mime`, a complete RFC 5322 message prepared elsewhere, instead of building one
    /// (see [`Email::from_mime`]); its line breaks are made CRLF, as RFC 5322 requires and so
    /// that no bare CR or LF reaches an SMTP server, and a UTF-8 byte-order mark in front of
    /// it (as Windows editors save a file) and an mbox `From sender date` line (no header:
    /// a receiver would start the body there) are dropped. Recipients added with
    /// [`to`](Self::to), [`cc`](Self::cc) and [`bcc`](Self::bcc) become the envelope instead
    /// of the message's own `To`, `Cc` and `Bcc`; nothing else may be set with it.
    ///
    /// ```
    /// use mail_connector::Email;
    ///
    /// let raw = "From: reports@example.org\r\nTo: list@example.org\r\nSubject: Hi\r\n\r\nHello\r\n";
    /// let email = Email::builder().mime(raw).to("ann@example.org").build()?;
    /// assert_eq!(email.to()[0].address(), "ann@example.org");
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    pub fn mime(mut self, mime: impl Into<Vec<u8>>) -> Self {
        self.mime = Some(Ok(mime.into()));
        self
    }

    /// [`mime`](Self::mime) with the message read from a file now (an `.eml` file, such as one
    /// the outbox wrote); an unreadable file, or one larger than a prepared message may be
    /// (160 MiB, checked before it is read), is reported by [`build`](Self::build).
    pub fn mime_file(mut self, path: impl AsRef<std::path::Path>) -> Self {
        use std::io::Read as _;

        let path = path.as_ref();
        let read = || -> Result<Vec<u8>> {
            let io = |e| Error::io("read the prepared message", path, e);
            let file = std::fs::File::open(path).map_err(io)?;
            let max = super::prepared::MAX_PREPARED_BYTES;
            let len = file.metadata().map_err(io)?.len();
            if len > max as u64 {
                return Err(Error::invalid_message(
                    "mime",
                    format!("the message is {len} bytes; at most {max} are accepted"),
                ));
            }
            // At most one byte over the limit, should the file grow meanwhile: `build`
            // refuses it then.
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(max));
            file.take(max as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(io)?;
            Ok(bytes)
        };
        self.mime = Some(read());
        self
    }

    /// Validates and returns the email.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] naming the field when: there is no recipient; an address is
    /// not valid (`to[0]`, `cc[1]`, …); the subject, a display name, a header or an attachment
    /// name contains a line break or control character; a header is one the crate writes
    /// itself (`From`, `Date`, `Content-*`, …; the error names the setter to use), is not a
    /// valid header name, is set twice where a message carries it once (`Message-ID`,
    /// `In-Reply-To`, `References`, `List-Unsubscribe`, …), or is a structured header with
    /// non-ASCII text or (for `Message-ID`, `In-Reply-To`, `References`) not `<id@domain>`
    /// message ids; an attachment name contains a path separator or a bidirectional override
    /// or isolate (which would show it reordered); an attachment's content type or Content-ID
    /// is malformed.
    ///
    /// Limits: the subject and each custom header value at most 16,384 bytes (UTF-8), a
    /// header name at most 64 characters. (Display names are limited to 256 characters and
    /// addresses to RFC 5321's 64-octet local part and 254 octets in all when the mailbox is
    /// made.)
    pub fn build(self) -> Result<Email> {
        if self.mime.is_some() {
            return self.build_prepared();
        }
        let from = self
            .from
            .map(|r| r.map_err(|e| rename_field(e, "from")))
            .transpose()?;
        let to = collect_mailboxes("to", self.to)?;
        let cc = collect_mailboxes("cc", self.cc)?;
        let bcc = collect_mailboxes("bcc", self.bcc)?;
        let reply_to = collect_mailboxes("reply_to", self.reply_to)?;
        if to.is_empty() && cc.is_empty() && bcc.is_empty() {
            return Err(Error::invalid_message(
                "to",
                "the email has no recipient; add at least one To, Cc or Bcc address",
            ));
        }
        check_header_text("subject", &self.subject)?;
        check_header_size("subject", &self.subject)?;
        for (index, (name, value)) in self.headers.iter().enumerate() {
            check_custom_header(index, name, value, &self.headers[..index])?;
        }
        for (index, attachment) in self.attachments.iter().enumerate() {
            attachment.validate(index)?;
        }
        Ok(Email {
            from,
            to,
            cc,
            bcc,
            reply_to,
            subject: self.subject,
            text: self.text,
            html: self.html,
            attachments: self.attachments,
            importance: self.importance,
            headers: self.headers,
            prepared: None,
        })
    }

    /// `build` for a prepared message: its headers give what is not given.
    fn build_prepared(self) -> Result<Email> {
        let set = [
            ("from", self.from.is_some()),
            ("reply_to", !self.reply_to.is_empty()),
            ("subject", !self.subject.is_empty()),
            ("text", self.text.is_some()),
            ("html", self.html.is_some()),
            ("attachments", !self.attachments.is_empty()),
            ("importance", self.importance != Importance::Normal),
            ("headers", !self.headers.is_empty()),
        ];
        if let Some((field, _)) = set.iter().find(|(_, set)| *set) {
            return Err(Error::invalid_message(
                *field,
                "a prepared message (`mime`) is sent as it is: only its envelope recipients \
                 (to, cc, bcc) can be given with it; put this in the message itself",
            ));
        }
        let bytes = super::normalise::prepared(self.mime.unwrap_or_else(|| Ok(Vec::new()))?);
        let parsed = super::prepared::parse(&bytes)?;
        let given = !(self.to.is_empty() && self.cc.is_empty() && self.bcc.is_empty());
        let (to, cc, bcc) = match given {
            true => (
                collect_mailboxes("to", self.to)?,
                collect_mailboxes("cc", self.cc)?,
                collect_mailboxes("bcc", self.bcc)?,
            ),
            false => (parsed.to, parsed.cc, parsed.bcc),
        };
        if to.is_empty() && cc.is_empty() && bcc.is_empty() {
            return Err(Error::invalid_message(
                "to",
                "the prepared message names no recipient in To, Cc or Bcc; give them with \
                 `to`, `cc` or `bcc`",
            ));
        }
        Ok(Email {
            from: Some(parsed.from),
            to,
            cc,
            bcc,
            reply_to: Vec::new(),
            subject: parsed.subject,
            text: None,
            html: None,
            attachments: Vec::new(),
            importance: Importance::Normal,
            headers: Vec::new(),
            prepared: Some(bytes.into()),
        })
    }
}

fn rename_field(error: Error, field: &str) -> Error {
    match error {
        Error::InvalidMessage { reason, .. } => Error::InvalidMessage {
            field: field.to_owned(),
            reason,
        },
        other => other,
    }
}

fn collect_mailboxes(field: &str, entries: Vec<Result<Mailbox>>) -> Result<Vec<Mailbox>> {
    entries
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.map_err(|e| rename_field(e, &format!("{field}[{i}]"))))
        .collect()
}
