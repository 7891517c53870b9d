//! [`Recipient`]: a [`Mailbox`] with its role, [`RecipientKind`] (To, Cc or Bcc).

use std::fmt;

use std::collections::HashSet;

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

/// The addresses met so far on a walk over an email's recipients, to let each address
/// through once ([`Mailbox::same_address`]). An email has one recipient, or a few, nearly
/// always: those are compared one by one, with nothing allocated for one recipient and one
/// allocation for a few; a long list goes through a set of [`Mailbox::address_key`]s.
pub(super) struct Seen<'a> {
    /// Recipients not yet walked.
    left: usize,
    kind: SeenKind<'a>,
}

enum SeenKind<'a> {
    Few(Vec<&'a Mailbox>),
    Many(HashSet<String>),
}

/// Up to this many recipients are compared one by one.
const FEW: usize = 16;

impl<'a> Seen<'a> {
    /// For a walk over `total` recipients.
    pub(super) fn new(total: usize) -> Self {
        let kind = if total <= FEW {
            // The last recipient is never kept: nothing comes after it.
            SeenKind::Few(Vec::with_capacity(total.saturating_sub(1)))
        } else {
            SeenKind::Many(HashSet::with_capacity(total))
        };
        Seen { left: total, kind }
    }

    /// Whether `mailbox` is the first of its address on this walk.
    pub(super) fn first(&mut self, mailbox: &'a Mailbox) -> bool {
        self.left = self.left.saturating_sub(1);
        match &mut self.kind {
            SeenKind::Few(seen) => {
                if seen.iter().any(|s| s.same_address(mailbox)) {
                    return false;
                }
                if self.left > 0 {
                    seen.push(mailbox);
                }
                true
            }
            SeenKind::Many(keys) => keys.insert(mailbox.address_key()),
        }
    }
}
