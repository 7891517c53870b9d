//! Recipient Limit with a transport outside the crate that refuses recipients one by one:
//! which refusals let the parts after them go, and which stop the send.

use mail_connector::{
    Delivery, Error, MailTransport, Recipient, RecipientLimit, Refusal, SendReport, SentMessage,
    Transience,
};

use super::groups;

/// An email to `to`, each in To.
fn email(to: &[&str]) -> mail_connector::Email {
    let mut builder = mail_connector::Email::builder().subject("s").text("t");
    for address in to {
        builder = builder.to(*address);
    }
    builder.build().unwrap()
}

/// A transport outside the crate that refuses some addresses one by one (as an SMTP server
/// at `RCPT TO`, reported with [`Error::partial_delivery`]) and fails whole any message to
/// `breaks@` (uncertain when `uncertain`).
#[derive(Clone, Default)]
struct Refusing {
    /// Address, reply code and text.
    refuse: Vec<(&'static str, u16, &'static str)>,
    uncertain: bool,
    parts: std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>,
}

#[async_trait::async_trait]
impl MailTransport for Refusing {
    async fn send(
        &self,
        email: &mail_connector::Email,
    ) -> mail_connector::Result<mail_connector::SendReport> {
        let recipients: Vec<Recipient> = email.recipients().collect();
        self.parts.lock().unwrap().push(
            recipients
                .iter()
                .map(|r| r.mailbox.address().to_owned())
                .collect(),
        );
        if recipients
            .iter()
            .any(|r| r.mailbox.address() == "breaks@example.org")
        {
            let error = Error::transport("relay", "connection reset", Transience::Transient);
            return Err(match self.uncertain {
                true => error.with_uncertain_delivery(),
                false => error,
            });
        }
        let (refused, accepted): (Vec<_>, Vec<_>) = recipients.into_iter().partition(|r| {
            self.refuse
                .iter()
                .any(|(address, ..)| r.mailbox.address() == *address)
        });
        let delivered = match accepted.is_empty() {
            true => SendReport::default(),
            false => SendReport::single(SentMessage::new(accepted, None)),
        };
        if refused.is_empty() {
            return Ok(delivered);
        }
        let refusals: Vec<Refusal> = refused
            .iter()
            .map(|r| {
                let (_, code, text) = self
                    .refuse
                    .iter()
                    .find(|(address, ..)| r.mailbox.address() == *address)
                    .unwrap();
                Refusal::new(r.clone(), *code, *text)
            })
            .collect();
        let transience = match refusals.iter().all(Refusal::is_permanent) {
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

    async fn check(&self) -> mail_connector::Result<mail_connector::CheckReport> {
        Ok(mail_connector::CheckReport::default())
    }
}

/// Recipients refused one by one do not stop the parts after theirs (the message went to
/// the others, as one message would have); a part that fails whole does, and the error then
/// keeps the refusals before it.
#[tokio::test]
async fn refused_recipients_do_not_stop_the_parts_after_them_and_a_failed_part_does() {
    let refusing = Refusing {
        refuse: vec![
            ("gone@example.org", 550, "5.1.1 no such user"),
            ("busy@example.org", 450, "4.2.1 mailbox busy"),
        ],
        ..Refusing::default()
    };

    // Refusals only: every part is sent; the source is the first temporary refusal.
    let all = email(&[
        "gone@example.org",
        "ann@example.org",
        "busy@example.org",
        "cy@example.org",
    ]);
    let transport = Refusing {
        parts: Default::default(),
        ..refusing.clone()
    };
    let error = RecipientLimit::new(transport.clone(), 1)
        .send(&all)
        .await
        .unwrap_err();
    assert_eq!(transport.parts.lock().unwrap().len(), 4);
    let g = groups(&error);
    assert_eq!(g.delivered, ["ann@example.org", "cy@example.org"]);
    assert!(g.uncertain.is_empty());
    assert_eq!(g.not_sent, ["gone@example.org", "busy@example.org"]);
    assert_eq!(g.refused_permanently, ["gone@example.org"]);
    assert_eq!(g.refusals, 2);
    assert!(
        g.source.is_transient(),
        "busy may take it later: {:?}",
        g.source
    );
    assert!(g.source.to_string().contains("4.2.1"), "{}", g.source);

    // Every recipient of a part refused for good by a policy (relay denied): the sender's
    // problem; the parts after it are not sent.
    let transport = Refusing {
        refuse: vec![
            ("far@example.net", 550, "5.7.1 relay denied"),
            ("away@example.net", 550, "5.7.1 relay denied"),
        ],
        ..Refusing::default()
    };
    let error = RecipientLimit::new(transport.clone(), 2)
        .send(&email(&[
            "far@example.net",
            "away@example.net",
            "cy@example.org",
        ]))
        .await
        .unwrap_err();
    assert_eq!(
        transport.parts.lock().unwrap().len(),
        1,
        "cy's part not sent"
    );
    let g = groups(&error);
    assert_eq!(
        g.not_sent,
        ["far@example.net", "away@example.net", "cy@example.org"]
    );
    assert_eq!(
        g.refused_permanently,
        ["far@example.net", "away@example.net"]
    );

    // A part that fails whole stops the send: the refusal before it is kept, the part and
    // the parts after it are not sent (uncertain, when the failure says so).
    for uncertain_failure in [false, true] {
        let transport = Refusing {
            uncertain: uncertain_failure,
            parts: Default::default(),
            ..refusing.clone()
        };
        let error = RecipientLimit::new(transport.clone(), 2)
            .send(&email(&[
                "ann@example.org",
                "gone@example.org",
                "breaks@example.org",
                "cy@example.org",
                "dan@example.org",
            ]))
            .await
            .unwrap_err();
        assert_eq!(transport.parts.lock().unwrap().len(), 2, "dan's never sent");
        let g = groups(&error);
        assert_eq!(g.delivered.len(), 1);
        assert_eq!(g.refused_permanently, ["gone@example.org"]);
        assert_eq!(g.refusals, 1);
        assert!(
            g.source.to_string().contains("connection reset"),
            "{}",
            g.source
        );
        match uncertain_failure {
            false => {
                assert!(g.uncertain.is_empty());
                assert_eq!(
                    g.not_sent,
                    [
                        "gone@example.org",
                        "breaks@example.org",
                        "cy@example.org",
                        "dan@example.org"
                    ]
                );
                assert_eq!(error.delivery(), Delivery::NotSent);
            }
            true => {
                assert_eq!(g.uncertain, ["breaks@example.org", "cy@example.org"]);
                assert_eq!(g.not_sent, ["gone@example.org", "dan@example.org"]);
                assert_eq!(error.delivery(), Delivery::Uncertain);
            }
        }
    }
}

/// Which wholly refused parts count as the sender's problem: only several recipients, none
/// delivered, every one refused for good by a policy. One recipient refused by a policy
/// (it may be that recipient's own), recipients refused for good but not by a policy (no
/// such user), or a policy refusal beside a delivery: the parts after it are still sent.
#[tokio::test]
async fn only_several_policy_refusals_with_nothing_delivered_stop_the_parts_after() {
    let refusing = Refusing {
        refuse: vec![
            ("far@example.net", 550, "5.7.1 relay denied"),
            ("gone@example.org", 550, "5.1.1 no such user"),
            ("lost@example.org", 550, "5.1.1 no such user"),
        ],
        ..Refusing::default()
    };
    for (limit, to, refused) in [
        // A part of one, refused by a policy.
        (
            1,
            &["far@example.net", "cy@example.org"][..],
            &["far@example.net"][..],
        ),
        // Every recipient of a part refused for good, but as unknown users.
        (
            2,
            &["gone@example.org", "lost@example.org", "cy@example.org"],
            &["gone@example.org", "lost@example.org"],
        ),
        // A policy refusal in a part that went to someone else.
        (
            2,
            &["ann@example.org", "far@example.net", "cy@example.org"],
            &["far@example.net"],
        ),
    ] {
        let transport = Refusing {
            parts: Default::default(),
            ..refusing.clone()
        };
        let error = RecipientLimit::new(transport.clone(), limit)
            .send(&email(to))
            .await
            .unwrap_err();
        let g = groups(&error);
        assert_eq!(transport.parts.lock().unwrap().len(), 2, "{to:?}");
        assert!(
            g.delivered.contains(&"cy@example.org"),
            "{to:?}: cy's part sent"
        );
        assert_eq!(g.not_sent, refused, "{to:?}");
        assert_eq!(g.refused_permanently, refused, "{to:?}");
    }
}

/// Two temporary refusals in two parts: the error's source is the first, as one message's
/// would be.
#[tokio::test]
async fn the_source_of_several_temporary_refusals_is_the_first() {
    let transport = Refusing {
        refuse: vec![
            ("busy@example.org", 450, "4.2.1 mailbox busy"),
            ("full@example.org", 452, "4.2.2 mailbox full"),
        ],
        ..Refusing::default()
    };
    let error = RecipientLimit::new(transport, 1)
        .send(&email(&[
            "busy@example.org",
            "full@example.org",
            "ann@example.org",
        ]))
        .await
        .unwrap_err();
    let g = groups(&error);
    assert_eq!(g.delivered, ["ann@example.org"]);
    assert_eq!(g.not_sent, ["busy@example.org", "full@example.org"]);
    assert!(g.source.is_transient(), "{:?}", g.source);
    assert!(g.source.to_string().contains("4.2.1"), "{}", g.source);
}
