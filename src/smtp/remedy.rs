//! SMTP replies mapped to the admin's next step, and lettre errors mapped to [`Error::Smtp`].
//!
//! Exchange Online's replies carry an enhanced status code (`5.7.139`, `5.7.30`, …) that says
//! far more than the three-digit reply code; the table below keys on it first, then on the
//! reply code and the SASL mechanism.

use super::redact::redact;
use super::tls_mode::{IMPLICIT_TLS_PORT, NO_TLS_MODE, PLAIN_SMTP_PORT, rustls_error};
use crate::error::{Advice, Delivery, Error, MAX_REPLY_TEXT, SmtpStage};

/// Converts a lettre SMTP error into [`Error::Smtp`].
///
/// lettre's errors keep only the server's reply text, never the lines we sent. A server may
/// still echo them (the AUTH line with its base64 credentials): for AUTH use
/// [`from_lettre_redacted`].
pub(crate) fn from_lettre(
    stage: SmtpStage,
    mechanism: Option<&str>,
    error: &lettre::transport::smtp::Error,
    delivery: Delivery,
) -> Error {
    from_lettre_redacted(stage, mechanism, error, delivery, &[])
}

/// [`from_lettre`], with every trace of `secrets` (the password or token, and the SASL
/// blobs sent on the wire) removed from the server's reply text, raw or base64-encoded.
pub(crate) fn from_lettre_redacted(
    stage: SmtpStage,
    mechanism: Option<&str>,
    error: &lettre::transport::smtp::Error,
    delivery: Delivery,
    secrets: &[&[u8]],
) -> Error {
    let code = error.status().map(u16::from);
    if let Some(failure) = local_failure(error) {
        return with_advice(Error::Smtp {
            stage: failure.stage.unwrap_or(stage),
            code: None,
            enhanced_code: None,
            message: failure.message,
            mechanism: mechanism.map(str::to_owned),
            transient: false,
            delivery,
            advice: Advice::default(),
        });
    }
    // lettre's Display is "permanent error (535): <server text>"; the source is the text.
    let text = std::error::Error::source(error)
        .map_or_else(|| error.to_string(), |source| source.to_string());
    let text = redact(&text, secrets);
    let mut text: String = text.trim().chars().take(MAX_REPLY_TEXT).collect();
    let enhanced_code = enhanced_code(&text);
    if let Some(enhanced) = &enhanced_code {
        text = text.trim_start_matches(enhanced.as_str()).trim().to_owned();
    }
    // A reply says itself whether it is transient (4xx; see `reply_is_transient`). Without a reply it is the network
    // (transient) unless lettre itself refused, e.g. no common AUTH mechanism, or TLS failed
    // (an unverifiable certificate does not fix itself), or the reply could not be read (a
    // line too long, not SMTP): permanent. A connection closed mid-reply is the network.
    let transient = match code {
        // RFC 4954's "password transition needed" is a 4xx no retry fixes: logging in
        // again and again only risks locking the account.
        Some(_) if enhanced_code.as_deref() == Some(PASSWORD_TRANSITION) => false,
        Some(code) => reply_is_transient(stage, code),
        None if error.is_response() => text == "incomplete response",
        // The server refused an XOAUTH2 token with an error challenge: the token is dropped,
        // and the next try logs in with a fresh one.
        None if is_token_challenge(&text) => true,
        None => !error.is_client() && !error.is_tls(),
    };
    let stage = if error.is_tls() && code.is_none() {
        SmtpStage::Tls
    } else {
        stage
    };
    with_advice(Error::Smtp {
        stage,
        code,
        enhanced_code,
        message: text,
        mechanism: mechanism.map(str::to_owned),
        transient,
        delivery,
        advice: Advice::default(),
    })
}

/// RFC 4954's enhanced code for "a password transition is needed" (with `432`).
const PASSWORD_TRANSITION: &str = "4.7.12";

/// What lettre says when a server answers XOAUTH2 with a challenge, which is how RFC 7628
/// servers (Gmail, for one) refuse a token before they send `535`.
const TOKEN_CHALLENGE: &str = "does not expect a challenge";

/// Whether an SMTP error's text is lettre's, for a token refused with a challenge.
pub(crate) fn is_token_challenge(message: &str) -> bool {
    message.contains(TOKEN_CHALLENGE)
}

/// Whether a server's reply `code` at `stage` is temporary: a 4xx, and a `552` to
/// `RCPT TO` — "too many recipients", which RFC 5321 (§4.5.3.1.10) asks clients to treat
/// as temporary: the recipients refused so can be sent to in a later transaction.
fn reply_is_transient(stage: SmtpStage, code: u16) -> bool {
    (400..500).contains(&code) || (code == 552 && stage == SmtpStage::Rcpt)
}

/// Attaches this module's remedy and auth verdict to an [`Error::Smtp`] made from its facts;
/// every SMTP error goes through here once.
pub(crate) fn with_advice(mut error: Error) -> Error {
    if let Error::Smtp {
        stage,
        code,
        enhanced_code,
        message,
        mechanism,
        advice,
        ..
    } = &mut error
    {
        *advice = Advice::remedy(remedy(
            *stage,
            *code,
            enhanced_code.as_deref(),
            message,
            mechanism.as_deref(),
        ))
        .with_auth(is_auth(*stage, *code, enhanced_code.as_deref(), message))
        .with_settings(is_tls_mismatch(*code, message));
    }
    error
}

/// A failure on our side of the connection that no retry can fix.
struct LocalFailure {
    /// The stage it belongs to, when it is not the one at hand.
    stage: Option<SmtpStage>,
    message: String,
}

/// The guard's refusal (a STARTTLS injection, an endless reply) or a refused certificate,
/// found in the error's sources, as a permanent failure with a message that says which.
fn local_failure(error: &lettre::transport::smtp::Error) -> Option<LocalFailure> {
    use rustls::CertificateError as Cert;

    if let Some(violation) = super::stream::violation(error) {
        return Some(LocalFailure {
            stage: (violation == super::stream::Violation::StarttlsInjection)
                .then_some(SmtpStage::Tls),
            message: violation.to_string(),
        });
    }
    rustls_error(error).map(|tls| {
        let what = match tls {
            rustls::Error::InvalidCertificate(
                Cert::NotValidForName | Cert::NotValidForNameContext { .. },
            ) => CERT_NAME,
            rustls::Error::InvalidCertificate(
                Cert::Expired
                | Cert::ExpiredContext { .. }
                | Cert::NotValidYet
                | Cert::NotValidYetContext { .. },
            ) => CERT_TIME,
            rustls::Error::InvalidCertificate(
                Cert::UnknownIssuer | Cert::BadSignature | Cert::BadEncoding,
            ) => CERT_ISSUER,
            rustls::Error::InvalidCertificate(_) => "the server's certificate was refused",
            _ => "the TLS handshake failed",
        };
        LocalFailure {
            stage: Some(SmtpStage::Tls),
            message: format!("{what}: {tls}"),
        }
    })
}

const CERT_NAME: &str = "the server's certificate is not valid for this host name";
const CERT_TIME: &str = "the server's certificate is expired or not yet valid";
const CERT_ISSUER: &str = "the server's certificate is not signed by a trusted CA";

/// A failure that is not a server reply (a timeout, a missing capability).
pub(crate) fn client_error(
    stage: SmtpStage,
    message: impl Into<String>,
    transient: bool,
    delivery: Delivery,
) -> Error {
    with_advice(Error::Smtp {
        stage,
        code: None,
        enhanced_code: None,
        message: message.into(),
        mechanism: None,
        transient,
        delivery,
        advice: Advice::default(),
    })
}

/// The enhanced status code (RFC 3463, `class.subject.detail`) at the start of a reply text.
fn enhanced_code(text: &str) -> Option<String> {
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

fn contains(message: &str, needle: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// What to do when no XOAUTH2 token came in time.
pub(crate) const TOKEN_TIMEOUT_REMEDY: &str = "check that this machine reaches the login host \
     (`authority_host`, by default the cloud's, e.g. login.microsoftonline.com) over HTTPS: \
     DNS, proxy and firewall rules; the SMTP server (`smtp_host`) was not the one that did \
     not answer";

/// Whether an SMTP failure is a TLS mode that does not match the port: only `smtp_tls` (or
/// `smtp_port`) can fix it.
fn is_tls_mismatch(code: Option<u16>, message: &str) -> bool {
    code.is_none() && (contains(message, PLAIN_SMTP_PORT) || contains(message, IMPLICIT_TLS_PORT))
}

/// Whether an SMTP failure is about credentials or permissions.
fn is_auth(stage: SmtpStage, code: Option<u16>, enhanced: Option<&str>, message: &str) -> bool {
    let permanent = code.is_some_and(|c| c >= 500);
    (stage == SmtpStage::Auth && permanent)
        || code == Some(530)
        || enhanced.is_some_and(|e| e.starts_with("5.7.") || e == "5.2.252")
        || contains(message, "SendAsDenied")
}

/// What the admin should change, for an SMTP failure.
fn remedy(
    stage: SmtpStage,
    code: Option<u16>,
    enhanced: Option<&str>,
    message: &str,
    mechanism: Option<&str>,
) -> Option<String> {
    let xoauth2 = mechanism.is_some_and(|m| m.eq_ignore_ascii_case("XOAUTH2"));
    let remedy = if enhanced == Some("5.7.139") || contains(message, "SmtpClientAuthentication") {
        "SMTP AUTH is disabled for the tenant or the mailbox (the default for tenants created \
         after January 2020 and with security defaults): enable it for the mailbox in Exchange \
         Online PowerShell with `Set-CASMailbox -Identity <user_name> \
         -SmtpClientAuthenticationDisabled $false` (or for the organisation with \
         `Set-TransportConfig -SmtpClientAuthenticationDisabled $false`), or switch \
         Authentication Mode (`auth_mode`) to `oauth` with `transport = \"graph\"`"
            .to_owned()
    } else if enhanced == Some("5.7.30")
        || contains(message, "Basic authentication is not supported")
    {
        "Exchange Online no longer accepts basic authentication (user name and password) for \
         SMTP: switch Authentication Mode (`auth_mode`) to `oauth` and set `oauth_client_id`, \
         `client_secret` and `tenant_id`"
            .to_owned()
    } else if enhanced == Some("5.2.252")
        || contains(message, "SendAsDenied")
        || contains(message, "not allowed to send as")
    {
        "the mailbox in User Name (`user_name`) may not send as the email's From address: send \
         from `user_name` itself, or grant it Send As on the other address with \
         `Add-RecipientPermission -Identity <from address> -Trustee <user_name> -AccessRights \
         SendAs`"
            .to_owned()
    } else if (code == Some(535) || (code.is_none() && is_token_challenge(message))) && xoauth2 {
        "the server did not accept the OAuth token for this mailbox: in the app registration \
         add the application permission `SMTP.SendAsApp` of Office 365 Exchange Online and grant \
         admin consent; register the app's service principal in Exchange Online with \
         `New-ServicePrincipal -AppId <oauth_client_id> -ObjectId <Enterprise application \
         object ID>`; give it the mailbox with `Add-MailboxPermission -Identity <user_name> \
         -User <service principal ID> -AccessRights FullAccess`; and check that SMTP AUTH is \
         enabled for the mailbox"
            .to_owned()
    } else if code == Some(535) || (stage == SmtpStage::Auth && enhanced == Some("5.7.8")) {
        "the server rejected the user name or password: check User Name (`user_name`) and \
         Password (`password`); an account with multi-factor authentication needs OAuth \
         (`auth_mode = \"oauth\"`)"
            .to_owned()
    } else if enhanced == Some(PASSWORD_TRANSITION) {
        "the server wants this account's password changed before it accepts it (a password \
         transition, `4.7.12`): change the mailbox's password, then update Password \
         (`password`); trying again does not help"
            .to_owned()
    } else if code == Some(432)
        || enhanced == Some("4.3.2")
        || contains(message, "concurrent connection limit")
        || contains(message, "thread limit exceeded")
    {
        "the mailbox has too many simultaneous SMTP connections (Exchange Online allows 3 per \
         mailbox): share one transport per mailbox and keep its connection limit at 3 or \
         below; the send is retried automatically"
            .to_owned()
    } else if code == Some(530) && contains(message, "STARTTLS") {
        "the server accepts mail only over TLS: set Use SSL (`use_ssl = true`) or \
         `smtp_tls = \"starttls\"` (`smtp_tls = \"none\"` is for a server on this machine only)"
            .to_owned()
    } else if code == Some(530) {
        "the server requires authentication: set Authentication Mode (`auth_mode`) to `basic` \
         or `oauth`"
            .to_owned()
    } else if code == Some(534) || code == Some(538) {
        "the server wants a stronger mechanism or an encrypted connection: set Use SSL \
         (`use_ssl = true`) or `smtp_tls = \"starttls\"`"
            .to_owned()
    } else if code.is_none() && contains(message, PLAIN_SMTP_PORT) {
        "this port speaks SMTP in plain text first and offers TLS by STARTTLS (usually port 587, \
         or 25), not implicit TLS: set `smtp_tls = \"starttls\"` (or Use SSL, `use_ssl = true`, \
         with `smtp_port = 587`), or set `smtp_port` to the server's implicit-TLS port \
         (usually 465)"
            .to_owned()
    } else if code.is_none() && contains(message, IMPLICIT_TLS_PORT) {
        // The other way out depends on the mode in use: keep STARTTLS, or leave plain text.
        let other_port = if contains(message, NO_TLS_MODE) {
            "set `smtp_port` to the server's plain SMTP port (usually 587 or 25) and set \
             `smtp_tls = \"starttls\"` there (`smtp_tls = \"none\"` only for a server on this \
             machine)"
        } else {
            "set `smtp_port` to the server's STARTTLS port (usually 587) and keep \
             `smtp_tls = \"starttls\"`"
        };
        format!(
            "this port expects TLS from the first byte (implicit TLS, usually port 465): set \
             `smtp_tls = \"implicit\"` (or Use SSL, `use_ssl = true`, with `smtp_port = 465`), \
             or {other_port}"
        )
    } else if code.is_none()
        && matches!(stage, SmtpStage::Connect | SmtpStage::Tls | SmtpStage::Auth)
        && contains(message, "no answer from")
    {
        "the server accepted the connection but did not answer: check that the port \
         (`smtp_port`) matches the TLS mode — 587 (or 25) with STARTTLS, 465 with implicit TLS \
         (`use_ssl`, `smtp_tls`); a plaintext or STARTTLS client on an implicit-TLS port waits \
         for a greeting that never comes — and that no firewall or proxy holds the connection"
            .to_owned()
    } else if code.is_none() && contains(message, "the login host") {
        TOKEN_TIMEOUT_REMEDY.to_owned()
    } else if code.is_none() && (contains(message, "too long") || contains(message, "too large")) {
        "the server sent a reply far longer than SMTP allows: check that SMTP host \
         (`smtp_host`) and port (`smtp_port`) point to an SMTP server, and report the reply \
         to its administrator"
            .to_owned()
    } else if stage == SmtpStage::Auth
        && code.is_none()
        && (contains(message, "offers no") || contains(message, "mechanism"))
    {
        format!(
            "the server offers no authentication mechanism this connector can use ({message}): \
             check Authentication Mode (`auth_mode`); Exchange Online offers AUTH only after \
             STARTTLS, so keep Use SSL (`use_ssl`) on"
        )
    } else if stage == SmtpStage::Rcpt && code.is_some_and(|c| c >= 500) {
        "the server refused the recipient: check the address, or the mailbox's permission to \
         send to it"
            .to_owned()
    } else if stage == SmtpStage::Tls && contains(message, CERT_NAME) {
        "set SMTP host (`smtp_host`) to the name the server's certificate is issued for (not \
         an IP address or an alias), or have the server's certificate reissued for that name"
            .to_owned()
    } else if stage == SmtpStage::Tls && contains(message, CERT_TIME) {
        "check this machine's clock (date, time and time zone); if it is right, the server's \
         certificate has expired and its administrator must renew it"
            .to_owned()
    } else if stage == SmtpStage::Tls && contains(message, CERT_ISSUER) {
        "add the CA that issued the server's certificate (a private or self-signed one) to \
         Trusted CA file (`tls_ca_file`), as PEM; check that SMTP host (`smtp_host`) is the \
         server you mean"
            .to_owned()
    } else if stage == SmtpStage::Tls && contains(message, "after its reply to STARTTLS") {
        "the connection was tampered with, or the server is broken: it sent data in plain \
         text after agreeing to STARTTLS. Check the network path (proxies, antivirus or \
         firewalls that inspect SMTP) and the server; do not switch TLS off"
            .to_owned()
    } else if stage == SmtpStage::Tls {
        "TLS failed: check that SMTP host (`smtp_host`) is the name in the server's \
         certificate, add a private CA to `tls_ca_file`, and match the port to the TLS mode \
         (587 STARTTLS, 465 implicit TLS; `use_ssl`, `smtp_tls`, `smtp_port`)"
            .to_owned()
    } else if stage == SmtpStage::Connect && code.is_none() {
        "cannot reach the SMTP server: check SMTP host (`smtp_host`) and port (`smtp_port`), \
         and that outbound connections to that port are allowed"
            .to_owned()
    } else if code.is_some_and(|c| reply_is_transient(stage, c)) {
        return None;
    } else if code == Some(552) || enhanced == Some("5.3.4") {
        "the message is too large for the server: send smaller attachments".to_owned()
    } else {
        return None;
    };
    Some(remedy)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn enhanced_codes_are_recognised() {
        assert_eq!(
            enhanced_code("5.7.139 Authentication unsuccessful").as_deref(),
            Some("5.7.139")
        );
        assert_eq!(enhanced_code("4.3.2 limit").as_deref(), Some("4.3.2"));
        assert_eq!(enhanced_code("Authentication unsuccessful"), None);
        assert_eq!(enhanced_code("5.7 x"), None);
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
}
