//! [`Recipient`]: a [`Mailbox`] with its role, [`RecipientKind`] (To, Cc or Bcc).

use std::fmt;

use super::Mailbox;

/// The role of a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecipientKind {
    /// `To`.
    To,
    /// `Cc`.
    Cc,
    /// `Bcc`: in the envelope only, never in the message headers.
    Bcc,
}

impl fmt::Display for RecipientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::To => "To",
            Self::Cc => "Cc",
            Self::Bcc => "Bcc",
        })
    }
}

/// A recipient with its role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recipient {
    /// To, Cc or Bcc.
    pub kind: RecipientKind,
    /// Who.
    pub mailbox: Mailbox,
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.mailbox)
    }
}
