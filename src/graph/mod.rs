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
//! `internetMessageHeaders` (custom `X-` headers, at most 5, omitted when there are none), and
//! `fileAttachment`s (standard base64; inline ones with `isInline` and `contentId` for `cid:`
//! references). `saveToSentItems` follows the `save_to_sent_items` setting (default `true`).
//! Graph's message body has one content type, so an email with both bodies is sent as HTML;
//! its text body is not sent.
//!
//! JSON was chosen over Graph's MIME form because only JSON keeps `saveToSentItems`, and the
//! large-attachment path below needs JSON drafts anyway; one model serves both paths.
//!
//! # Large messages
//!
//! A Graph request is capped at about 4 MB and an attachment sent inline at 3 MB. A message
//! over either goes through a draft instead: `POST /users/{u}/messages`, each attachment
//! under 3 MiB added with `POST …/attachments`, each larger one uploaded through
//! `createUploadSession` in sequential `PUT`s of 3,276,800 bytes (10 × 320 KiB) with
//! `Content-Range` and no `Authorization` header (the upload URL is pre-authenticated), then
//! `POST /users/{u}/messages/{id}/send`. Attachments are read from their files one chunk at a
//! time, so memory does not grow with their size; they may be up to 150 MB. This path needs
//! the `Mail.ReadWrite` application permission as well; `check` warns when it is missing.
//! When a draft-path send fails before `/send`, the draft is deleted.
//!
//! # Limits, retries and at-most-once
//!
//! - At most 4 requests in flight (configurable with
//!   [`GraphTransportBuilder::max_concurrency`]), however many tasks call `send` at once —
//!   Exchange Online's per-mailbox limit. Build one transport per mailbox and share it.
//!   A request keeps its slot until Graph's answer is read, even when the caller gives up
//!   (drops the `send` future): Graph still counts it.
//! - 429 and 503 are retried after `Retry-After` (seconds, fractional seconds or an HTTP date;
//!   never sooner), else after exponential backoff with jitter, until the send deadline; then
//!   the error says the mail was not sent. A `Retry-After` pauses every request of the
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
//! [`Delivery::Uncertain`]: crate::Delivery::Uncertain
//! [`Delivery::NotSent`]: crate::Delivery::NotSent
//! [`Error::delivery`]: crate::Error::delivery

mod client;
mod error;
mod mailbox;
mod request;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

use crate::credentials::Credentials;
use crate::error::{Delivery, Error, Result};
use crate::http::{HttpOptions, capped, host_of, http_client};
use crate::message::{Attachment, AttachmentContent, Email, Mailbox};
use crate::net::https_url;
use crate::retry::RetryPolicy;
use crate::transport::{CheckReport, CheckStep, MailTransport, SendReport, SentMessage};

use client::{DRAFT_ANSWER_LIMIT, GraphClient, GraphRequest, MailboxState, Repeat};
use request::{
    AttachmentItem, CreateUploadSession, CreatedMessage, FileAttachment, SendMail, UploadProgress,
    UploadSession, base64_len,
};

/// Microsoft Graph in the global cloud.
pub const DEFAULT_ENDPOINT: &str = "https://graph.microsoft.com";
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
    mailbox: Mailbox,
    save_to_sent_items: bool,
    allow_send_as: bool,
    send_deadline: Duration,
}

/// Configures a [`GraphTransport`]; start from [`GraphTransport::builder`].
#[derive(Debug)]
#[must_use]
pub struct GraphTransportBuilder {
    credentials: Credentials,
    scope: String,
    endpoint: String,
    mailbox: Mailbox,
    http: HttpOptions,
    http_client: Option<reqwest::Client>,
    max_concurrency: usize,
    retry: RetryPolicy,
    send_deadline: Duration,
    save_to_sent_items: bool,
    allow_send_as: bool,
}

impl GraphTransport {
    /// A builder for sending as `mailbox` (a licensed user or shared mailbox) with the
    /// tokens of `credentials` (whose app needs the `Mail.Send` application permission).
    pub fn builder(mailbox: Mailbox, credentials: Credentials) -> GraphTransportBuilder {
        GraphTransportBuilder {
            credentials,
            scope: DEFAULT_SCOPE.to_owned(),
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            mailbox,
            http: HttpOptions::default(),
            http_client: None,
            max_concurrency: 4,
            retry: RetryPolicy::default(),
            send_deadline: Duration::from_secs(120),
            save_to_sent_items: true,
            allow_send_as: false,
        }
    }

    /// The mailbox mail is sent from.
    #[must_use]
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    fn url(&self, segments: &[&str]) -> Result<String> {
        let mut url = self.endpoint.clone();
        // `build` checked that the endpoint can hold a path.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(["v1.0", "users", self.mailbox.address()])
                .extend(segments);
        }
        Ok(url.into())
    }

    /// The `from` to put in the message: `None` for the transport's own mailbox.
    fn sender_for<'a>(&self, email: &'a Email) -> Result<Option<&'a Mailbox>> {
        match email.from() {
            None => Ok(None),
            Some(from) if from.address().eq_ignore_ascii_case(self.mailbox.address()) => {
                Ok(Some(from))
            }
            Some(_) if self.allow_send_as => Ok(email.from()),
            Some(from) => Err(Error::invalid_message(
                "from",
                format!(
                    "the email is from `{}` but this connector sends as `{}`; leave From unset, \
                     or set `allow_send_as = true` once the app may send as that mailbox \
                     (Exchange Send As permission), else Graph refuses it with ErrorSendAsDenied",
                    from.address(),
                    self.mailbox.address()
                ),
            )),
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
        serde_json::to_vec(&SendMail {
            message,
            save_to_sent_items: self.save_to_sent_items,
        })
        .map_err(|e| Error::invalid_message("email", e.to_string()))
    }

    async fn send_mail(&self, body: Vec<u8>, deadline: Instant) -> Result<Option<String>> {
        let url = self.url(&["sendMail"])?;
        let request = GraphRequest::post_json("sendMail", &url, body, Repeat::OnlyIfNotProcessed);
        let response = self.client.execute(&request, deadline).await?;
        Ok(response
            .headers
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned))
    }

    async fn send_with_draft(
        &self,
        email: &Email,
        from: Option<&Mailbox>,
        deadline: Instant,
    ) -> Result<Option<String>> {
        let message = request::message(email, from)?;
        let body = serde_json::to_vec(&message)
            .map_err(|e| Error::invalid_message("email", e.to_string()))?;
        let url = self.url(&["messages"])?;
        let created = self
            .client
            .execute(
                &GraphRequest::post_json("create draft", &url, body, Repeat::OnlyIfNotProcessed)
                    .with_answer_limit(DRAFT_ANSWER_LIMIT),
                deadline,
            )
            .await
            .map_err(not_sent)?;
        let draft: CreatedMessage = created.json("create draft")?;
        tracing::debug!("draft created for a large message");

        let result = async {
            for attachment in email.attachments() {
                self.add_attachment(&draft.id, attachment, deadline).await?;
            }
            let url = self.url(&["messages", &draft.id, "send"])?;
            self.client
                .execute(&GraphRequest::post_empty("send draft", &url), deadline)
                .await
        }
        .await;
        match result {
            Ok(_) => Ok(Some(draft.id)),
            Err(error) => {
                if error.delivery() == Delivery::NotSent {
                    self.delete_draft(&draft.id).await;
                }
                Err(error)
            }
        }
    }

    async fn add_attachment(
        &self,
        draft_id: &str,
        attachment: &Attachment,
        deadline: Instant,
    ) -> Result<()> {
        if attachment.size() < INLINE_ATTACHMENT_LIMIT {
            let bytes = attachment.load().await?;
            let body = serde_json::to_vec(&FileAttachment::new(attachment, &bytes))
                .map_err(|e| Error::invalid_message("attachments", e.to_string()))?;
            let url = self.url(&["messages", draft_id, "attachments"])?;
            self.client
                .execute(
                    &GraphRequest::post_json(
                        "add attachment",
                        &url,
                        body,
                        Repeat::OnlyIfNotProcessed,
                    ),
                    deadline,
                )
                .await
                .map_err(not_sent)?;
            return Ok(());
        }
        let body = serde_json::to_vec(&CreateUploadSession {
            attachment_item: AttachmentItem::new(attachment),
        })
        .map_err(|e| Error::invalid_message("attachments", e.to_string()))?;
        let url = self.url(&["messages", draft_id, "attachments", "createUploadSession"])?;
        let created = self
            .client
            .execute(
                &GraphRequest::post_json("create upload session", &url, body, Repeat::Safe),
                deadline,
            )
            .await
            .map_err(not_sent)?;
        let session: UploadSession = created.json("create upload session")?;
        self.upload(session.upload_url.expose_secret(), attachment, deadline)
            .await
            .map_err(not_sent)
    }

    /// Streams the attachment to the upload URL in order, one chunk in memory at a time.
    async fn upload(
        &self,
        upload_url: &str,
        attachment: &Attachment,
        deadline: Instant,
    ) -> Result<()> {
        let total = attachment.size();
        let mut file = match attachment.content() {
            AttachmentContent::File(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| Error::io("read the attachment", path, e))?;
                let len = file
                    .metadata()
                    .await
                    .map_err(|e| Error::io("read the attachment", path, e))?
                    .len();
                if len != total {
                    return Err(Error::invalid_message(
                        "attachments",
                        format!(
                            "`{}` changed size since it was attached ({total} → {len} bytes)",
                            path.display()
                        ),
                    ));
                }
                Some((file, path.to_owned()))
            }
            AttachmentContent::Bytes(_) => None,
        };
        let mut offset = 0u64;
        let mut buffer = Vec::with_capacity(UPLOAD_CHUNK_SIZE.min(total as usize));
        while offset < total {
            let len = (total - offset).min(UPLOAD_CHUNK_SIZE as u64) as usize;
            buffer.clear();
            match (&mut file, attachment.content()) {
                (Some((file, path)), _) => {
                    buffer.resize(len, 0);
                    file.read_exact(&mut buffer)
                        .await
                        .map_err(|e| Error::io("read the attachment", path.as_path(), e))?;
                }
                (None, AttachmentContent::Bytes(bytes)) => {
                    buffer.extend_from_slice(&bytes[offset as usize..offset as usize + len]);
                }
                (None, AttachmentContent::File(_)) => unreachable!("files are opened above"),
            }
            let end = offset + len as u64 - 1;
            let response = self
                .client
                .execute(
                    &GraphRequest::upload_range(
                        upload_url,
                        format!("bytes {offset}-{end}/{total}"),
                        buffer.clone(),
                    ),
                    deadline,
                )
                .await?;
            let mut next = end + 1;
            // The server says where it wants to continue; follow it if it differs.
            if let Ok(progress) = serde_json::from_slice::<UploadProgress>(&response.body)
                && let Some(start) = progress
                    .next_expected_ranges
                    .first()
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse::<u64>().ok())
                && start != next
                && start < total
            {
                next = start;
                if let Some((file, path)) = &mut file {
                    file.seek(std::io::SeekFrom::Start(start))
                        .await
                        .map_err(|e| Error::io("read the attachment", path.as_path(), e))?;
                }
            }
            offset = next;
        }
        Ok(())
    }

    async fn delete_draft(&self, draft_id: &str) {
        let Ok(url) = self.url(&["messages", draft_id]) else {
            return;
        };
        // Its own short deadline: the send's may be what just ran out.
        let deadline = Instant::now() + Duration::from_secs(15);
        let result = self
            .client
            .execute(&GraphRequest::delete("delete draft", &url), deadline)
            .await;
        match result {
            Ok(_) => tracing::info!("deleted the draft of a message that was not sent"),
            Err(error) => tracing::warn!(%error, "could not delete the draft of an unsent message"),
        }
    }

    async fn probe_mailbox(&self, deadline: Instant) -> CheckStep {
        // Graph resolves the mailbox and checks the app's right to send from it before it
        // validates the message, so a message without recipients is refused with
        // ErrorInvalidRecipients when all is well — proof with Mail.Send alone, and no mail
        // is delivered or saved. A missing mailbox answers 404 and a mailbox outside an
        // application access policy 403.
        let url = match self.url(&["sendMail"]) {
            Ok(url) => url,
            Err(error) => return CheckStep::from_error("mailbox", &error),
        };
        let body = serde_json::json!({
            "message": {
                "subject": "mail-connector configuration check (never delivered)",
                "body": {"contentType": "Text", "content": ""}
            },
            "saveToSentItems": false
        });
        let deadline = deadline.min(Instant::now() + Duration::from_secs(30));
        let result = self
            .client
            .execute(
                &GraphRequest::post_json(
                    "mailbox check",
                    &url,
                    body.to_string().into_bytes(),
                    Repeat::OnlyIfNotProcessed,
                ),
                deadline,
            )
            .await;
        let mailbox = self.mailbox.address();
        match result {
            Err(Error::Graph {
                code: Some(code), ..
            }) if code == "ErrorInvalidRecipients" => CheckStep::ok(
                "mailbox",
                format!("{mailbox} is a mailbox this app may send from"),
            ),
            Ok(_) => CheckStep::ok("mailbox", format!("{mailbox} accepted the check")),
            Err(error) => CheckStep::from_error("mailbox", &error),
        }
    }
}

fn not_sent(mut error: Error) -> Error {
    // Nothing was sent before the draft's `/send`: an uncertain draft or attachment request
    // cannot have delivered mail, so trying the whole send again later is safe.
    if let Error::Graph {
        delivery,
        transient,
        status,
        ..
    } = &mut error
        && *delivery == Delivery::Uncertain
    {
        *delivery = Delivery::NotSent;
        *transient = status.is_none_or(|s| s >= 500);
    }
    error
}

impl GraphTransportBuilder {
    /// The most Graph requests in flight at once for this mailbox (default 4, Exchange
    /// Online's limit). 0 is treated as 1, and values over 1,024 as 1,024.
    pub fn max_concurrency(mut self, requests: usize) -> Self {
        self.max_concurrency = requests.clamp(1, MAX_CONCURRENCY);
        self
    }

    /// How long the whole send may take, retries and uploads included (default 120 s).
    /// It also bounds [`MailTransport::check`] as a whole. Values over a day count as a day.
    pub fn send_deadline(mut self, deadline: Duration) -> Self {
        self.send_deadline = capped(deadline);
        self
    }

    /// How long connecting may take (default 10 s; values over a day count as a day).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.http.connect_timeout = capped(timeout);
        self
    }

    /// How long one request may take (default 30 s; the send deadline still applies;
    /// values over a day count as a day).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.http.request_timeout = capped(timeout);
        self
    }

    /// How throttled and failed requests are retried.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Uses this HTTP client instead of one made from the settings (proxies, custom TLS).
    /// Build it with `redirect(reqwest::redirect::Policy::none())`: a client that follows
    /// redirects would send the bearer token wherever Graph's answer points.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Uses these credentials instead of the ones given to [`GraphTransport::builder`].
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// The Graph endpoint (default [`DEFAULT_ENDPOINT`]): a national cloud's, a proxy's or a
    /// test server's. `https`, or plain `http` for localhost only. It does not change the
    /// token scope: see [`scope`](Self::scope).
    pub fn graph_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// The scope of the tokens Graph is sent (default [`DEFAULT_SCOPE`]): the cloud's Graph
    /// resource with `/.default`, e.g. `https://graph.microsoft.us/.default`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Trust the root certificates in this PEM file too, for Graph.
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.http.tls_ca_file = Some(path.into());
        self
    }

    /// Whether Graph keeps a copy in the mailbox's Sent Items (default `true`).
    pub fn save_to_sent_items(mut self, save: bool) -> Self {
        self.save_to_sent_items = save;
        self
    }

    /// Whether emails may name another From address (needs Exchange Send As rights).
    pub fn allow_send_as(mut self, allow: bool) -> Self {
        self.allow_send_as = allow;
        self
    }

    /// Builds the transport.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] naming `graph_endpoint` when it is not an `https` URL (or
    /// `http` on localhost) that can hold a path, or naming `tls_ca_file` when its
    /// certificates cannot be used.
    pub fn build(self) -> Result<GraphTransport> {
        let endpoint = https_url("graph_endpoint", "Graph endpoint", &self.endpoint)?;
        if endpoint.cannot_be_a_base() {
            return Err(Error::settings(
                "graph_endpoint",
                "Graph endpoint (`graph_endpoint`) cannot hold a path",
            ));
        }
        let http = match self.http_client {
            Some(client) => client,
            None => http_client(&self.http)?,
        };
        Ok(GraphTransport {
            client: GraphClient {
                http,
                credentials: self.credentials,
                scope: self.scope,
                permits: Arc::new(Semaphore::new(self.max_concurrency)),
                retry: RetryPolicy {
                    deadline: Some(self.send_deadline),
                    ..self.retry
                },
                request_timeout: self.http.request_timeout,
                state: Arc::new(MailboxState::default()),
            },
            endpoint,
            mailbox: self.mailbox,
            save_to_sent_items: self.save_to_sent_items,
            allow_send_as: self.allow_send_as,
            send_deadline: self.send_deadline,
        })
    }
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
        );
        async {
            let from = self.sender_for(email)?;
            for (index, attachment) in email.attachments().iter().enumerate() {
                if attachment.size() > MAX_ATTACHMENT_SIZE {
                    return Err(Error::invalid_message(
                        format!("attachments[{index}]"),
                        format!(
                            "`{}` is {} bytes; Microsoft Graph accepts attachments up to 150 MB",
                            attachment.name(),
                            attachment.size()
                        ),
                    ));
                }
            }
            let deadline = Instant::now() + self.send_deadline;
            let body = match Self::may_fit_in_one_request(email) {
                true => Some(self.send_mail_body(email, from).await?),
                false => None,
            };
            let id = match body {
                Some(body) if body.len() as u64 <= REQUEST_LIMIT => {
                    self.send_mail(body, deadline).await?
                }
                _ => {
                    tracing::debug!("message too large for one request; using a draft");
                    self.send_with_draft(email, from, deadline).await?
                }
            };
            tracing::info!("Graph accepted the message");
            Ok(SendReport::single(SentMessage::new(
                email.recipients().collect(),
                id,
            )))
        }
        .instrument(span)
        .await
    }

    async fn check(&self) -> Result<CheckReport> {
        // One deadline (the send deadline) bounds the whole check, token included.
        let deadline = Instant::now() + self.send_deadline;
        let mut report = CheckReport::default();
        let steps = tokio::time::timeout_at(
            deadline,
            self.client
                .credentials
                .check_steps(&self.client.scope, &["Mail.Send"]),
        )
        .await;
        let Ok(steps) = steps else {
            let host = self
                .client
                .credentials
                .token_endpoint()
                .map(host_of)
                .unwrap_or_else(|| "the token source".to_owned());
            report.push(CheckStep::failed(
                "token",
                format!(
                    "no access token from the login host ({host}) within the check's deadline of {:?}",
                    self.send_deadline
                ),
                Some(
                    "check that this machine can reach the login host over HTTPS (firewall, \
                     proxy, DNS) and that `authority_host` and `cloud` are right"
                        .to_owned(),
                ),
            ));
            return Ok(report);
        };
        // The mailbox probe needs a token that carries Mail.Send; a secret that expires soon
        // (or already did, while a cached token lives on) does not stop it.
        let token_ok = steps
            .iter()
            .filter(|s| s.name == "token" || s.name == "permission")
            .all(|s| s.status != crate::transport::CheckStatus::Failed);
        for step in steps {
            report.push(step);
        }
        if let Ok(Ok(token)) = tokio::time::timeout_at(
            deadline,
            self.client.credentials.access_token(&self.client.scope),
        )
        .await
            && let Some(claims) = token.claims()
            && claims.has_role("Mail.Send")
            && !claims.has_role("Mail.ReadWrite")
        {
            report.push(CheckStep::warning(
                "large mail",
                "the token lacks Mail.ReadWrite: messages over 3 MB (sent through a draft) will fail",
                "add the Microsoft Graph `Mail.ReadWrite` Application permission and grant admin consent",
            ));
        }
        if token_ok {
            report.push(self.probe_mailbox(deadline).await);
        }
        Ok(report)
    }
}
