//! [`Attachment`] — a file attached to an email, from bytes or a path — with
//! [`AttachmentContent`], where its bytes are, and the checks `build` runs on it.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::header::{check_header_text, preview};
use crate::error::{Error, Result};

/// The longest content type, in bytes: a type and subtype of at most 127 characters each
/// (RFC 6838), with room for a parameter.
const MAX_CONTENT_TYPE_BYTES: usize = 255;

/// Where an attachment's bytes are.
#[derive(Debug, Clone, Copy)]
pub enum AttachmentContent<'a> {
    /// In memory.
    Bytes(&'a [u8]),
    /// In a file, read when the email is sent. Graph uploads a large one in byte ranges,
    /// read as they are sent; SMTP and the outbox read it whole into memory (a message is
    /// encoded whole), so the file's size, about twice over, must fit in memory there.
    File(&'a Path),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Bytes(Arc<[u8]>),
    File(PathBuf),
}

/// A file attached to an email, from bytes or from a file path.
///
/// The content type is guessed from the name's extension unless set with
/// [`Attachment::with_content_type`]; [`Attachment::inline`] makes it an inline part that HTML
/// can reference as `cid:…`.
///
/// ```
/// use mail_connector::Attachment;
///
/// let logo = Attachment::from_bytes("logo.png", vec![0x89, b'P', b'N', b'G']).inline("logo");
/// assert_eq!(logo.content_type(), "image/png");
/// assert_eq!(logo.content_id(), Some("logo"));
/// ```
///
/// Two attachments are equal when their name, content type, Content-ID and content are: the
/// same bytes, or the same file path (a file's bytes are not read to compare).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    name: String,
    content_type: String,
    content_id: Option<String>,
    size: u64,
    source: Source,
}

impl Attachment {
    /// An attachment held in memory.
    #[must_use]
    pub fn from_bytes(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        let name = name.into();
        let bytes: Arc<[u8]> = bytes.into().into();
        Self {
            content_type: guess_content_type(&name),
            size: bytes.len() as u64,
            name,
            content_id: None,
            source: Source::Bytes(bytes),
        }
    }

    /// An attachment read from a file when the email is sent. The name is the file's name;
    /// the file must exist now (its size is recorded).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::InvalidMessage`] when the path
    /// is not a regular file or has no file name.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let metadata =
            std::fs::metadata(path).map_err(|e| Error::io("read the attachment", path, e))?;
        if !metadata.is_file() {
            return Err(Error::invalid_message(
                "attachments",
                format!("`{}` is not a regular file", path.display()),
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                Error::invalid_message(
                    "attachments",
                    format!("`{}` has no file name", path.display()),
                )
            })?;
        Ok(Self {
            content_type: guess_content_type(&name),
            name,
            content_id: None,
            size: metadata.len(),
            source: Source::File(path.to_owned()),
        })
    }

    /// Overrides the guessed content type, e.g. `text/csv; charset=utf-8`.
    #[must_use]
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = content_type.into();
        self
    }

    /// Makes the attachment inline with this Content-ID, for `<img src="cid:ID">` in HTML.
    #[must_use]
    pub fn inline(mut self, content_id: impl Into<String>) -> Self {
        self.content_id = Some(content_id.into());
        self
    }

    /// Renames the attachment (the name recipients see).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The file name recipients see.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The MIME content type.
    #[must_use]
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The Content-ID when the attachment is inline.
    #[must_use]
    pub fn content_id(&self) -> Option<&str> {
        self.content_id.as_deref()
    }

    /// Whether the attachment is inline (has a Content-ID).
    #[must_use]
    pub fn is_inline(&self) -> bool {
        self.content_id.is_some()
    }

    /// The size in bytes (for a file: when the attachment was made).
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the bytes are.
    #[must_use]
    pub fn content(&self) -> AttachmentContent<'_> {
        match &self.source {
            Source::Bytes(bytes) => AttachmentContent::Bytes(bytes),
            Source::File(path) => AttachmentContent::File(path),
        }
    }

    /// Reads the whole content into memory (borrowed when it already is).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read.
    pub async fn load(&self) -> Result<Cow<'_, [u8]>> {
        match &self.source {
            Source::Bytes(bytes) => Ok(Cow::Borrowed(bytes)),
            Source::File(path) => crate::offload::read_file(path)
                .await
                .map(Cow::Owned)
                .map_err(|e| Error::io("read the attachment", path, e)),
        }
    }

    /// This attachment with its bytes in memory: a file is read now, so the attachment no
    /// longer depends on it (for storing the email, or sending it from another machine).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read.
    pub async fn into_loaded(self) -> Result<Self> {
        match self.source {
            Source::Bytes(_) => Ok(self),
            Source::File(ref path) => {
                let bytes: Arc<[u8]> = crate::offload::read_file(path)
                    .await
                    .map_err(|e| Error::io("read the attachment", path, e))?
                    .into();
                Ok(Self {
                    size: bytes.len() as u64,
                    source: Source::Bytes(bytes),
                    ..self
                })
            }
        }
    }

    /// Checks the name, content type and Content-ID, as [`EmailBuilder::build`] does.
    ///
    /// [`EmailBuilder::build`]: super::EmailBuilder::build
    pub(super) fn validate(&self, index: usize) -> Result<()> {
        let field = |part: &str| format!("attachments[{index}].{part}");
        if self.name.trim().is_empty() {
            return Err(Error::invalid_message(field("name"), "the name is empty"));
        }
        if self.name.contains(['/', '\\']) {
            return Err(Error::invalid_message(
                field("name"),
                format!(
                    "`{}` contains a path separator; give the file name only",
                    self.name.escape_debug()
                ),
            ));
        }
        check_header_text(&field("name"), &self.name)?;
        // Mail clients decode RFC 2047 words inside file names too: a name shaped like one
        // would show the recipient something else than was sent (a line break, a `Bcc:`).
        if self.name.contains("=?") {
            return Err(Error::invalid_message(
                field("name"),
                format!(
                    "`{}` contains `=?`, which mail clients may decode as an encoded word; \
                     rename the file",
                    preview(&self.name)
                ),
            ));
        }
        // A bidirectional override or isolate reorders what a mail client shows: the name
        // `invoice\u{202E}fdp.exe` reads as `invoiceexe.pdf`, a program shown as a PDF.
        let reorders = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if let Some(c) = self.name.chars().find(|&c| reorders(c)) {
            return Err(Error::invalid_message(
                field("name"),
                format!(
                    "`{}` contains the bidirectional formatting character U+{:04X}, which makes \
                     mail clients show the name reordered (another extension than it has); \
                     rename the file",
                    preview(&self.name),
                    u32::from(c)
                ),
            ));
        }
        check_header_text(&field("content_type"), &self.content_type)?;
        if self
            .content_type
            .get(..10)
            .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"))
        {
            return Err(Error::invalid_message(
                field("content_type"),
                format!(
                    "`{}` is a multipart type, but an attachment is one part: attach the file \
                     as `application/octet-stream`, or send a message built elsewhere as a \
                     prepared message (`Email::from_mime`)",
                    preview(&self.content_type)
                ),
            ));
        }
        // A header's parameters are ASCII; lettre would encode the whole parameter instead.
        if !self.content_type.is_ascii() {
            return Err(Error::invalid_message(
                field("content_type"),
                format!(
                    "`{}` is not ASCII; a content type and its parameters are ASCII (a MIME \
                     type such as `text/csv; charset=utf-8`)",
                    preview(&self.content_type)
                ),
            ));
        }
        if self.content_type.len() > MAX_CONTENT_TYPE_BYTES {
            return Err(Error::invalid_message(
                field("content_type"),
                format!(
                    "the content type is {} bytes long; at most {MAX_CONTENT_TYPE_BYTES} are \
                     allowed (a MIME type such as `application/pdf`)",
                    self.content_type.len()
                ),
            ));
        }
        if lettre::message::header::ContentType::parse(&self.content_type).is_err() {
            return Err(Error::invalid_message(
                field("content_type"),
                format!(
                    "`{}` is not a MIME type such as `application/pdf`",
                    self.content_type
                ),
            ));
        }
        if let Some(cid) = &self.content_id {
            let bad = cid.is_empty()
                || cid.len() > 200
                || cid
                    .chars()
                    .any(|c| !c.is_ascii_graphic() || matches!(c, '<' | '>' | '"' | '\\'));
            if bad {
                return Err(Error::invalid_message(
                    field("content_id"),
                    format!(
                        "`{}` is not a valid Content-ID; use at most 200 letters, digits and `.-_@`, without `<>`",
                        preview(cid)
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn guess_content_type(name: &str) -> String {
    mime_guess::from_path(name)
        .first_or_octet_stream()
        .essence_str()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(attachment: &Attachment) -> String {
        attachment
            .validate(0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn names_that_look_like_encoded_words_are_refused() {
        let lookalike = Attachment::from_bytes(
            "=?utf-8?b?DQpCY2M6IGV2aWxAZXhhbXBsZS5vcmc=?=",
            b"x".to_vec(),
        );
        assert!(
            validate(&lookalike).contains("=?"),
            "{}",
            validate(&lookalike)
        );
        let fine = Attachment::from_bytes("report=2026.pdf", b"x".to_vec());
        assert_eq!(validate(&fine), "");
    }

    #[test]
    fn long_content_types_are_refused_with_the_limit() {
        let long_type = Attachment::from_bytes("a.bin", b"x".to_vec())
            .with_content_type(format!("application/{}", "z".repeat(2000)));
        let error = validate(&long_type);
        assert!(error.contains("at most 255"), "{error}");
        let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        let fine = Attachment::from_bytes("a.docx", b"x".to_vec()).with_content_type(docx);
        assert_eq!(validate(&fine), "");
        // The limit itself is allowed: 255 bytes pass, 256 are refused.
        let longest = |len: usize| {
            Attachment::from_bytes("a.bin", b"x".to_vec())
                .with_content_type(format!("application/{}", "z".repeat(len - 12)))
        };
        assert_eq!(validate(&longest(255)), "");
        assert!(validate(&longest(256)).contains("256 bytes long"));
    }

    #[test]
    fn only_an_attachment_with_a_content_id_is_inline_and_an_empty_one_is_refused() {
        assert!(!Attachment::from_bytes("a.png", b"x".to_vec()).is_inline());
        assert!(
            Attachment::from_bytes("a.png", b"x".to_vec())
                .inline("logo")
                .is_inline()
        );
        let error = validate(&Attachment::from_bytes("a.png", b"x".to_vec()).inline(""));
        assert!(error.contains("not a valid Content-ID"), "{error}");
    }

    /// A file that grew or shrank between `from_path` and loading is sent with the size of
    /// what was read, which Graph uses to choose between inline and an upload session.
    #[tokio::test]
    async fn a_loaded_file_has_the_size_of_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.csv");
        std::fs::write(&path, "a,b\n").unwrap();
        let attachment = Attachment::from_path(&path).unwrap();
        assert_eq!(attachment.size(), 4);
        std::fs::write(&path, "a,b\n1,2\n3,4\n").unwrap();
        let loaded = attachment.into_loaded().await.unwrap();
        assert_eq!(loaded.size(), 12);
        assert!(matches!(loaded.content(), AttachmentContent::Bytes(b) if b.len() == 12));
    }
}
