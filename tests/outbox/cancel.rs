//! Issue 8, item 16: outbox sends cancelled at any point (timeouts, aborted tasks) leave no
//! temporary files, and every `.eml` file that exists is complete.

use std::time::Duration;

use mail_connector::{Attachment, Email, MailTransport, OutboxTransport};
use mail_parser::MessageParser;

const SENDS: u64 = 120;

fn big_email() -> Email {
    Email::builder()
        .to("ann@example.org")
        .subject("cancel me")
        .text("the body")
        .attachment(Attachment::from_bytes("big.bin", vec![0x5a; 256 << 10]))
        .build()
        .unwrap()
}

#[test]
fn cancelled_sends_leave_no_temporary_files_and_only_complete_messages() {
    let dir = tempfile::tempdir().unwrap();
    let outbox =
        OutboxTransport::new(dir.path()).with_sender("no-reply@example.org".parse().unwrap());
    let email = big_email();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Timeouts from nothing to a few milliseconds cut the send at every stage: before
        // the MIME is built, while it is built, while the file is opened, written, synced.
        for i in 0..SENDS {
            let send = outbox.send(&email);
            let _ = tokio::time::timeout(Duration::from_micros(i * 150), send).await;
        }
        // Aborted tasks, after a varying number of polls.
        let mut tasks = Vec::new();
        for i in 0..SENDS {
            let outbox = outbox.clone();
            let email = email.clone();
            let task = tokio::spawn(async move { outbox.send(&email).await });
            for _ in 0..(i % 20) {
                tokio::task::yield_now().await;
            }
            task.abort();
            tasks.push(task);
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    // Dropping the runtime waits for the work it handed to its blocking pool.
    drop(runtime);

    let mut complete = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "a temporary file was left: {name}");
        assert!(name.ends_with(".eml"), "{name}");
        let raw = std::fs::read(&path).unwrap();
        let message = MessageParser::default()
            .parse(&raw)
            .unwrap_or_else(|| panic!("{name} does not parse"));
        assert_eq!(message.subject(), Some("cancel me"), "{name}");
        assert_eq!(message.body_text(0).as_deref(), Some("the body"), "{name}");
        let attachment = message.attachment(0).expect("the attachment is complete");
        assert_eq!(attachment.contents().len(), 256 << 10, "{name}");
        complete += 1;
    }
    // Not asserted, as it depends on timing: how many sends got far enough to be written.
    eprintln!(
        "{complete} complete messages out of {} cancelled sends",
        2 * SENDS
    );
}

/// `check` writes a probe file; a check given up half-way must not leave it behind.
#[test]
fn cancelled_checks_leave_no_probe_files() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxTransport::new(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Checks aborted after a varying number of polls, and timeouts of a few ms.
        for i in 0..300u64 {
            let check = {
                let outbox = outbox.clone();
                tokio::spawn(async move { outbox.check().await })
            };
            for _ in 0..(i % 30) {
                tokio::task::yield_now().await;
            }
            check.abort();
            let _ = check.await;
            let _ = tokio::time::timeout(Duration::from_micros(i * 10), outbox.check()).await;
        }
    });
    drop(runtime);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "probe files were left: {left:?}");
}
