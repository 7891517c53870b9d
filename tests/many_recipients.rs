//! Issue 8, item 15: building, rendering and sending an email to many recipients is linear.
//! And item 4 (message part): limits of `usize::MAX` do not panic.
//!
//! No time is asserted: each step runs under a generous hang guard that the old, quadratic
//! code exceeds by far. Measured with an outbox send of an email to N Bcc recipients
//! (`cargo test`, debug build, 2 shared cores), before → after the fix:
//! 1,000: 7.9 s → 0.11 s; 2,000: 29.8 s → 0.17 s; 4,000: 132 s → 0.34 s; 20,000: about 55
//! minutes extrapolated (quadratic) → 1.6 s. In a release build 100,000 now take 0.5 s.

mod support;

use std::time::Duration;

use mail_connector::{
    ConnectorSettings, Email, MailTransport, OutboxTransport, RecipientLimit, SmtpTransport,
    StubTransport, split_recipients,
};
use mail_parser::MessageParser;
use support::smtp_server::{ServerOptions, ServerTls, TestServer};

const MANY: usize = 20_000;
const GUARD: Duration = Duration::from_secs(60);

async fn guarded<T>(what: &str, step: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, step)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {GUARD:?}"))
}

fn many() -> Email {
    support::email_to_many(MANY / 4, MANY / 4, MANY / 2)
}

#[tokio::test]
async fn twenty_thousand_recipients_render_to_the_outbox() {
    let email = guarded("building", async { many() }).await;
    assert_eq!(email.recipient_count(), MANY);
    let dir = tempfile::tempdir().unwrap();
    let outbox =
        OutboxTransport::new(dir.path()).with_sender("no-reply@example.org".parse().unwrap());
    let report = guarded("the outbox send", outbox.send(&email))
        .await
        .unwrap();
    assert_eq!(report.recipients().count(), MANY);
    let raw = std::fs::read(report.messages[0].id.as_deref().unwrap()).unwrap();
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.to().unwrap().iter().count(), MANY / 4);
    assert_eq!(message.cc().unwrap().iter().count(), MANY / 4);
    assert_eq!(message.bcc().unwrap().iter().count(), MANY / 2);
    assert!(raw.split(|&b| b == b'\n').all(|line| line.len() <= 999));
}

#[tokio::test]
async fn twenty_thousand_recipients_are_split_and_sent_to_the_stub() {
    let email = many();
    let stub = StubTransport::new();
    let limited = RecipientLimit::new(stub.clone(), 500);
    let report = guarded("the split send", limited.send(&email))
        .await
        .unwrap();
    assert_eq!(report.messages.len(), MANY / 500);
    assert_eq!(stub.sent().len(), MANY / 500);
    let sent: Vec<_> = report.recipients().cloned().collect();
    assert_eq!(sent, email.recipients().collect::<Vec<_>>());
}

#[tokio::test]
async fn twenty_thousand_recipients_are_sent_over_smtp() {
    let server = TestServer::start(ServerOptions {
        tls: ServerTls::None,
        mechanisms: vec![],
        ..ServerOptions::default()
    })
    .await;
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .sender("no-reply@example.org".parse().unwrap())
        .send_timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let email = many();
    guarded("the SMTP send", transport.send(&email))
        .await
        .unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpt_to.len(), MANY);
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
