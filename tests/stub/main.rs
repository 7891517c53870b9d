//! Issue 13: the scriptable stub — one outcome per send (sent, transient failure, permanent
//! failure, uncertain), a default once the script is used up, and the From address each
//! email went out as.

use mail_connector::{
    Delivery, Email, Error, MailTransport, Mailbox, RecipientLimit, StubOutcome, StubTransport,
};

fn email(subject: &str) -> Email {
    Email::builder()
        .to("ann@example.org")
        .subject(subject)
        .text("hi")
        .build()
        .unwrap()
}

fn mailbox(address: &str) -> Mailbox {
    address.parse().unwrap()
}

fn stub_error(error: &Error) -> bool {
    matches!(error, Error::Transport { transport, .. } if transport == "stub")
}

#[tokio::test]
async fn fail_twice_transiently_then_succeed() {
    let stub = StubTransport::new()
        .with_sender(mailbox("no-reply@example.org"))
        .then(StubOutcome::TransientFailure)
        .then(StubOutcome::TransientFailure);
    let email = email("retry me");
    for _ in 0..2 {
        let error = stub.send(&email).await.unwrap_err();
        assert!(stub_error(&error), "{error:?}");
        assert!(error.is_transient(), "{error:?}");
        assert_eq!(error.delivery(), Delivery::NotSent);
    }
    let report = stub.send(&email).await.unwrap();
    assert_eq!(report.messages[0].id.as_deref(), Some("stub-1"));
    assert_eq!(stub.attempts(), 3);
    assert_eq!(stub.sent(), vec![email]);
    assert_eq!(stub.senders(), vec![Some(mailbox("no-reply@example.org"))]);
}

#[tokio::test]
async fn each_outcome_answers_like_a_real_transport() {
    let stub = StubTransport::new().script([
        StubOutcome::PermanentFailure,
        StubOutcome::Uncertain,
        StubOutcome::Sent,
        StubOutcome::TransientFailure,
    ]);
    let (one, two, three, four) = (email("1"), email("2"), email("3"), email("4"));

    let permanent = stub.send(&one).await.unwrap_err();
    assert!(stub_error(&permanent) && !permanent.is_transient());
    assert_eq!(permanent.delivery(), Delivery::NotSent);

    let uncertain = stub.send(&two).await.unwrap_err();
    assert!(stub_error(&uncertain));
    assert!(!uncertain.is_transient(), "never resend when uncertain");
    assert_eq!(uncertain.delivery(), Delivery::Uncertain);

    stub.send(&three).await.unwrap();

    let transient = stub.send(&four).await.unwrap_err();
    assert!(transient.is_transient());
    assert_eq!(transient.delivery(), Delivery::NotSent);

    // The script is used up: the default is to accept.
    stub.send(&four).await.unwrap();
    assert_eq!(stub.sent(), vec![three, four]);
    assert_eq!(stub.attempts(), 5);
}

#[tokio::test]
async fn otherwise_sets_the_outcome_after_the_script() {
    let stub = StubTransport::new()
        .then(StubOutcome::Sent)
        .otherwise(StubOutcome::PermanentFailure);
    stub.send(&email("a")).await.unwrap();
    for _ in 0..3 {
        let error = stub.send(&email("b")).await.unwrap_err();
        assert!(!error.is_transient());
    }
    assert_eq!(stub.sent(), vec![email("a")]);
    // `otherwise` wins over `fail_after`, and a script over both.
    let stub = StubTransport::failing()
        .otherwise(StubOutcome::Sent)
        .then(StubOutcome::Uncertain);
    assert_eq!(
        stub.send(&email("c")).await.unwrap_err().delivery(),
        Delivery::Uncertain
    );
    stub.send(&email("c")).await.unwrap();
}

#[tokio::test]
async fn the_from_address_is_the_emails_own_else_the_stubs_sender() {
    let stub = StubTransport::new().with_sender(mailbox("no-reply@example.org"));
    let own = Email::builder()
        .from("Alerts <alerts@example.org>")
        .to("ann@example.org")
        .subject("own from")
        .build()
        .unwrap();
    stub.send(&own).await.unwrap();
    stub.send(&email("default from")).await.unwrap();
    assert_eq!(
        stub.senders(),
        vec![
            Some(mailbox("Alerts <alerts@example.org>")),
            Some(mailbox("no-reply@example.org"))
        ]
    );
    // Without a sender of its own, an email without From records none.
    let bare = StubTransport::new();
    bare.send(&email("none")).await.unwrap();
    assert_eq!(bare.senders(), vec![None]);
}

#[tokio::test]
async fn the_old_fail_after_rules_still_hold() {
    let stub = StubTransport::new().fail_after(1).with_transient_failures();
    stub.send(&email("a")).await.unwrap();
    assert!(stub.send(&email("b")).await.unwrap_err().is_transient());
    let stub = StubTransport::new().fail_after(0).with_uncertain_failures();
    assert_eq!(
        stub.send(&email("a")).await.unwrap_err().delivery(),
        Delivery::Uncertain
    );
}

/// Code under test that retries transient failures, as a caller of the crate would: the
/// stub proves it stops at an uncertain outcome.
#[tokio::test]
async fn a_scripted_stub_drives_a_callers_retry_loop() {
    async fn send_with_retries(transport: &dyn MailTransport, email: &Email) -> Result<u32, Error> {
        let mut tries = 0;
        loop {
            tries += 1;
            match transport.send(email).await {
                Ok(_) => return Ok(tries),
                Err(error) if error.is_transient() && tries < 5 => continue,
                Err(error) => return Err(error),
            }
        }
    }
    let stub =
        StubTransport::new().script([StubOutcome::TransientFailure, StubOutcome::TransientFailure]);
    assert_eq!(send_with_retries(&stub, &email("x")).await.unwrap(), 3);
    let stub = StubTransport::new().script([StubOutcome::TransientFailure, StubOutcome::Uncertain]);
    let error = send_with_retries(&stub, &email("y")).await.unwrap_err();
    assert_eq!(error.delivery(), Delivery::Uncertain);
    assert_eq!(stub.attempts(), 2, "no resend after an uncertain outcome");

    // Behind the recipient limit, each part takes the next outcome.
    let stub = StubTransport::new().script([StubOutcome::Sent, StubOutcome::TransientFailure]);
    let limited = RecipientLimit::new(stub.clone(), 1);
    let two = Email::builder()
        .to("a@example.org")
        .to("b@example.org")
        .subject("two")
        .build()
        .unwrap();
    let error = limited.send(&two).await.unwrap_err();
    assert!(matches!(error, Error::PartialDelivery { .. }), "{error:?}");
    assert_eq!(stub.sent().len(), 1);
}

/// With `mailbox_only`, an email from another address is refused as Graph and SMTP refuse it
/// without `allow_send_as`, before the script's next outcome; the mailbox's own address in
/// another case is not another address.
#[tokio::test]
async fn mailbox_only_refuses_another_sender_before_the_script() {
    let stub = StubTransport::new()
        .with_sender(mailbox("no-reply@example.org"))
        .mailbox_only()
        .then(StubOutcome::TransientFailure);
    let billing = Email::builder()
        .from("billing@example.org")
        .to("ann@example.org")
        .build()
        .unwrap();
    let error = stub.send(&billing).await.unwrap_err();
    assert!(
        matches!(&error, Error::InvalidMessage { field, .. } if field == "from"),
        "{error:?}"
    );
    assert!(error.to_string().contains("allow_send_as"), "{error}");
    assert!(!error.is_transient(), "{error:?}");
    let own = Email::builder()
        .from("No-Reply@Example.org")
        .to("ann@example.org")
        .build()
        .unwrap();
    // The script's transient failure is still next.
    assert!(stub.send(&own).await.unwrap_err().is_transient());
    stub.send(&own).await.unwrap();
    assert_eq!(stub.sent().len(), 1);
    // Without mailbox_only, any sender goes, as before.
    let open = StubTransport::new().with_sender(mailbox("no-reply@example.org"));
    open.send(&billing).await.unwrap();
}
