//! A send dropped while its draft's `/send` waits — for a request slot, or to be tried again
//! after Graph refused it — and its draft: that `/send` is not on its way, nothing will
//! send the draft, so it is deleted rather than left in the Drafts folder, the whole
//! message in it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use httpmock::{Method::DELETE, Method::POST, MockServer};
use mail_connector::{
    AccessToken, Attachment, Email, GraphTransport, MailTransport, Mailbox, TokenProvider,
};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use super::draft_failures::parts_email;
use super::gate::{self, Held};
use super::helpers::*;

/// One side of a signal between a task and the test.
#[derive(Debug)]
struct Signal {
    fire: mpsc::UnboundedSender<()>,
    fired: tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>,
}

impl Signal {
    fn new() -> Self {
        let (fire, fired) = mpsc::unbounded_channel();
        Self {
            fire,
            fired: tokio::sync::Mutex::new(fired),
        }
    }

    fn fire(&self) {
        let _ = self.fire.send(());
    }

    /// Waits, up to 20 seconds, for the next firing.
    async fn fired(&self, what: &str) {
        let mut fired = self.fired.lock().await;
        tokio::time::timeout(Duration::from_secs(20), fired.recv())
            .await
            .unwrap_or_else(|_| panic!("{what} never came"))
            .unwrap();
    }
}

/// A token for every request: none is kept ready, so each attempt asks for one. The one
/// asked for after [`hold_next`](Self::hold_next) is held until [`release`](Self::release),
/// and says when it is asked for and when it is handed out.
#[derive(Debug)]
struct HeldTokens {
    hold: AtomicBool,
    asked: Signal,
    released: Semaphore,
    handed_out: Signal,
}

impl HeldTokens {
    fn new() -> Self {
        Self {
            hold: AtomicBool::new(false),
            asked: Signal::new(),
            released: Semaphore::new(0),
            handed_out: Signal::new(),
        }
    }

    fn hold_next(&self) {
        self.hold.store(true, Ordering::SeqCst);
    }

    fn release(&self) {
        self.released.add_permits(1);
    }
}

#[async_trait]
impl TokenProvider for HeldTokens {
    async fn token(&self, _scope: &str) -> mail_connector::Result<AccessToken> {
        if self.hold.swap(false, Ordering::SeqCst) {
            self.asked.fire();
            self.released.acquire().await.unwrap().forget();
            self.handed_out.fire();
        }
        Ok(AccessToken::new(
            token_for(&["Mail.Send", "Mail.ReadWrite"]),
            SystemTime::now() + Duration::from_secs(3600),
        ))
    }
}

/// A send dropped while its draft's `/send` waits for a request slot (the mailbox's other
/// sends hold them) deletes the draft: that `/send` never left.
///
/// One slot. The `/send` asks for its token (held) once the attachment is answered; another
/// send then takes the slot and keeps it while the gate holds its `sendMail`; the `/send` is
/// given its token and goes on to wait for the slot — in the same poll of its task, so on
/// this one-thread runtime before the test hears that the token was handed out.
#[tokio::test]
async fn a_send_dropped_while_its_drafts_send_waits_for_a_slot_deletes_the_draft() {
    let server = MockServer::start_async().await;
    server.mock(|when, then| {
        when.method(POST).path(MESSAGES);
        then.status(201).json_body(json!({"id": "d3"}));
    });
    server.mock(|when, then| {
        when.method(POST).path(format!("{MESSAGES}/d3/attachments"));
        then.status(201).json_body(json!({"id": "a"}));
    });
    server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let send_draft = server.mock(|when, then| {
        when.method(POST).path(format!("{MESSAGES}/d3/send"));
        then.status(202);
    });
    let (deleted_tx, mut deleted) = mpsc::unbounded_channel::<()>();
    let deleted_tx = std::sync::Mutex::new(deleted_tx);
    server.mock(|when, then| {
        when.method(DELETE).path(format!("{MESSAGES}/d3"));
        then.respond_with(move |_: &httpmock::HttpMockRequest| {
            let _ = deleted_tx.lock().unwrap().send(());
            httpmock::HttpMockResponse::builder().status(204).build()
        });
    });
    let held_attachment = Held::new("POST", format!("{MESSAGES}/d3/attachments"));
    let held_other = Held::new("POST", SEND_PATH);
    let base = gate::start(
        server.base_url(),
        vec![Arc::clone(&held_attachment), Arc::clone(&held_other)],
    )
    .await;
    let tokens = Arc::new(HeldTokens::new());
    let graph = GraphTransport::builder(
        Mailbox::parse("no-reply@contoso.com").unwrap(),
        Arc::clone(&tokens),
    )
    .graph_endpoint(base)
    .max_concurrency(1)
    .build()
    .unwrap();
    // Too large for `sendMail` with its text, its one attachment added by one POST.
    let email = Email::builder()
        .to("ann@example.org")
        .subject("one part")
        .text("x".repeat(200_000))
        .attachment(Attachment::from_bytes("p.bin", vec![1u8; 2_900_000]))
        .build()
        .unwrap();
    let sending = graph.clone();
    let send = tokio::spawn(async move { sending.send(&email).await });
    held_attachment.arrived().await;
    tokens.hold_next();
    held_attachment.release();
    // The draft's `/send` is under way, not handed over: it waits for its token.
    tokens.asked.fired("the /send's token request").await;
    let other_send = tokio::spawn(async move { graph.send(&simple_email()).await });
    // The other send has the slot, and keeps it.
    held_other.arrived().await;
    tokens.release();
    // The draft's `/send` waits for the slot.
    tokens.handed_out.fired("the /send's token").await;
    send.abort();
    assert!(send.await.unwrap_err().is_cancelled());
    // The deletion needs the slot too.
    held_other.release();
    tokio::time::timeout(Duration::from_secs(20), deleted.recv())
        .await
        .expect("the draft of a send dropped before its `/send` left was not deleted")
        .unwrap();
    other_send.await.unwrap().unwrap();
    send_draft.assert_calls(0);
}

/// A send dropped while its draft's `/send` waits to be tried again — Graph answered it 429
/// with a `Retry-After` — deletes the draft: Graph did not act on the refused `/send`, and
/// nothing will try it again.
#[tokio::test]
async fn a_send_dropped_while_its_drafts_send_waits_out_a_429_deletes_the_draft() {
    let (logs, _guard) = crate::support::capture_logs();
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    // A mailbox of this test's own, which names its send's lines in the shared logs.
    let mailbox = "retried-draft-send@contoso.com";
    let messages = format!("/v1.0/users/{mailbox}/messages");
    server.mock(|when, then| {
        when.method(POST).path(&messages);
        then.status(201).json_body(json!({"id": "d8"}));
    });
    server.mock(|when, then| {
        when.method(POST).path(format!("{messages}/d8/attachments"));
        then.status(201).json_body(json!({"id": "a"}));
    });
    let send_draft = server.mock(|when, then| {
        when.method(POST).path(format!("{messages}/d8/send"));
        then.status(429)
            .header("retry-after", "5")
            .json_body(graph_error("ApplicationThrottled", "slow down"));
    });
    let (deleted_tx, mut deleted) = mpsc::unbounded_channel::<()>();
    let deleted_tx = std::sync::Mutex::new(deleted_tx);
    server.mock(|when, then| {
        when.method(DELETE).path(format!("{messages}/d8"));
        then.respond_with(move |_: &httpmock::HttpMockRequest| {
            let _ = deleted_tx.lock().unwrap().send(());
            httpmock::HttpMockResponse::builder().status(204).build()
        });
    });
    let mut settings = settings(&server);
    settings.user_name = Some(mailbox.into());
    let graph = transport(&settings);
    let send = tokio::spawn(async move { graph.send(&parts_email()).await });
    // The 429 was read, and the send waits out its `Retry-After` before trying again.
    let waits = || {
        logs.text().lines().any(|line| {
            line.contains(&format!("mailbox={mailbox}"))
                && line.contains("send draft")
                && line.contains("Graph asked to retry later")
        })
    };
    wait_until("the /send's retry", waits).await;
    send.abort();
    assert!(send.await.unwrap_err().is_cancelled());
    tokio::time::timeout(Duration::from_secs(20), deleted.recv())
        .await
        .expect(
            "the draft of a send dropped while its `/send` waited to be retried was not deleted",
        )
        .unwrap();
    send_draft.assert_calls(1);
}
