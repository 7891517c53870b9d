//! Telling a TLS-mode mismatch (implicit TLS against a port that speaks plain SMTP first, or
//! the reverse) from other TLS failures, and the words the errors use for it, which the
//! remedies look for.

/// The TLS library's error behind a lettre error, if there is one.
pub(crate) fn rustls_error(error: &lettre::transport::smtp::Error) -> Option<&rustls::Error> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let tls = cause.downcast_ref::<rustls::Error>().or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|e| e.downcast_ref::<rustls::Error>())
        });
        if tls.is_some() {
            return tls;
        }
        source = cause.source();
    }
    None
}

/// Whether a TLS handshake failed because the server answered with something that is not
/// TLS at all (a plain-text SMTP greeting), rather than refusing or failing the handshake:
/// the first bytes are not a TLS record (`220` is no content type, or no TLS version). Other
/// malformed TLS messages come from a server that does speak TLS, badly.
pub(crate) fn answered_without_tls(error: &lettre::transport::smtp::Error) -> bool {
    use rustls::InvalidMessage::{InvalidContentType, UnknownProtocolVersion};
    matches!(
        rustls_error(error),
        Some(rustls::Error::InvalidMessage(
            InvalidContentType | UnknownProtocolVersion
        ))
    )
}

/// Whether a TLS handshake shows that the server speaks TLS: it completed, or the server
/// sent TLS (a certificate that was refused, an alert) rather than something malformed.
pub(crate) fn spoke_tls<T>(result: &Result<T, lettre::transport::smtp::Error>) -> bool {
    match result {
        Ok(_) => true,
        // Anything malformed — plain text, or bytes that only look like a TLS record — is
        // no answer in TLS: only a handshake that went wrong in TLS terms counts.
        Err(error) => {
            rustls_error(error).is_some_and(|tls| !matches!(tls, rustls::Error::InvalidMessage(_)))
        }
    }
}

/// The start of the message for implicit TLS against a port that speaks plain SMTP first.
pub(crate) const PLAIN_SMTP_PORT: &str = "answered in plain text where the TLS handshake";
/// The start of the message for STARTTLS or no TLS against an implicit-TLS port.
pub(crate) const IMPLICIT_TLS_PORT: &str = "speaks implicit TLS";
/// How that message names `smtp_tls = "none"` when it is the mode in use.
pub(crate) const NO_TLS_MODE: &str = "plain SMTP (`smtp_tls = \"none\"`)";
/// The words of the message for a server that does not offer STARTTLS when the mode
/// requires it.
pub(crate) const NO_STARTTLS: &str = "does not offer STARTTLS";
