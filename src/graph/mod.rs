//! [`GraphTransport`]: send through Microsoft Graph with an app registration's token.
//!
//! This is the transport behind Authentication Mode = OAuth: the client-credentials token from
//! [`Credentials`], the Microsoft Graph `Mail.Send` **application** permission with admin
//! consent, and `POST {graph_endpoint}/v1.0/users/{user_name}/sendMail`.
//!
//! # What it sends
//!
//! The JSON form of `sendMail`, with Graph's property names: `subject`, `body`,
//! `toRecipients`/`ccRecipients`/`bccRecipients`/`replyTo`, `importance`,
//! `internetMessageHeaders` (`X-` headers, at most 5, omitted when there are none), and
//! `fileAttachment`s (standard base64; inline ones with `isInline` and `contentId` for `cid:`
//! references). `saveToSentItems` follows the `save_to_sent_items` setting (default `true`);
//! the MIME form and the draft path keep a copy in Sent Items whatever it says (below).
//!
//! # Which form is used
//!
//! The recipient gets the same message as over SMTP or in the outbox, whatever it holds; the
//! transport picks the form of `sendMail` that can carry it:
//!
//! | the email has | form |
//! |---|---|
//! | one body, at most five `X-` headers (the common notification) | JSON |
//! | both a text and an HTML body | MIME |
//! | any header other than `X-` (`Message-ID`, `In-Reply-To`, `References`, `List-Unsubscribe`, …), or more than five | MIME |
//! | a prepared message ([`Email::from_mime`], a `lettre::Message`) | MIME, sent as it is |
//! | attachments too large for one request, or over 2 MB of MIME | a draft (JSON or MIME, as above) plus upload sessions |
//!
//! The **MIME form** posts the base64 of the whole RFC 5322 message with `Content-Type:
//! text/plain` — the message the outbox writes, built by the same MIME writer as SMTP, so both
//! bodies arrive as `multipart/alternative`, inline images as `multipart/related`, and every
//! header as given. Exchange reads the recipients from its `To`, `Cc` and `Bcc` headers (and
//! removes `Bcc`); for a prepared message whose envelope recipients were given separately,
//! those three headers are rewritten to say them, and nothing else changes. What changes for
//! the sender with the MIME form: Graph's MIME `sendMail` has no `saveToSentItems`, so a copy
//! is **always saved to Sent Items**, whatever `save_to_sent_items` says; and Exchange may
//! still replace a few headers it owns (`Return-Path`, sometimes `Auto-Submitted`). A
//! caller's `Message-ID` is kept.
//!
//! The **draft path** (attachments too large for one request) sends the draft with its own
//! `/send`, which has no `saveToSentItems` either: Exchange moves the sent draft to Sent Items,
//! so a copy is **always saved** there too, whatever `save_to_sent_items` says.
//!
//! Graph messages are DKIM-signed by Exchange Online with the tenant's keys; the
//! [`dkim`](crate#features) settings apply to SMTP and the outbox only.
//!
//! # Large messages
//!
//! A Graph request is capped at about 4 MB and an attachment sent inline at 3 MB; a message
//! in the MIME form is given to Graph in one request only up to 2,000,000 bytes of MIME
//! (before base64), as Graph has been seen to answer one over about 2,240 KB with 200 and not
//! send it ([microsoft-graph-docs-contrib#3079]). A message over any of these goes through a draft
//! instead: `POST /users/{u}/messages`, each attachment
//! under 3 MiB added with `POST …/attachments`, each larger one uploaded through
//! `createUploadSession` in sequential `PUT`s of 3,276,800 bytes (10 × 320 KiB) with
//! `Content-Range` and no `Authorization` header (the upload URL is pre-authenticated), then
//! `POST /users/{u}/messages/{id}/send`. Attachments are read from their files one chunk at a
//! time, so memory does not grow with their size; they may be up to 150 MB. An email that
//! needs the MIME form starts its draft from its MIME without any attachment (`POST
//! /users/{u}/messages` with `text/plain`), then adds every attachment the same way (small
//! ones left in the MIME would be base64'd twice and could keep the draft over the limit); a
//! prepared message's attachment parts are cut out of its bytes (at the offsets mail-parser
//! reports) and added the same way. A message still over 2,000,000 bytes of MIME without its
//! attachments is refused before anything is sent (send it over SMTP). Adding uploaded
//! attachments to a draft made from MIME is not a combination Microsoft documents; it follows
//! the same documented calls as the JSON draft path.
//! This path needs the `Mail.ReadWrite` application permission as well; `check` warns when it
//! is missing.
//! When a draft-path send fails before `/send`, or is dropped (cancelled) before it, the
//! draft is deleted — also when it is dropped while Graph is still making the draft, or
//! while the draft of a send that failed is being deleted. A send dropped while its draft
//! is still to be made (a 429 to wait out) makes no further attempt at it.
//!
//! An upload range is never sent again blindly, and counts as taken only when the session's
//! answer says so: 201 Created for the range that completes the file, `nextExpectedRanges`
//! for the others. When its `PUT` gets no answer (a timeout, a dropped connection, a 5xx),
//! an answer that does not say (a 200 without ranges: a proxy's page, an answer cut off),
//! or the session refuses it as held already (416), the upload
//! asks the session where it stands (`GET` on the upload URL, also without `Authorization`)
//! and continues from the first byte it expects; a session that expects nothing more holds
//! the whole file. A session that does not move forward is retried under the
//! [`RetryPolicy`](crate::RetryPolicy) and the send deadline, then the send fails as not sent
//! and transient, naming the attachment. A session that is gone (404: expired or deleted) is
//! replaced once, within the same deadline, and the file uploaded from its start — except
//! when the range completing the file went unanswered, as the session may then have
//! completed and a second one would attach the file twice. The upload URL carries its own
//! credential and is never quoted in an error or a log.
//!
//! # Limits, retries and at-most-once
//!
//! - At most 4 requests in flight (configurable with
//!   [`GraphTransportBuilder::max_concurrency`]), however many tasks call `send` at once —
//!   Exchange Online's per-mailbox limit. Build one transport per mailbox and share it.
//!   A request keeps its slot until Graph's answer is read, even when the caller gives up
//!   (drops the `send` future): Graph still counts it.
//! - Built from settings, the transport and the token endpoint share one HTTP client, and so
//!   one connection pool (the standalone builders share one when given the same client
//!   through their `http_client`). Graph and the login host speak HTTP/2 (chosen by ALPN),
//!   where all requests to a host share one connection: a fresh transport under a burst of
//!   sends opens one connection to the login host and one to Graph (up to one per request
//!   in flight while the first is being made; the extra ones are closed). Through a proxy
//!   or gateway that offers only HTTP/1.1, a request that waited for a slot reuses the
//!   connection the previous one freed rather than dial another, so a burst opens about as
//!   many connections as requests may be in flight, plus one for the token.
//! - 429 and 503 are retried after `Retry-After` (seconds, fractional seconds or an HTTP date;
//!   never sooner), else after exponential backoff with jitter, as often as the
//!   [`RetryPolicy`](crate::RetryPolicy) allows (`max_retries`: 3 by default) within the send
//!   deadline (2 minutes by default); then the error says the mail was not sent, and a 429's
//!   remedy names which of the two ended the retries
//!   ([`retry_policy`](GraphTransportBuilder::retry_policy),
//!   [`send_deadline`](GraphTransportBuilder::send_deadline)). A service that must not lose
//!   the mail to a long throttle sends through the durable queue (`queue_url`), which
//!   retries later. A `Retry-After` pauses every request of the
//!   transport (the whole mailbox) until it elapses, not only the one that got it; a send
//!   whose deadline ends inside the pause fails at once as not sent.
//! - Redirects are never followed (they would carry the token elsewhere): a 3xx is a
//!   permanent error naming `graph_endpoint`. A refused TLS certificate is permanent too,
//!   and not retried.
//! - Answers are read in chunks up to a cap (64 KiB; 16 MiB for a created draft, which
//!   echoes the message); Graph's error text is cleaned of the access token before it
//!   reaches an error or a log.
//! - 401 `InvalidAuthenticationToken`: the token is invalidated, a new one fetched, and the
//!   request sent once more. When that new token is refused too (consent revoked, app
//!   disabled, …), 401s cause no new token request for a minute, so sends fail fast
//!   instead of asking Entra ID for a token each.
//! - A `sendMail` (or draft `/send`) is never repeated when the server may have accepted it —
//!   a timeout after the request was written, a dropped connection, a 500, 502 or 504. The
//!   error's [`Error::delivery`] is then [`Delivery::Uncertain`], distinct from
//!   [`Delivery::NotSent`], so the caller decides whether a duplicate is worse than a loss.
//! - A message counts as sent only when Graph answers `sendMail` (or a draft's `/send`) with
//!   202 Accepted, its documented answer. Another success status (Graph has been seen to
//!   answer 200 to a MIME message it did not take; a proxy's page comes with 200) is an
//!   error whose delivery is [`Delivery::Uncertain`], code `UnexpectedSuccessStatus`, and
//!   is never repeated (the queue parks it as uncertain). The error's text carries the
//!   status and Graph's `request-id` (`(HTTP 200 UnexpectedSuccessStatus) … [request-id …]`)
//!   to look it up. A proxy or gateway in front of `graph_endpoint` that rewrites Graph's
//!   202 into 200 therefore makes **every** send uncertain: have it pass Graph's status
//!   through unchanged (there is no setting to accept a 200). Likewise a draft is sent only once each attachment added to it
//!   with `POST …/attachments` was answered 201 Created; another answer leaves the draft
//!   unsent (and deleted), the mail not sent, rather than delivered without the attachment.
//! - Timeouts: connect (10 s), each request (30 s) and the whole send (120 s) by default;
//!   the send deadline also bounds `check` as a whole. Values over a day count as a day.
//!
//! # Errors
//!
//! Graph's error codes become [`Error::Graph`] with a remedy naming the permission, setting or
//! setup step: `ErrorAccessDenied` (Mail.Send not an application permission or not consented,
//! or an application access policy that excludes the mailbox), `ErrorInvalidUser` /
//! `ResourceNotFound` / `MailboxNotEnabledForRESTAPI` (User Name is not a licensed mailbox in
//! the tenant), `ErrorSendAsDenied`, `ErrorInvalidRecipients`, `ErrorMessageSizeExceeded`,
//! `InvalidInternetMessageHeader` and throttling. Each error keeps Graph's `request-id` and
//! the `client-request-id` sent with the request.
//!
//! [microsoft-graph-docs-contrib#3079]: https://github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/3079
//! [`Delivery::Uncertain`]: crate::Delivery::Uncertain
//! [`Delivery::NotSent`]: crate::Delivery::NotSent
//! [`Error::delivery`]: crate::Error::delivery

mod answer;
mod builder;
mod call;
mod check;
mod client;
mod draft;
mod error;
mod http_failure;
mod in_flight;
mod mailbox;
mod mime_form;
mod remedy;
mod request;
mod response;
mod upload;
mod waits;

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::check::CheckReport;
#[cfg(doc)]
use crate::credentials::Credentials;
use crate::credentials::TokenProvider;
use crate::error::{Error, Result};
use crate::message::{Email, Mailbox};
use crate::transport::{MailTransport, SendReport, SentMessage};

pub use builder::GraphTransportBuilder;
use call::{GraphRequest, Repeat};
use client::GraphClient;
use request::{FileAttachment, SendMail, base64_len};

/// Microsoft Graph in the global cloud.
pub const DEFAULT_ENDPOINT: &str = crate::net::GLOBAL_GRAPH_HOST;
/// The token scope for Microsoft Graph in the global cloud.
pub const DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// The largest attachment Graph takes inline (in `sendMail` or `POST …/attachments`).
const INLINE_ATTACHMENT_LIMIT: u64 = 3 * 1024 * 1024;
/// The largest `sendMail` request this crate sends in one piece (Graph's cap is about 4 MB).
const REQUEST_LIMIT: u64 = 4_000_000;
/// The largest attachment an upload session takes.
pub const MAX_ATTACHMENT_SIZE: u64 = 150 * 1024 * 1024;
/// The most requests in flight a transport allows, whatever the builder is given.
const MAX_CONCURRENCY: usize = 1024;
/// The size of each upload `PUT`: 10 × 320 KiB, under Graph's 4 MB per request.
pub const UPLOAD_CHUNK_SIZE: usize = 10 * 320 * 1024;

/// Sends mail through Microsoft Graph as one mailbox. Cheap to clone; clones share the
/// concurrency limit and the token cache.
///
/// ```no_run
/// use mail_connector::{Credentials, Email, GraphTransport, Mailbox, MailTransport, Secret};
///
/// # async fn demo() -> mail_connector::Result<()> {
/// let credentials = Credentials::client_secret(
///     "contoso.onmicrosoft.com",
///     "00000000-0000-0000-0000-000000000001",
///     Secret::new(std::env::var("CLIENT_SECRET").unwrap_or_default()),
/// )
/// .build()?;
/// let mailbox = Mailbox::parse("no-reply@contoso.com")?;
/// let graph = GraphTransport::builder(mailbox, credentials).max_concurrency(2).build()?;
/// let email = Email::builder().to("ann@example.org").subject("Hi").text("Hello").build()?;
/// graph.send(&email).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GraphTransport {
    client: GraphClient,
    /// The Graph endpoint, parsed once; each request URL extends its path.
    endpoint: url::Url,
    /// `…/v1.0/users/{mailbox}/sendMail`, made once: every send posts to it.
    send_mail_url: url::Url,
    mailbox: Mailbox,
    save_to_sent_items: bool,
    allow_send_as: bool,
    send_deadline: Duration,
}

impl GraphTransport {
    /// A builder for sending as `mailbox` (a licensed user or shared mailbox) with tokens
    /// from `tokens` — usually [`Credentials`], whose app needs the `Mail.Send` application
    /// permission; any other [`TokenProvider`] works too.
    pub fn builder(
        mailbox: Mailbox,
        tokens: impl TokenProvider + 'static,
    ) -> GraphTransportBuilder {
        GraphTransportBuilder::new(mailbox, std::sync::Arc::new(tokens))
    }

    /// As [`builder`](Self::builder), for tokens already shared: no second `Arc` around
    /// them to go through on every token read.
    pub(crate) fn builder_shared(
        mailbox: Mailbox,
        tokens: std::sync::Arc<dyn TokenProvider>,
    ) -> GraphTransportBuilder {
        GraphTransportBuilder::new(mailbox, tokens)
    }

    /// The mailbox mail is sent from.
    #[must_use]
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    fn url(&self, segments: &[&str]) -> Result<url::Url> {
        Ok(mailbox_url(&self.endpoint, &self.mailbox, segments))
    }

    /// The `from` to put in the message: `None` for the transport's own mailbox.
    fn sender_for<'a>(&self, email: &'a Email) -> Result<Option<&'a Mailbox>> {
        match email.from() {
            None => Ok(None),
            Some(from) if from.same_address(&self.mailbox) => Ok(Some(from)),
            Some(_) if self.allow_send_as => Ok(email.from()),
            Some(from) => {
                let (what, fix) = email.send_as_fix();
                Err(Error::invalid_message(
                    "from",
                    format!(
                        "{what} is from `{}` but this connector sends as `{}`; {fix}, or set \
                         `allow_send_as = true` once the app may send as that mailbox \
                         (Exchange Send As permission), else Graph refuses it with \
                         ErrorSendAsDenied",
                        from.address(),
                        self.mailbox.address()
                    ),
                ))
            }
        }
    }

    /// Whether the email could fit one `sendMail` request, judged from sizes alone; the
    /// serialised body is measured before it is sent.
    fn may_fit_in_one_request(email: &Email) -> bool {
        let attachments: u64 = email
            .attachments()
            .iter()
            .map(|a| base64_len(a.size()))
            .sum();
        email
            .attachments()
            .iter()
            .all(|a| a.size() < INLINE_ATTACHMENT_LIMIT)
            && attachments <= REQUEST_LIMIT
    }

    /// The `sendMail` body with the attachments inline.
    async fn send_mail_body(&self, email: &Email, from: Option<&Mailbox>) -> Result<Vec<u8>> {
        let mut message = request::message(email, from)?;
        let mut loaded = Vec::with_capacity(email.attachments().len());
        for attachment in email.attachments() {
            loaded.push(attachment.load().await?);
        }
        message.attachments = email
            .attachments()
            .iter()
            .zip(&loaded)
            .map(|(attachment, bytes)| FileAttachment::new(attachment, bytes))
            .collect();
        // One buffer of about the final size, rather than one grown (and copied) step by step.
        let attachments: u64 = email
            .attachments()
            .iter()
            .map(|a| base64_len(a.size()))
            .sum();
        let capacity = request::send_mail_len(email, attachments).min(REQUEST_LIMIT + 1);
        let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        serde_json::to_writer(
            &mut body,
            &SendMail {
                message,
                save_to_sent_items: self.save_to_sent_items,
            },
        )
        .map_err(|e| Error::invalid_message("email", e.to_string()))?;
        Ok(body)
    }

    /// `sendMail` with `body`, and the `request-id` Graph gave it.
    ///
    /// The request is made before the future, which holds it alone: an `async fn` would
    /// hold the body it was given as well.
    fn send_mail(
        &self,
        body: Vec<u8>,
        deadline: Instant,
    ) -> impl Future<Output = Result<Option<String>>> + Send + '_ {
        let request = GraphRequest::post_json(
            "sendMail",
            &self.send_mail_url,
            body,
            Repeat::OnlyIfNotProcessed,
        );
        async move {
            self.client
                .execute(&request, deadline)
                .await?
                .sent("sendMail")
        }
    }
}

/// `{endpoint}/v1.0/users/{mailbox}/{segments…}`, each segment percent-encoded.
fn mailbox_url(endpoint: &url::Url, mailbox: &Mailbox, segments: &[&str]) -> url::Url {
    let mut url = endpoint.clone();
    // `build` checked that the endpoint can hold a path.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty()
            .extend(["v1.0", "users", mailbox.address()])
            .extend(segments);
    }
    url
}

/// The error for an attachment over Graph's size limit. Cold, out of line: the path of a
/// send within the limits stays a short run of code.
#[cold]
#[inline(never)]
fn attachment_too_large(index: usize, attachment: &crate::message::Attachment) -> Error {
    Error::invalid_message(
        format!("attachments[{index}]"),
        format!(
            "`{}` is {} bytes; Microsoft Graph accepts attachments up to 150 MB",
            attachment.name(),
            attachment.size()
        ),
    )
}

#[async_trait]
impl MailTransport for GraphTransport {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        let span = tracing::info_span!(
            "mail_connector.send",
            transport = "graph",
            mailbox = %self.mailbox.address(),
            recipients = email.recipient_count(),
            attachments = email.attachments().len(),
            outcome = tracing::field::Empty,
            message_id = tracing::field::Empty,
            attempts = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        // One clock reading for the deadline and the send's duration.
        let started = Instant::now();
        // Pinned where it is made, and observed through the pin: the send's state (the
        // largest part of this future) is held once, not copied into each wrapper.
        let send = std::pin::pin!(async move {
            let from = self.sender_for(email)?;
            for (index, attachment) in email.attachments().iter().enumerate() {
                if attachment.size() > MAX_ATTACHMENT_SIZE {
                    return Err(attachment_too_large(index, attachment));
                }
            }
            let deadline = started + self.send_deadline;
            // The rare paths (MIME form, draft) are boxed: their state is large, and kept
            // inline it would be copied with every move of each send's future.
            let accepted =
                |id| SendReport::single(SentMessage::new(email.recipients().collect(), id));
            if mime_form::needed(email) {
                let id = Box::pin(self.send_mime_form(email, from, deadline)).await?;
                tracing::info!("Graph accepted the message (MIME form)");
                return Ok(accepted(id));
            }
            let body = match Self::may_fit_in_one_request(email) {
                true => Some(self.send_mail_body(email, from).await?),
                false => None,
            };
            // Taken apart in a `let … else` rather than a `match`, whose scrutinee (and room
            // for the body) would be kept in this future while the request runs.
            let Some(body) = body.filter(|body| body.len() as u64 <= REQUEST_LIMIT) else {
                tracing::debug!("message too large for one request; using a draft");
                let id = Box::pin(self.send_with_draft(email, from, deadline)).await?;
                tracing::info!("Graph accepted the message");
                return Ok(accepted(id));
            };
            let id = self.send_mail(body, deadline).await?;
            tracing::info!("Graph accepted the message");
            Ok(accepted(id))
        });
        let mailbox = Some(self.mailbox.address());
        crate::observe::observe_send(span, "graph", mailbox, started, send).await
    }

    async fn check(&self) -> Result<CheckReport> {
        self.run_check().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default scope is spelled out (a `const` cannot be concatenated from another);
    /// this keeps it the default endpoint's resource.
    #[test]
    fn the_default_scope_is_the_default_endpoints_resource() {
        assert_eq!(
            DEFAULT_SCOPE,
            format!(
                "{DEFAULT_ENDPOINT}{}",
                crate::credentials::GRAPH_SCOPE_SUFFIX
            )
        );
    }
}
