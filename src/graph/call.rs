//! One Graph call as data: the request (operation, method, URL, body, whether it may be
//! repeated, whether it needs the token), with the limits on what of its answer is read
//! (the answer itself is in `response`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use url::Url;

use super::error::Failure;

/// The most bytes of a successful answer read for most requests (ids, upload progress).
pub(crate) const SMALL_ANSWER_LIMIT: usize = 64 * 1024;
/// The most bytes of a created draft read: Graph returns the whole message, body included,
/// and the request that created it was at most about 4 MB.
pub(crate) const DRAFT_ANSWER_LIMIT: usize = 16 * 1024 * 1024;

/// Whether repeating a request can duplicate its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Repeating is harmless (a delete, a read).
    Safe,
    /// Repeated only when the server certainly did not act: after an unknown outcome the
    /// caller asks the server where things stand and resumes from there (an upload range,
    /// whose repeat the session refuses with 416 once it holds it).
    Resumable,
    /// Repeat only when the server certainly did not act (sendMail, `/send`, creating a draft).
    OnlyIfNotProcessed,
}

/// A request to send, kept so it can be sent again.
pub(crate) struct GraphRequest<'a> {
    pub operation: &'static str,
    pub method: Method,
    /// Parsed once, where it is made: the request takes a copy, never parses it again.
    pub url: &'a Url,
    /// A repeated request shares these bytes rather than copying them.
    pub body: Option<(&'static str, Bytes)>,
    pub headers: Vec<(&'static str, String)>,
    /// Pre-authenticated upload URLs must not carry the bearer token.
    pub authorize: bool,
    pub repeat: Repeat,
    /// The most bytes of a successful answer read.
    pub answer_limit: usize,
    /// Whether the request waits out a mailbox-wide `Retry-After` pause. Only the cleanup
    /// of an unsent draft does not: waiting would leave the draft behind.
    pub waits_for_pause: bool,
    /// Set when an attempt is handed to the HTTP client: from then on it is sent (and
    /// finishes) whatever its caller does. Cleared when the attempt is to be tried again
    /// (Graph certainly did not act on it: a 429, 503 or 401). While it is clear, a caller
    /// that gives up (drops it while it waits for a token, a slot, a pause or its retry)
    /// knows it was not sent.
    pub handed_over: Option<&'a AtomicBool>,
    /// For a request made in a task of its own on a caller's behalf (a draft's create):
    /// whether the caller still waits for its answer. Once it does not, no attempt is handed
    /// to the HTTP client any more — not even a retry; one already handed over finishes.
    pub wanted: Option<&'a (dyn Fn() -> bool + Sync)>,
}

/// Without the URL of a request that carries no bearer token: that is an upload session's
/// pre-authenticated URL, a credential in itself. Nor the body, which is the mail.
impl std::fmt::Debug for GraphRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url: &dyn std::fmt::Debug = match self.authorize {
            true => &self.url.as_str(),
            false => &"[pre-authenticated URL redacted]",
        };
        f.debug_struct("GraphRequest")
            .field("operation", &self.operation)
            .field("method", &self.method)
            .field("url", url)
            .field(
                "body_bytes",
                &self.body.as_ref().map(|(_, bytes)| bytes.len()),
            )
            .field("headers", &self.headers)
            .field("repeat", &self.repeat)
            .finish_non_exhaustive()
    }
}

impl<'a> GraphRequest<'a> {
    /// A JSON `POST` with the bearer token.
    pub(crate) fn post_json(
        operation: &'static str,
        url: &'a Url,
        body: Vec<u8>,
        repeat: Repeat,
    ) -> Self {
        Self {
            operation,
            method: Method::POST,
            url,
            body: Some(("application/json", Bytes::from(body))),
            headers: Vec::new(),
            authorize: true,
            repeat,
            answer_limit: SMALL_ANSWER_LIMIT,
            waits_for_pause: true,
            handed_over: None,
            wanted: None,
        }
    }

    /// A `POST` without a body (`/send`), never repeated once the server may have acted.
    pub(crate) fn post_empty(operation: &'static str, url: &'a Url) -> Self {
        Self {
            body: None,
            ..Self::post_json(operation, url, Vec::new(), Repeat::OnlyIfNotProcessed)
        }
    }

    /// A `DELETE` with the bearer token, the cleanup of an unsent draft: it does not wait
    /// for a `Retry-After` pause (one request per failed send, under the concurrency cap).
    pub(crate) fn delete(operation: &'static str, url: &'a Url) -> Self {
        Self {
            method: Method::DELETE,
            body: None,
            waits_for_pause: false,
            ..Self::post_json(operation, url, Vec::new(), Repeat::Safe)
        }
    }

    /// One byte range of an upload session: no bearer token (the URL is pre-authenticated).
    /// Not repeated blindly when its outcome is unknown: the upload asks the session where
    /// it stands instead ([`GraphRequest::upload_status`]).
    pub(crate) fn upload_range(url: &'a Url, range: String, chunk: Vec<u8>) -> Self {
        Self {
            operation: super::error::UPLOAD,
            method: Method::PUT,
            url,
            body: Some(("application/octet-stream", Bytes::from(chunk))),
            headers: vec![("Content-Range", range)],
            authorize: false,
            repeat: Repeat::Resumable,
            answer_limit: SMALL_ANSWER_LIMIT,
            waits_for_pause: true,
            handed_over: None,
            wanted: None,
        }
    }

    /// Where an upload session stands (`GET` on its URL, which answers with
    /// `nextExpectedRanges`): no bearer token, and a read, so safe to repeat.
    pub(crate) fn upload_status(url: &'a Url) -> Self {
        Self {
            operation: super::error::UPLOAD,
            method: Method::GET,
            url,
            body: None,
            headers: Vec::new(),
            authorize: false,
            repeat: Repeat::Safe,
            answer_limit: SMALL_ANSWER_LIMIT,
            waits_for_pause: true,
            handed_over: None,
            wanted: None,
        }
    }
}

static CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");

impl GraphRequest<'_> {
    /// The HTTP request for one attempt: `client-request-id` (let into HTTP/2's header table
    /// when `id_enters_table`), the bearer header (when the request is authorised), the
    /// request's own headers and body, and `timeout` when the HTTP client's own timeout is
    /// not already it. With `watch`, a body tells when the HTTP client first reads it
    /// ([`BodyRead`]; `None` for a request without one). A header that cannot be sent is a
    /// [`Failure::Invalid`].
    pub(crate) fn to_http(
        &self,
        client_request_id: &str,
        id_enters_table: bool,
        bearer: Option<HeaderValue>,
        timeout: Option<Duration>,
        watch: bool,
    ) -> std::result::Result<(reqwest::Request, Option<BodyRead>), Failure> {
        // Built directly, its headers in a map sized for them at once: no builder moved
        // through each call, no header map grown (and rehashed) on the way.
        let mut http_request = reqwest::Request::new(self.method.clone(), self.url.clone());
        // Only when there is one: asking for the slot allocates the request's extension map
        // (three allocations), even to leave it empty.
        if timeout.is_some() {
            *http_request.timeout_mut() = timeout;
        }
        let headers = http_request.headers_mut();
        // Ours, the caller's, and the client's defaults (`accept`), added when it is sent.
        // No `return-client-request-id`: nothing reads the echo (an error keeps the id sent,
        // and Graph's own `request-id` comes back anyway), and each header costs both ends.
        headers.reserve(5 + self.headers.len());
        let Ok(mut id) = HeaderValue::from_str(client_request_id) else {
            return Err(invalid_request_id(client_request_id));
        };
        // Not a secret: marked so only that HTTP/2's header compression leaves it out of
        // its table (see `MailboxState::request_id_enters_table`).
        id.set_sensitive(!id_enters_table);
        headers.insert(&CLIENT_REQUEST_ID, id);
        if let Some(bearer) = bearer {
            headers.insert(reqwest::header::AUTHORIZATION, bearer);
        }
        for (name, value) in &self.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                return Err(invalid_header(name));
            };
            headers.append(name, value);
        }
        let body = match &self.body {
            // `Bytes`: a repeated request shares the body rather than copying it.
            Some((content_type, body)) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                Some(body.clone())
            }
            None => {
                headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
                None
            }
        };
        let read = match (watch, body) {
            (true, Some(data)) => {
                let read = BodyRead::default();
                let watched = WatchedBody {
                    data: Some(data),
                    read: read.clone(),
                };
                *http_request.body_mut() = Some(reqwest::Body::wrap(watched));
                Some(read)
            }
            (_, body) => {
                *http_request.body_mut() = body.map(Into::into);
                None
            }
        };
        Ok((http_request, read))
    }
}

/// Whether the HTTP client has begun to read a request's body. It does only once it has a
/// connection for the request and is writing its head: until then, no server can have
/// acted on the request (its head, if it went out, announced a body that never came), so a
/// timeout before it means the request was not sent. (A request without a body is complete
/// with its head, which may go out before anything is read: it is not watched.)
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyRead(Arc<AtomicBool>);

impl BodyRead {
    /// Whether the body has been read (its first part taken, or its end seen).
    pub(crate) fn happened(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A request body that records its first read in a [`BodyRead`].
struct WatchedBody {
    data: Option<Bytes>,
    read: BodyRead,
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        self.read.0.store(true, Ordering::Release);
        Poll::Ready(self.data.take().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |data| data.len() as u64))
    }
}

// The failures for a header that cannot be sent. Cold, out of line: the path of a request
// that can be sent stays a short run of code.

#[cold]
#[inline(never)]
fn invalid_request_id(id: &str) -> Failure {
    Failure::Invalid(format!(
        "the client-request-id `{id}` is not a valid header value"
    ))
}

#[cold]
#[inline(never)]
fn invalid_header(name: &str) -> Failure {
    Failure::Invalid(format!("the request header `{name}` is not valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id is on every request; only a chosen one may enter HTTP/2's header table.
    #[test]
    fn the_client_request_id_enters_the_header_table_only_when_chosen() {
        let url = Url::parse("https://graph.example/v1.0/users/a@b.example/sendMail").unwrap();
        let request = GraphRequest::post_json("send", &url, b"{}".to_vec(), Repeat::Safe);
        let id = "00000000-0000-4000-8000-000000000001";
        for enters in [false, true] {
            let Ok((http, _)) = request.to_http(id, enters, None, None, false) else {
                panic!("a valid id is sent");
            };
            let sent = &http.headers()["client-request-id"];
            assert_eq!(sent, id);
            assert_eq!(sent.is_sensitive(), !enters);
        }
    }

    /// An upload session's URL is a credential: a request's `Debug` never shows it, nor the
    /// body; a Graph URL (sent with the bearer token, which is not in it) is shown.
    #[test]
    fn debug_hides_an_upload_url_and_the_body() {
        let upload = Url::parse("https://outlook.example/upload?authtoken=SeCrEt").unwrap();
        let range = GraphRequest::upload_range(&upload, "bytes 0-2/3".into(), b"MAIL".to_vec());
        let status = GraphRequest::upload_status(&upload);
        for shown in [format!("{range:?}"), format!("{status:?}")] {
            assert!(shown.contains("redacted"), "{shown}");
            assert!(
                !shown.contains("SeCrEt") && !shown.contains("outlook.example"),
                "{shown}"
            );
            assert!(
                !shown.contains("MAIL") && !shown.contains("77, 65"),
                "{shown}"
            );
        }
        let url = Url::parse("https://graph.example/v1.0/users/a@b.example/sendMail").unwrap();
        let send = GraphRequest::post_json("send", &url, b"{}".to_vec(), Repeat::Safe);
        assert!(format!("{send:?}").contains("graph.example/v1.0/users"));
    }

    /// A timeout given is the request's own; none leaves the HTTP client's.
    #[test]
    fn the_request_carries_only_a_timeout_given() {
        let url = Url::parse("https://graph.example/v1.0/users/a@b.example/sendMail").unwrap();
        let request = GraphRequest::post_json("send", &url, b"{}".to_vec(), Repeat::Safe);
        let id = "00000000-0000-4000-8000-000000000001";
        let wait = Duration::from_secs(7);
        for timeout in [None, Some(wait)] {
            let Ok((http, _)) = request.to_http(id, false, None, timeout, false) else {
                panic!("a valid request is made");
            };
            assert_eq!(http.timeout(), timeout.as_ref());
        }
    }

    #[test]
    fn an_id_that_cannot_be_a_header_is_refused() {
        let url = Url::parse("https://graph.example/v1.0/users/a@b.example/sendMail").unwrap();
        let request = GraphRequest::post_empty("send", &url);
        let Err(Failure::Invalid(message)) = request.to_http("bad\nid", false, None, None, false)
        else {
            panic!("a newline cannot be sent in a header");
        };
        assert!(message.contains("client-request-id"), "{message}");
    }
}
