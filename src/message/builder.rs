//! [`EmailBuilder`], which collects an email's parts and validates them all in
//! [`EmailBuilder::build`].

use super::header::{MAX_HEADER_NAME_CHARS, check_header_size, check_header_text};
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

    /// Adds a custom header. Its name must start with `X-` (Graph accepts no others).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Validates and returns the email.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] naming the field when: there is no recipient; an address is
    /// not valid (`to[0]`, `cc[1]`, …); the subject, a display name, a header or an attachment
    /// name contains a line break or control character; a header name does not start with
    /// `X-` or is not a valid header name; an attachment name contains a path separator; an
    /// attachment's content type or Content-ID is malformed.
    ///
    /// Limits: the subject and each custom header value at most 16,384 bytes (UTF-8), a
    /// header name at most 64 characters. (Display names are limited to 256 characters and
    /// addresses to RFC 5321's 64-octet local part and 254 octets in all when the mailbox is
    /// made.)
    pub fn build(self) -> Result<Email> {
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
            let field = format!("headers[{index}]");
            let valid_name =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if !valid_name {
                return Err(Error::invalid_message(
                    field,
                    format!(
                        "`{}` is not a valid header name (printable ASCII, no `:` or space)",
                        name.escape_debug()
                    ),
                ));
            }
            if !name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-")) {
                return Err(Error::invalid_message(
                    field,
                    format!("`{name}` must start with `X-`: only custom X- headers can be set"),
                ));
            }
            if name.chars().count() > MAX_HEADER_NAME_CHARS {
                return Err(Error::invalid_message(
                    field,
                    format!(
                        "the header name `{}…` is longer than {MAX_HEADER_NAME_CHARS} characters",
                        name.chars().take(20).collect::<String>()
                    ),
                ));
            }
            check_header_text(&field, value)?;
            check_header_size(&field, value)?;
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
