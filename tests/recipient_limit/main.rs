//! Recipient-limit splitting, shared by every transport.

#[path = "../support/mod.rs"]
mod support;

mod refusals;

use std::collections::HashSet;

use mail_connector::recipient_limit::split_recipients;
use mail_connector::{
    Delivery, Error, MailTransport, Recipient, RecipientKind, RecipientLimit, StubTransport,
};

pub(crate) fn addresses(recipients: &[Recipient]) -> Vec<&str> {
    recipients.iter().map(|r| r.mailbox.address()).collect()
}

/// The groups of a partial delivery, by address.
pub(crate) struct Groups<'a> {
    delivered: Vec<&'a str>,
    uncertain: Vec<&'a str>,
    not_sent: Vec<&'a str>,
    refused_permanently: Vec<&'a str>,
    refusals: usize,
    source: &'a Error,
}

/// `error` as a partial delivery's groups; any other error fails the test.
pub(crate) fn groups(error: &Error) -> Groups<'_> {
    let Error::PartialDelivery {
        delivered,
        uncertain,
        not_sent,
        refused_permanently,
        refusals,
        source,
        ..
    } = error
    else {
        panic!("expected PartialDelivery, got {error:?}");
    };
    Groups {
        delivered: delivered
            .recipients()
            .map(|r| r.mailbox.address())
            .collect(),
        uncertain: addresses(uncertain),
        not_sent: addresses(not_sent),
        refused_permanently: addresses(refused_permanently),
        refusals: refusals.len(),
        source,
    }
}

fn all_sent(stub: &StubTransport) -> Vec<Recipient> {
    stub.sent().iter().flat_map(|e| e.recipients()).collect()
}

#[tokio::test]
async fn limit_one_sends_one_message_per_recipient() {
    let stub = StubTransport::new();
    let email = support::email_to_many(2, 1, 1);
    let report = RecipientLimit::new(stub.clone(), 1)
        .send(&email)
        .await
        .unwrap();
    assert_eq!(report.messages.len(), 4);
    for message in stub.sent() {
        assert_eq!(message.recipient_count(), 1);
    }
    let expected: Vec<Recipient> = email.recipients().collect();
    assert_eq!(all_sent(&stub), expected);
    assert_eq!(report.recipients().cloned().collect::<Vec<_>>(), expected);
}

#[tokio::test]
async fn limit_two_keeps_roles_and_sends_everyone_exactly_once() {
    let stub = StubTransport::new();
    let email = support::email_to_many(3, 2, 2);
    let report = RecipientLimit::new(stub.clone(), 2)
        .send(&email)
        .await
        .unwrap();
    assert_eq!(report.messages.len(), 4); // 7 recipients, 2 per message
    let sent = stub.sent();
    assert!(sent.iter().all(|m| m.recipient_count() <= 2));
    // The message with to2 + cc0 keeps each role.
    assert_eq!(sent[1].to()[0].address(), "to2@example.org");
    assert_eq!(sent[1].cc()[0].address(), "cc0@example.org");
    assert!(sent[1].bcc().is_empty());
    // Bcc stays Bcc, also when it shares a message with a Cc.
    assert_eq!(sent[2].cc()[0].address(), "cc1@example.org");
    assert_eq!(sent[2].bcc()[0].address(), "bcc0@example.org");
    assert!(sent[3].to().is_empty() && sent[3].cc().is_empty());
    assert_eq!(sent[3].bcc()[0].address(), "bcc1@example.org");
    let recipients = all_sent(&stub);
    let unique: HashSet<_> = recipients.iter().collect();
    assert_eq!(recipients.len(), 7);
    assert_eq!(unique.len(), 7);
    assert_eq!(recipients, email.recipients().collect::<Vec<_>>());
    // Everything else in the email is kept in every part.
    for part in &sent {
        assert_eq!(part.subject(), "many");
        assert_eq!(part.text(), Some("hi"));
    }
}

#[tokio::test]
async fn limit_zero_means_no_limit() {
    let stub = StubTransport::new();
    let email = support::email_to_many(300, 100, 100);
    let report = RecipientLimit::new(stub.clone(), 0)
        .send(&email)
        .await
        .unwrap();
    assert_eq!(report.messages.len(), 1);
    assert_eq!(stub.sent()[0].recipient_count(), 500);
    assert_eq!(split_recipients(&email, 0).len(), 1);
    assert_eq!(split_recipients(&email, 500).len(), 1);
    assert_eq!(split_recipients(&email, 499).len(), 2);
}

#[tokio::test]
async fn partial_failure_reports_who_got_it_and_who_did_not() {
    let stub = StubTransport::new().fail_after(2);
    let email = support::email_to_many(3, 2, 2); // parts: [to0,to1] [to2,cc0] [cc1,bcc0] [bcc1]
    let error = RecipientLimit::new(stub.clone(), 2)
        .send(&email)
        .await
        .unwrap_err();
    let Error::PartialDelivery {
        delivered,
        uncertain,
        not_sent,
        source,
        ..
    } = &error
    else {
        panic!("expected PartialDelivery, got {error:?}");
    };
    let got: Vec<&str> = delivered
        .recipients()
        .map(|r| r.mailbox.address())
        .collect();
    assert_eq!(
        got,
        [
            "to0@example.org",
            "to1@example.org",
            "to2@example.org",
            "cc0@example.org"
        ]
    );
    assert!(uncertain.is_empty());
    let missed: Vec<(RecipientKind, &str)> = not_sent
        .iter()
        .map(|r| (r.kind, r.mailbox.address()))
        .collect();
    assert_eq!(
        missed,
        [
            (RecipientKind::Cc, "cc1@example.org"),
            (RecipientKind::Bcc, "bcc0@example.org"),
            (RecipientKind::Bcc, "bcc1@example.org"),
        ]
    );
    assert!(matches!(**source, Error::Transport { .. }));
    assert_eq!(error.delivery(), Delivery::NotSent);
    // Sending stops at the first failure: the last part was never attempted.
    assert_eq!(stub.attempts(), 3);
    let text = error.to_string();
    assert!(
        text.contains("sent to 4 of 7 recipients; 3 did not get it"),
        "{text}"
    );
}

#[tokio::test]
async fn an_uncertain_part_is_reported_as_uncertain_not_as_unsent() {
    let stub = StubTransport::new().fail_after(1).with_uncertain_failures();
    let email = support::email_to_many(3, 0, 0);
    let error = RecipientLimit::new(stub, 1).send(&email).await.unwrap_err();
    let Error::PartialDelivery {
        delivered,
        uncertain,
        not_sent,
        ..
    } = &error
    else {
        panic!("expected PartialDelivery, got {error:?}");
    };
    assert_eq!(delivered.messages.len(), 1);
    assert_eq!(uncertain.len(), 1);
    assert_eq!(uncertain[0].mailbox.address(), "to1@example.org");
    assert_eq!(not_sent.len(), 1);
    assert_eq!(not_sent[0].mailbox.address(), "to2@example.org");
    assert_eq!(error.delivery(), Delivery::Uncertain);
}

#[tokio::test]
async fn a_failure_on_the_first_part_is_still_exact() {
    let stub = StubTransport::failing().with_transient_failures();
    let email = support::email_to_many(2, 0, 0);
    let error = RecipientLimit::new(stub, 1).send(&email).await.unwrap_err();
    let Error::PartialDelivery {
        delivered,
        not_sent,
        ..
    } = &error
    else {
        panic!("expected PartialDelivery, got {error:?}");
    };
    assert!(delivered.messages.is_empty());
    assert_eq!(not_sent.len(), 2);
    assert!(error.is_transient());
}

#[tokio::test]
async fn an_unsplit_email_passes_errors_through_unchanged() {
    let stub = StubTransport::failing();
    let email = support::email_to_many(2, 0, 0);
    let error = RecipientLimit::new(stub, 5).send(&email).await.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
}

#[tokio::test]
async fn a_partly_delivered_email_is_not_transient_even_if_its_failure_is() {
    // Resending the whole email would duplicate it for those who got the first part.
    let stub = StubTransport::new().fail_after(1).with_transient_failures();
    let email = support::email_to_many(2, 0, 0);
    let error = RecipientLimit::new(stub, 1).send(&email).await.unwrap_err();
    let Error::PartialDelivery {
        not_sent, source, ..
    } = &error
    else {
        panic!("expected PartialDelivery, got {error:?}");
    };
    assert!(source.is_transient());
    assert!(!error.is_transient());
    assert_eq!(not_sent.len(), 1);
    let remedy = error.remedy().expect("says to whom to resend");
    assert!(
        remedy.contains("resend only to the recipients listed as not sent"),
        "{remedy}"
    );
}

/// An address listed twice (in To and Bcc, say; spelled in another case) is one recipient
/// when the email is split: sent as one message, the server delivers it once, and split, it
/// must not be sent twice, nor reported both as delivered and as not sent.
#[tokio::test]
async fn an_address_listed_twice_is_sent_one_message_and_reported_once() {
    let email = mail_connector::Email::builder()
        .to("ann@example.org")
        .cc("bob@example.org")
        .bcc("Ann@Example.org")
        .subject("s")
        .text("t")
        .build()
        .unwrap();
    // Split by address, one part: [ann (To), bob (Cc)].
    let parts = split_recipients(&email, 2);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(parts[0][0].kind, RecipientKind::To);
    let stub = StubTransport::new();
    RecipientLimit::new(stub.clone(), 2)
        .send(&email)
        .await
        .unwrap();
    assert_eq!(stub.sent().len(), 1);

    // With a limit of 1: two messages, and a failure of the second names only bob.
    let stub = StubTransport::new();
    RecipientLimit::new(stub.clone(), 1)
        .send(&email)
        .await
        .unwrap();
    let ann = all_sent(&stub)
        .iter()
        .filter(|r| r.mailbox.address().eq_ignore_ascii_case("ann@example.org"))
        .count();
    assert_eq!((stub.sent().len(), ann), (2, 1));
    let email = mail_connector::Email::builder()
        .to("ann@example.org")
        .cc("bob@example.org")
        .bcc("ann@example.org")
        .bcc("carl@example.org")
        .subject("s")
        .text("t")
        .build()
        .unwrap();
    let error = RecipientLimit::new(StubTransport::new().fail_after(1), 2)
        .send(&email)
        .await
        .unwrap_err();
    let g = groups(&error);
    assert_eq!(g.delivered, ["ann@example.org", "bob@example.org"]);
    assert_eq!(g.not_sent, ["carl@example.org"]);
    assert!(
        error.to_string().contains("sent to 2 of 3 recipients"),
        "{error}"
    );
}

/// `check` is the wrapped transport's own: its steps, not an empty report that says "ok"
/// whatever the transport would find.
#[tokio::test]
async fn check_is_the_wrapped_transports_check() {
    let report = RecipientLimit::new(StubTransport::new(), 2)
        .check()
        .await
        .unwrap();
    let steps: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["stub"]);
}
