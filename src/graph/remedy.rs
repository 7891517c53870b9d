//! What to change for a failed Graph request: the remedy and the auth verdict from Graph's
//! own error codes, and what a token's claims say of the permission a request needed.

use std::time::Duration;

use reqwest::StatusCode;

use crate::credentials::AccessToken;

use super::error::{STALLED_CODE, UPLOAD};

/// A refused token or permission, or a mailbox the app may not use.
pub(super) fn is_auth(status: Option<u16>, code: Option<&str>) -> bool {
    matches!(status, Some(401 | 403)) || mailbox_missing(status, code)
}

/// Whether Graph did not find the User Name mailbox (or found no Exchange Online mailbox
/// behind it): its codes for that, or a 404 without a code.
fn mailbox_missing(status: Option<u16>, code: Option<&str>) -> bool {
    match code {
        Some(code) => matches!(
            code,
            "ErrorInvalidUser" | "ResourceNotFound" | "MailboxNotEnabledForRESTAPI"
        ),
        None => status == Some(404),
    }
}

/// The application permission a Graph operation needs: a draft's (large attachments) also
/// `Mail.ReadWrite`.
pub(super) fn needed_permission(operation: &str) -> &'static str {
    match operation {
        "create draft" | "add attachment" | "create upload session" | "delete draft" => {
            "Mail.ReadWrite"
        }
        _ => "Mail.Send",
    }
}

/// Whether `token` carries the permission `operation` needs, as its claims say: `None` when
/// they cannot be read, or for a delegated (user) token, whose permissions are another
/// matter.
pub(super) fn permission_granted(token: &AccessToken, operation: &str) -> Option<bool> {
    let claims = token.claims()?;
    match claims.scp {
        Some(_) => None,
        None => Some(claims.has_role(needed_permission(operation))),
    }
}

/// Whether Graph refused a request for the lack of a permission in the token (not for an
/// access policy, which no new token changes).
pub(super) fn refused_for_permission(
    status: StatusCode,
    code: Option<&str>,
    message: &str,
) -> bool {
    let policy = message.contains("AccessPolicy") || message.contains("OData is disabled");
    match status {
        StatusCode::FORBIDDEN => matches!(code, None | Some("ErrorAccessDenied")) && !policy,
        StatusCode::UNAUTHORIZED => code == Some("NoPermissionsInAccessToken"),
        _ => false,
    }
}

/// What is known of the permission a refused request needed.
#[derive(Clone, Copy)]
pub(super) struct Permission<'a> {
    /// How to grant it when the app registration's steps do not apply.
    pub(super) remedy: Option<&'a str>,
    /// Whether the token carried it.
    pub(super) granted: Option<bool>,
}

/// How long a token without the permission is kept after Graph refused a request for the
/// lack of it: a token fetched before admin consent keeps its old permissions until it
/// expires (an hour or more), so an older one is replaced at the next refusal.
pub(super) const PERMISSION_STALE_AFTER: Duration = Duration::from_secs(5 * 60);

/// What to change for a Graph error: from its code first, then its status; `permission`
/// says how to grant `Mail.Send` when the app registration's steps do not apply, and
/// whether the token carried the permission.
pub(super) fn remedy(
    operation: &str,
    status: Option<u16>,
    code: Option<&str>,
    message: &str,
    permission: Permission<'_>,
) -> Option<String> {
    const CONSENT: &str = "in the app registration add the Microsoft Graph permission `Mail.Send` \
        as an Application permission (not Delegated), then click \"Grant admin consent\" (or, to \
        let the app send from this mailbox only, assign it Exchange Online's RBAC for \
        Applications role `Application Mail.Send` scoped to the mailbox instead)";
    // After consent, a token fetched before it still lacks the permission: say when the
    // transport replaces it.
    let stale = match permission.granted {
        Some(false) => {
            "; a token fetched before consent keeps its old permissions, and the \
            transport fetches a new one once Graph refuses one older than 5 minutes (a managed \
            identity's endpoint may serve its old token for a while longer)"
        }
        _ => "",
    };
    let refused = matches!(
        code,
        Some("ErrorAccessDenied" | "NoPermissionsInAccessToken" | "Authorization_RequestDenied")
    ) || (code.is_none() && status == Some(403));
    let drafts = needed_permission(operation) == "Mail.ReadWrite";
    if operation == UPLOAD
        && let Some(text) = upload_remedy(status, code)
    {
        return Some(text.to_owned());
    }
    let text = match (code, status) {
        (Some("ErrorAccessDenied"), _)
            if message.contains("AccessPolicy") || message.contains("OData is disabled") =>
        {
            "an Exchange application access policy or RBAC for Applications scope excludes the \
             User Name (`user_name`) mailbox: ask the Exchange admin to add it to the policy's \
             scope (changes can take an hour to apply)"
                .to_owned()
        }
        _ if refused
            && permission.granted == Some(true)
            && code != Some("NoPermissionsInAccessToken") =>
        {
            "the access token carries the permission, yet Graph refused the mailbox: an Exchange \
             application access policy or RBAC for Applications scope may exclude the User Name \
             (`user_name`) mailbox — ask the Exchange admin to check with \
             `Test-ApplicationAccessPolicy -Identity <user_name> -AppId <oauth_client_id>` or \
             `Test-ServicePrincipalAuthorization` (changes take up to an hour to apply)"
                .to_owned()
        }
        (Some("ErrorAccessDenied"), _) if drafts => match permission.remedy {
            Some(grant) => format!(
                "large messages are sent through a draft, which needs Microsoft Graph's \
                 `Mail.ReadWrite` in addition to `Mail.Send`: {}{stale}",
                grant.replace("Mail.Send", "Mail.ReadWrite")
            ),
            None => format!(
                "large messages are sent through a draft, which needs the Microsoft Graph \
                 `Mail.ReadWrite` Application permission in addition to `Mail.Send`: add it in \
                 the app registration and click \"Grant admin consent\"{stale}"
            ),
        },
        _ if refused => format!("{}{stale}", permission.remedy.unwrap_or(CONSENT)),
        _ if mailbox_missing(status, code) => {
            "User Name (`user_name`) is not a mailbox in this tenant, or it has \
            no Exchange Online licence: use the address (UPN) of a licensed user or shared mailbox \
            in the tenant named by `tenant_id`"
                .to_owned()
        }
        (Some("ErrorSendAsDenied"), _) => "the app may not send as the email's From address: \
            leave From unset so the User Name (`user_name`) mailbox sends it, or have the Exchange \
            admin grant Send As on that mailbox"
            .to_owned(),
        (Some("ErrorInvalidRecipients"), _) => {
            "Graph refused a recipient address: check the To, Cc and Bcc addresses".to_owned()
        }
        (Some("ErrorMessageSizeExceeded"), _) | (None, Some(413)) => {
            "the message is larger than the mailbox allows: send smaller attachments, or have \
             the Exchange admin raise the mailbox's MaxSendSize (up to 150 MB)"
                .to_owned()
        }
        (Some("InvalidInternetMessageHeader" | "InvalidInternetMessageHeaderCollection"), _) => {
            "Graph accepts at most 5 custom headers, each named `X-…`: remove the others".to_owned()
        }
        (Some("InvalidAuthenticationToken"), _) | (None, Some(401)) => {
            // After a new token was fetched (a first 401 is answered with one): not a token
            // gone stale, but one Graph does not take at all.
            const SCOPE: &str = "leave `oauth_scope` unset for Graph, or set it to the Graph \
                resource's `/.default` (https://graph.microsoft.com/.default in the global cloud; \
                https://outlook.office365.com/.default is for SMTP)";
            if message.contains("audience") {
                format!(
                    "Graph refused the access token as not meant for it (its audience): \
                     {SCOPE}, and check that `cloud` (or `authority_host` and \
                     `graph_endpoint`) name the tenant's cloud"
                )
            } else if message.contains("expired") || message.contains("not yet valid") {
                "Graph refused the access token as expired or not yet valid, though the \
                 transport fetches a new one before its expiry: this host's clock is most \
                 likely wrong; set it right (NTP)"
                    .to_owned()
            } else {
                format!(
                    "Graph refused the access token even after fetching a new one, so it is not a \
                     token Graph takes: {SCOPE}; check that `cloud` (or `authority_host` and \
                     `graph_endpoint`) name the tenant's cloud, and this host's clock; a token \
                     provider of your own must give tokens for Microsoft Graph"
                )
            }
        }
        (Some("TlsCertificateRejected"), _) => crate::http::tls_remedy("graph_endpoint"),
        (Some("RedirectNotFollowed"), _) => "Graph answered with a redirect, which is never \
            followed (it would carry the access token elsewhere): set `graph_endpoint` to the \
            Graph host itself, e.g. https://graph.microsoft.com"
            .to_owned(),
        (Some("ApplicationThrottled" | "TooManyRequests" | "MailboxConcurrency"), _)
        | (_, Some(429)) => throttled_remedy(None),
        (Some("UnexpectedResponse"), _) => "the Graph endpoint answered with something that is \
            not Graph's JSON: check `graph_endpoint` (a wrong URL, or a proxy's error page)"
            .to_owned(),
        (_, None) => "check that this host can reach the Graph endpoint (`graph_endpoint`): DNS, \
            proxy and firewall; a timeout can also mean the deadline is too short"
            .to_owned(),
        _ => return None,
    };
    Some(text)
}

/// Why a throttled request was given up: the retry policy's retries ran out, or waiting
/// as Graph asked would pass the send deadline (also when the deadline ends inside the
/// mailbox's pause).
#[derive(Clone, Copy)]
pub(super) enum GaveUp {
    /// After this many retries, the policy's `max_retries`.
    Retries(u32),
    /// The send deadline came first.
    Deadline,
}

/// The remedy of a request Graph throttled. Given why the transport gave up, it names the
/// limit that ended the retries, so that the author raises the one that matters: with the
/// default policy the 3 retries run out long before the 2-minute send deadline.
pub(super) fn throttled_remedy(gave_up: Option<GaveUp>) -> String {
    const LIMITS: &str = "Graph is throttling this mailbox (limits: 4 concurrent requests, \
        10,000 requests per 10 minutes, 30 messages per minute)";
    const LESS: &str = "send less often (the durable queue, `queue_url`, keeps to these \
        limits and retries later without a caller waiting)";
    const RETRIES: &str = "the transport builder's `retry_policy` (its `max_retries`: \
        3 by default)";
    const DEADLINE: &str = "the transport builder's `send_deadline` (2 minutes by default)";
    match gave_up {
        Some(GaveUp::Retries(retries)) => format!(
            "{LIMITS} and still was after {retries} retries: {LESS}, or allow a send more \
             retries with {RETRIES}"
        ),
        Some(GaveUp::Deadline) => format!(
            "{LIMITS} and the wait it asked for would pass the send deadline: {LESS}, or give \
             a send longer with {DEADLINE}"
        ),
        None => {
            format!("{LIMITS}: {LESS}, or let a send wait longer with {RETRIES} and {DEADLINE}")
        }
    }
}

/// What to change when the upload URL failed: its host and its session, not the app's
/// credentials or `graph_endpoint`.
fn upload_remedy(status: Option<u16>, code: Option<&str>) -> Option<&'static str> {
    Some(match (code, status) {
        (Some("TlsCertificateRejected"), _) => {
            "the upload host's TLS certificate was refused: a proxy that inspects TLS must be \
             trusted (`tls_ca_file`) or let the upload host (named above) through"
        }
        (Some("RedirectNotFollowed"), _) => {
            "the upload URL answered with a redirect, which is never followed; a proxy in the \
             way must let the upload host (named above) through. The mail was not sent: send \
             it again"
        }
        (Some(STALLED_CODE), _) | (_, Some(416)) => {
            "the upload session kept asking for bytes it had been sent, though the upload \
             resumed where the session said it stood: the mail was not sent; send it again, \
             which opens a new session. If it keeps happening, a proxy between this host and \
             the upload host (named above) may be cutting uploads short"
        }
        (_, Some(401 | 403 | 404)) => {
            "the upload session was refused: its URL carries its own authorisation (not the \
             app's token) and expires, so the app's credentials and permissions are not the \
             cause. The mail was not sent: send it again, which opens a new session; if it \
             keeps failing, raise the send deadline so that a large file uploads before its \
             session expires"
        }
        (_, None) => {
            "when the upload host (named above) could not be reached: Graph hands out upload \
             URLs on another host than `graph_endpoint` (`outlook.office.com` in the global \
             cloud), which DNS, proxy and firewall must allow too. When the send deadline \
             passed, or a timeout, raise the send deadline so that the file uploads in time"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A draft's refusal asks for `Mail.ReadWrite` in every form the grant names the
    /// permission, also a managed identity's (its app role and RBAC role).
    #[test]
    fn a_drafts_refusal_asks_for_mail_readwrite_everywhere() {
        // As a managed identity's token provider words it.
        let grant = "assign Microsoft Graph's app role `Mail.Send` (the id of Mail.Send in its \
                     appRoles), or Exchange Online's RBAC role `Application Mail.Send`";
        let text = remedy(
            "create draft",
            Some(403),
            Some("ErrorAccessDenied"),
            "Access is denied.",
            Permission {
                remedy: Some(grant),
                granted: Some(false),
            },
        )
        .unwrap();
        assert!(text.contains("`Application Mail.ReadWrite`"), "{text}");
        assert!(!text.contains("Application Mail.Send"), "{text}");
    }
}
