//! What an [`Error::PartialDelivery`] says of itself: its one-line summary and its remedies,
//! for the error as a whole and for each group of its recipients (those to resend to, those
//! whose delivery is uncertain, those refused permanently), as a queue records them.

use super::{Delivery, Error, SmtpStage};
use crate::message::Recipient;
use crate::transport::SendReport;

/// The remedy for the recipients a server refused permanently, as a group of their own.
pub(crate) const REFUSED_REMEDY: &str = "check these addresses, or the mailbox's permission to \
     send to them: the server refuses them the same way until then, so do not resend to them \
     unchanged";

/// The remedy for the recipients whose delivery is uncertain, as a group of their own.
pub(crate) const UNCERTAIN_REMEDY: &str = "verify with these recipients whether the email \
     reached them before any resend: resending may deliver it twice";

impl Error {
    /// Whether this is an SMTP server's refusal of one recipient at `RCPT TO`: a reply
    /// other than `421` (which closes the session) to that command, after which the others
    /// can still be sent to.
    pub(crate) fn refuses_recipient(&self) -> bool {
        matches!(
            self,
            Self::Smtp {
                stage: SmtpStage::Rcpt,
                code: Some(code),
                delivery: Delivery::NotSent,
                ..
            } if *code != 421
        )
    }
}

/// The start of a partial delivery's message, up to its source: how many got it, how many
/// did not (how many of those were refused permanently), how many may have.
pub(super) fn summary(
    delivered: &SendReport,
    not_sent: &[Recipient],
    refused_permanently: &[Recipient],
    uncertain: &[Recipient],
) -> String {
    let sent = delivered.recipients().count();
    let total = sent + not_sent.len() + uncertain.len();
    let refused = match refused_permanently.len() {
        0 => String::new(),
        n => format!(" ({n} refused permanently)"),
    };
    let uncertain = match uncertain.len() {
        0 => String::new(),
        n => format!(" and delivery to {n} is uncertain"),
    };
    if sent == 0 && uncertain.is_empty() {
        // Nobody got it: "0 of 3; 3 did not get it" would say it twice.
        return format!("the email was sent to none of its {total} recipients{refused}");
    }
    let sent = match sent {
        0 => "none".to_owned(),
        n => n.to_string(),
    };
    format!(
        "the email was sent to {sent} of {total} recipients; {} did not get it{refused}{uncertain}",
        not_sent.len()
    )
}

/// Whether `source` is the refusal of (one of) the recipients refused permanently: it is
/// then neither temporary nor uncertain.
fn source_is_the_refusal(refused_permanently: &[Recipient], source: &Error) -> bool {
    !refused_permanently.is_empty()
        && !source.is_transient()
        && source.delivery() == Delivery::NotSent
}

/// The remedy of a partial delivery as a whole: the source's own, the check of the
/// recipients refused permanently (when the source is not their refusal and so does not
/// say it), and to whom to resend — only when that is someone and not everyone.
pub(super) fn remedy(
    delivered: &SendReport,
    uncertain: &[Recipient],
    not_sent: &[Recipient],
    refused_permanently: &[Recipient],
    source: &Error,
) -> Option<String> {
    let refused = !refused_permanently.is_empty();
    let check = (refused && !source_is_the_refusal(refused_permanently, source)).then(|| {
        "check the addresses of the recipients refused permanently, or the mailbox's \
         permission to send to them"
            .to_owned()
    });
    let steps: Vec<String> = source.remedy().into_iter().chain(check).collect();
    if steps.is_empty() {
        return None;
    }
    let resend = not_sent.len() > refused_permanently.len();
    let only = match (
        refused,
        delivered.messages.is_empty() && uncertain.is_empty(),
    ) {
        _ if !resend => None,
        (true, _) => Some("not sent and not refused permanently"),
        // Not sent to anyone, and nobody refused for good: a resend goes to everyone.
        (false, true) => None,
        (false, false) => Some("listed as not sent"),
    };
    let mut remedy = steps.join("; ");
    if let Some(only) = only {
        remedy.push_str(&format!("; then resend only to the recipients {only}"));
    }
    Some(remedy)
}

/// The remedy for the recipients of a partial delivery to resend to (not sent, not refused
/// permanently): the source's, unless the source is the refusal of others, which they need
/// not fix.
pub(crate) fn rest_remedy(error: &Error) -> Option<String> {
    match error {
        Error::PartialDelivery {
            refused_permanently,
            source,
            ..
        } if source_is_the_refusal(refused_permanently, source) => None,
        Error::PartialDelivery { source, .. } => source.remedy(),
        _ => error.remedy(),
    }
}
