//! A large attachment's upload session (3 to 150 MB): `createUploadSession` on the draft,
//! then `PUT`s of 3,276,800-byte ranges, in order, to the pre-authenticated upload URL.
//!
//! # Resuming where the session stands
//!
//! A range whose `PUT` got no answer (a timeout, a dropped connection, a 5xx) may or may not
//! be in the session, and a range the session holds already is refused with 416. A success
//! counts only when it says where the session stands: 201 Created for the range that
//! completes the file, `nextExpectedRanges` for the others; any other (a 200 without
//! ranges: a proxy's page, an answer cut off) is as unclear as no answer. Either way
//! the range is not sent again blindly: the upload asks the session where it stands (a
//! `GET` on the upload URL, without `Authorization`, answered with `nextExpectedRanges`)
//! and continues from the first byte it expects, reading the file from there. A session
//! that expects nothing more holds the whole file. A resume that moves the session forward
//! costs nothing more than that `GET`; one that does not (the session asks again for bytes
//! it was sent, or goes back) is a retry of the range, under the transport's
//! [`RetryPolicy`](crate::RetryPolicy) (its backoff, `max_retries` and `deadline`) and the
//! send deadline. Past them the send fails as not sent and transient, the error naming the
//! attachment by number and name.
//!
//! # A session that is gone
//!
//! Upload sessions expire (each range extends them). An upload URL that answers 404 gets
//! one new session for the attachment, within the same send deadline, which uploads the
//! file from its start; a second 404 fails the send (transient). Not when the range that
//! completes the file went without a clear answer: the session may have completed (the
//! attachment exists) and closed, and a new one would attach the file twice. The send then
//! fails as not sent and transient, and its draft is deleted with the attachment.
//!
//! The upload URL carries its own credential: it is held as a [`Secret`](crate::Secret),
//! parsed once, and never quoted in an error or a log.

use std::fmt;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::time::Instant;

use super::GraphTransport;
use super::UPLOAD_CHUNK_SIZE;
use super::call::{GraphRequest, Repeat};
use super::draft::not_sent;
use super::error::{GraphFailure, STALLED_CODE, UPLOAD};
use super::request::{
    AttachmentItem, CreateUploadSession, Expected, UploadProgress, UploadSession,
};
use super::response::{GraphResponse, unexpected_answer};
use crate::error::{Delivery, Error, Result};
use crate::message::{Attachment, AttachmentContent};

/// Which attachment an upload is for, as errors and logs name it: its number in the email
/// (from 1) and its name. Never the upload URL.
#[derive(Debug, Clone, Copy)]
pub(super) struct Which<'a> {
    pub number: usize,
    pub name: &'a str,
}

impl fmt::Display for Which<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attachment {} (`{}`)", self.number, self.name)
    }
}

/// Why an upload to one session stopped short of the whole file.
enum Interrupted {
    /// The session is gone (404). `may_be_complete` when the range that completes the file
    /// went without a clear answer: the session may have ended by completing.
    Gone { error: Error, may_be_complete: bool },
    /// Any other failure: the send fails with it.
    Failed(Error),
}

impl GraphTransport {
    /// Uploads `attachment` to the draft through an upload session, resumed where the
    /// session stands after a range's outcome is unknown, and renewed once when the session
    /// is gone. Nothing is sent before the draft's `/send`, so its errors say not sent; they
    /// name the attachment (`which`).
    pub(super) async fn upload_attachment(
        &self,
        draft_id: &str,
        attachment: &Attachment,
        which: Which<'_>,
        deadline: Instant,
    ) -> Result<()> {
        self.upload_in_sessions(draft_id, attachment, which, deadline)
            .await
            .map_err(|error| named(not_sent(error), which))
    }

    async fn upload_in_sessions(
        &self,
        draft_id: &str,
        attachment: &Attachment,
        which: Which<'_>,
        deadline: Instant,
    ) -> Result<()> {
        let mut source = Source::open(attachment).await?;
        let mut renewed = false;
        loop {
            let upload_url = self
                .create_upload_session(draft_id, attachment, deadline)
                .await?;
            let outcome = self.upload(&upload_url, &mut source, which, deadline).await;
            match outcome {
                Ok(()) => return Ok(()),
                Err(Interrupted::Failed(error)) => return Err(error),
                Err(Interrupted::Gone {
                    may_be_complete: false,
                    ..
                }) if !renewed => {
                    renewed = true;
                    tracing::warn!(
                        attachment = which.number,
                        "the upload session is gone (expired or deleted); opening a new one \
                         and uploading the attachment again"
                    );
                }
                Err(Interrupted::Gone {
                    mut error,
                    may_be_complete,
                }) => {
                    if let Error::Graph {
                        message, transient, ..
                    } = &mut error
                    {
                        // Nothing was sent; a new send makes a new draft and session.
                        *transient = true;
                        message.push_str(match may_be_complete {
                            true => {
                                " (the range that completes the file went without an answer \
                                 and the session is gone, so it may hold the whole file: a new \
                                 session could attach it twice)"
                            }
                            false => " (the session was gone twice; a new one was tried once)",
                        });
                    }
                    return Err(error);
                }
            }
        }
    }

    /// `createUploadSession` for the attachment: its upload URL, parsed once.
    async fn create_upload_session(
        &self,
        draft_id: &str,
        attachment: &Attachment,
        deadline: Instant,
    ) -> Result<url::Url> {
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
            .await?;
        let session: UploadSession = created.json("create upload session")?;
        // Never quoted: it carries a credential.
        url::Url::parse(session.upload_url.expose_secret()).map_err(|_| {
            unexpected_answer(
                "create upload session",
                "the upload URL Graph returned is not a URL".to_owned(),
            )
        })
    }

    /// Sends the file to one session, range by range, one range in memory at a time; after
    /// a range with an unknown outcome (or refused as held already), from where the session
    /// says it stands.
    async fn upload(
        &self,
        upload_url: &url::Url,
        source: &mut Source<'_>,
        which: Which<'_>,
        deadline: Instant,
    ) -> std::result::Result<(), Interrupted> {
        let total = source.total;
        let mut offset = 0u64;
        // The furthest the session has said it holds: a resume that does not pass it is no
        // progress, and counts as a retry.
        let mut confirmed = 0u64;
        let mut stalls = 0u32;
        let mut stalled_since = None::<Instant>;
        // Whether the range that completes the file may be in the session.
        let mut may_be_complete = false;
        while offset < total {
            let len = (total - offset).min(UPLOAD_CHUNK_SIZE as u64) as usize;
            let end = offset + len as u64 - 1;
            // The request owns (and shares between its attempts) this chunk; the next one is
            // read into a new buffer.
            let chunk = source
                .read(offset, len)
                .await
                .map_err(Interrupted::Failed)?;
            let range = format!("bytes {offset}-{end}/{total}");
            let sent = self
                .client
                .execute(
                    &GraphRequest::upload_range(upload_url, range, chunk),
                    deadline,
                )
                .await;
            let completes = end + 1 == total;
            let said = match sent {
                Ok(answer) => stands_after(&answer, completes, total),
                Err(error) if is_gone(&error) => {
                    return Err(Interrupted::Gone {
                        error,
                        may_be_complete,
                    });
                }
                Err(error) if error.delivery() == Delivery::Uncertain || is_held(&error) => None,
                Err(error) => return Err(Interrupted::Failed(error)),
            };
            let next = match said {
                Some(next) => next,
                None => {
                    may_be_complete |= completes;
                    tracing::info!(
                        attachment = which.number,
                        from = offset,
                        "an upload range went without a clear answer, is held by the session \
                         already, or its answer does not say where the upload session stands; \
                         asking the session"
                    );
                    match self.upload_status(upload_url, deadline).await {
                        Ok(next) => next,
                        Err(error) if is_gone(&error) => {
                            return Err(Interrupted::Gone {
                                error,
                                may_be_complete,
                            });
                        }
                        Err(error) => return Err(Interrupted::Failed(error)),
                    }
                }
            };
            let next = next.min(total);
            if next > confirmed {
                confirmed = next;
                stalls = 0;
                stalled_since = None;
            } else {
                // The session asks again for bytes it was sent: a retry of them, under the
                // retry policy and the send deadline.
                let since = *stalled_since.get_or_insert_with(Instant::now);
                let remaining = deadline.saturating_duration_since(Instant::now());
                let delay = self
                    .client
                    .retry
                    .next_delay(stalls, since.elapsed(), None)
                    .filter(|delay| *delay < remaining);
                stalls += 1;
                let Some(delay) = delay else {
                    return Err(Interrupted::Failed(stalled(next, confirmed, stalls)));
                };
                tracing::info!(
                    attachment = which.number,
                    from = next,
                    resumes = stalls,
                    "the upload session did not move forward; sending from where it stands"
                );
                tokio::time::sleep(delay).await;
            }
            offset = next;
        }
        Ok(())
    }

    /// Where the session stands: the first byte it expects, or the file's end when it
    /// expects nothing more. (A `GET` on the upload URL, without `Authorization`.)
    async fn upload_status(&self, upload_url: &url::Url, deadline: Instant) -> Result<u64> {
        let answer = self
            .client
            .execute(&GraphRequest::upload_status(upload_url), deadline)
            .await?;
        if let Some(reason) = &answer.unread {
            return Err(unexpected_answer(UPLOAD, reason.clone()));
        }
        match UploadProgress::from_answer(&answer.body).expected() {
            Expected::From(start) => Ok(start),
            Expected::Nothing => Ok(u64::MAX),
            Expected::Unknown => Err(unexpected_answer(
                UPLOAD,
                "the upload session's status has no byte offset in `nextExpectedRanges`".to_owned(),
            )),
        }
    }
}

/// Where the session stands after a range it answered with a success, when the answer says
/// so: Graph answers the range that completes the file with 201 Created (the attachment is
/// made), and any other range with 200 and the bytes it expects next
/// (`nextExpectedRanges`). Any other success — a 200 without ranges (a proxy's page, an
/// answer cut off), one that expects nothing or nothing within the file — says nothing
/// certain, and the session is asked (`None`), as after a range that went unanswered: the
/// draft is never sent on an answer that may hide a missing part of its attachment.
fn stands_after(answer: &GraphResponse, completes: bool, total: u64) -> Option<u64> {
    if completes && answer.status == reqwest::StatusCode::CREATED {
        return Some(total);
    }
    match UploadProgress::from_answer(&answer.body).expected() {
        Expected::From(start) if start < total => Some(start),
        Expected::From(_) | Expected::Nothing | Expected::Unknown => None,
    }
}

/// A 404 from the upload URL: the session expired or was deleted.
fn is_gone(error: &Error) -> bool {
    matches!(
        error,
        Error::Graph {
            status: Some(404),
            ..
        }
    )
}

/// A 416: the session holds the range already (or no longer expects it).
fn is_held(error: &Error) -> bool {
    matches!(
        error,
        Error::Graph {
            status: Some(416),
            ..
        }
    )
}

/// A session that did not move past `confirmed` however often the upload resumed.
fn stalled(next: u64, confirmed: u64, resumes: u32) -> Error {
    GraphFailure {
        code: Some(STALLED_CODE.to_owned()),
        ..GraphFailure::local(
            UPLOAD,
            format!(
                "the upload session asked for byte {next} after {resumes} resume(s) without \
                 moving past byte {confirmed} of the file; gave up within the retry policy \
                 and the send deadline"
            ),
            true,
        )
    }
    .into_error()
}

/// Names the attachment at the start of a Graph error's message.
fn named(mut error: Error, which: Which<'_>) -> Error {
    if let Error::Graph { message, .. } = &mut error {
        *message = format!("{which}: {message}");
    }
    error
}

/// The attachment's bytes, read one range at a time: a file is opened once (and checked
/// against the size it had when attached), and read from wherever the session stands.
struct Source<'a> {
    content: Content<'a>,
    total: u64,
}

enum Content<'a> {
    File {
        file: tokio::fs::File,
        path: &'a Path,
        /// Where the file's cursor is: a range elsewhere seeks first.
        position: u64,
    },
    Bytes(&'a [u8]),
}

impl<'a> Source<'a> {
    async fn open(attachment: &'a Attachment) -> Result<Self> {
        let total = attachment.size();
        let content = match attachment.content() {
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
                Content::File {
                    file,
                    path,
                    position: 0,
                }
            }
            AttachmentContent::Bytes(bytes) => Content::Bytes(bytes),
        };
        Ok(Self { content, total })
    }

    /// The `len` bytes from `offset`.
    async fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        match &mut self.content {
            Content::File {
                file,
                path,
                position,
            } => {
                let io = |e| Error::io("read the attachment", *path, e);
                if *position != offset {
                    file.seek(std::io::SeekFrom::Start(offset))
                        .await
                        .map_err(io)?;
                }
                let mut buffer = vec![0; len];
                // Unknown until the read succeeds: a failed one ends the upload anyway.
                *position = u64::MAX;
                file.read_exact(&mut buffer).await.map_err(io)?;
                *position = offset + len as u64;
                Ok(buffer)
            }
            Content::Bytes(bytes) => Ok(bytes[offset as usize..][..len].to_vec()),
        }
    }
}
