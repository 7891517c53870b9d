//! The JSON Graph expects, with exactly its property names.
//!
//! `sendMail` takes `{"message": {...}, "saveToSentItems": bool}`; a draft (`POST
//! /users/{u}/messages`) takes the message object alone; `createUploadSession` takes
//! `{"AttachmentItem": {...}}`. Empty collections are omitted rather than sent empty:
//! Graph rejects an empty `internetMessageHeaders` array.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::message::{Attachment, Email, Importance, Mailbox};
use crate::secret::Secret;

/// Graph accepts at most this many `internetMessageHeaders`.
pub(crate) const MAX_HEADERS: usize = 5;

/// The `sendMail` request body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendMail<'a> {
    pub message: Message<'a>,
    pub save_to_sent_items: bool,
}

/// A Graph `message` resource, as far as sending needs it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Message<'a> {
    pub subject: &'a str,
    pub body: ItemBody<'a>,
    #[serde(skip_serializing_if = "Recipients::is_empty")]
    pub to_recipients: Recipients<'a>,
    #[serde(skip_serializing_if = "Recipients::is_empty")]
    pub cc_recipients: Recipients<'a>,
    #[serde(skip_serializing_if = "Recipients::is_empty")]
    pub bcc_recipients: Recipients<'a>,
    #[serde(skip_serializing_if = "Recipients::is_empty")]
    pub reply_to: Recipients<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Recipient<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub importance: Option<&'static str>,
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub internet_message_headers: Headers<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<FileAttachment<'a>>,
}

/// `itemBody`: one content type per message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ItemBody<'a> {
    pub content_type: &'static str,
    pub content: &'a str,
}

/// `recipient`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Recipient<'a> {
    pub email_address: EmailAddress<'a>,
}

/// `emailAddress`.
#[derive(Debug, Serialize)]
pub(crate) struct EmailAddress<'a> {
    /// As it goes on the wire: an IDN domain in ASCII, as over SMTP.
    pub address: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
}

/// Mailboxes as Graph `recipient`s, serialised straight from the email's own list (no
/// collection built for each send).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recipients<'a>(pub &'a [Mailbox]);

impl Recipients<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Recipients<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(recipient))
    }
}

/// The email's `X-` headers as `internetMessageHeader`s, serialised straight from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Headers<'a>(pub &'a [(String, String)]);

impl Headers<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Headers<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(name, value)| Header { name, value }))
    }
}

/// `internetMessageHeader`.
#[derive(Debug, Serialize)]
pub(crate) struct Header<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// `fileAttachment`, with its bytes in standard base64.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileAttachment<'a> {
    #[serde(rename = "@odata.type")]
    pub odata_type: &'static str,
    pub name: &'a str,
    pub content_type: &'a str,
    pub content_bytes: String,
    pub is_inline: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_id: Option<&'a str>,
}

impl<'a> FileAttachment<'a> {
    pub(crate) fn new(attachment: &'a Attachment, bytes: &[u8]) -> Self {
        Self {
            odata_type: "#microsoft.graph.fileAttachment",
            name: attachment.name(),
            content_type: attachment.content_type(),
            content_bytes: base64::engine::general_purpose::STANDARD.encode(bytes),
            is_inline: attachment.is_inline(),
            content_id: attachment.content_id(),
        }
    }
}

/// The `createUploadSession` request body.
#[derive(Debug, Serialize)]
pub(crate) struct CreateUploadSession<'a> {
    #[serde(rename = "AttachmentItem")]
    pub attachment_item: AttachmentItem<'a>,
}

/// `attachmentItem`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttachmentItem<'a> {
    pub attachment_type: &'static str,
    pub name: &'a str,
    pub size: u64,
    pub content_type: &'a str,
    pub is_inline: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_id: Option<&'a str>,
}

impl<'a> AttachmentItem<'a> {
    pub(crate) fn new(attachment: &'a Attachment) -> Self {
        Self {
            attachment_type: "file",
            name: attachment.name(),
            size: attachment.size(),
            content_type: attachment.content_type(),
            is_inline: attachment.is_inline(),
            content_id: attachment.content_id(),
        }
    }
}

/// What `createUploadSession` returns. The upload URL carries its own credential, so it is
/// held as a [`Secret`] and never printed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadSession {
    pub upload_url: Secret,
}

/// What a draft `POST /messages` returns (only the id matters).
#[derive(Debug, Deserialize)]
pub(crate) struct CreatedMessage {
    pub id: String,
}

/// What an intermediate upload `PUT` returns, and what a `GET` on the upload URL returns:
/// where the session stands.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadProgress {
    /// The byte ranges the session still expects: for an Outlook attachment one value,
    /// `"{start}"`; OneDrive's form, `"{start}-{end}"` or `"{start}-"`, is read too. Absent
    /// when the answer does not say.
    #[serde(default)]
    pub next_expected_ranges: Option<Vec<String>>,
}

/// What an upload session says it expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expected {
    /// The bytes from this offset on.
    From(u64),
    /// Nothing more: it holds the whole file.
    Nothing,
    /// The answer does not say (no `nextExpectedRanges`, or one that is not a byte offset).
    Unknown,
}

impl UploadProgress {
    /// The answer `body` of an upload `PUT` or `GET`; one that is not this JSON says nothing.
    pub(crate) fn from_answer(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// The first byte the session expects: the lowest start of its expected ranges.
    pub(crate) fn expected(&self) -> Expected {
        let Some(ranges) = &self.next_expected_ranges else {
            return Expected::Unknown;
        };
        let mut first = None::<u64>;
        for range in ranges {
            let start = range.split('-').next().unwrap_or_default().trim();
            let Ok(start) = start.parse::<u64>() else {
                return Expected::Unknown;
            };
            first = Some(first.map_or(start, |first| first.min(start)));
        }
        first.map_or(Expected::Nothing, Expected::From)
    }
}

fn recipient(mailbox: &Mailbox) -> Recipient<'_> {
    Recipient {
        email_address: EmailAddress {
            address: mailbox.wire_address(),
            name: mailbox.name(),
        },
    }
}

/// The message object for `email`, without attachments.
///
/// Graph's body has one content type: with both bodies the HTML is sent and the text is not
/// (Graph offers no `multipart/alternative` in JSON; mail clients render the HTML, and Exchange
/// derives a text part when a recipient needs one).
///
/// # Errors
///
/// [`Error::InvalidMessage`] naming `headers` when the email has more custom headers than
/// Graph accepts.
pub(crate) fn message<'a>(email: &'a Email, from: Option<&'a Mailbox>) -> Result<Message<'a>> {
    if email.headers().len() > MAX_HEADERS {
        return Err(Error::invalid_message(
            "headers",
            format!(
                "the email has {} custom headers; Microsoft Graph accepts at most {MAX_HEADERS}",
                email.headers().len()
            ),
        ));
    }
    let body = match (email.text(), email.html()) {
        (_, Some(html)) => ItemBody {
            content_type: "HTML",
            content: html,
        },
        (text, None) => ItemBody {
            content_type: "Text",
            content: text.unwrap_or_default(),
        },
    };
    Ok(Message {
        subject: email.subject(),
        body,
        to_recipients: Recipients(email.to()),
        cc_recipients: Recipients(email.cc()),
        bcc_recipients: Recipients(email.bcc()),
        reply_to: Recipients(email.reply_to()),
        from: from.map(recipient),
        importance: match email.importance() {
            Importance::Normal => None,
            Importance::Low => Some("low"),
            Importance::High => Some("high"),
        },
        internet_message_headers: Headers(email.headers()),
        attachments: Vec::new(),
    })
}

/// About the length of the `sendMail` JSON of `email` with `attachments` bytes of base64 in
/// it: its text plus the JSON around each part, so that the body is written into one buffer
/// of about its final size — neither grown and copied on the way, nor far larger than needed.
pub(crate) fn send_mail_len(email: &Email, attachments: u64) -> u64 {
    // The JSON around each part, rounded up: the message's fixed members, a recipient's
    // `{"emailAddress":{"address":"","name":""}}`, a header's `{"name":"","value":""}` and an
    // attachment's fixed members.
    const FIXED: usize = 192;
    const PER_RECIPIENT: usize = 48;
    const PER_HEADER: usize = 24;
    const PER_ATTACHMENT: usize = 144;
    let mailboxes = [email.to(), email.cc(), email.bcc(), email.reply_to()];
    let recipients: usize = mailboxes
        .iter()
        .flat_map(|list| list.iter())
        .chain(email.from())
        .map(|m| PER_RECIPIENT + m.wire_address().len() + m.name().map_or(0, str::len))
        .sum();
    let headers: usize = email
        .headers()
        .iter()
        .map(|(name, value)| PER_HEADER + name.len() + value.len())
        .sum();
    let files: usize = email
        .attachments()
        .iter()
        .map(|a| PER_ATTACHMENT + a.name().len() + a.content_type().len())
        .sum();
    let text = email.subject().len() + email.html().or(email.text()).map_or(0, str::len);
    // Room for a few escaped characters (quotes, line breaks) in the text.
    let text = text + text / 16;
    (FIXED + recipients + headers + files + text) as u64 + attachments
}

/// The size of `n` bytes in base64.
pub(crate) const fn base64_len(n: u64) -> u64 {
    n.div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_graphs_documented_example() {
        let email = Email::builder()
            .to("Samantha <samanthab@contoso.com>")
            .cc("danas@contoso.com")
            .subject("Meet for lunch?")
            .text("The new cafeteria is open.")
            .build()
            .unwrap();
        let body = SendMail {
            message: message(&email, None).unwrap(),
            save_to_sent_items: false,
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "message": {
                    "subject": "Meet for lunch?",
                    "body": {"contentType": "Text", "content": "The new cafeteria is open."},
                    "toRecipients": [{"emailAddress": {"address": "samanthab@contoso.com", "name": "Samantha"}}],
                    "ccRecipients": [{"emailAddress": {"address": "danas@contoso.com"}}]
                },
                "saveToSentItems": false
            })
        );
    }

    /// The estimate covers the JSON actually written, escapes and attachments included,
    /// without being far larger: one allocation of about the right size. Past the first two,
    /// each email has most of its JSON in one part, so that each part's share counts.
    #[tokio::test]
    async fn the_length_estimate_covers_the_json_written() {
        let to_ann = || Email::builder().to("ann@example.org").text("t");
        let headers = (0..5).fold(to_ann().subject("Headers"), |b, i| {
            b.header(format!("X-Correlation-Context-{i}"), "v".repeat(150))
        });
        let file_names = (0..3).fold(to_ann().subject("Files"), |b, i| {
            b.attachment(
                Attachment::from_bytes(
                    format!("quarterly-report-{i}-with-a-long-name.xlsx"),
                    [1u8],
                )
                .with_content_type(
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                ),
            )
        });
        let emails = [
            Email::builder()
                .to("Ann Example <ann@example.org>")
                .subject("Your export is ready")
                .text("Download it from the portal.")
                .build()
                .unwrap(),
            Email::builder()
                .to("a@example.org")
                .cc("Bea \"B\" Example <b@example.org>")
                .bcc("c@example.org")
                .reply_to("d@example.org")
                .subject("Quotes \" and \\ backslashes")
                .html("<p>\"quoted\"</p>\n<p>two\tlines</p>")
                .header("X-Tag", "value")
                .importance(Importance::High)
                .build()
                .unwrap(),
            (0..20)
                .fold(to_ann().subject("Names"), |b, i| {
                    b.to(format!(
                        "Recipient Number {i:02} <recipient.{i:02}@example.org>"
                    ))
                })
                .build()
                .unwrap(),
            headers.build().unwrap(),
            file_names.build().unwrap(),
            // One character in twenty escaped.
            Email::builder()
                .to("ann@example.org")
                .subject("Quotes")
                .text(format!("\"{}", "x".repeat(19)).repeat(800))
                .build()
                .unwrap(),
            to_ann()
                .subject("Attachment")
                .attachment(Attachment::from_bytes("a.bin", vec![0; 30_000]))
                .build()
                .unwrap(),
        ];
        for email in &emails {
            let mut message = message(email, None).unwrap();
            let mut loaded = Vec::new();
            for attachment in email.attachments() {
                loaded.push(attachment.load().await.unwrap());
            }
            message.attachments = (email.attachments().iter().zip(&loaded))
                .map(|(attachment, bytes)| FileAttachment::new(attachment, bytes))
                .collect();
            let body = SendMail {
                message,
                save_to_sent_items: false,
            };
            let written = serde_json::to_vec(&body).unwrap().len() as u64;
            let attachments = email.attachments().iter().map(|a| base64_len(a.size()));
            let estimate = send_mail_len(email, attachments.sum());
            assert!(
                estimate >= written && estimate <= 2 * written,
                "estimate {estimate} for {written} bytes of {:?}",
                email.subject()
            );
        }
    }

    #[test]
    fn an_upload_sessions_progress_is_its_first_expected_byte() {
        let expected = |json: &str| UploadProgress::from_answer(json.as_bytes()).expected();
        assert_eq!(
            expected(r#"{"nextExpectedRanges":["2097152"]}"#),
            Expected::From(2_097_152)
        );
        assert_eq!(
            expected(r#"{"nextExpectedRanges":["12-"]}"#),
            Expected::From(12)
        );
        assert_eq!(
            expected(r#"{"nextExpectedRanges":["40-49","7-9"]}"#),
            Expected::From(7)
        );
        assert_eq!(expected(r#"{"nextExpectedRanges":[]}"#), Expected::Nothing);
        assert_eq!(
            expected(r#"{"expirationDateTime":"2026-01-01T00:00:00Z"}"#),
            Expected::Unknown
        );
        assert_eq!(
            expected(r#"{"nextExpectedRanges":["soon"]}"#),
            Expected::Unknown
        );
        assert_eq!(expected("not json"), Expected::Unknown);
    }

    #[test]
    fn base64_sizes() {
        assert_eq!(base64_len(0), 0);
        assert_eq!(base64_len(1), 4);
        assert_eq!(base64_len(3), 4);
        assert_eq!(base64_len(4), 8);
    }
}
