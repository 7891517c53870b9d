//! What an enqueue is given and gives back: [`EnqueueOptions`], the [`MessageId`], and
//! `prepare`, the one path by which an email becomes a stored message.

use std::time::SystemTime;

use serde::Serialize;

use super::{DEFAULT_MAILBOX, NewMessage, codec};
use crate::error::{Error, Result};
use crate::message::{Email, Mailbox};

/// A queued message's id (a UUID), as [`Queue::enqueue`](super::Queue::enqueue) returns it and `mailctl` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MessageId(pub(super) String);

impl MessageId {
    /// An id as stored.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to enqueue an email: an idempotency key, a not-before time, the sender mailbox.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use mail_connector::queue::EnqueueOptions;
///
/// let options = EnqueueOptions::new()
///     .idempotency_key("invoice-2026-0042")
///     .not_before(SystemTime::now() + Duration::from_secs(3600))
///     .mailbox("billing@example.org");
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct EnqueueOptions {
    idempotency_key: Option<String>,
    not_before: Option<SystemTime>,
    mailbox: Option<String>,
}

/// The longest idempotency key, in bytes.
const MAX_KEY_BYTES: usize = 255;

impl EnqueueOptions {
    /// No key, due now, the email's own sender.
    pub fn new() -> Self {
        Self::default()
    }

    /// An idempotency key: enqueueing again with the same key stores nothing and returns
    /// the first message's id (keep keys unique per intended email, e.g. `order-42-shipped`).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub(crate) fn has_key(&self) -> bool {
        self.idempotency_key.is_some()
    }

    /// Not delivered before this time. The age limit of its retries (a day by default)
    /// counts from then, not from the enqueue.
    pub fn not_before(mut self, time: SystemTime) -> Self {
        self.not_before = Some(time);
        self
    }

    /// The sender mailbox whose limits apply, when several are used and the email names no
    /// `From` (default: the email's `From`, else the queue's default mailbox): its address,
    /// as `no-reply@example.org` or `Name <no-reply@example.org>` (the name is dropped;
    /// case, and the form of an IDN domain, do not matter), or any other name for a set of limits. A blank one, or a
    /// malformed address, is refused when enqueueing, naming `mailbox`.
    pub fn mailbox(mut self, mailbox: impl Into<String>) -> Self {
        self.mailbox = Some(mailbox.into());
        self
    }
}

/// Validates and encodes an email for storage: the one path into every store.
pub(crate) async fn prepare(
    email: &Email,
    options: EnqueueOptions,
    default_mailbox: Option<&str>,
    now: SystemTime,
) -> Result<NewMessage> {
    let bad_key = |key: &String| {
        key.trim().is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control)
    };
    if options.idempotency_key.as_ref().is_some_and(bad_key) {
        return Err(Error::invalid_message(
            "idempotency_key",
            format!(
                "an idempotency key must be 1 to {MAX_KEY_BYTES} bytes without control characters"
            ),
        ));
    }
    // A mailbox is keyed by its address alone (a display name dropped), compared as
    // `Mailbox::same_address` compares them — case, and an IDN domain's two forms, aside:
    // the same mailbox under two spellings would get two sets of limits.
    let named = match options.mailbox.as_deref() {
        Some(text) => Some(mailbox_key(text)?),
        None => None,
    };
    let mailbox = named
        .or(email.from().map(Mailbox::address_key))
        .or(default_mailbox.map(default_key))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| DEFAULT_MAILBOX.to_owned());
    Ok(NewMessage {
        id: uuid::Uuid::new_v4().to_string(),
        idempotency_key: options.idempotency_key,
        mailbox,
        recipients: codec::recipients_line(email),
        subject: email.subject().to_owned(),
        body: codec::encode(email).await?,
        due_at: options.not_before.unwrap_or(now).max(now),
        created_at: now,
    })
}

/// The key [`EnqueueOptions::mailbox`] gives: a mailbox's address when it names one (a
/// display name dropped), else the name as given; an error naming the option and the fix
/// when it is blank or a malformed mailbox.
fn mailbox_key(text: &str) -> Result<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::invalid_message(
            "mailbox",
            "the enqueue option `mailbox` is empty: set it to the sender mailbox's address \
             (e.g. `no-reply@example.org`), or leave it unset to use the email's `From`",
        ));
    }
    if !text.contains(['@', '<']) {
        return Ok(text.to_lowercase());
    }
    match Mailbox::parse(text) {
        Ok(mailbox) => Ok(mailbox.address_key()),
        Err(error) => Err(Error::invalid_message(
            "mailbox",
            format!(
                "the enqueue option `mailbox` is not a mailbox ({error}); set it to the \
                 sender mailbox's address, e.g. `no-reply@example.org`"
            ),
        )),
    }
}

/// The key of the queue's default mailbox (the transport's `user_name`): its address's key
/// when it is one, else the name as given, without regard to case.
fn default_key(text: &str) -> String {
    let text = text.trim();
    match Mailbox::parse(text) {
        Ok(mailbox) if text.contains('@') => mailbox.address_key(),
        _ => text.to_lowercase(),
    }
}
