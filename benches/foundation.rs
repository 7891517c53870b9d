//! Costs of the foundation that every send pays: building and validating an email, splitting
//! it by the recipient limit, and writing it to the outbox (MIME formatting + an atomic file).

use criterion::{Criterion, criterion_group, criterion_main};
use mail_connector::recipient_limit::split_recipients;
use mail_connector::{Attachment, Email, MailTransport, OutboxTransport};

fn email_with(recipients: usize) -> Email {
    let mut builder = Email::builder()
        .subject("Nightly report — Grüße ✅")
        .text("The report is attached.\n".repeat(20))
        .html("<p>The report is attached.</p>".repeat(20))
        .attachment(Attachment::from_bytes(
            "report.csv",
            "id,total\n1,42\n".repeat(1000),
        ));
    for i in 0..recipients {
        builder = builder.to(format!("User {i} <user{i}@example.org>"));
    }
    builder.build().unwrap()
}

fn bench(c: &mut Criterion) {
    c.bench_function("build and validate an email with 10 recipients", |b| {
        b.iter(|| email_with(10));
    });

    let big = email_with(500);
    c.bench_function("split 500 recipients by a limit of 100", |b| {
        b.iter(|| split_recipients(&big, 100));
    });

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox =
        OutboxTransport::new(dir.path()).with_sender("no-reply@example.org".parse().unwrap());
    let email = email_with(3);
    c.bench_function("outbox send (MIME + atomic file write)", |b| {
        b.to_async(&runtime)
            .iter(|| async { outbox.send(&email).await.unwrap() });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
