//! With tracing's `log` fallback in the build (sqlx, among others, turns it on) and a logger
//! installed instead of a tracing subscriber, a send's span is still entered and recorded:
//! the transports skip their span only when nothing at all could see it. (That a span is
//! skipped when log's level keeps it out is `observe`'s unit test.) A test binary of its own,
//! as a logger is installed once per process.

use std::sync::Mutex;

use mail_connector::{Email, MailTransport, OutboxTransport};

/// Every record, as `target: message`.
static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{}: {}", record.target(), record.args());
        RECORDS.lock().unwrap().push(line);
    }

    fn flush(&self) {}
}

#[tokio::test]
async fn a_logger_at_trace_sees_each_send_entered() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxTransport::new(dir.path());
    let email = Email::builder()
        .from("No Reply <no-reply@contoso.com>")
        .to("ann@example.org")
        .subject("Your export is ready")
        .text("Download it from the portal.")
        .build()
        .unwrap();
    outbox.send(&email).await.unwrap();

    // Entered on each poll: only a span the transport runs the send in. (Its fields, such
    // as `outcome`, reach the logger also from a span that was skipped, so they say
    // nothing here.)
    let records = RECORDS.lock().unwrap().join("\n");
    assert!(
        records.contains("tracing::span::active: -> mail_connector.send"),
        "{records}"
    );
}
