//! What Graph received for one send, put back together from its requests: the JSON message
//! or the MIME, and the attachments added to a draft (upload sessions' ranges joined).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use httpmock::{HttpMockRequest, HttpMockResponse};
use mail_connector::{Attachment, AttachmentContent};
use mail_parser::{MessagePart, MimeHeaders};
use serde_json::{Value, json};

use crate::helpers::{MESSAGES, SEND_PATH};

/// One request to Graph.
pub(crate) struct Request {
    method: String,
    path: String,
    content_type: String,
    content_range: Option<String>,
    body: Vec<u8>,
}

impl From<&HttpMockRequest> for Request {
    fn from(request: &HttpMockRequest) -> Self {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        Self {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            content_type: header("content-type").unwrap_or_default(),
            content_range: header("content-range"),
            body: request.body_vec(),
        }
    }
}

/// `bytes {start}-{end}/{total}`.
fn range(header: &str) -> (u64, u64, u64) {
    let (span, total) = header
        .strip_prefix("bytes ")
        .and_then(|r| r.split_once('/'))
        .expect("a Content-Range");
    let (start, end) = span.split_once('-').unwrap();
    (
        start.parse().unwrap(),
        end.parse().unwrap(),
        total.parse().unwrap(),
    )
}

impl Request {
    /// Graph's answer.
    pub(crate) fn answer(&self, upload_url: &str) -> HttpMockResponse {
        let reply = |status: u16, body: Value| {
            HttpMockResponse::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(body.to_string())
                .build()
        };
        let draft = format!("{MESSAGES}/d1");
        match (self.method.as_str(), self.path.as_str()) {
            ("POST", p) if p == SEND_PATH || p == format!("{draft}/send") => {
                HttpMockResponse::builder().status(202).build()
            }
            ("POST", p) if p == MESSAGES => reply(201, json!({"id": "d1"})),
            ("POST", p) if p == format!("{draft}/attachments") => reply(201, json!({"id": "a"})),
            ("POST", p) if p == format!("{draft}/attachments/createUploadSession") => {
                reply(201, json!({"uploadUrl": upload_url}))
            }
            ("PUT", "/upload/s") => {
                let (_, end, total) = range(self.content_range.as_deref().unwrap());
                match end + 1 == total {
                    true => reply(201, json!({})),
                    false => reply(
                        200,
                        json!({"nextExpectedRanges": [format!("{}-", end + 1)]}),
                    ),
                }
            }
            _ => reply(
                400,
                json!({"error": {"code": "Unexpected", "message": self.path}}),
            ),
        }
    }

    fn json(&self) -> Value {
        assert!(
            self.content_type.starts_with("application/json"),
            "{} {}",
            self.path,
            self.content_type
        );
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    fn mime(&self) -> Vec<u8> {
        assert_eq!(self.content_type, "text/plain", "{}", self.path);
        STANDARD.decode(&self.body).expect("standard base64")
    }
}

/// An attachment as Graph got it (or as built, to compare).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Got {
    name: String,
    content_type: String,
    content_id: Option<String>,
    is_inline: bool,
    bytes: Vec<u8>,
}

/// The bytes by their length and first few, not all of them.
impl std::fmt::Debug for Got {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Got")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("content_id", &self.content_id)
            .field("is_inline", &self.is_inline)
            .field("len", &self.bytes.len())
            .field("start", &&self.bytes[..self.bytes.len().min(12)])
            .finish()
    }
}

impl Got {
    pub(crate) fn built(attachment: &Attachment) -> Self {
        let AttachmentContent::Bytes(bytes) = attachment.content() else {
            panic!("attachments are made from bytes here");
        };
        Self {
            name: attachment.name().to_owned(),
            content_type: attachment.content_type().to_owned(),
            content_id: attachment.content_id().map(str::to_owned),
            is_inline: attachment.is_inline(),
            bytes: bytes.to_vec(),
        }
    }

    /// A `fileAttachment`.
    pub(crate) fn from_json(value: &Value) -> Self {
        assert_eq!(value["@odata.type"], "#microsoft.graph.fileAttachment");
        let content_id = value
            .get("contentId")
            .map(|id| id.as_str().unwrap().to_owned());
        Self {
            name: value["name"].as_str().unwrap().to_owned(),
            content_type: value["contentType"].as_str().unwrap().to_owned(),
            is_inline: value["isInline"].as_bool().unwrap(),
            content_id,
            bytes: STANDARD
                .decode(value["contentBytes"].as_str().unwrap())
                .expect("contentBytes in standard base64"),
        }
    }

    /// An `attachmentItem`, its bytes still to come.
    fn from_item(value: &Value) -> (Self, u64) {
        let item = &value["AttachmentItem"];
        assert_eq!(item["attachmentType"], "file");
        let content_id = item
            .get("contentId")
            .map(|id| id.as_str().unwrap().to_owned());
        let got = Self {
            name: item["name"].as_str().unwrap().to_owned(),
            content_type: item["contentType"].as_str().unwrap().to_owned(),
            is_inline: item["isInline"].as_bool().unwrap(),
            content_id,
            bytes: Vec::new(),
        };
        (got, item["size"].as_u64().unwrap())
    }

    /// A part of the MIME a reader takes as an attachment.
    pub(crate) fn from_part(part: &MessagePart<'_>) -> Self {
        let content_type = part.content_type().map_or_else(String::new, |t| {
            format!("{}/{}", t.ctype(), t.subtype().unwrap_or_default())
        });
        Self {
            name: part.attachment_name().unwrap_or_default().to_owned(),
            content_type,
            content_id: part.content_id().map(str::to_owned),
            is_inline: part.content_id().is_some(),
            bytes: part.contents().to_vec(),
        }
    }

    /// Whether it is shown in the body (has a `Content-ID`) rather than as a file.
    pub(crate) fn is_inline(&self) -> bool {
        self.is_inline
    }

    /// Only the type and subtype of the content type, in lower case.
    pub(crate) fn bare_type(mut self) -> Self {
        let bare = self.content_type.split(';').next().unwrap_or_default();
        self.content_type = bare.trim().to_ascii_lowercase();
        self
    }
}

/// What one send gave Graph.
pub(crate) struct Sent {
    /// The JSON message (of `sendMail`, or the draft's).
    pub json: Option<Value>,
    /// The MIME (of `sendMail`, or the draft's).
    pub mime: Option<Vec<u8>>,
    /// Attachments added to a draft, in order.
    pub attachments: Vec<Got>,
    /// Whether it went through a draft.
    pub draft: bool,
}

impl Sent {
    pub(crate) fn from_requests(requests: Vec<Request>) -> Self {
        let mut sent = Sent {
            json: None,
            mime: None,
            attachments: Vec::new(),
            draft: false,
        };
        let mut requests = requests.into_iter();
        let first = requests.next().expect("a request to Graph");
        assert_eq!(first.method, "POST");
        let json = first.content_type.starts_with("application/json");
        match first.path.as_str() {
            SEND_PATH if json => {
                let body = first.json();
                assert_eq!(body["saveToSentItems"], json!(true));
                sent.json = Some(body["message"].clone());
            }
            SEND_PATH => sent.mime = Some(first.mime()),
            MESSAGES if json => sent.json = Some(first.json()),
            MESSAGES => sent.mime = Some(first.mime()),
            other => panic!("the first request went to {other}"),
        }
        if first.path == SEND_PATH {
            assert!(requests.next().is_none(), "one request for a sendMail");
            return sent;
        }
        sent.draft = true;
        let mut upload: Option<(Got, u64)> = None;
        let mut sent_draft = false;
        for request in requests {
            assert!(
                !sent_draft,
                "a request after the draft's /send: {}",
                request.path
            );
            let path = request.path.strip_prefix(MESSAGES).unwrap_or(&request.path);
            match (request.method.as_str(), path) {
                ("POST", "/d1/attachments") => {
                    sent.attachments.push(Got::from_json(&request.json()));
                }
                ("POST", "/d1/attachments/createUploadSession") => {
                    assert!(upload.is_none(), "an upload session left unfinished");
                    upload = Some(Got::from_item(&request.json()));
                }
                ("PUT", "/upload/s") => {
                    let (got, size) = upload.as_mut().expect("an upload session");
                    let (start, end, total) = range(request.content_range.as_deref().unwrap());
                    assert_eq!((start, total), (got.bytes.len() as u64, *size));
                    assert_eq!(end - start + 1, request.body.len() as u64);
                    got.bytes.extend_from_slice(&request.body);
                    if end + 1 == total {
                        sent.attachments.push(upload.take().unwrap().0);
                    }
                }
                ("POST", "/d1/send") => {
                    assert!(upload.is_none(), "an upload session left unfinished");
                    sent_draft = true;
                }
                (method, path) => panic!("unexpected {method} {path}"),
            }
        }
        assert!(sent_draft, "the draft was never sent");
        sent
    }
}
