//! Large attachments: a draft, attachments added to it (inline under 3 MB, through an
//! upload session above), then `/send`; the draft is deleted when the send fails before it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::time::Instant;

use super::GraphTransport;
use super::call::{DRAFT_ANSWER_LIMIT, GraphRequest, Repeat, unexpected_answer};
use super::request::{
    self, AttachmentItem, CreateUploadSession, CreatedMessage, FileAttachment, UploadProgress,
    UploadSession,
};
use super::{INLINE_ATTACHMENT_LIMIT, UPLOAD_CHUNK_SIZE};
use crate::error::{Delivery, Error, Result};
use crate::message::{Attachment, AttachmentContent, Email, Mailbox};

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
        let created = self
            .client
            .execute(&create.with_answer_limit(DRAFT_ANSWER_LIMIT), deadline)
            .await
            .map_err(not_sent)?;
        let draft: CreatedMessage = created.json("create draft")?;
        tracing::debug!("draft created for a large message");

        let result = async {
            for attachment in attachments {
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

    pub(super) async fn add_attachment(
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
        // Parsed once for all its chunks; never quoted, it carries a credential.
        let upload_url = url::Url::parse(session.upload_url.expose_secret()).map_err(|_| {
            unexpected_answer(
                "create upload session",
                "the upload URL Graph returned is not a URL".to_owned(),
            )
        });
        self.upload(&upload_url.map_err(not_sent)?, attachment, deadline)
            .await
            .map_err(not_sent)
    }

    /// Streams the attachment to the upload URL in order, one chunk in memory at a time.
    async fn upload(
        &self,
        upload_url: &url::Url,
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
                        // The request owns (and shares between retries) this chunk; the
                        // next one is read into a new buffer.
                        std::mem::take(&mut buffer),
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

    pub(super) async fn delete_draft(&self, draft_id: &str) {
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
