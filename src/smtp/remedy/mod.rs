//! SMTP replies mapped to the admin's next step, and lettre errors mapped to [`Error::Smtp`].
//!
//! Exchange Online's replies carry an enhanced status code (`5.7.139`, `5.7.30`, …) that says
//! far more than the three-digit reply code; the table ([`table`]) keys on it first, then on the
//! reply code and the SASL mechanism.

mod exchange;
mod table;
mod token;

use table::remedy;
pub(crate) use token::RefusedToken;

use super::redact::redact;
use super::tls_mode::{IMPLICIT_TLS_PORT, PLAIN_SMTP_PORT, rustls_error};
use crate::error::{Advice, Delivery, Error, MAX_REPLY_TEXT, SmtpStage, enhanced_code};

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
        // and the next try logs in with a fresh one. lettre says the same of a challenge to
        // PLAIN, where there is no token to replace: that server will challenge again.
        None if is_xoauth2(mechanism) && is_token_challenge(&text) => true,
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

/// Whether the SASL mechanism is XOAUTH2.
pub(crate) fn is_xoauth2(mechanism: Option<&str>) -> bool {
    mechanism.is_some_and(|m| m.eq_ignore_ascii_case("XOAUTH2"))
}

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
        .with_settings(
            is_tls_mismatch(*code, message)
                || is_login_challenge(*stage, *code, message, mechanism.as_deref()),
        )
        .with_of_message(is_of_message(*stage, enhanced_code.as_deref(), message));
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

fn contains(message: &str, needle: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// Whether an SMTP failure is a TLS mode that does not match the port: only `smtp_tls` (or
/// `smtp_port`) can fix it.
fn is_tls_mismatch(code: Option<u16>, message: &str) -> bool {
    code.is_none() && (contains(message, PLAIN_SMTP_PORT) || contains(message, IMPLICIT_TLS_PORT))
}

/// Whether an SMTP failure is a basic-auth login the server answered with a challenge the
/// client cannot answer (lettre's words for a `334` to PLAIN, or a LOGIN prompt for neither
/// user name nor password): that server will ask the same next time, so only the settings
/// (`smtp_host`, `smtp_port`, `auth_mode`) can fix it. XOAUTH2's challenge is a refused
/// token instead (see `is_token_challenge`).
pub(super) fn is_login_challenge(
    stage: SmtpStage,
    code: Option<u16>,
    message: &str,
    mechanism: Option<&str>,
) -> bool {
    stage == SmtpStage::Auth
        && code.is_none()
        && contains(message, "challenge")
        && !is_xoauth2(mechanism)
}

/// Whether an SMTP failure is the message's own: a refusal after its data (a `5.7.x` there
/// is mostly about the content), but for the mailbox not being allowed to send as the
/// message's From, which every message from that address meets alike.
fn is_of_message(stage: SmtpStage, enhanced: Option<&str>, message: &str) -> bool {
    stage == SmtpStage::Data && enhanced != Some("5.2.252") && !contains(message, "SendAsDenied")
}

/// Whether an SMTP failure is about credentials or permissions.
fn is_auth(stage: SmtpStage, code: Option<u16>, enhanced: Option<&str>, message: &str) -> bool {
    let permanent = code.is_some_and(|c| c >= 500);
    (stage == SmtpStage::Auth && permanent)
        || code == Some(530)
        || enhanced.is_some_and(|e| e.starts_with("5.7.") || e == "5.2.252")
        || contains(message, "SendAsDenied")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_after_the_data_is_the_message_s_but_send_as() {
        let spam = "5.7.1 Message rejected as spam by Content Filtering";
        assert!(is_of_message(SmtpStage::Data, Some("5.7.1"), spam));
        let send_as = "5.2.252 SendAsDenied; no-reply@contoso.com not allowed to send as x@y";
        assert!(!is_of_message(SmtpStage::Data, Some("5.2.252"), send_as));
        assert!(!is_of_message(
            SmtpStage::Data,
            None,
            "SendAsDeniedException"
        ));
        assert!(!is_of_message(SmtpStage::Mail, Some("5.7.1"), spam));
    }

    /// An SMTP error as the transport makes it from a reply's facts (or a failure's).
    fn smtp(stage: SmtpStage, code: Option<u16>, enhanced: Option<&str>, message: &str) -> Error {
        with_advice(Error::Smtp {
            stage,
            code,
            enhanced_code: enhanced.map(str::to_owned),
            message: message.to_owned(),
            mechanism: None,
            transient: false,
            delivery: Delivery::NotSent,
            advice: Advice::default(),
        })
    }

    /// Refused credentials, a login the server requires, a `5.7.x` policy refusal and a
    /// mailbox that may not send as the From are auth failures; a temporary AUTH failure
    /// and an unknown recipient are not.
    #[test]
    fn credentials_and_permissions_are_auth_failures() {
        for (stage, code, enhanced, message) in [
            (SmtpStage::Auth, 535, None, "authentication failed"),
            (SmtpStage::Mail, 530, None, "Authentication required"),
            (SmtpStage::Rcpt, 550, Some("5.7.1"), "Unable to relay"),
            (
                SmtpStage::Data,
                554,
                Some("5.2.252"),
                "not allowed to send as x@y",
            ),
            (SmtpStage::Data, 554, None, "MapiExceptionSendAsDenied"),
        ] {
            let error = smtp(stage, Some(code), enhanced, message);
            assert!(error.is_auth(), "{stage:?} {code} {message}");
        }
        for (stage, code, enhanced, message) in [
            (
                SmtpStage::Auth,
                454,
                None,
                "Temporary authentication failure",
            ),
            (SmtpStage::Rcpt, 550, Some("5.1.1"), "unknown user"),
        ] {
            let error = smtp(stage, Some(code), enhanced, message);
            assert!(!error.is_auth(), "{stage:?} {code} {message}");
        }
    }

    /// A TLS mode that does not match the port is for the settings to fix; a server's reply
    /// that happens to use the same words, or a network failure, is not.
    #[test]
    fn a_tls_mode_that_does_not_match_the_port_is_a_settings_error() {
        let plain = format!("the server {PLAIN_SMTP_PORT} was expected");
        let implicit = format!("the port {IMPLICIT_TLS_PORT}");
        for message in [&plain, &implicit] {
            let error = smtp(SmtpStage::Tls, None, None, message);
            assert!(error.is_settings(), "{message}");
        }
        for (code, message) in [(Some(554), plain.as_str()), (None, "connection refused")] {
            let error = smtp(SmtpStage::Connect, code, None, message);
            assert!(!error.is_settings(), "{code:?} {message}");
        }
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
}
