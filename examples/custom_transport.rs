//! Implement `MailTransport` for your own backend, as a downstream crate would.
//!
//! Run: `cargo run --example custom_transport`
//!
//! `QueueTransport` hands each email to a background worker through a bounded channel (a
//! stand-in for a message queue). It needs nothing from mail-connector's internals: only the
//! public trait, the message model and `Error`. Because it is a `MailTransport`, the crate's
//! `RecipientLimit` wrapper works on it unchanged.

use mail_connector::{
    CheckReport, CheckStep, Email, Error, MailTransport, RecipientLimit, Result, SendReport,
    SentMessage, Transience, async_trait,
};
use tokio::sync::mpsc;

/// Queues emails for a worker.
struct QueueTransport {
    queue: mpsc::Sender<Email>,
}

#[async_trait]
impl MailTransport for QueueTransport {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        // A full queue is a transient condition: the caller may retry later. A closed one
        // means the worker is gone, which no retry mends.
        self.queue.try_send(email.clone()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                Error::transport("queue", "the queue is full", Transience::Transient)
            }
            // `remedy()` then tells the caller what to do, as the crate's own errors do.
            mpsc::error::TrySendError::Closed(_) => {
                Error::transport("queue", "the worker has stopped", Transience::Permanent)
                    .with_remedy("restart the worker")
            }
        })?;
        Ok(SendReport::single(SentMessage::new(
            email.recipients().collect(),
            None,
        )))
    }

    async fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        report.push(if self.queue.is_closed() {
            CheckStep::failed(
                "queue",
                "the worker has stopped",
                Some("restart the worker".into()),
            )
        } else {
            CheckStep::ok("queue", format!("{} free slots", self.queue.capacity()))
        });
        Ok(report)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let (queue, mut worker) = mpsc::channel::<Email>(16);
    let worker = tokio::spawn(async move {
        let mut delivered = 0;
        while let Some(email) = worker.recv().await {
            delivered += 1;
            println!(
                "worker got {:?} for {} recipient(s)",
                email.subject(),
                email.recipient_count()
            );
        }
        delivered
    });

    // At most two recipients per message, like the admin screen's Recipient Limit.
    let transport = RecipientLimit::new(QueueTransport { queue }, 2);
    print!("{}", transport.check().await?);

    let email = Email::builder()
        .to("ann@example.org")
        .to("bob@example.org")
        .cc("carol@example.org")
        .subject("Weekly digest")
        .text("Here is what happened this week.")
        .build()?;
    let report = transport.send(&email).await?;
    println!("queued as {} message(s)", report.messages.len());

    drop(transport); // closes the queue so the worker finishes
    let delivered = worker.await.expect("worker panicked");
    assert_eq!(delivered, 2);
    Ok(())
}
