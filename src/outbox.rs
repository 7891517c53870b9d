//! [`OutboxTransport`]: writes each message as an `.eml` file instead of sending it.
//!
//! For development and staging (`outbox_dir` in the settings). Each file is a complete
//! RFC 5322 message, built exactly as the SMTP transport would build it (DKIM-signed too when
//! configured), except that the `Bcc` header is kept so the file records everyone the message
//! was for; a prepared message ([`Email::from_mime`]) is written as it is. A file can be sent
//! later with `mailctl send --eml FILE` or [`Email::from_mime`]. Files are written
//! atomically — to a hidden temporary file in the same folder, flushed, then renamed — so a
//! reader never sees half a message, and their names (`<UTC time>-<random id>.eml`) are
//! unique and sort by time. The write runs on tokio's blocking pool and is not cut short when
//! the caller gives up: a cancelled send leaves either the complete file or nothing, never a
//! temporary file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::check::{CheckReport, CheckStep};
use crate::dkim::DkimSigner;
use crate::error::{Error, OUTBOX_DIR, Result};
use crate::message::{Email, Mailbox};
use crate::mime::{BccHeader, render};
use crate::transport::{MailTransport, SendReport, SentMessage};

/// Writes messages as `.eml` files into a folder (created when needed).
///
/// ```
/// use mail_connector::{Email, MailTransport, OutboxTransport};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join("mail-connector-doc-outbox");
/// let outbox = OutboxTransport::new(&dir).with_sender("no-reply@example.org".parse()?);
/// let email = Email::builder().to("ann@example.org").subject("Hi").text("Hello").build()?;
/// let report = outbox.send(&email).await?;
/// let path = report.messages[0].id.clone().unwrap();
/// assert!(path.ends_with(".eml"));
/// # std::fs::remove_file(path).unwrap();
/// # Ok::<(), mail_connector::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct OutboxTransport {
    dir: PathBuf,
    sender: Option<Mailbox>,
    dkim: Option<DkimSigner>,
    /// The setting that names `dir` (`outbox_dir`) when the settings made this outbox: a
    /// folder that cannot be written is then theirs to fix ([`Error::is_settings`]).
    setting: Option<&'static str>,
}

impl OutboxTransport {
    /// Writes into `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            sender: None,
            dkim: None,
            setting: None,
        }
    }

    /// Where the missing sender goes, and the fix, by how this outbox was made: the
    /// setting, or the builder call.
    fn sender_fix(&self) -> (&'static str, &'static str) {
        match self.setting {
            Some(_) => ("user_name", "set User Name (`user_name`) in the settings"),
            None => (
                "sender",
                "give the outbox a sender with `OutboxTransport::with_sender`, or the email a \
                 `from`",
            ),
        }
    }

    /// Marks the folder as the one the settings' `outbox_dir` names, so that a folder that
    /// cannot be written fails as a setting to change, with a remedy naming it.
    pub(crate) fn named_by_setting(mut self) -> Self {
        self.setting = Some(OUTBOX_DIR);
        self
    }

    /// The sender used for emails that do not name one (the settings' `user_name`).
    #[must_use]
    pub fn with_sender(mut self, sender: Mailbox) -> Self {
        self.sender = Some(sender);
        self
    }

    /// Signs the messages it writes with DKIM, as the SMTP transport would (feature `dkim`;
    /// see [`dkim`](crate::dkim)), so that a file shows what recipients would get. Prepared
    /// messages are written as they are.
    #[cfg(feature = "dkim")]
    #[must_use]
    pub fn with_dkim(mut self, signer: DkimSigner) -> Self {
        self.dkim = Some(signer);
        self
    }

    /// The folder messages are written to.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the file on tokio's blocking pool, where a caller giving up (a timeout, an
    /// aborted task) cannot stop it half-way: it ends with the complete file in place, or
    /// with no file at all.
    async fn write_atomically(&self, bytes: Vec<u8>) -> Result<PathBuf> {
        let dir = self.dir.clone();
        let setting = self.setting;
        tokio::task::spawn_blocking(move || write_blocking(&dir, setting, &bytes))
            .await
            .map_err(|e| {
                Error::io(
                    "write the outbox file",
                    &self.dir,
                    std::io::Error::other(e.to_string()),
                )
            })?
    }
}

/// A temporary file that is removed when dropped, unless it was moved into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A failure to write into the outbox folder `dir`, naming the folder (not the file, whose
/// name is new each time): a settings problem when `setting` names the folder.
fn folder_error(
    setting: Option<&'static str>,
    action: &'static str,
    dir: &Path,
    source: std::io::Error,
) -> Error {
    match setting {
        Some(setting) => Error::settings_file(setting, action, dir, source),
        None => Error::io(action, dir, source),
    }
}

fn write_blocking(dir: &Path, setting: Option<&'static str>, bytes: &[u8]) -> Result<PathBuf> {
    let fail = |action, e| folder_error(setting, action, dir, e);
    std::fs::create_dir_all(dir).map_err(|e| fail("create the outbox folder", e))?;
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second].[subsecond digits:6]Z"
        ))
        .unwrap_or_default();
    let name = format!("{stamp}-{}.eml", uuid::Uuid::new_v4().simple());
    let final_path = dir.join(&name);
    let mut temp = TempFile {
        path: dir.join(format!(".{name}.tmp")),
        keep: false,
    };
    let write = || {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        // Readable by this user only: a message holds its Bcc recipients and whatever the
        // mail carries (reset links, codes).
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp.path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|e| fail("write a message file into the outbox folder", e))?;
    std::fs::rename(&temp.path, &final_path)
        .map_err(|e| fail("move a message file into place in the outbox folder", e))?;
    temp.keep = true;
    // The rename is durable only once the folder is: a file reported written survives a
    // crash right after. (Not every platform can open a folder to sync it; Unix can.) The
    // file is in place whatever this says, so a failure is logged, not reported as unsent.
    #[cfg(unix)]
    if let Err(e) = std::fs::File::open(dir).and_then(|folder| folder.sync_all()) {
        tracing::warn!(folder = %dir.display(), error = %e, "could not sync the outbox folder; the file may not survive a crash");
    }
    Ok(final_path)
}

/// Creates the folder, then writes and removes an empty file in it.
fn probe_blocking(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut probe = TempFile {
        path: dir.join(format!(".check-{}.tmp", uuid::Uuid::new_v4().simple())),
        keep: false,
    };
    std::fs::write(&probe.path, b"")?;
    std::fs::remove_file(&probe.path)?;
    probe.keep = true; // already removed
    Ok(())
}

#[async_trait]
impl MailTransport for OutboxTransport {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        let span = tracing::info_span!(
            "mail_connector.send",
            transport = "outbox",
            recipients = email.recipient_count(),
            attachments = email.attachments().len(),
            outcome = tracing::field::Empty,
            message_id = tracing::field::Empty,
            attempts = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let send = std::pin::pin!(async {
            let sender = email.from().or(self.sender.as_ref()).ok_or_else(|| {
                let (field, fix) = self.sender_fix();
                Error::settings(
                    field,
                    format!("the email has no sender and the outbox has none configured; {fix}"),
                )
            })?;
            let rendered = render(email, sender, BccHeader::Keep, self.dkim.as_ref()).await?;
            let path = self.write_atomically(rendered.bytes).await?;
            tracing::info!(path = %path.display(), "message written to the outbox");
            Ok(SendReport::single(SentMessage::new(
                email.recipients().collect(),
                Some(path.display().to_string()),
            )))
        });
        let mailbox = self.sender.as_ref().map(Mailbox::address);
        crate::observe::observe_send(span, "outbox", mailbox, tokio::time::Instant::now(), send)
            .await
    }

    async fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        #[cfg(feature = "dkim")]
        if let Some(signer) = &self.dkim {
            report.push(signer.check_step());
        }
        // On the blocking pool, like a send: a check given up half-way leaves no probe file.
        let dir = self.dir.clone();
        let probe = tokio::task::spawn_blocking(move || probe_blocking(&dir))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        report.push(match probe {
            Ok(()) => CheckStep::ok(
                "outbox",
                format!("messages are written to {}", self.dir.display()),
            ),
            Err(e) => CheckStep::from_error(
                "outbox",
                &folder_error(self.setting, "write into the outbox folder", &self.dir, e),
            ),
        });
        // Without a sender, every email that names no `from` fails (all of `mailctl
        // send`'s): the folder may be fine, but the check must not say all is.
        if self.sender.is_none() {
            report.push(CheckStep::warning(
                "sender",
                "no sender is configured: an email that names no `from` cannot be written",
                self.sender_fix().1,
            ));
        }
        Ok(report)
    }
}
