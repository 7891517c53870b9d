//! Graph's MIME form of `sendMail`: the whole RFC 5322 message, base64-encoded, as a
//! `Content-Type: text/plain` body. Used when the JSON form cannot carry the email (see
//! [which form is used](super#which-form-is-used)).
//!
//! The message is the one the outbox writes — the same MIME writer as SMTP — with its `Bcc`
//! header: Exchange reads the recipients from `To`, `Cc` and `Bcc` and removes `Bcc` before
//! delivery. A message over [`MIME_REQUEST_LIMIT`] (2,000,000 bytes of MIME, well under Graph's 4 MB
//! request cap once base64) goes through a draft made from the MIME without any of its
//! attachments (`POST /users/{u}/messages`, `text/plain`), every attachment then added to the
//! draft as on the JSON draft path (a plain `POST` under 3 MB, an upload session above), then
//! `/send`. (Small attachments left in the MIME would be base64'd twice, about ×1.8, and keep
//! the draft over the limit.) For a prepared message the attachment parts are cut out of its
//! bytes at the offsets mail-parser reports (with their boundary delimiters) and their decoded
//! content added; a message still over the limit without them is refused before anything is
//! sent.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::time::Instant;

use super::call::{GraphRequest, Repeat};
use super::request::{MAX_HEADERS, base64_len};
use super::{GraphTransport, REQUEST_LIMIT};
use crate::error::{Error, Result};
use crate::message::{
    Attachment, Email, Mailbox, is_x_header, split_attachments, with_envelope_headers,
};
use crate::mime::{BccHeader, render};

/// The largest MIME message (its raw bytes, before base64) given to Graph in one request —
/// `sendMail`, or the draft a larger message is made from: 2,000,000 bytes. Graph has been
/// seen to answer a MIME message over about 2,240 KB (the report does not say whether 1,000
/// or 1,024 bytes) with 200 (not the 202 Accepted of `sendMail` or the 201
/// Created of a draft) and not send it
/// (<https://github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/3079>), far below
/// its 4 MB request cap; a send answered 200 is uncertain and never retried, so every message
/// over it would fail. Larger messages go through a draft with their attachments added apart.
pub(super) const MIME_REQUEST_LIMIT: usize = 2_000_000;

// The limit fits Graph's request cap once base64-encoded.
const _: () = assert!(base64_len(MIME_REQUEST_LIMIT as u64) <= REQUEST_LIMIT);

/// Whether the JSON form cannot carry `email`, so the MIME form is needed: a prepared
/// message, both a text and an HTML body, more than five headers, or any header that is not
/// an `X-` header (the JSON form refuses them; a caller's `Message-ID` is one).
pub(super) fn needed(email: &Email) -> bool {
    email.mime().is_some()
        || (email.text().is_some() && email.html().is_some())
        || email.headers().len() > MAX_HEADERS
        || email.headers().iter().any(|(name, _)| !is_x_header(name))
}

/// A message too large for one request even without its attachments.
fn too_large(len: usize) -> Error {
    Error::invalid_message(
        "mime",
        format!(
            "the message is {len} bytes of MIME without the attachments that can be added to \
             a draft apart; this crate gives Graph {MIME_REQUEST_LIMIT} bytes of MIME at most \
             (Graph has been seen to answer a larger message with 200 and not send it): send \
             it over SMTP, or make its bodies (or a prepared message's parts kept inline) \
             smaller"
        ),
    )
}

/// The error for a prepared message over the limit whose attachments cannot be cut out to
/// be added to a draft apart: it has none outside its bodies, or its MIME structure cannot
/// be read.
fn unsplittable(len: usize) -> Error {
    Error::invalid_message(
        "mime",
        format!(
            "the prepared message is {len} bytes of MIME, more than the {MIME_REQUEST_LIMIT} \
             bytes this crate gives Graph in one request, and no attachment can be cut out of \
             it to be added to a draft apart (it has none outside its bodies, or its MIME \
             structure cannot be read): send it over SMTP, make its bodies smaller, or build \
             it with `Email::builder` so that its attachments are added apart"
        ),
    )
}

/// A `text/plain` POST of base64 MIME, never repeated once Graph may have acted.
fn post_mime<'a>(operation: &'static str, url: &'a url::Url, mime: &[u8]) -> GraphRequest<'a> {
    GraphRequest {
        body: Some(("text/plain", STANDARD.encode(mime).into_bytes().into())),
        ..GraphRequest::post_json(operation, url, Vec::new(), Repeat::OnlyIfNotProcessed)
    }
}

impl GraphTransport {
    /// Sends `email` in the MIME form — in one `sendMail` up to [`MIME_REQUEST_LIMIT`], else
    /// through a draft; returns Graph's request id (or the draft's id).
    pub(super) async fn send_mime_form(
        &self,
        email: &Email,
        from: Option<&Mailbox>,
        deadline: Instant,
    ) -> Result<Option<String>> {
        let sender = from.unwrap_or(&self.mailbox);
        let mime = match email.mime() {
            Some(_) => with_envelope_headers(email)?,
            None => render(email, sender, BccHeader::Keep, None).await?.bytes,
        };
        if mime.len() <= MIME_REQUEST_LIMIT {
            let url = self.url(&["sendMail"])?;
            return self
                .client
                .execute(&post_mime("sendMail", &url, &mime), deadline)
                .await?
                .sent("sendMail");
        }
        tracing::debug!("MIME message too large for one request; using a draft");
        let (mime, attachments) = match email.mime() {
            Some(_) => split_attachments(&mime).ok_or_else(|| unsplittable(mime.len()))?,
            None => {
                let bare = email.without_attachments(|_: &Attachment| true);
                let mime = render(&bare, sender, BccHeader::Keep, None).await?.bytes;
                (mime, email.attachments().to_vec())
            }
        };
        self.send_mime_draft(&mime, &attachments, deadline).await
    }

    /// A draft made from `mime` (the message without its attachments), the `attachments`
    /// added to it (a plain POST under 3 MB, an upload session above), then `/send`. The
    /// draft is deleted when the send fails before `/send`.
    async fn send_mime_draft(
        &self,
        mime: &[u8],
        attachments: &[Attachment],
        deadline: Instant,
    ) -> Result<Option<String>> {
        if mime.len() > MIME_REQUEST_LIMIT {
            return Err(too_large(mime.len()));
        }
        let url = self.url(&["messages"])?;
        self.send_as_draft(post_mime("create draft", &url, mime), attachments, deadline)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> crate::EmailBuilder {
        Email::builder().to("ann@example.org").subject("s")
    }

    #[test]
    fn json_carries_what_it_can() {
        let five_x = (0..5).fold(base().html("<p>h</p>"), |b, i| {
            b.header(format!("X-H{i}"), "v")
        });
        assert!(!needed(&five_x.build().unwrap()));
        assert!(!needed(&base().text("t").build().unwrap()));
    }

    #[test]
    fn mime_carries_the_rest() {
        let cases = [
            base().text("t").html("<p>h</p>"),
            base().header("List-Unsubscribe", "<https://example.org/u>"),
            base().header("Message-ID", "<a@example.org>"),
            (0..6).fold(base(), |b, i| b.header(format!("X-H{i}"), "v")),
            Email::builder().mime("From: a@example.org\r\nTo: b@example.org\r\n\r\nx"),
        ];
        for builder in cases {
            assert!(needed(&builder.build().unwrap()));
        }
    }
}
