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

/// A relay API that refuses one address for now (or with `reply`) and takes the rest; or
/// fails as told.
#[derive(Debug)]
struct Relay {
    refuses: &'static str,
    reply: (u16, &'static str),
    throttled_for: Option<Duration>,
    sent_to: Mutex<Vec<Vec<String>>>,
}

impl Relay {
    fn refusing(address: &'static str) -> Self {
        Self {
            refuses: address,
            reply: (452, "4.2.2 mailbox full"),
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
        // The API's id for the request, whoever it took: with nobody taken, a message that
        // carries no recipient, which `partial_delivery` leaves out.
        let delivered = SendReport::single(SentMessage::new(taken, Some("relay-1".into())));
        if refused.is_empty() {
            return Ok(delivered);
        }
        let (code, text) = self.reply;
        let refusals: Vec<Refusal> = refused
            .iter()
            .map(|r| Refusal::new(r.clone(), code, text))
            .collect();
        let transience = match refusals[0].is_permanent() {
            true => Transience::Permanent,
            false => Transience::Transient,
        };
        let source = Error::transport("relay", refusals[0].to_string(), transience);
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
    deliver_once_of(std::sync::Arc::new(relay), &email()).await
}

/// As [`deliver_once`], for `email`, through a transport chosen at run time.
async fn deliver_once_of(
    relay: std::sync::Arc<dyn MailTransport>,
    email: &Email,
) -> (WorkerReport, MessageSummary, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(&format!("sqlite://{}", dir.path().join("q.db").display()))
        .await
        .unwrap();
    let id = queue.enqueue(email, EnqueueOptions::new()).await.unwrap();
    let report = Worker::with_transport(&queue, relay)
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

/// An API that took nobody still answers with its request's id: a message that carries no
/// recipient. Nobody got the email, so every recipient refused for now is retried as a
/// whole, as after an SMTP server's refusals, rather than kept as a partial delivery.
#[tokio::test]
async fn a_report_that_carries_nobody_is_nobody_delivered() {
    let everyone = Relay::refusing("ann@example.org");
    let one = Email::builder()
        .to("ann@example.org")
        .subject("s")
        .build()
        .unwrap();
    let error = everyone.send(&one).await.unwrap_err();
    let Error::PartialDelivery { delivered, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(delivered.messages.is_empty(), "{delivered:?}");
    assert!(error.is_transient(), "{error}");

    let (report, row, _dir) = deliver_once_of(std::sync::Arc::new(everyone), &one).await;
    assert_eq!((report.retried, report.partial), (1, 0), "{report:?}");
    assert_eq!(row.state, State::Queued, "{row:?}");
    assert_eq!(row.report, None, "nobody got it: {row:?}");
}

/// The only recipient refused for good by the API's policy (`550 5.7.1`), reported as the
/// crate's SMTP transport reports refusals: that email fails with the fix to apply, and its
/// refusal is said once, in the API's words (no SMTP `RCPT TO`); the sender mailbox is not
/// paused, and a recipient limit goes on to the parts after it.
#[tokio::test]
async fn a_refused_only_recipient_fails_with_its_fix_and_the_mailbox_goes_on() {
    let relay = || Relay {
        reply: (550, "5.7.1 recipient not allowed by policy"),
        ..Relay::refusing("far@example.net")
    };
    let one = Email::builder()
        .to("far@example.net")
        .subject("s")
        .build()
        .unwrap();
    let error = relay().send(&one).await.unwrap_err();
    assert!(error.is_auth() && !error.is_transient(), "{error}");
    let text = error.to_string();
    assert_eq!(
        text.matches("far@example.net: 550 5.7.1").count(),
        1,
        "{text}"
    );
    assert!(!text.contains("RCPT TO"), "{text}");
    let remedy = error.remedy().expect("a fix for the refused address");
    assert!(remedy.contains("check the addresses"), "{remedy}");

    let (report, row, _dir) = deliver_once_of(std::sync::Arc::new(relay()), &one).await;
    assert_eq!((report.failed, report.held), (1, 0), "{report:?}");
    assert_eq!(row.state, State::Failed, "{row:?}");
    assert!(
        row.remedy
            .as_deref()
            .unwrap_or("")
            .contains("check the addresses"),
        "{row:?}"
    );

    // One recipient per message: the refused one's part is passed, the others sent.
    let three = Email::builder()
        .to("ann@example.org")
        .to("far@example.net")
        .to("bob@example.org")
        .build()
        .unwrap();
    let limited = std::sync::Arc::new(relay());
    let error = mail_connector::RecipientLimit::new(limited.clone(), 1)
        .send(&three)
        .await
        .unwrap_err();
    let Error::PartialDelivery {
        delivered,
        refused_permanently,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(delivered.recipients().count(), 2, "{error}");
    assert_eq!(refused_permanently.len(), 1, "{error}");
    assert_eq!(limited.sent_to.lock().unwrap().len(), 3);
}

/// A transport of its own that fails every send with one error.
#[derive(Debug)]
struct Failing(Error);

#[async_trait]
impl MailTransport for Failing {
    async fn send(&self, _: &Email) -> Result<SendReport> {
        Err(self.0.clone())
    }

    async fn check(&self) -> Result<CheckReport> {
        Ok(CheckReport::default())
    }
}

/// An error only the settings can fix (`with_settings`) holds the sender mailbox's mail
/// until an admin acts, as the crate's own settings errors do, rather than failing each
/// message the same way; one marked as the message's own (`with_message_only`) fails that
/// message alone, even when it is an auth failure, which would otherwise hold them all.
#[tokio::test]
async fn its_settings_errors_hold_the_mailbox_and_its_message_errors_do_not() {
    let region = Error::transport("relay", "no such region", Transience::Permanent)
        .with_remedy("set RELAY_REGION")
        .with_settings();
    assert!(region.is_settings() && !region.is_auth(), "{region}");
    let (report, row, _dir) = deliver_once(Failing(region)).await;
    assert_eq!((report.held, report.failed), (1, 0), "{report:?}");
    assert_eq!(row.state, State::Queued, "{row:?}");
    let said = row.last_error.as_deref().unwrap_or("");
    assert!(said.contains("held until an admin fixes this"), "{row:?}");
    assert!(said.contains("set RELAY_REGION"), "{row:?}");

    // Without the marks, the same auth failure holds the mailbox; marked as the
    // message's own, it fails that message alone.
    let refused =
        || Error::transport("relay", "attachment type refused", Transience::Permanent).with_auth();
    let (report, _, _dir) = deliver_once(Failing(refused())).await;
    assert_eq!((report.held, report.failed), (1, 0), "{report:?}");
    let own = refused().with_message_only();
    assert!(own.is_auth() && !own.is_settings(), "{own}");
    let (report, row, _dir) = deliver_once(Failing(own)).await;
    assert_eq!((report.held, report.failed), (0, 1), "{report:?}");
    assert_eq!(row.state, State::Failed, "{row:?}");

    // On the crate's own errors that say it by their variant, they change nothing.
    assert!(!Error::Disabled.with_message_only().is_auth());
    assert!(Error::Disabled.with_settings().is_settings());
}
