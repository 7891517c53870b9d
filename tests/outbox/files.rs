//! The outbox transport: real files, parsed back as RFC 5322 messages.

use mail_connector::{Attachment, Email, Error, MailTransport, Mailbox, OutboxTransport};
use mail_parser::{MessageParser, MimeHeaders};

use crate::support;

fn sender() -> Mailbox {
    "No Reply <no-reply@contoso.com>".parse().unwrap()
}

fn eml_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn writes_a_parseable_message_with_everything_intact() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxTransport::new(dir.path().join("nested/outbox")).with_sender(sender());
    let email = support::rich_email();
    let report = outbox.send(&email).await.unwrap();

    let files = eml_files(&dir.path().join("nested/outbox"));
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        report.messages[0].id.as_deref(),
        Some(files[0].to_str().unwrap())
    );
    assert_eq!(report.recipients().count(), 4);
    assert!(files[0].extension().unwrap() == "eml");

    let raw = std::fs::read(&files[0]).unwrap();
    // Header values are encoded: the raw file is 7-bit in its headers.
    let header_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(raw[..header_end].is_ascii(), "headers must be encoded");
    assert!(raw.split(|&b| b == b'\n').all(|line| line.len() <= 998));

    let message = MessageParser::default().parse(&raw).expect("RFC 5322");
    assert_eq!(message.subject(), Some("Grüße aus Köln — report ✅"));
    let from = message.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("no-reply@contoso.com"));
    assert_eq!(from.name(), Some("No Reply"));
    let to: Vec<_> = message
        .to()
        .unwrap()
        .iter()
        .map(|a| a.address().unwrap())
        .collect();
    assert_eq!(to, ["ann@example.org", "bob@example.org"]);
    let cc = message.cc().unwrap().first().unwrap();
    assert_eq!(cc.name(), Some("Doe, Jane"));
    // The outbox keeps Bcc as a record of everyone the message was for.
    assert_eq!(
        message.bcc().unwrap().first().unwrap().address(),
        Some("audit@example.org")
    );
    assert_eq!(
        message.reply_to().unwrap().first().unwrap().address(),
        Some("support@example.org")
    );
    assert!(message.message_id().is_some());
    assert!(message.date().is_some());
    assert_eq!(
        message.header_raw("MIME-Version").map(str::trim),
        Some("1.0")
    );
    assert_eq!(message.header_raw("X-Report-Id").map(str::trim), Some("42"));
    assert!(
        message
            .body_text(0)
            .unwrap()
            .contains("the report is attached.")
    );
    assert!(message.body_html(0).unwrap().contains("cid:logo"));

    let attachments: Vec<_> = message.attachments().collect();
    assert_eq!(attachments.len(), 2);
    let csv = attachments
        .iter()
        .find(|a| a.attachment_name() == Some("report.csv"))
        .unwrap();
    assert_eq!(csv.contents(), b"id,total\n1,42\n");
    let logo = attachments
        .iter()
        .find(|a| a.content_id() == Some("logo"))
        .unwrap();
    assert_eq!(logo.contents(), support::png_bytes().as_slice());
    assert_eq!(logo.content_type().unwrap().ctype(), "image");
}

/// A prepared message sent to other recipients than its headers name is written with its
/// envelope as `To`/`Cc`/`Bcc`: the file says whom it was for, and re-sending it reaches
/// them — also each part of a recipient-limit split, with that part's recipients only.
#[tokio::test]
async fn a_prepared_message_is_written_with_its_envelope() {
    const RAW: &str = "From: reports@example.org\r\nTo: list@example.org\r\nSubject: Hi\r\n\
                       Message-ID: <fixed@example.org>\r\n\r\nHello\r\n";
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxTransport::new(dir.path()).with_sender(sender());
    let email = Email::builder()
        .mime(RAW)
        .to("ann@example.org")
        .bcc("audit@example.org")
        .build()
        .unwrap();
    outbox.send(&email).await.unwrap();
    let files = eml_files(dir.path());
    let raw = std::fs::read(&files[0]).unwrap();
    let again = Email::from_mime(raw.clone()).unwrap();
    let recipients: Vec<String> = again.recipients().map(|r| r.to_string()).collect();
    assert_eq!(
        recipients,
        ["To: ann@example.org", "Bcc: audit@example.org"]
    );
    assert_eq!(
        email.to_mime().await.unwrap(),
        raw,
        "to_mime is what the outbox writes"
    );
    let text = String::from_utf8(raw).unwrap();
    assert!(!text.contains("list@example.org"), "{text}");
    assert!(text.contains("Message-ID: <fixed@example.org>"), "{text}");

    // Split in parts of one: each file names its own part's recipient.
    let dir = tempfile::tempdir().unwrap();
    let split = mail_connector::RecipientLimit::new(
        OutboxTransport::new(dir.path()).with_sender(sender()),
        1,
    );
    split.send(&email).await.unwrap();
    let mut written: Vec<Vec<String>> = eml_files(dir.path())
        .iter()
        .map(|file| {
            Email::from_mime(std::fs::read(file).unwrap())
                .unwrap()
                .recipients()
                .map(|r| r.to_string())
                .collect()
        })
        .collect();
    written.sort();
    assert_eq!(
        written,
        [vec!["Bcc: audit@example.org"], vec!["To: ann@example.org"]]
    );
}

/// An attached message (`.eml`) is not base64 (RFC 2046 §5.2.1): sent as it is when it is
/// 7-bit text, else as `application/octet-stream`; either way it arrives intact.
#[tokio::test]
async fn an_attached_message_is_never_base64() {
    let seven_bit = "From: a@example.org\r\nSubject: Old\r\n\r\nHello\r\n";
    let eight_bit = "From: a@example.org\r\nSubject: Alt\r\n\r\nGrüße\r\n";
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxTransport::new(dir.path()).with_sender(sender());
    let email = Email::builder()
        .to("ann@example.org")
        .text("Two old messages attached.")
        .attachment(Attachment::from_bytes("old.eml", seven_bit))
        .attachment(Attachment::from_bytes("alt.eml", eight_bit))
        .build()
        .unwrap();
    assert_eq!(email.attachments()[0].content_type(), "message/rfc822");
    outbox.send(&email).await.unwrap();
    let raw = std::fs::read(&eml_files(dir.path())[0]).unwrap();
    let text = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
    assert!(
        text.contains("Content-Type: message/rfc822\nContent-Transfer-Encoding: 7bit"),
        "{text}"
    );
    assert!(
        !text.contains("message/rfc822\nContent-Transfer-Encoding: base64"),
        "{text}"
    );
    let message = MessageParser::default().parse(&raw).unwrap();
    let alt = message
        .attachments()
        .find(|a| a.attachment_name() == Some("alt.eml"))
        .unwrap();
    assert_eq!(alt.content_type().unwrap().ctype(), "application");
    assert_eq!(alt.contents(), eight_bit.as_bytes());
    assert!(text.contains("Subject: Old"), "sent as it is: {text}");
}

/// A message file holds its Bcc and whatever the mail carries: only its owner may read it.
#[cfg(unix)]
#[tokio::test]
async fn message_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxTransport::new(dir.path()).with_sender(sender());
    outbox.send(&support::rich_email()).await.unwrap();
    let files = eml_files(dir.path());
    assert_eq!(files.len(), 1);
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

#[tokio::test]
async fn file_attachments_are_read_at_send_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .subject("binary")
        .attachment(Attachment::from_path(&file).unwrap())
        .build()
        .unwrap();
    let out = dir.path().join("out");
    OutboxTransport::new(&out)
        .with_sender(sender())
        .send(&email)
        .await
        .unwrap();
    let raw = std::fs::read(&eml_files(&out)[0]).unwrap();
    let message = MessageParser::default().parse(&raw).unwrap();
    let attachment = message.attachments().next().unwrap();
    assert_eq!(attachment.attachment_name(), Some("data.bin"));
    assert_eq!(attachment.contents(), bytes.as_slice());

    // A file deleted after the email was built fails the send, naming the file.
    std::fs::remove_file(&file).unwrap();
    let error = OutboxTransport::new(&out)
        .with_sender(sender())
        .send(&email)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Io { .. }) && error.to_string().contains("data.bin"),
        "{error}"
    );
    assert_eq!(eml_files(&out).len(), 1, "nothing half-written");
}

#[tokio::test]
async fn concurrent_sends_get_unique_names_and_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = std::sync::Arc::new(OutboxTransport::new(dir.path()).with_sender(sender()));
    let email = Email::builder()
        .to("ann@example.org")
        .subject("x")
        .text("y")
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let outbox = outbox.clone();
            let email = email.clone();
            tokio::spawn(async move { outbox.send(&email).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let files = eml_files(dir.path());
    assert_eq!(files.len(), 50);
    assert!(
        files.iter().all(|f| f.extension().unwrap() == "eml"),
        "{files:?}"
    );
}

#[tokio::test]
async fn the_sender_comes_from_the_email_or_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let email = Email::builder().to("ann@example.org").build().unwrap();
    let error = OutboxTransport::new(dir.path())
        .send(&email)
        .await
        .unwrap_err();
    // Made in code, not from settings: the fix is the builder's, not a setting's.
    assert!(error.to_string().contains("with_sender"), "{error}");
    assert!(!error.to_string().contains("user_name"), "{error}");
    let own = Email::builder()
        .from("me@example.org")
        .to("ann@example.org")
        .build()
        .unwrap();
    OutboxTransport::new(dir.path()).send(&own).await.unwrap();
    let raw = std::fs::read(&eml_files(dir.path())[0]).unwrap();
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        message.from().unwrap().first().unwrap().address(),
        Some("me@example.org")
    );
}

#[tokio::test]
async fn check_reports_a_folder_that_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let report = OutboxTransport::new(dir.path().join("new"))
        .check()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let report = OutboxTransport::new(blocker.join("sub"))
        .check()
        .await
        .unwrap();
    assert!(!report.is_ok());
    assert!(report.steps[0].remedy.is_some());
    let email = Email::builder().to("ann@example.org").build().unwrap();
    let error = OutboxTransport::new(blocker.join("sub"))
        .with_sender(sender())
        .send(&email)
        .await;
    assert!(matches!(error, Err(Error::Io { .. })), "{error:?}");
}

/// Made from the settings, the outbox's folder is `outbox_dir`'s: one that cannot be written
/// is a setting to change, for a send and a check alike, with a fix naming the folder and the
/// setting. An outbox made directly names no setting.
#[tokio::test]
async fn a_folder_the_settings_name_that_cannot_be_written_is_a_settings_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let folder = blocker.join("sub");
    let mut settings = mail_connector::ConnectorSettings::default();
    settings.outbox_dir = Some(folder.clone());
    settings.user_name = Some("no-reply@contoso.com".to_owned());
    let outbox = settings.build().unwrap();
    let email = Email::builder().to("ann@example.org").build().unwrap();
    let error = outbox.send(&email).await.unwrap_err();
    assert!(error.is_settings(), "{error:?}");
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("`outbox_dir`"), "{remedy}");
    assert!(remedy.contains(&folder.display().to_string()), "{remedy}");
    let report = outbox.check().await.unwrap();
    let step = report.steps.iter().find(|s| s.name == "outbox").unwrap();
    assert_eq!(
        step.kind,
        Some(mail_connector::FailureKind::Settings),
        "{report}"
    );
    assert!(step.remedy.as_deref().unwrap().contains("`outbox_dir`"));

    let direct = OutboxTransport::new(&folder).with_sender(sender());
    let error = direct.send(&email).await.unwrap_err();
    assert!(!error.is_settings(), "{error:?}");
    assert!(!error.remedy().unwrap().contains("outbox_dir"), "{error:?}");
}

/// An outbox with no sender writes no email that names no `from` (none of `mailctl send`'s):
/// its check says so, as a warning with the fix — from the settings, `user_name` — rather
/// than passing while such sends fail. With a sender there is nothing to warn about.
#[tokio::test]
async fn check_warns_when_no_sender_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = mail_connector::ConnectorSettings::default();
    settings.outbox_dir = Some(dir.path().to_owned());
    let outbox = settings.build().unwrap();
    let email = Email::builder().to("ann@example.org").build().unwrap();
    let error = outbox.send(&email).await.unwrap_err();
    assert!(error.to_string().contains("no sender"), "{error}");
    assert!(error.to_string().contains("`user_name`"), "{error}");
    let report = outbox.check().await.unwrap();
    assert_eq!(
        report.status(),
        mail_connector::CheckStatus::Warning,
        "{report}"
    );
    let step = report.steps.iter().find(|s| s.name == "sender").unwrap();
    assert!(
        step.remedy.as_deref().unwrap().contains("`user_name`"),
        "{report}"
    );

    let direct = OutboxTransport::new(dir.path()).check().await.unwrap();
    let step = direct.steps.iter().find(|s| s.name == "sender").unwrap();
    assert!(
        step.remedy.as_deref().unwrap().contains("with_sender"),
        "{direct}"
    );

    settings.user_name = Some("no-reply@contoso.com".to_owned());
    let report = settings.build().unwrap().check().await.unwrap();
    assert_eq!(report.status(), mail_connector::CheckStatus::Ok, "{report}");
    let report = OutboxTransport::new(dir.path())
        .with_sender(sender())
        .check()
        .await
        .unwrap();
    assert_eq!(report.status(), mail_connector::CheckStatus::Ok, "{report}");
}
