//! Tests of the remedy table: each reply gets the remedy its facts name.

use super::super::is_auth;
use super::*;

#[test]
fn a_network_error_during_auth_is_not_a_missing_mechanism() {
    let network = remedy(
        SmtpStage::Auth,
        None,
        None,
        "connection reset by peer",
        Some("LOGIN"),
    );
    assert!(
        !network
            .as_deref()
            .is_some_and(|r| r.contains("no authentication mechanism")),
        "{network:?}"
    );
    let missing = remedy(
        SmtpStage::Auth,
        None,
        None,
        "the server offers no PLAIN or LOGIN authentication (it says: …)",
        None,
    );
    assert!(missing.unwrap().contains("no authentication mechanism"));
}

/// Exchange Online's refusals for the sending mailbox's own state each say what to fix.
#[test]
fn sending_limits_name_their_fix() {
    let r = |code, enhanced, message| {
        remedy(
            SmtpStage::Data,
            Some(code),
            enhanced,
            message,
            Some("XOAUTH2"),
        )
        .unwrap()
    };
    let daily = r(
        554,
        Some("5.2.0"),
        "STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process \
         message due to a permanent exception",
    );
    assert!(daily.contains("10,000 recipients"), "{daily}");
    let full = r(
        554,
        Some("5.2.2"),
        "mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.\
         MapiExceptionShutoffQuotaExceeded",
    );
    assert!(full.contains("Sent Items"), "{full}");
    assert!(!full.contains("10,000"), "{full}");
    let paused = |enhanced, what: &str| {
        let remedy = remedy(
            SmtpStage::Mail,
            Some(550),
            Some(enhanced),
            "Sender throttled due to continuous errors",
            None,
        )
        .unwrap();
        assert!(
            remedy.contains("pauses SMTP sending"),
            "{enhanced}: {remedy}"
        );
        assert!(remedy.contains(what), "{enhanced}: {remedy}");
    };
    paused("5.2.251", "Sent Items");
    paused("5.2.253", "licence");
    paused("5.2.254", "recipient_limit");
    paused("5.2.255", "do not exist");
    // A recipient's full mailbox elsewhere is not the sender's.
    let elsewhere = remedy(
        SmtpStage::Rcpt,
        Some(552),
        Some("5.2.2"),
        "Mailbox full",
        None,
    );
    assert!(
        !elsewhere
            .as_deref()
            .is_some_and(|r| r.contains("Sent Items")),
        "{elsewhere:?}"
    );
}

/// Replies that share a code are told apart by their text, so that no admin is sent to
/// fix the wrong thing: Exchange's `5.7.139` (SMTP AUTH off, a wrong password, a policy),
/// `4.3.2` (too many connections, or the service unavailable).
#[test]
fn replies_sharing_a_code_get_the_remedy_their_text_names() {
    let r = |stage, code, enhanced, message, mechanism| {
        remedy(stage, Some(code), Some(enhanced), message, mechanism).unwrap()
    };
    let auth = |message, mechanism| r(SmtpStage::Auth, 535, "5.7.139", message, mechanism);
    let wrong = auth(
        "Authentication unsuccessful, the user credentials were incorrect. [PH0PR07CA0004]",
        Some("LOGIN"),
    );
    assert!(wrong.contains("`password`"), "{wrong}");
    assert!(!wrong.contains("Set-CASMailbox"), "{wrong}");
    let policy = auth(
        "Authentication unsuccessful, the request did not meet the criteria to be \
         authenticated successfully. Contact your administrator.",
        Some("LOGIN"),
    );
    assert!(policy.contains("Conditional Access"), "{policy}");
    assert!(!policy.contains("Set-CASMailbox"), "{policy}");
    let off = auth(
        "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox.",
        Some("XOAUTH2"),
    );
    assert!(off.contains("Set-CASMailbox"), "{off}");
    assert!(off.contains("transport = \"graph\""), "{off}");
    assert!(
        !off.contains("`auth_mode`"),
        "OAuth is already in use: {off}"
    );
    // Under XOAUTH2 no password was sent: never a password remedy.
    for message in [
        "Authentication unsuccessful, the user credentials were incorrect.",
        "Authentication unsuccessful, the request did not meet the criteria to be \
         authenticated successfully.",
        "Authentication unsuccessful",
    ] {
        let oauth = auth(message, Some("XOAUTH2"));
        assert!(!oauth.contains("`password`"), "{message}: {oauth}");
        assert!(!oauth.contains("`auth_mode`"), "{message}: {oauth}");
    }
    assert!(auth("Authentication unsuccessful", Some("XOAUTH2")).contains("SMTP.SendAsApp"));
    let unknown = auth("Authentication unsuccessful", Some("LOGIN"));
    assert!(
        unknown.contains("Set-CASMailbox") && unknown.contains("`password`"),
        "{unknown}"
    );
    let basic = r(
        SmtpStage::Auth,
        535,
        "5.7.3",
        "Authentication unsuccessful [BN9PR03CA0123]",
        Some("LOGIN"),
    );
    assert!(
        basic.contains("`password`") && basic.contains("Set-CASMailbox"),
        "{basic}"
    );

    let unavailable = r(
        SmtpStage::Connect,
        421,
        "4.3.2",
        "Service not available, closing transmission channel",
        None,
    );
    assert!(!unavailable.contains("3 per"), "{unavailable}");
    assert!(
        unavailable.contains("retried automatically"),
        "{unavailable}"
    );
    let too_many = r(
        SmtpStage::Connect,
        421,
        "4.3.2",
        "The maximum number of concurrent server connections has exceeded a limit, \
         closing transmission channel",
        None,
    );
    assert!(too_many.contains("3 per"), "{too_many}");
    // A permanent refusal that happens to say "concurrent" is not the connection limit.
    let refused = remedy(
        SmtpStage::Mail,
        Some(550),
        Some("5.7.1"),
        "concurrent sessions policy denies this sender",
        None,
    );
    assert!(
        !refused.as_deref().is_some_and(|r| r.contains("3 per")),
        "{refused:?}"
    );

    let blocked = r(
        SmtpStage::Mail,
        550,
        "5.1.8",
        "Access denied, bad outbound sender",
        None,
    );
    assert!(blocked.contains("Restricted entities"), "{blocked}");
    for (code, enhanced) in [(550, "5.5.3"), (452, "4.5.3")] {
        let too_many = r(SmtpStage::Rcpt, code, enhanced, "Too many recipients", None);
        assert!(too_many.contains("`recipient_limit`"), "{too_many}");
        assert!(!too_many.contains("check the address"), "{too_many}");
    }
}

#[test]
fn exchange_replies_map_to_their_setup_step() {
    let r = |code, enhanced, message, mechanism| {
        remedy(SmtpStage::Auth, Some(code), enhanced, message, mechanism).unwrap()
    };
    assert!(
        r(
            535,
            Some("5.7.139"),
            "SmtpClientAuthentication is disabled for the Tenant.",
            Some("LOGIN")
        )
        .contains("Set-CASMailbox")
    );
    assert!(
        r(
            550,
            Some("5.7.30"),
            "Basic authentication is not supported",
            None
        )
        .contains("`oauth`")
    );
    let token = r(
        535,
        Some("5.7.3"),
        "Authentication unsuccessful",
        Some("XOAUTH2"),
    );
    for step in [
        "SMTP.SendAsApp",
        "New-ServicePrincipal",
        "Add-MailboxPermission",
    ] {
        assert!(token.contains(step), "{token}");
    }
    assert!(r(535, Some("5.7.8"), "bad credentials", Some("LOGIN")).contains("`password`"));
    assert!(r(554, Some("5.2.252"), "SendAsDenied", None).contains("Add-RecipientPermission"));
    assert!(
        r(
            432,
            Some("4.3.2"),
            "concurrent connection limit exceeded",
            None
        )
        .contains("3")
    );
    assert!(is_auth(SmtpStage::Auth, Some(535), Some("5.7.8"), ""));
    assert!(!is_auth(
        SmtpStage::Rcpt,
        Some(550),
        Some("5.1.1"),
        "unknown user"
    ));
}
