//! Issue 8, item 15: building, rendering and sending an email to many recipients is linear.
//! And item 4 (message part): limits of `usize::MAX` do not panic.
//!
//! No time is asserted: each step runs under a generous hang guard that the old, quadratic
//! code exceeds by far. Measured with an outbox send of an email to N Bcc recipients
//! (`cargo test`, debug build, 2 shared cores), before → after the fix:
//! 1,000: 7.9 s → 0.11 s; 2,000: 29.8 s → 0.17 s; 4,000: 132 s → 0.34 s; 20,000: about 55
//! minutes extrapolated (quadratic) → 1.6 s. In a release build 100,000 now take 0.5 s.

use std::time::Duration;

#[cfg(feature = "smtp")]
use mail_connector::SmtpTransport;
use mail_connector::recipient_limit::split_recipients;
use mail_connector::{
    ConnectorSettings, Email, MailTransport, OutboxTransport, RecipientLimit, StubTransport,
};
use mail_parser::MessageParser;

use crate::support;
#[cfg(feature = "smtp")]
use crate::support::smtp_server::{ServerOptions, ServerTls, TestServer};

const MANY: usize = 20_000;
const GUARD: Duration = Duration::from_secs(60);

/// Runs `step` on its own thread and runtime, and fails if it has not finished within the
/// guard. (A `tokio::time::timeout` cannot fire while CPU-bound code holds the thread, which
/// is what the old code did; a separate thread can be left behind.)
fn guarded<T, F>(what: &str, step: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = done.send(runtime.block_on(step()));
    });
    result
        .recv_timeout(GUARD)
        .unwrap_or_else(|_| panic!("{what} did not finish within {GUARD:?}"))
}

fn many() -> Email {
    support::email_to_many(MANY / 4, MANY / 4, MANY / 2)
}

#[test]
fn twenty_thousand_recipients_render_to_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let outbox =
        OutboxTransport::new(dir.path()).with_sender("no-reply@example.org".parse().unwrap());
    let (email, report) = guarded("building and the outbox send", move || async move {
        let email = many();
        let report = outbox.send(&email).await;
        (email, report)
    });
    let report = report.unwrap();
    assert_eq!(email.recipient_count(), MANY);
    assert_eq!(report.recipients().count(), MANY);
    let raw = std::fs::read(report.messages[0].id.as_deref().unwrap()).unwrap();
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.to().unwrap().iter().count(), MANY / 4);
    assert_eq!(message.cc().unwrap().iter().count(), MANY / 4);
    assert_eq!(message.bcc().unwrap().iter().count(), MANY / 2);
    // Folded: the lists are not one line of 500 KB.
    assert!(raw.split(|&b| b == b'\n').all(|line| line.len() <= 999));
}

#[test]
fn twenty_thousand_recipients_are_split_and_sent_to_the_stub() {
    let stub = StubTransport::new();
    let limited = RecipientLimit::new(stub.clone(), 500);
    let (email, report) = guarded("the split send", move || async move {
        let email = many();
        let report = limited.send(&email).await;
        (email, report)
    });
    let report = report.unwrap();
    assert_eq!(report.messages.len(), MANY / 500);
    assert_eq!(stub.sent().len(), MANY / 500);
    let sent: Vec<_> = report.recipients().cloned().collect();
    assert_eq!(sent, email.recipients().collect::<Vec<_>>());
}

#[cfg(feature = "smtp")]
#[test]
fn twenty_thousand_recipients_are_sent_over_smtp() {
    let received = guarded("the SMTP send", || async {
        let server = TestServer::start(ServerOptions {
            tls: ServerTls::None,
            mechanisms: vec![],
            ..ServerOptions::default()
        })
        .await;
        let transport = SmtpTransport::builder_dangerous("127.0.0.1")
            .port(server.port())
            .sender("no-reply@example.org".parse().unwrap())
            .send_deadline(Duration::from_secs(300))
            .build()
            .unwrap();
        transport.send(&many()).await.unwrap();
        server.messages()
    });
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_to.len(), MANY);
}

// ---- item 4: caller-provided sizes ----

#[tokio::test]
async fn a_limit_of_usize_max_is_no_limit() {
    let email = support::email_to_many(3, 2, 1);
    assert_eq!(split_recipients(&email, usize::MAX).len(), 1);
    let stub = StubTransport::new().fail_after(usize::MAX);
    let report = RecipientLimit::new(stub.clone(), usize::MAX)
        .send(&email)
        .await
        .unwrap();
    assert_eq!(report.messages.len(), 1);
    assert_eq!(stub.sent()[0].recipient_count(), 6);
    // The largest limit the settings accept builds and sends too.
    let settings = ConnectorSettings::from_toml_str(&format!(
        "recipient_limit = {}\noutbox_dir = {:?}\nuser_name = \"no-reply@example.org\"\n",
        u32::MAX,
        tempfile::tempdir().unwrap().path().display().to_string()
    ))
    .unwrap();
    let transport = settings.build().unwrap();
    assert_eq!(transport.send(&email).await.unwrap().messages.len(), 1);
}
