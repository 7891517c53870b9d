//! Remedies for Exchange Online's own replies, whose codes are shared by causes its texts
//! tell apart: the sending mailbox's state and limits, and the ways a sign-in is refused.

use super::contains;

/// What to change when Exchange Online refuses a submission for the sending mailbox's own
/// state: its daily recipient limit used up, its mailbox full (a copy of each message sent
/// by SMTP is kept in Sent Items), or SMTP sending paused for it after the same error again
/// and again (`550 5.2.251`–`5.2.255`). Sources: Microsoft Learn, "Message storage and
/// concurrent connection throttling for SMTP Authenticated Submission" and "Continuous
/// error throttling for SMTP AUTH submissions in Exchange Online".
pub(super) fn sending_limit_remedy(enhanced: Option<&str>, message: &str) -> Option<String> {
    const PAUSED: &str = "Exchange Online pauses SMTP sending from a mailbox for a while after \
                          the same error again and again; it resumes by itself once the cause \
                          is fixed";
    const MAILBOX_FULL: &str = "the sending mailbox (User Name, `user_name`) is full, and \
         Exchange Online keeps a copy of every message sent by SMTP in its Sent Items: empty \
         Sent Items, or give the mailbox a retention policy that empties it";
    let remedy = if contains(message, "SubmissionQuotaExceeded") {
        "the sending mailbox (User Name, `user_name`) reached Exchange Online's daily limit of \
         10,000 recipients: sending resumes as the 24-hour window moves on; spread the sends \
         over several mailboxes, or send bulk mail through a service made for it"
            .to_owned()
    } else if enhanced == Some("5.2.251") {
        format!("{PAUSED}: {MAILBOX_FULL}")
    } else if contains(message, "STOREDRV.Submission")
        && (contains(message, "QuotaExceeded") || contains(message, "mailbox full"))
    {
        MAILBOX_FULL.to_owned()
    } else if enhanced == Some("5.2.253") {
        format!(
            "{PAUSED}: the sending mailbox (User Name, `user_name`) has no valid Exchange \
             Online licence; assign one in the Microsoft 365 admin center"
        )
    } else if enhanced == Some("5.2.254") {
        format!(
            "{PAUSED}: messages had more recipients than Exchange Online takes in one message; \
             set Recipient Limit (`recipient_limit`) to 500 or less, so that larger lists are \
             sent in parts"
        )
    } else if enhanced == Some("5.2.255") {
        format!(
            "{PAUSED}: many messages went to addresses that do not exist; remove the invalid \
             addresses from the lists this service sends to"
        )
    } else {
        return None;
    };
    Some(remedy)
}

/// The remedy for a user name or password the server refused.
pub(super) const PASSWORD: &str = "the server rejected the user name or password: check User Name \
     (`user_name`) and Password (`password`); an account with multi-factor authentication \
     needs OAuth (`auth_mode = \"oauth\"`)";

/// The remedy for an OAuth token the server refused (XOAUTH2): each setup step it needs.
pub(super) const XOAUTH2_REFUSED: &str = "the server did not accept the OAuth token for this \
     mailbox: in the app registration add the application permission `SMTP.SendAsApp` of \
     Office 365 Exchange Online and grant admin consent; register the app's service principal \
     in Exchange Online with `New-ServicePrincipal -AppId <oauth_client_id> -ObjectId \
     <Enterprise application object ID>`; give it the mailbox with `Add-MailboxPermission \
     -Identity <user_name> -User <service principal ID> -AccessRights FullAccess`; and check \
     that SMTP AUTH is enabled for the mailbox, and that `oauth_scope` is unset or Exchange's \
     (https://outlook.office365.com/.default)";

/// The remedy for a server that no longer takes passwords over SMTP.
pub(super) const BASIC_RETIRED: &str = "Exchange Online no longer accepts basic authentication (user name \
     and password) for SMTP: switch Authentication Mode (`auth_mode`) to `oauth` and set \
     `oauth_client_id`, `client_secret` and `tenant_id`";

/// Exchange Online's `535 5.7.139`, told apart by its text: SMTP AUTH switched off for the
/// tenant or the mailbox, the password wrong, or the sign-in refused by a policy.
pub(super) fn auth_refused(message: &str, xoauth2: bool) -> String {
    let other_way = match xoauth2 {
        true => "or send through Microsoft Graph instead (`transport = \"graph\"`)",
        false => {
            "or switch Authentication Mode (`auth_mode`) to `oauth` with \
                  `transport = \"graph\"`"
        }
    };
    let disabled = format!(
        "SMTP AUTH is disabled for the tenant or the mailbox (the default for tenants created \
         after January 2020 and with security defaults): enable it for the mailbox in Exchange \
         Online PowerShell with `Set-CASMailbox -Identity <user_name> \
         -SmtpClientAuthenticationDisabled $false` (or for the organisation with \
         `Set-TransportConfig -SmtpClientAuthenticationDisabled $false`), {other_way}"
    );
    if contains(message, "SmtpClientAuthentication") {
        disabled
    } else if xoauth2 && contains(message, "did not meet the criteria") {
        "the app's sign-in was refused by a policy: a Conditional Access policy for workload \
         identities, or the service principal's sign-in is blocked. See the service principal's \
         sign-ins in Entra ID (Monitoring → Sign-in logs → Service principal sign-ins)"
            .to_owned()
    } else if xoauth2 {
        // No password in the session: the token's setup (SMTP AUTH switched off included).
        XOAUTH2_REFUSED.to_owned()
    } else if contains(message, "credentials were incorrect") {
        PASSWORD.to_owned()
    } else if contains(message, "did not meet the criteria") {
        "the sign-in was refused by a policy, not for the password: security defaults or a \
         Conditional Access policy (multi-factor authentication, a location or device rule), or \
         the account's sign-in is blocked or locked. See the mailbox's sign-ins in Entra ID \
         (Monitoring → Sign-in logs); a mailbox that must use multi-factor authentication needs \
         OAuth (`auth_mode = \"oauth\"`)"
            .to_owned()
    } else if contains(message, "basic authentication") {
        BASIC_RETIRED.to_owned()
    } else {
        format!(
            "{disabled}; if SMTP AUTH is enabled, check User Name (`user_name`) and Password \
             (`password`), and the mailbox's sign-ins in Entra ID, where a policy may refuse them"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exchange Online words a full sending mailbox more than one way; each gets the Sent
    /// Items remedy, and a full mailbox that is not the submission's gets none.
    #[test]
    fn a_full_sending_mailbox_is_recognised_by_either_wording() {
        for message in [
            "STOREDRV.Submission.Exception:SendQuotaExceededException.\
             MapiExceptionSendQuotaExceeded; Failed to process message",
            "mailbox full; STOREDRV.Submission.Exception: cannot save the sent copy",
            "mailbox full; STOREDRV.Submission.Exception:QuotaExceededException",
        ] {
            let remedy = sending_limit_remedy(Some("5.2.2"), message);
            let remedy = remedy.unwrap_or_else(|| panic!("no remedy for {message}"));
            assert!(remedy.contains("Sent Items"), "{message}: {remedy}");
        }
        for message in [
            "Mailbox full",
            "QuotaExceeded",
            "STOREDRV.Submission failed",
        ] {
            assert_eq!(
                sending_limit_remedy(Some("5.2.2"), message),
                None,
                "{message}"
            );
        }
    }
}
