//! Graph failures as [`Error::Graph`], with the remedy and the auth verdict from Graph's own
//! error codes attached where the error is made.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::credentials::AccessToken;
use crate::error::{Advice, Delivery, Error};

/// The facts of one failed Graph request; [`GraphFailure::into_error`] adds the advice.
pub(super) struct GraphFailure {
    pub operation: &'static str,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<Box<str>>,
    pub client_request_id: Option<Box<str>>,
    pub transient: bool,
    pub delivery: Delivery,
    pub retry_after: Option<Duration>,
    /// How to grant `Mail.Send` when the app registration's steps do not apply (a managed
    /// identity's token provider says).
    pub permission_remedy: Option<String>,
    /// Whether the token used carries the permission the operation needs (`Mail.Send`, or
    /// `Mail.ReadWrite` for a draft), as its claims say; `None` when unknown.
    pub permission_granted: Option<bool>,
}

impl GraphFailure {
    /// A failure before any response: no status, no code, no ids.
    pub fn local(operation: &'static str, message: String, transient: bool) -> Self {
        Self {
            operation,
            status: None,
            code: None,
            message,
            request_id: None,
            client_request_id: None,
            transient,
            delivery: Delivery::NotSent,
            retry_after: None,
            permission_remedy: None,
            permission_granted: None,
        }
    }

    pub fn into_error(self) -> Error {
        let advice = Advice::remedy(remedy(
            self.operation,
            self.status,
            self.code.as_deref(),
            &self.message,
            Permission {
                remedy: self.permission_remedy.as_deref(),
                granted: self.permission_granted,
            },
        ))
        .with_auth(self.operation != UPLOAD && is_auth(self.status, self.code.as_deref()))
        .with_of_message(self.draft_permission_refused())
        .with_retry_after(self.retry_after);
        Error::Graph {
            operation: self.operation,
            status: self.status,
            code: self.code,
            message: self.message,
            request_id: self.request_id,
            client_request_id: self.client_request_id,
            transient: self.transient,
            delivery: self.delivery,
            advice,
        }
    }

    /// Whether Graph refused a draft (which only a message with large attachments uses) for
    /// the lack of `Mail.ReadWrite`: the message's own failure, as messages without large
    /// attachments still go. Any other draft failure (a wrong mailbox, a token Graph does
    /// not take, an access policy) is the mailbox's, as for `sendMail`.
    fn draft_permission_refused(&self) -> bool {
        needed_permission(self.operation) == "Mail.ReadWrite"
            && self.permission_granted != Some(true)
            && self
                .status
                .and_then(|status| StatusCode::from_u16(status).ok())
                .is_some_and(|status| {
                    refused_for_permission(status, self.code.as_deref(), &self.message)
                })
    }
}

/// A refused token or permission, or a mailbox the app may not use.
fn is_auth(status: Option<u16>, code: Option<&str>) -> bool {
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
fn needed_permission(operation: &str) -> &'static str {
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
struct Permission<'a> {
    /// How to grant it when the app registration's steps do not apply.
    remedy: Option<&'a str>,
    /// Whether the token carried it.
    granted: Option<bool>,
}

/// How long a token without the permission is kept after Graph refused a request for the
/// lack of it: a token fetched before admin consent keeps its old permissions until it
/// expires (an hour or more), so an older one is replaced at the next refusal.
pub(super) const PERMISSION_STALE_AFTER: Duration = Duration::from_secs(5 * 60);

/// What to change for a Graph error: from its code first, then its status; `permission`
/// says how to grant `Mail.Send` when the app registration's steps do not apply, and
/// whether the token carried the permission.
fn remedy(
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
        | (_, Some(429)) => "Graph is throttling this mailbox (limits: 4 concurrent requests, \
            10,000 requests per 10 minutes, 30 messages per minute): send less often, or raise \
            the send deadline so retries can wait longer"
            .to_owned(),
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

/// The operation of an upload session's byte ranges, sent to the pre-authenticated upload
/// URL Graph handed out (on `outlook.office.com` in the global cloud): not to Graph, and
/// without the app's token.
pub(super) const UPLOAD: &str = "upload attachment";

/// The code of an upload session that did not move forward however often the upload
/// resumed where it said it stood (not one of Graph's).
pub(super) const STALLED_CODE: &str = "UploadSessionStalled";

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

#[derive(Deserialize)]
pub(super) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Deserialize)]
pub(super) struct ErrorDetail {
    pub code: Option<String>,
    pub message: Option<String>,
    #[serde(alias = "innererror", alias = "innerError")]
    pub inner_error: Option<InnerError>,
}

#[derive(Deserialize)]
pub(super) struct InnerError {
    #[serde(rename = "request-id")]
    pub request_id: Option<String>,
}

/// Why an attempt failed, before deciding whether to try again.
pub(super) enum Failure {
    /// No request reached the server; trying again may work.
    NotSent(String),
    /// The request could not even be built; trying again cannot help.
    Invalid(String),
    /// The server's TLS certificate was refused; trying again cannot help.
    Tls(String),
    /// The server answered with a redirect, which is never followed.
    Redirect {
        status: StatusCode,
        from: String,
        to: String,
    },
    /// The request was written but no complete answer came back.
    Unknown(String),
    /// The server answered with an error status.
    Status {
        status: StatusCode,
        code: Option<String>,
        message: String,
        request_id: Option<String>,
        retry_after: Option<Duration>,
    },
}

pub(super) fn to_error(
    operation: &'static str,
    failure: &Failure,
    client_request_id: &str,
    delivery: Delivery,
    transient: bool,
    permission_remedy: Option<String>,
    permission_granted: Option<bool>,
) -> Error {
    let (status, code, message, request_id, retry_after) = match failure {
        Failure::NotSent(message) | Failure::Invalid(message) => {
            (None, None, message.clone(), None, None)
        }
        Failure::Tls(message) => (None, Some(TLS_CODE.to_owned()), message.clone(), None, None),
        Failure::Redirect { status, from, to } => (
            Some(status.as_u16()),
            Some(REDIRECT_CODE.to_owned()),
            format!(
                "`{from}` answered with a redirect{}; redirects are not followed{}",
                match to.is_empty() {
                    true => String::new(),
                    false => format!(" to `{to}`"),
                },
                match operation {
                    UPLOAD => "",
                    _ =>
                        ", so the access token is never sent elsewhere: set `graph_endpoint` to \
                           the Graph host itself",
                }
            ),
            None,
            None,
        ),
        Failure::Unknown(message) => (
            None,
            None,
            format!("{message}; the server may have accepted the request"),
            None,
            None,
        ),
        Failure::Status {
            status,
            code,
            message,
            request_id,
            retry_after,
        } => (
            Some(status.as_u16()),
            code.clone(),
            message.clone(),
            request_id.as_deref().map(Box::from),
            *retry_after,
        ),
    };
    let message = match delivery {
        Delivery::Uncertain => format!("{message}{UNCERTAIN}"),
        Delivery::NotSent if operation_sends(operation) => format!("{message}{NOT_SENT}"),
        Delivery::NotSent => message,
    };
    GraphFailure {
        operation,
        status,
        code,
        message,
        request_id,
        client_request_id: Some(client_request_id.into()),
        transient,
        delivery,
        retry_after,
        permission_remedy,
        permission_granted,
    }
    .into_error()
}

/// What the message of a failure that certainly sent nothing ends with.
pub(super) const NOT_SENT: &str = " — the mail was not sent";
/// What an uncertain failure's message ends with.
pub(super) const UNCERTAIN: &str = " — delivery is uncertain, do not resend blindly";

/// The code given to a refused TLS certificate (not one of Graph's: no answer came).
pub(crate) const TLS_CODE: &str = "TlsCertificateRejected";
/// The code given to a redirect (not one of Graph's).
pub(crate) const REDIRECT_CODE: &str = "RedirectNotFollowed";

fn operation_sends(operation: &str) -> bool {
    matches!(operation, "sendMail" | "send draft")
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
