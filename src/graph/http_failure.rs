//! What the HTTP client's error for a Graph request means for sending it again: never sent
//! (no connection, a stream HTTP/2 says was not processed, a body never read), a TLS
//! certificate refused, an invalid request, or unknown (the server may have acted on it).

use std::time::Duration;

#[cfg(doc)]
use super::call::BodyRead;
use super::error::Failure;
use crate::http::{describe_error, host_of, is_tls_failure};

/// What the HTTP client's error `e` for a request to `url` means for repeating it.
#[cold]
#[inline(never)]
pub(super) fn failure_of(e: &reqwest::Error, url: &str) -> Failure {
    if e.is_builder() {
        Failure::Invalid(describe_error(e))
    } else if is_tls_failure(e) {
        Failure::Tls(format!(
            "the TLS certificate of `{}` was refused: {}",
            host_of(url),
            describe_error(e)
        ))
    } else if e.is_connect() {
        Failure::NotSent(format!("`{}`: {}", host_of(url), describe_error(e)))
    } else if refused_unprocessed(e) {
        Failure::NotSent(format!(
            "`{}` did not process the request (HTTP/2: {}); it can be sent again",
            host_of(url),
            describe_error(e)
        ))
    } else {
        Failure::Unknown(format!("`{}`: {}", host_of(url), describe_error(e)))
    }
}

/// Whether HTTP/2 says the server did not process the request (RFC 9113, section 8.7): the
/// server refused its stream (`REFUSED_STREAM`), or closed the connection gracefully
/// (`GOAWAY` without an error) before the stream. reqwest sends such a request again by
/// itself when it can copy it, but not one whose body is watched (see [`BodyRead`]), nor
/// once its own retries are spent.
fn refused_unprocessed(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(error) = source {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.is_remote()
                && match h2.reason() {
                    Some(h2::Reason::REFUSED_STREAM) => true,
                    Some(h2::Reason::NO_ERROR) => h2.is_go_away(),
                    _ => false,
                };
        }
        source = error.source();
    }
    false
}

/// A request whose timeout ended it before the HTTP client read its body: it had no
/// connection yet, or waited on one (only its head went out, announcing a body that never
/// came).
#[cold]
#[inline(never)]
pub(super) fn never_left(url: &str, timeout: Duration) -> Failure {
    Failure::NotSent(format!(
        "`{}`: the request's body never left within the {timeout:?} it had (no connection \
         yet, or none free); it was never sent",
        host_of(url)
    ))
}

/// How much later than a request's timeout its connect timeout may start (the request
/// waits for a slot in the HTTP client's pool first): a request whose timeout is not at
/// least this much longer than the connect timeout may end while it still connects.
pub(super) const CONNECT_SLACK: Duration = Duration::from_secs(1);
