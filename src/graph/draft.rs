//! Large attachments: a draft, attachments added to it (inline under 3 MB, through an
//! upload session above, see `upload`), then `/send`; the draft is deleted when the send
//! fails before it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::GraphTransport;
use super::call::{DRAFT_ANSWER_LIMIT, GraphRequest, Repeat};
use super::error::{GraphFailure, NOT_SENT, UNCERTAIN};
use super::request::{self, CreatedMessage, FileAttachment};
use super::response::attachment_not_created;
use super::upload::Which;
use super::{INLINE_ATTACHMENT_LIMIT, REQUEST_LIMIT};
use crate::error::{Delivery, Error, Result};
use crate::message::{Attachment, Email, Mailbox};

impl GraphTransport {
    pub(super) async fn send_with_draft(
        &self,
        email: &Email,
        from: Option<&Mailbox>,
        deadline: Instant,
    ) -> Result<Option<String>> {
        let message = request::message(email, from)?;
        let body = serde_json::to_vec(&message)
            .map_err(|e| Error::invalid_message("email", e.to_string()))?;
        // The draft holds everything but the attachments, in one request: when that alone
        // is over Graph's cap, no draft can carry the message.
        if body.len() as u64 > REQUEST_LIMIT {
            return Err(Error::invalid_message(
                "body",
                format!(
                    "the message is {} bytes as Graph's JSON without its attachments; a Graph \
                     request is capped at about 4 MB: shorten the text or HTML body, or move \
                     content into an attachment",
                    body.len()
                ),
            ));
        }
        let url = self.url(&["messages"])?;
        let create =
            GraphRequest::post_json("create draft", &url, body, Repeat::OnlyIfNotProcessed);
        self.send_as_draft(create, email.attachments(), deadline)
            .await
    }

    /// The draft path, whichever form made the draft: `create` makes it, the `attachments`
    /// are added to it (a plain POST under 3 MB, an upload session above), then `/send`. The
    /// draft is deleted when the send certainly did not happen; its id is the message id.
    pub(super) async fn send_as_draft(
        &self,
        create: GraphRequest<'_>,
        attachments: &[Attachment],
        deadline: Instant,
    ) -> Result<Option<String>> {
        let mut guard = match self.create_draft(create, deadline).await {
            Ok(guard) => guard,
            Err(CreateFailed::Request(error)) => {
                // Unanswered, the draft may exist all the same (its id never came back).
                let maybe_created = error.delivery() == Delivery::Uncertain;
                let mut error = not_sent(error);
                note(
                    &mut error,
                    &match maybe_created {
                        true => format!(
                            " — the mail was not sent, but a draft of it may have been created in \
                         the Drafts folder of `{}`",
                            self.mailbox().address()
                        ),
                        false => NOT_SENT.to_owned(),
                    },
                );
                return Err(error);
            }
            Err(CreateFailed::Answer(mut error)) => {
                note(
                    &mut error,
                    &format!(
                        " — the mail was not sent, but a draft of it may be in the Drafts folder \
                     of `{}`",
                        self.mailbox().address()
                    ),
                );
                return Err(error);
            }
        };
        tracing::debug!("draft created for a large message");
        // The guard deletes the draft when the send is dropped (a timeout around it, a worker
        // shut down) before it ends.
        let draft_id = guard.id.clone();

        let mut added = Ok(());
        for (i, attachment) in attachments.iter().enumerate() {
            let which = Which {
                number: i + 1,
                name: attachment.name(),
            };
            added = self
                .add_attachment(&draft_id, attachment, which, deadline)
                .await;
            if added.is_err() {
                break;
            }
        }
        // Once `/send` is handed to the HTTP client, the draft may be the message Graph is
        // sending (a dropped send's request still finishes): from then on it is never deleted
        // on a drop. Until then (the request waiting for a token, a slot or a pause), and
        // while a refused attempt waits to be tried again (a 429's `Retry-After`), it is.
        let result = match added.and_then(|()| self.url(&["messages", &draft_id, "send"])) {
            Ok(url) => self
                .client
                .execute(
                    &GraphRequest {
                        handed_over: Some(&guard.handed_over),
                        ..GraphRequest::post_empty("send draft", &url)
                    },
                    deadline,
                )
                .await
                .and_then(|answer| answer.sent("send draft"))
                .map(drop),
            Err(error) => Err(error),
        };
        // A draft certainly not sent is deleted, in the guard's task: a send dropped while
        // the deletion runs (it may wait out a `Retry-After`) does not leave the draft. One
        // sent, or maybe sent, is kept.
        let deletion = match &result {
            Err(error) if error.delivery() == Delivery::NotSent => guard.delete_in_task(),
            _ => {
                guard.transport = None;
                None
            }
        };
        match result {
            Ok(()) => Ok(Some(draft_id)),
            Err(mut error) => {
                let left = match error.delivery() {
                    Delivery::NotSent => match deleted(deletion).await {
                        Ok(()) => {
                            note(
                                &mut error,
                                " — the mail was not sent (its draft was deleted)",
                            );
                            return Err(error);
                        }
                        Err(why) => format!(
                            " — the mail was not sent, and its draft could not be deleted \
                             ({why}): delete it from the Drafts folder of `{}`",
                            self.mailbox().address()
                        ),
                    },
                    Delivery::Uncertain => format!(
                        "; if it was not delivered, its draft is still in the Drafts folder of \
                         `{}`",
                        self.mailbox().address()
                    ),
                };
                if !note(&mut error, &left) {
                    tracing::warn!(%error, "{}", left.trim_start_matches([' ', '—', ';']));
                }
                Err(error)
            }
        }
    }

    /// Makes the draft with `create`, in a task of its own: when the send is dropped while
    /// Graph makes the draft (a timeout around the send, a worker shut down), the request
    /// still finishes (Graph works on it whatever the caller does), and the draft it made is
    /// then deleted rather than left in the Drafts folder; no further attempt (a retry after
    /// a 429) is started. The guard that deletes it is made in that task and handed over:
    /// dropped unread, it deletes the draft too.
    async fn create_draft(
        &self,
        create: GraphRequest<'_>,
        deadline: Instant,
    ) -> std::result::Result<DraftGuard, CreateFailed> {
        let GraphRequest {
            operation,
            method,
            url,
            body,
            headers,
            authorize,
            repeat,
            waits_for_pause,
            ..
        } = create;
        let url = url.clone();
        let transport = self.clone();
        let (made, draft) = tokio::sync::oneshot::channel();
        let task = async move {
            // Once the send is gone, nobody waits for the draft: no attempt to make it is
            // started any more (a retry would make a draft only to delete it).
            let wanted = || !made.is_closed();
            let create = GraphRequest {
                operation,
                method,
                url: &url,
                body,
                headers,
                authorize,
                repeat,
                answer_limit: DRAFT_ANSWER_LIMIT,
                waits_for_pause,
                handed_over: None,
                wanted: Some(&wanted),
            };
            let outcome = match transport.client.execute(&create, deadline).await {
                Err(error) => Err(CreateFailed::Request(error)),
                Ok(created) => match created.json::<CreatedMessage>("create draft") {
                    Ok(draft) => Ok(DraftGuard {
                        transport: Some(transport),
                        id: draft.id,
                        handed_over: AtomicBool::new(false),
                    }),
                    Err(error) => Err(CreateFailed::Answer(error)),
                },
            };
            // When the send is gone, the guard comes back and, dropped, deletes the draft.
            let _ = made.send(outcome);
        };
        // In the send's span: what the task logs is the send's.
        tokio::spawn(tracing::Instrument::in_current_span(task));
        draft.await.unwrap_or_else(|_| {
            Err(CreateFailed::Request(
                GraphFailure::local(
                    "create draft",
                    "the request that makes the draft ended without an outcome (the runtime \
                     is shutting down)"
                        .to_owned(),
                    true,
                )
                .into_error(),
            ))
        })
    }

    /// Adds one attachment to the draft: in one `POST …/attachments` when that request fits
    /// Graph's 4 MB cap, else through an upload session (for 3 to 150 MB). Between the two —
    /// under 3 MiB, yet over 4 MB once base64-encoded — Graph's documents say neither which
    /// "3 MB" is meant nor where the cap lies exactly: the upload session comes first, and a
    /// refusal as too small falls back to the one request.
    pub(super) async fn add_attachment(
        &self,
        draft_id: &str,
        attachment: &Attachment,
        which: Which<'_>,
        deadline: Instant,
    ) -> Result<()> {
        let mut post = None;
        if attachment.size() < INLINE_ATTACHMENT_LIMIT {
            let bytes = attachment.load().await?;
            let body = serde_json::to_vec(&FileAttachment::new(attachment, &bytes))
                .map_err(|e| Error::invalid_message("attachments", e.to_string()))?;
            if body.len() as u64 <= REQUEST_LIMIT {
                return self.post_attachment(draft_id, body, deadline).await;
            }
            post = Some(body);
        }
        let result = self
            .upload_attachment(draft_id, attachment, which, deadline)
            .await;
        if let (
            Err(Error::Graph {
                code: Some(code), ..
            }),
            Some(body),
        ) = (&result, post)
            && code == "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"
        {
            tracing::debug!("too small for an upload session; adding it in one request");
            return self.post_attachment(draft_id, body, deadline).await;
        }
        result
    }

    /// `POST …/attachments` with a `fileAttachment`.
    async fn post_attachment(
        &self,
        draft_id: &str,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Result<()> {
        let url = self.url(&["messages", draft_id, "attachments"])?;
        let added = self
            .client
            .execute(
                &GraphRequest::post_json("add attachment", &url, body, Repeat::OnlyIfNotProcessed),
                deadline,
            )
            .await
            .map_err(not_sent)?;
        // Graph adds an attachment with 201 Created; any other answer (a proxy's page) may
        // leave the draft without it, and `/send` would deliver the message without it.
        if added.status != reqwest::StatusCode::CREATED {
            return Err(attachment_not_created(
                "add attachment",
                added.status,
                added.request_id(),
            ));
        }
        Ok(())
    }

    /// Deletes a draft that was not sent; the error's text (never secret) when it fails.
    pub(super) async fn delete_draft(&self, draft_id: &str) -> std::result::Result<(), String> {
        let url = self
            .url(&["messages", draft_id])
            .map_err(|e| e.to_string())?;
        // Its own short deadline: the send's may be what just ran out.
        let deadline = Instant::now() + Duration::from_secs(15);
        let result = self
            .client
            .execute(&GraphRequest::delete("delete draft", &url), deadline)
            .await;
        match result {
            Ok(_) => {
                tracing::info!("deleted the draft of a message that was not sent");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "could not delete the draft of an unsent message");
                Err(match error {
                    Error::Graph {
                        status,
                        code,
                        message,
                        ..
                    } => match (status, code) {
                        (Some(status), Some(code)) => format!("HTTP {status} {code}: {message}"),
                        (Some(status), None) => format!("HTTP {status}: {message}"),
                        _ => message,
                    },
                    error => error.to_string(),
                })
            }
        }
    }
}

/// Adds `text` to a Graph error's message; `false` for another error, which has no room
/// for it. A text that says the mail was not sent replaces the words saying so already.
fn note(error: &mut Error, text: &str) -> bool {
    match error {
        Error::Graph { message, .. } => {
            if text.starts_with(NOT_SENT)
                && let Some(said) = message.strip_suffix(NOT_SENT)
            {
                message.truncate(said.len());
            }
            message.push_str(text);
            true
        }
        _ => false,
    }
}

/// Why no draft came of a `create draft` request.
enum CreateFailed {
    /// The request failed: no draft, or one whose id never came back.
    Request(Error),
    /// Graph answered, but not with a draft's id: a draft may exist all the same.
    Answer(Error),
}

/// A draft to delete if the send that made it is dropped before it ends: the deletion
/// runs in a task of its own, on the runtime the send ran on.
struct DraftGuard {
    transport: Option<GraphTransport>,
    id: String,
    /// Whether an attempt of the draft's `/send` is with the HTTP client (set when one is
    /// handed over, cleared when a refused one is to be tried again): the draft may then be
    /// the message Graph is sending, never to be deleted on a drop.
    handed_over: AtomicBool,
}

impl DraftGuard {
    /// Deletes the draft in a task of its own, which finishes whatever becomes of the send;
    /// its outcome, or `None` outside a runtime (the draft is then left). Disarms the guard.
    fn delete_in_task(&mut self) -> Option<tokio::task::JoinHandle<Result<(), String>>> {
        let transport = self.transport.take()?;
        let id = std::mem::take(&mut self.id);
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let task = async move { transport.delete_draft(&id).await };
        Some(runtime.spawn(tracing::Instrument::in_current_span(task)))
    }
}

impl Drop for DraftGuard {
    fn drop(&mut self) {
        if self.transport.is_none() || self.handed_over.load(Ordering::Acquire) {
            return;
        }
        match self.delete_in_task() {
            Some(_) => tracing::info!(
                "the send was dropped before its draft was sent; deleting the draft (not done \
                 if the runtime is shutting down)"
            ),
            None => tracing::warn!(
                "the send was dropped outside a runtime; its draft is left in the Drafts folder"
            ),
        }
    }
}

/// The outcome of a deletion run by [`DraftGuard::delete_in_task`].
async fn deleted(
    deletion: Option<tokio::task::JoinHandle<Result<(), String>>>,
) -> std::result::Result<(), String> {
    const NO_OUTCOME: &str = "the deletion ended without an outcome (the runtime is shutting down)";
    match deletion {
        Some(task) => task.await.unwrap_or_else(|_| Err(NO_OUTCOME.to_owned())),
        None => Err(NO_OUTCOME.to_owned()),
    }
}

pub(super) fn not_sent(mut error: Error) -> Error {
    // Nothing was sent before the draft's `/send`: an uncertain draft or attachment request
    // cannot have delivered mail, so trying the whole send again later is safe.
    if let Error::Graph {
        delivery,
        transient,
        status,
        message,
        ..
    } = &mut error
        && *delivery == Delivery::Uncertain
    {
        *delivery = Delivery::NotSent;
        *transient = status.is_none_or(|s| s >= 500);
        if let Some(said) = message.strip_suffix(UNCERTAIN) {
            message.truncate(said.len());
        }
    }
    error
}
