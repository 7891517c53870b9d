//! What an [`Error::PartialDelivery`] says of itself: its one-line summary and its remedies,
//! for the error as a whole and for each group of its recipients (those to resend to, those
//! whose delivery is uncertain, those refused permanently), as a queue records them.

use super::{Delivery, Error, SmtpStage};
use crate::message::Recipient;
use crate::transport::SendReport;

/// The remedy for the recipients a server refused permanently, as a group of their own.
#[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
pub(crate) const REFUSED_REMEDY: &str = "check these addresses, or the mailbox's permission to \
     send to them: the server refuses them the same way until then, so do not resend to them \
     unchanged";

/// The remedy for the recipients whose delivery is uncertain, as a group of their own.
#[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
pub(crate) const UNCERTAIN_REMEDY: &str = "verify with these recipients whether the email \
     reached them before any resend: resending may deliver it twice";

impl Error {
    /// Whether the failure is this message's own rather than its sender mailbox's, as the
    /// transport that made it says: an SMTP server's refusal after the data (its content),
    /// or a permission only some messages need (Graph's `Mail.ReadWrite`, for large
    /// attachments). The mailbox's other messages may still go.
    #[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
    pub(crate) fn concerns_message_only(&self) -> bool {
        match self {
            Self::Smtp { advice, .. }
            | Self::Graph { advice, .. }
            | Self::Transport { advice, .. } => advice.is_of_message(),
            _ => false,
        }
    }

    /// Whether this is an SMTP server's refusal of one recipient at `RCPT TO`, after which
    /// the others can still be sent to: a reply to that command other than `421` (which
    /// closes the session) and other than "authentication required" (`530`, or Exchange's
    /// `5.7.57` "client not authenticated"), which refuses the session's every recipient
    /// alike and is fixed by its settings, not by checking addresses. Other `5.7.x` replies
    /// there (a relay denied to one domain, say) stay the refusal of that recipient.
    pub(crate) fn refuses_recipient(&self) -> bool {
        matches!(
            self,
            Self::Smtp {
                stage: SmtpStage::Rcpt,
                code: Some(code),
                enhanced_code,
                delivery: Delivery::NotSent,
                ..
            } if *code != 421 && *code != 530 && enhanced_code.as_deref() != Some("5.7.57")
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
/// then neither temporary nor uncertain, and an SMTP source is a reply to `RCPT TO` that
/// refuses a recipient — not a later part of a split refused for the sender or the message
/// (a used-up daily limit, a blocked mailbox), whose fix the recipients not sent need.
pub(crate) fn source_is_the_refusal(refused_permanently: &[Recipient], source: &Error) -> bool {
    !refused_permanently.is_empty()
        && !source.is_transient()
        && source.delivery() == Delivery::NotSent
        && (!matches!(source, Error::Smtp { .. }) || source.refuses_recipient())
}

/// The remedy of a partial delivery as a whole: the source's own, the check of the
/// recipients refused permanently (unless the source is their refusal and says it), and to
/// whom to resend — only when that is someone and not everyone.
pub(super) fn remedy(
    delivered: &SendReport,
    uncertain: &[Recipient],
    not_sent: &[Recipient],
    refused_permanently: &[Recipient],
    source: &Error,
) -> Option<String> {
    let refused = !refused_permanently.is_empty();
    let own = source.remedy();
    // A refusal that brings no remedy of its own (a transport outside this crate made it
    // from an API's answer) still gets the check.
    let said = source_is_the_refusal(refused_permanently, source) && own.is_some();
    let check = (refused && !said).then(|| {
        "check the addresses of the recipients refused permanently, or the mailbox's \
         permission to send to them"
            .to_owned()
    });
    let steps: Vec<String> = own.into_iter().chain(check).collect();
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
    if steps.is_empty() {
        // Nothing to fix (a server busy for now, say): still say to whom to resend, and that
        // the uncertain ones may have it — never "resend" to everyone.
        let mut advice: Vec<String> = only
            .map(|only| format!("resend only to the recipients {only}"))
            .into_iter()
            .collect();
        if !uncertain.is_empty() {
            advice.push(
                "the recipients listed as uncertain may have it: check with them before \
                 resending to them"
                    .to_owned(),
            );
        }
        return (!advice.is_empty()).then(|| advice.join("; "));
    }
    let mut remedy = steps.join("; ");
    if let Some(only) = only {
        remedy.push_str(&format!("; then resend only to the recipients {only}"));
    }
    Some(remedy)
}

/// The remedy for the recipients of a partial delivery to resend to (not sent, not refused
/// permanently): the source's, unless the source is the refusal of others, which they need
/// not fix.
#[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Advice;
    use crate::error::tests::to;
    use crate::transport::SentMessage;

    fn smtp(code: u16, delivery: Delivery, remedy: &str) -> Error {
        Error::Smtp {
            stage: SmtpStage::Rcpt,
            code: Some(code),
            enhanced_code: None,
            message: "refused".into(),
            mechanism: None,
            transient: code < 500,
            delivery,
            advice: Advice::remedy(Some(remedy.into())),
        }
    }

    fn partial(
        sent: &[&str],
        uncertain: &[&str],
        not_sent: &[&str],
        refused: &[&str],
        source: Error,
    ) -> Error {
        let list = |a: &[&str]| a.iter().map(|a| to(a)).collect::<Vec<_>>();
        let delivered = match sent {
            [] => SendReport::default(),
            _ => SendReport::single(SentMessage::new(list(sent), None)),
        };
        Error::PartialDelivery {
            delivered,
            uncertain: list(uncertain),
            not_sent: list(not_sent),
            refused_permanently: list(refused),
            refusals: Box::default(),
            source: Box::new(source),
        }
    }

    #[test]
    fn the_remedy_resends_only_to_someone_and_checks_refusals_the_source_does_not_name() {
        let refusal = smtp(550, Delivery::NotSent, "check the address");
        // Only permanent refusals: nobody to resend to.
        let error = partial(&["a@x.org"], &[], &["g@x.org"], &["g@x.org"], refusal);
        assert_eq!(error.remedy().as_deref(), Some("check the address"));

        // A temporary source beside a refusal: the check, then the resend to the rest.
        let busy = smtp(450, Delivery::NotSent, "wait");
        let error = partial(&[], &[], &["g@x.org", "b@x.org"], &["g@x.org"], busy);
        let remedy = error.remedy().unwrap();
        assert!(
            remedy.starts_with("wait; check the addresses of the recipients refused"),
            "{remedy}"
        );
        assert!(
            remedy.ends_with("not sent and not refused permanently"),
            "{remedy}"
        );
        assert_eq!(
            error.to_string(),
            "the email was sent to none of its 2 recipients (1 refused permanently): SMTP rcpt \
             failed: 450 refused"
        );

        // An uncertain source beside a refusal: the refusal still gets its check.
        let timeout = smtp(451, Delivery::Uncertain, "see the log");
        let error = partial(&[], &["a@x.org"], &["g@x.org"], &["g@x.org"], timeout);
        let remedy = error.remedy().unwrap();
        assert!(remedy.contains("check the addresses"), "{remedy}");
        assert!(!remedy.contains("resend only"), "{remedy}");
        assert!(
            error.to_string().starts_with(
                "the email was sent to none of 2 recipients; 1 did not get it (1 refused \
                 permanently) and delivery to 1 is uncertain"
            ),
            "{error}"
        );

        // Nothing delivered or refused for good: a resend goes to everyone, no "only".
        let error = partial(
            &[],
            &[],
            &["b@x.org", "c@x.org"],
            &[],
            smtp(450, Delivery::NotSent, "wait"),
        );
        assert_eq!(error.remedy().as_deref(), Some("wait"));
    }

    /// A split whose first part had a recipient refused for good and whose next part was
    /// refused for the sender (Exchange's daily limit, at the data): the rest need the
    /// sender's fix, and the refused one still its check.
    #[test]
    fn a_later_part_refused_for_the_sender_keeps_its_remedy_beside_a_refusal() {
        let quota = Error::Smtp {
            stage: SmtpStage::Data,
            code: Some(554),
            enhanced_code: Some("5.2.0".into()),
            message: "SubmissionQuotaExceededException".into(),
            mechanism: None,
            transient: false,
            delivery: Delivery::NotSent,
            advice: Advice::remedy(Some("wait for the daily limit".into())),
        };
        let error = partial(
            &["a@x.org"],
            &[],
            &["g@x.org", "c@x.org"],
            &["g@x.org"],
            quota,
        );
        let remedy = error.remedy().unwrap();
        assert!(remedy.starts_with("wait for the daily limit"), "{remedy}");
        assert!(remedy.contains("check the addresses"), "{remedy}");
        #[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
        assert_eq!(
            rest_remedy(&error).as_deref(),
            Some("wait for the daily limit")
        );
    }

    #[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
    #[test]
    fn the_rest_is_not_told_to_fix_the_refusal_of_others() {
        let refusal = smtp(550, Delivery::NotSent, "check the address");
        let error = partial(
            &["a@x.org"],
            &[],
            &["g@x.org", "c@x.org"],
            &["g@x.org"],
            refusal,
        );
        assert_eq!(rest_remedy(&error), None);
        let busy = smtp(450, Delivery::NotSent, "wait");
        let error = partial(&[], &[], &["g@x.org", "b@x.org"], &["g@x.org"], busy);
        assert_eq!(rest_remedy(&error).as_deref(), Some("wait"));
    }
}
