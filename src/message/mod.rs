//! The message model: [`Email`], [`Mailbox`], [`Attachment`] and the validating builder.
//!
//! An [`Email`] is always valid: it can only be made by [`EmailBuilder::build`], which checks
//! every address with a real RFC 5322 address parser, refuses CR and LF (and other control
//! characters) in every header value so header injection is impossible, and checks attachment
//! names and content types. Non-ASCII subjects and display names are allowed; each transport
//! encodes them on the wire. So are international addresses: a domain that is not ASCII is
//! written in its ASCII (IDNA) form on the SMTP envelope and in the headers, so that only a
//! local part that is not ASCII needs a server with SMTPUTF8.
//!
//! The sections on headers, prepared messages and the serde form are on [`Email`], where
//! users see them.

mod address;
mod attachment;
mod builder;
mod header;
mod mailbox;
mod normalise;
mod prepared;
mod recipient;
mod wire;

pub(crate) use address::ascii_domain;
pub use attachment::{Attachment, AttachmentContent};
pub use builder::EmailBuilder;
pub(crate) use header::is_structured;
#[cfg(feature = "graph")]
pub(crate) use header::is_x_header;
pub use mailbox::{Mailbox, ToMailbox};
#[cfg(feature = "graph")]
pub(crate) use prepared::split_attachments;
pub(crate) use prepared::{
    edit_headers, has_header, message_id as prepared_message_id, with_envelope_headers,
};
pub use recipient::{Recipient, RecipientKind};

/// How important the sender marks the email (Graph's `importance`, the `Importance` header).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Importance {
    /// Low.
    Low,
    /// Normal, the default; transports omit the header.
    #[default]
    Normal,
    /// High.
    High,
}

/// A validated email, made with [`Email::builder`].
///
/// ```
/// use mail_connector::{Attachment, Email, Importance};
///
/// let email = Email::builder()
///     .to("Ann Example <ann@example.org>")
///     .bcc("audit@example.org")
///     .subject("Nightly report ✅")
///     .text("The report is attached.")
///     .html("<p>The report is attached.</p>")
///     .attachment(Attachment::from_bytes("report.csv", "a,b\n1,2\n"))
///     .importance(Importance::High)
///     .header("X-Report-Id", "42")
///     .build()?;
/// assert_eq!(email.recipients().count(), 2);
/// # Ok::<(), mail_connector::Error>(())
/// ```
///
/// An email is `Serialize` and `Deserialize` (reading one runs the builder's checks), and
/// `PartialEq`, so it can be stored, handed to another service, or compared in a test; see the
/// [serde form](Email#the-serde-form).
///
/// # Headers
///
/// [`EmailBuilder::header`] sets `Message-ID` (otherwise each send makes a unique one at the
/// sender's domain), `In-Reply-To` and `References` (replies thread), `List-Unsubscribe` and
/// `List-Unsubscribe-Post` (RFC 8058 one-click unsubscribe), `X-` headers and any other header
/// the crate does not write itself. Headers it writes — `From`, `To`, `Cc`, `Bcc`, `Reply-To`,
/// `Subject`, `Date`, `Importance`, `MIME-Version`, `Content-*` — are refused with the setter
/// to use, and so are those servers write (`Received`, `Authentication-Results`, `Resent-*`,
/// `ARC-*`). Structured headers are sent as written (printable ASCII, checked); others are
/// RFC 2047-encoded when not ASCII, with lettre's encoder.
///
/// # Prepared messages
///
/// A message made elsewhere is sent as it is: [`Email::from_mime`] (recipients from its `To`,
/// `Cc` and `Bcc`), [`EmailBuilder::mime`] / [`EmailBuilder::mime_file`] with other envelope
/// recipients, or `Email::try_from(lettre::Message)`. It is read with a real parser
/// (mail-parser) for its sender, recipients and subject; its bytes are never rebuilt. Every
/// transport removes `Bcc` before delivery (the outbox keeps it as a record).
/// [`Email::to_mime`] gives the bytes the transports send for any email.
///
/// # The serde form
///
/// [`Email`], [`Mailbox`], [`Attachment`] and [`Importance`] serialise to a plain JSON (or any
/// serde format) shape, and deserialising runs the builder's checks:
///
/// ```
/// use mail_connector::{Attachment, Email};
///
/// let email = Email::builder()
///     .to("Ann Example <ann@example.org>")
///     .subject("Report")
///     .attachment(Attachment::from_bytes("r.csv", "a,b\n1,2\n"))
///     .build()?;
/// let json = serde_json::to_string(&email).unwrap();
/// assert!(json.contains(r#""to":[{"address":"ann@example.org","name":"Ann Example"}]"#));
/// let back: Email = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, email);
/// # Ok::<(), mail_connector::Error>(())
/// ```
///
/// Mailboxes are `{"address", "name"}` (a `"Name <address>"` string is read too); attachments
/// are `{"name", "content_type", "content_id", "data"}` with the bytes in standard base64. An
/// attachment still referring to a file is written with its `"path"` instead, for inspection,
/// but such an attachment is **refused when read**: an email read from data never makes this
/// process read a file it names (anyone who could send that data could have any readable file
/// mailed out) — call [`Email::load_attachments`] before serialising an email that is to be
/// read back. `importance` is `low`, `normal` or `high`; headers are a list of
/// `{"name", "value"}`. Fields left out take their defaults; unknown fields are refused.
/// A prepared message ([`Email::from_mime`]) is `{"mime", "to", "cc", "bcc"}`: the message in
/// standard base64 and its envelope recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    from: Option<Mailbox>,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    reply_to: Vec<Mailbox>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    attachments: Vec<Attachment>,
    importance: Importance,
    headers: Vec<(String, String)>,
    /// A message prepared elsewhere, sent as it is ([`Email::from_mime`]).
    prepared: Option<prepared::Bytes>,
}

impl Email {
    /// Starts an email.
    pub fn builder() -> EmailBuilder {
        EmailBuilder::default()
    }

    /// The sender, when the email names one; transports otherwise use their configured
    /// mailbox (`user_name`).
    #[must_use]
    pub fn from(&self) -> Option<&Mailbox> {
        self.from.as_ref()
    }

    /// `To` recipients.
    #[must_use]
    pub fn to(&self) -> &[Mailbox] {
        &self.to
    }

    /// `Cc` recipients.
    #[must_use]
    pub fn cc(&self) -> &[Mailbox] {
        &self.cc
    }

    /// `Bcc` recipients.
    #[must_use]
    pub fn bcc(&self) -> &[Mailbox] {
        &self.bcc
    }

    /// `Reply-To` mailboxes.
    #[must_use]
    pub fn reply_to(&self) -> &[Mailbox] {
        &self.reply_to
    }

    /// The subject (may be empty).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The plain-text body.
    #[must_use]
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The HTML body.
    #[must_use]
    pub fn html(&self) -> Option<&str> {
        self.html.as_deref()
    }

    /// Attachments, regular and inline.
    #[must_use]
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// The importance.
    #[must_use]
    pub fn importance(&self) -> Importance {
        self.importance
    }

    /// The headers the caller set, as (name, value) pairs in the order added.
    #[must_use]
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The value of the header `name` the caller set (compared without regard to case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The caller's `Message-ID` (`<id@domain>`), when set; otherwise each transport generates
    /// a unique one at the sender's domain when it sends.
    #[must_use]
    pub fn message_id(&self) -> Option<&str> {
        self.header("Message-ID")
    }

    /// What a send-as refusal calls this email, and how its From is made the mailbox's: a
    /// prepared message's From is in its bytes and cannot be left unset.
    pub(crate) fn send_as_fix(&self) -> (&'static str, &'static str) {
        match self.mime() {
            Some(_) => (
                "the prepared message's `From` header",
                "change that header to the mailbox",
            ),
            None => ("the email", "leave From unset"),
        }
    }

    /// Every recipient once, with its role: To, then Cc, then Bcc.
    ///
    /// An address listed more than once (in To and in Bcc, say, or in another case) is one
    /// recipient, in its first place: the SMTP envelope names it in one `RCPT TO`, every
    /// report lists it once, and a [`RecipientLimit`](crate::RecipientLimit) sends it one
    /// message. [`Email::to`], [`Email::cc`] and [`Email::bcc`] keep the lists as given.
    ///
    /// ```
    /// use mail_connector::{Email, RecipientKind};
    ///
    /// let email = Email::builder()
    ///     .to("ann@example.org")
    ///     .bcc("Ann@Example.org")
    ///     .bcc("bob@example.org")
    ///     .build()?;
    /// let kinds: Vec<RecipientKind> = email.recipients().map(|r| r.kind).collect();
    /// assert_eq!(kinds, [RecipientKind::To, RecipientKind::Bcc]);
    /// assert_eq!(email.recipient_count(), 2);
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    pub fn recipients(&self) -> impl Iterator<Item = Recipient> + '_ {
        self.unique_recipients().map(|(kind, mailbox)| Recipient {
            kind,
            mailbox: mailbox.clone(),
        })
    }

    /// The number of recipients, each address once (see [`Email::recipients`]).
    #[must_use]
    pub fn recipient_count(&self) -> usize {
        self.unique_recipients().count()
    }

    /// Every recipient's role and mailbox, each address once, in its first place.
    fn unique_recipients(&self) -> impl Iterator<Item = (RecipientKind, &Mailbox)> + '_ {
        let mut seen = recipient::Seen::new(self.to.len() + self.cc.len() + self.bcc.len());
        let to = self.to.iter().map(|m| (RecipientKind::To, m));
        let cc = self.cc.iter().map(|m| (RecipientKind::Cc, m));
        let bcc = self.bcc.iter().map(|m| (RecipientKind::Bcc, m));
        to.chain(cc)
            .chain(bcc)
            .filter(move |(_, mailbox)| seen.first(mailbox))
    }

    /// This email with every file attachment read into memory, so that it no longer depends
    /// on files: call it before storing or serialising an email whose attachments may be
    /// gone when it is delivered.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when an attachment's file cannot be read.
    pub async fn load_attachments(mut self) -> crate::Result<Email> {
        let mut loaded = Vec::with_capacity(self.attachments.len());
        for attachment in std::mem::take(&mut self.attachments) {
            loaded.push(attachment.into_loaded().await?);
        }
        self.attachments = loaded;
        Ok(self)
    }

    /// A copy of this email without the attachments `drop` picks.
    #[cfg_attr(not(feature = "graph"), allow(dead_code))] // Graph's MIME drafts
    pub(crate) fn without_attachments(&self, drop: impl Fn(&Attachment) -> bool) -> Email {
        Email {
            attachments: self
                .attachments
                .iter()
                .filter(|a| !drop(a))
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// A copy of this email carrying only `recipients`, each keeping its role: one part of
    /// a [`split_recipients`](crate::recipient_limit::split_recipients), or the rest to
    /// retry after a partial delivery. Nothing else changes.
    ///
    /// ```
    /// use mail_connector::Email;
    /// use mail_connector::recipient_limit::split_recipients;
    ///
    /// let email = Email::builder().to("a@example.org").to("b@example.org").cc("c@example.org").build()?;
    /// let parts = split_recipients(&email, 2)
    ///     .iter()
    ///     .map(|part| email.with_recipients(part))
    ///     .collect::<Result<Vec<Email>, _>>()?;
    /// assert_eq!(parts[1].cc()[0].address(), "c@example.org");
    /// assert!(email.with_recipients(&[]).is_err());
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`](crate::Error::InvalidMessage) (field `to`) when `recipients`
    /// is empty: an email always has a recipient, which every transport needs (Graph refuses
    /// a message without one).
    pub fn with_recipients(&self, recipients: &[Recipient]) -> crate::Result<Email> {
        if recipients.is_empty() {
            return Err(crate::Error::invalid_message(
                "to",
                "no recipients were given for a copy of the email; give at least one To, Cc \
                 or Bcc recipient",
            ));
        }
        let pick = |kind| {
            recipients
                .iter()
                .filter(|r| r.kind == kind)
                .map(|r| r.mailbox.clone())
                .collect()
        };
        Ok(Email {
            to: pick(RecipientKind::To),
            cc: pick(RecipientKind::Cc),
            bcc: pick(RecipientKind::Bcc),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_recipients_keeps_roles() {
        let email = Email::builder()
            .to("a@example.org")
            .cc("b@example.org")
            .bcc("c@example.org")
            .build()
            .unwrap();
        let all: Vec<_> = email.recipients().collect();
        let part = email.with_recipients(&all[1..]).unwrap();
        assert!(part.to().is_empty());
        assert_eq!(part.cc()[0].address(), "b@example.org");
        assert_eq!(part.bcc()[0].address(), "c@example.org");
    }

    /// Past the few compared one by one, the set of keys finds the same duplicates, in the
    /// same first places.
    #[test]
    fn a_long_list_loses_its_duplicates_as_a_short_one_does() {
        for n in [1, 2, 16, 17, 40] {
            let mut builder = Email::builder();
            for i in 0..n {
                builder = builder.to(format!("r{i}@bücher.de"));
            }
            for i in 0..n {
                builder = builder
                    .cc(format!("R{i}@xn--bcher-kva.de"))
                    .bcc(format!("other{i}@example.org"));
            }
            let email = builder.build().unwrap();
            let kinds: Vec<RecipientKind> = email.recipients().map(|r| r.kind).collect();
            let mut expected = vec![RecipientKind::To; n];
            expected.extend(vec![RecipientKind::Bcc; n]);
            assert_eq!(kinds, expected, "{n} of each");
            assert_eq!(email.recipient_count(), 2 * n);
        }
    }
}
