//! A transport implemented outside this crate reports what the crate's own transports do —
//! a partial delivery with each refusal, a remedy, an auth failure, a `Retry-After` — using
//! only public items, and the queue acts on each as it does for Graph and SMTP.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use mail_connector::queue::{EnqueueOptions, MessageSummary, Queue, State, Worker, WorkerReport};
use mail_connector::{
    CheckReport, Email, Error, MailTransport, Recipient, Refusal, Result, SendReport, SentMessage,
    Transience, async_trait,
};

/// A relay API that refuses one address for now and takes the rest; or fails as told.
#[derive(Debug)]
struct Relay {
    refuses: &'static str,
    throttled_for: Option<Duration>,
    sent_to: Mutex<Vec<Vec<String>>>,
}

impl Relay {
    fn refusing(address: &'static str) -> Self {
        Self {
            refuses: address,
            throttled_for: None,
            sent_to: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl MailTransport for Relay {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        if let Some(wait) = self.throttled_for {
            return Err(
                Error::transport("relay", "429 Too Many Requests", Transience::Transient)
                    .with_retry_after(wait),
            );
        }
        let (refused, taken): (Vec<Recipient>, Vec<Recipient>) = email
            .recipients()
            .partition(|r| r.mailbox.address() == self.refuses);
        self.sent_to.lock().unwrap().push(
            taken
                .iter()
                .map(|r| r.mailbox.address().to_owned())
                .collect(),
        );
        let delivered = SendReport::single(SentMessage::new(taken, Some("relay-1".into())));
        if refused.is_empty() {
            return Ok(delivered);
        }
        let refusals: Vec<Refusal> = refused
            .iter()
            .map(|r| Refusal::new(r.clone(), 452, "4.2.2 mailbox full"))
            .collect();
        let source = Error::transport("relay", refusals[0].to_string(), Transience::Transient);
        if delivered.messages[0].recipients.is_empty() {
            return Err(source);
        }
        Err(Error::partial_delivery(
            delivered,
            Vec::new(),
            refused,
            refusals,
            source,
        ))
    }

    async fn check(&self) -> Result<CheckReport> {
        Ok(CheckReport::default())
    }
}

fn email() -> Email {
    Email::builder()
        .from("no-reply@example.org")
        .to("ann@example.org")
        .to("full@example.org")
        .subject("Report")
        .text("ready")
        .build()
        .unwrap()
}

/// Enqueues `email()` in a new SQLite queue, delivers what is due once through `relay`
/// (waiting for no retry), and returns the worker's report and the message's row.
async fn deliver_once(
    relay: impl MailTransport + 'static,
) -> (WorkerReport, MessageSummary, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(&format!("sqlite://{}", dir.path().join("q.db").display()))
        .await
        .unwrap();
    let id = queue
        .enqueue(&email(), EnqueueOptions::new())
        .await
        .unwrap();
    let report = Worker::new(&queue, relay)
        .with_once_wait(Duration::ZERO)
        .run_once()
        .await
        .unwrap();
    let row = queue
        .list(None, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == id.as_str())
        .unwrap();
    (report, row, dir)
}

#[tokio::test]
async fn its_partial_delivery_is_kept_and_only_the_rest_is_retried() {
    let relay = std::sync::Arc::new(Relay::refusing("full@example.org"));
    let (report, row, _dir) = deliver_once(relay.clone()).await;
    assert_eq!(report.partial, 1, "{report:?}");
    assert_eq!(row.state, State::Queued, "{row:?}");
    assert!(
        row.last_error
            .as_deref()
            .unwrap()
            .contains("full@example.org: 452 4.2.2"),
        "{row:?}"
    );
    assert!(
        row.report.as_deref().unwrap().contains("ann@example.org"),
        "{row:?}"
    );
    // Due again later, for the refused address only.
    assert!(row.due_at > SystemTime::now(), "{row:?}");
    assert_eq!(
        relay.sent_to.lock().unwrap().as_slice(),
        [vec!["ann@example.org".to_owned()]]
    );
}

#[tokio::test]
async fn its_retry_after_is_honoured_and_its_advice_read() {
    let relay = Relay {
        throttled_for: Some(Duration::from_secs(600)),
        ..Relay::refusing("nobody@example.org")
    };
    let before = SystemTime::now();
    let (report, row, _dir) = deliver_once(relay).await;
    assert_eq!(report.retried, 1, "{report:?}");
    assert_eq!(row.state, State::Queued, "{row:?}");
    assert!(
        row.due_at >= before + Duration::from_secs(600),
        "due {:?} after the Retry-After",
        row.due_at.duration_since(before)
    );

    let refused = Error::transport("relay", "API key refused", Transience::Permanent)
        .with_remedy("create a new API key and set RELAY_KEY")
        .with_auth();
    assert!(refused.is_auth() && !refused.is_transient());
    assert_eq!(
        refused.remedy().as_deref(),
        Some("create a new API key and set RELAY_KEY")
    );
    // On the crate's own errors they change nothing.
    let disabled = Error::Disabled.with_remedy("x").with_auth();
    assert!(!disabled.is_auth());
    assert!(!disabled.remedy().unwrap().contains('x'));
}

/// What a raw-MIME transport of its own sends: no `Bcc` header (the recipients all stay in
/// `recipients()`, for the envelope), the sender's `From`, and for a prepared message the
/// `Message-ID` and `Date` it lacked.
#[tokio::test]
async fn its_wire_mime_has_no_bcc_header_and_every_recipient_for_the_envelope() {
    let sender: mail_connector::Mailbox = "no-reply@example.org".parse().unwrap();
    let built = Email::builder()
        .to("ann@example.org")
        .bcc("audit@example.org")
        .subject("s")
        .text("t")
        .build()
        .unwrap();
    let prepared = Email::from_mime(
        "From: reports@example.org\r\nTo: ann@example.org\r\nBcc: audit@example.org\r\n\
         Subject: s\r\n\r\nt\r\n",
    )
    .unwrap();
    for (email, from) in [
        (built, "no-reply@example.org"),
        (prepared, "reports@example.org"),
    ] {
        let wire = String::from_utf8(email.to_wire_mime(&sender).await.unwrap()).unwrap();
        let head = wire.split("\r\n\r\n").next().unwrap();
        assert!(!head.to_ascii_lowercase().contains("bcc:"), "{head}");
        assert!(!head.contains("audit@example.org"), "{head}");
        assert!(head.contains(&format!("From: {from}")), "{head}");
        assert!(
            head.contains("Message-ID: <") && head.contains("Date: "),
            "{head}"
        );
        let envelope: Vec<String> = email
            .recipients()
            .map(|r| r.mailbox.address().to_owned())
            .collect();
        assert_eq!(envelope.len(), 2, "{envelope:?}");
    }
}

/// A `Retry-After` past what a clock can say is kept as a day: the worker neither panics nor
/// stalls; a day is past the queue's default age limit, so the message fails, saying so.
#[tokio::test]
async fn an_absurd_retry_after_is_a_day_and_fails_past_the_age_limit() {
    let relay = Relay {
        throttled_for: Some(Duration::MAX),
        ..Relay::refusing("nobody@example.org")
    };
    let error = relay.send(&email()).await.unwrap_err();
    assert_eq!(error.retry_after(), Some(Duration::from_secs(24 * 60 * 60)));
    let (report, row, _dir) = deliver_once(relay).await;
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(row.state, State::Failed, "{row:?}");
    assert!(
        row.last_error.as_deref().unwrap().contains("429"),
        "{row:?}"
    );
    // A temporary policy refusal (4.7.x) is not the admin's to fix for good.
    let bob = Recipient {
        kind: mail_connector::RecipientKind::To,
        mailbox: "bob@example.org".parse().unwrap(),
    };
    let later = Refusal::new(bob.clone(), 451, "4.7.500 server busy");
    assert!(!later.is_auth() && !later.is_permanent());
    assert!(Refusal::new(bob, 550, "5.7.1 relay denied").is_auth());
}
