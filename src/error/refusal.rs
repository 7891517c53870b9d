//! [`Refusal`]: one recipient an SMTP server refused at `RCPT TO`, with the server's reply,
//! as an [`Error::PartialDelivery`] keeps it for each of them.

use std::fmt;

use super::{Error, SmtpStage};
use crate::message::Recipient;

/// The longest server reply text an error keeps, in characters — a [`Refusal`]'s, and any
/// SMTP reply's in an [`Error::Smtp`]: replies are short, this guards against abuse.
pub(crate) const MAX_REPLY_TEXT: usize = 400;

/// How many refusals an [`Error::PartialDelivery`]'s message names, besides its source: the
/// rest are counted ("and 7 more"), so that an email refused for 500 recipients still gives
/// a message one can read. Every one of them is in the error's `refusals`.
const LISTED: usize = 3;

/// One recipient an SMTP server refused at `RCPT TO`, and the server's reply: an entry of
/// [`Error::PartialDelivery`]'s `refusals`.
///
/// The reply says why this recipient was refused, which may differ from one recipient to
/// the next: `550 5.1.1` (unknown mailbox: check the address), `550 5.7.1` (relay or
/// permission denied: the admin must act), `452 4.2.2` (mailbox full: try later).
/// [`is_permanent`](Refusal::is_permanent) says whether sending to the recipient again can
/// work; [`is_auth`](Refusal::is_auth) whether the refusal is a permission or policy the
/// admin controls. Its `Display` is one line: `gone@example.org: 550 5.1.1 User unknown`.
///
/// ```
/// use mail_connector::{Error, Refusal};
///
/// /// One line per refused recipient, the ones the admin must act on first.
/// fn refusal_lines(error: &Error) -> Vec<String> {
///     let Error::PartialDelivery { refusals, .. } = error else {
///         return Vec::new();
///     };
///     let mut refusals: Vec<&Refusal> = refusals.iter().collect();
///     refusals.sort_by_key(|r| !(r.is_permanent() && r.is_auth()));
///     refusals
///         .iter()
///         .map(|r| match r.is_permanent() {
///             true => format!("{r} (do not resend)"),
///             false => format!("{r} (may be resent later)"),
///         })
///         .collect()
/// }
/// # assert!(refusal_lines(&Error::Disabled).is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// The recipient refused, with its role (To, Cc or Bcc).
    pub recipient: Recipient,
    /// The server's reply code, e.g. `550` or `452`.
    pub code: u16,
    /// The enhanced status code at the start of the reply text (e.g. `5.1.1`), when the
    /// server gave one.
    pub enhanced_code: Option<String>,
    /// The server's reply text, without the codes: redacted like every server reply that
    /// reaches an error (never a password or token the session sent), on one line as the
    /// server's lines are joined, and at most 400 characters long.
    pub text: String,
    /// The transport's verdict: a retry would be refused the same way.
    permanent: bool,
    /// The transport's verdict: a permission or policy refused.
    auth: bool,
}

impl Refusal {
    /// The refusal of `recipient` by a server (or an API) outside this crate, for
    /// [`Error::partial_delivery`]: its reply `code` (SMTP's, or the nearest: `550` for an
    /// address that cannot receive, `452` for one to try later) and `text`, which may start
    /// with an enhanced status code (`5.1.1 no such user`). It
    /// [is permanent](Refusal::is_permanent) for a `5xx` code but `552` (too many
    /// recipients, temporary at `RCPT TO`), and [is auth](Refusal::is_auth) for an enhanced
    /// code `5.7.x` (a permission or policy refused for good). The text is kept on one line, at most 400
    /// characters.
    ///
    /// ```
    /// use mail_connector::{Recipient, RecipientKind, Refusal};
    ///
    /// let bob = Recipient { kind: RecipientKind::Cc, mailbox: "bob@example.org".parse()? };
    /// let refusal = Refusal::new(bob, 550, "5.7.1 relay denied");
    /// assert!(refusal.is_permanent() && refusal.is_auth());
    /// assert_eq!(refusal.to_string(), "bob@example.org: 550 5.7.1 relay denied");
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    #[must_use]
    pub fn new(recipient: Recipient, code: u16, text: impl Into<String>) -> Self {
        let text: String = text.into();
        let one_line = text
            .split(['\r', '\n'])
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>();
        let text = one_line.join(" ");
        let enhanced_code = enhanced_code(&text);
        let rest = match &enhanced_code {
            Some(enhanced) => text
                .trim_start()
                .strip_prefix(enhanced.as_str())
                .unwrap_or(""),
            None => text.as_str(),
        };
        let auth = enhanced_code
            .as_deref()
            .is_some_and(|enhanced| enhanced.starts_with("5.7."));
        Self {
            recipient,
            code,
            text: rest.trim().chars().take(MAX_REPLY_TEXT).collect(),
            enhanced_code,
            permanent: (500..600).contains(&code) && code != 552,
            auth,
        }
    }

    /// The refusal of `recipient` that `error` is, when it is an SMTP server's refusal of
    /// one recipient at `RCPT TO` ([`Error::refuses_recipient`]); its text without the
    /// `recipient <…> refused:` the transport puts in front of it (see [`refused_message`]).
    pub(crate) fn of(recipient: &Recipient, error: &Error) -> Option<Self> {
        let Error::Smtp {
            stage: SmtpStage::Rcpt,
            code: Some(code),
            enhanced_code,
            message,
            ..
        } = error
        else {
            return None;
        };
        if !error.refuses_recipient() {
            return None;
        }
        let prefix = refused_message(recipient.mailbox.address(), "");
        let text = message.strip_prefix(&prefix).unwrap_or(message);
        Some(Self {
            recipient: recipient.clone(),
            code: *code,
            enhanced_code: enhanced_code.clone(),
            text: text.chars().take(MAX_REPLY_TEXT).collect(),
            permanent: !error.is_transient(),
            auth: error.is_auth(),
        })
    }

    /// Whether the refusal is permanent: sending to this recipient again is refused the
    /// same way (a `5xx` reply, but `552` "too many recipients", which RFC 5321
    /// §4.5.3.1.10 makes temporary at `RCPT TO`). The recipients refused permanently are
    /// exactly those of an [`Error::PartialDelivery`]'s `refused_permanently`.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// Whether the server refused this recipient for a permission or policy rather than for
    /// the address — an enhanced status code `5.7.x` (`550 5.7.1` relay denied, the sender
    /// not allowed to send to this recipient), or the mailbox not allowed to send as the
    /// `From` address: the admin must act, as [`Error::is_auth`] says of the same reply
    /// when it refuses an email's only recipient.
    #[must_use]
    pub fn is_auth(&self) -> bool {
        self.auth
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.recipient.mailbox.address(), self.code)?;
        if let Some(enhanced) = &self.enhanced_code {
            write!(f, " {enhanced}")?;
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text)?;
        }
        Ok(())
    }
}

/// The enhanced status code (RFC 3463, `class.subject.detail`: `5.1.1`, `4.7.500`) at the
/// start of a reply text, when there is one: for [`Refusal::new`] and the SMTP transport's
/// reply table alike.
pub(crate) fn enhanced_code(text: &str) -> Option<String> {
    let word = text.split_whitespace().next()?;
    let mut parts = word.split('.');
    let class = parts.next()?;
    let ok = matches!(class, "2" | "4" | "5")
        && parts
            .clone()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        && parts.count() == 2;
    ok.then(|| word.to_owned())
}

/// The message of the SMTP transport's error for a refused recipient: the server's `text`
/// after the address, so that the error says whom it refused.
pub(crate) fn refused_message(address: &str, text: &str) -> String {
    format!("recipient <{address}> refused: {text}")
}

/// The recipients of the refusals that are permanent, in order: an
/// [`Error::PartialDelivery`]'s `refused_permanently`.
pub(crate) fn permanent_recipients(refusals: &[Refusal]) -> Vec<Recipient> {
    refusals
        .iter()
        .filter(|r| r.is_permanent())
        .map(|r| r.recipient.clone())
        .collect()
}

/// The first [`LISTED`] of `refusals`, each with its reply, then how many more
/// (`a@x.org: 550 5.1.1 User unknown; …; and 7 more`); empty when there is none. What an
/// error's message and a queue's record say of many refusals, kept readable for 500.
pub(crate) fn few<'a>(mut refusals: impl Iterator<Item = &'a Refusal>) -> String {
    let mut text = refusals
        .by_ref()
        .take(LISTED)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    match refusals.count() {
        0 => {}
        more => text.push_str(&format!("; and {more} more")),
    }
    text
}

/// What a partial delivery's message says after its source: the recipients refused at
/// `RCPT TO` with each one's reply, but the source's own refusal (already said), the first
/// [`LISTED`] of them, then how many more. Empty when there is none to add.
pub(super) fn listed(refusals: &[Refusal], source: &Error) -> String {
    // The source is one of the refusals when it is a recipient's refusal: the first entry
    // with its recipient and reply — an SMTP server's, or a transport's of its own made
    // from the refusal (`Error::transport(name, refusal.to_string(), …)`).
    let skip = refusals.iter().position(|r| match source {
        Error::Transport { message, .. } => *message == r.to_string(),
        _ => Refusal::of(&r.recipient, source).as_ref() == Some(r),
    });
    let others = refusals
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(_, r)| r);
    let shown = few(others);
    if shown.is_empty() {
        return String::new();
    }
    // `RCPT TO` is SMTP's: an API of a transport of its own refuses recipients otherwise.
    let lead = match (skip, source) {
        (Some(_), _) => "also refused",
        (None, Error::Transport { .. }) => "refused",
        (None, _) => "refused at RCPT TO",
    };
    format!("; {lead}: {shown}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::tests::to;
    use crate::error::{Advice, Delivery};

    /// The SMTP transport's error for `address` refused with `code`, `enhanced` and `text`.
    fn rcpt(address: &str, code: u16, enhanced: Option<&str>, text: &str) -> Error {
        Error::Smtp {
            stage: SmtpStage::Rcpt,
            code: Some(code),
            enhanced_code: enhanced.map(str::to_owned),
            message: refused_message(address, text),
            mechanism: None,
            transient: (400..500).contains(&code) || code == 552,
            delivery: Delivery::NotSent,
            advice: Advice::default().with_auth(enhanced.is_some_and(|e| e.starts_with("5.7."))),
        }
    }

    fn refusal(address: &str, code: u16, enhanced: Option<&str>, text: &str) -> Refusal {
        Refusal::of(&to(address), &rcpt(address, code, enhanced, text)).unwrap()
    }

    #[test]
    fn a_refusal_keeps_the_reply_without_the_transports_prefix() {
        let gone = refusal("gone@x.org", 550, Some("5.1.1"), "User unknown");
        assert_eq!(gone.recipient, to("gone@x.org"));
        assert_eq!(
            (gone.code, gone.enhanced_code.as_deref()),
            (550, Some("5.1.1"))
        );
        assert_eq!(gone.text, "User unknown");
        assert!(gone.is_permanent() && !gone.is_auth());
        assert_eq!(gone.to_string(), "gone@x.org: 550 5.1.1 User unknown");

        let relay = refusal("far@y.org", 550, Some("5.7.1"), "Relaying denied");
        assert!(relay.is_permanent() && relay.is_auth());
        let full = refusal("full@x.org", 452, Some("4.2.2"), "Mailbox full");
        assert!(!full.is_permanent() && !full.is_auth());
        let many = refusal("many@x.org", 552, None, "Too many recipients");
        assert!(!many.is_permanent(), "552 at RCPT TO is temporary");
        assert_eq!(many.to_string(), "many@x.org: 552 Too many recipients");
        assert_eq!(
            refusal("a@x.org", 550, None, "").to_string(),
            "a@x.org: 550"
        );

        // Not the recipient's refusal: the session's, another stage, no reply at all.
        let required = rcpt("a@x.org", 530, Some("5.7.0"), "Authentication required");
        assert_eq!(Refusal::of(&to("a@x.org"), &required), None);
        let closing = rcpt("a@x.org", 421, None, "closing");
        assert_eq!(Refusal::of(&to("a@x.org"), &closing), None);
        assert_eq!(Refusal::of(&to("a@x.org"), &Error::Disabled), None);

        // A text the transport did not prefix (or prefixed for someone else) is kept whole,
        // within the bound.
        let mut odd = rcpt("a@x.org", 550, None, "");
        if let Error::Smtp { message, .. } = &mut odd {
            *message = "x".repeat(MAX_REPLY_TEXT + 50);
        }
        let odd = Refusal::of(&to("a@x.org"), &odd).unwrap();
        assert_eq!(odd.text.chars().count(), MAX_REPLY_TEXT);
    }

    #[test]
    fn the_message_lists_a_few_refusals_and_counts_the_rest() {
        let refusals: Vec<Refusal> = (0..6)
            .map(|i| refusal(&format!("r{i}@x.org"), 550, Some("5.1.1"), "unknown"))
            .collect();
        // The source is the third: not said twice, the three others after it, then 2 more.
        let source = rcpt("r2@x.org", 550, Some("5.1.1"), "unknown");
        assert_eq!(
            listed(&refusals, &source),
            "; also refused: r0@x.org: 550 5.1.1 unknown; r1@x.org: 550 5.1.1 unknown; \
             r3@x.org: 550 5.1.1 unknown; and 2 more"
        );
        // A source that is no refusal (a timeout after the data): every one is news.
        let timeout = Error::Smtp {
            stage: SmtpStage::Data,
            code: None,
            enhanced_code: None,
            message: "no answer".into(),
            mechanism: None,
            transient: true,
            delivery: Delivery::Uncertain,
            advice: Advice::default(),
        };
        assert_eq!(
            listed(&refusals[..1], &timeout),
            "; refused at RCPT TO: r0@x.org: 550 5.1.1 unknown"
        );
        // The listing alone, as a queue's record gives it: three, then the count.
        assert_eq!(
            few(refusals[1..].iter()),
            "r1@x.org: 550 5.1.1 unknown; r2@x.org: 550 5.1.1 unknown; \
             r3@x.org: 550 5.1.1 unknown; and 2 more"
        );
        assert_eq!(few(refusals[..1].iter()), "r0@x.org: 550 5.1.1 unknown");
        assert_eq!(few([].iter()), "");
        // The source alone: nothing to add.
        assert_eq!(listed(&refusals[2..3], &source), "");
        assert_eq!(listed(&[], &source), "");
    }

    #[test]
    fn a_permission_refused_for_good_makes_the_partial_delivery_an_auth_error() {
        // Every recipient refused; the source is the temporary refusal, as the SMTP
        // transport picks it.
        let partial = |first: Refusal| {
            let full = refusal("full@x.org", 452, Some("4.2.2"), "Mailbox full");
            Error::PartialDelivery {
                delivered: crate::transport::SendReport::default(),
                uncertain: Vec::new(),
                not_sent: vec![first.recipient.clone(), full.recipient.clone()],
                refused_permanently: vec![first.recipient.clone()],
                refusals: vec![first, full].into(),
                source: Box::new(rcpt("full@x.org", 452, Some("4.2.2"), "Mailbox full")),
            }
        };
        let relay = partial(refusal("far@y.org", 550, Some("5.7.1"), "Relaying denied"));
        assert!(
            relay.is_auth(),
            "a relay denied for good: the admin must act"
        );
        let gone = partial(refusal("gone@x.org", 550, Some("5.1.1"), "User unknown"));
        assert!(!gone.is_auth(), "an unknown mailbox is the address's fault");
        // A permission refused only for now says nothing yet.
        let later = partial(refusal("later@y.org", 451, Some("4.7.1"), "Try later"));
        assert!(!later.is_auth());
    }
}
