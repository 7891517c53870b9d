//! Each recipient refused at `RCPT TO` keeps the server's reply in the partial delivery's
//! `refusals` — code, enhanced code, text — whatever the others' replies, through a
//! recipient-limit split, redacted and bounded like every server reply in an error.

use mail_connector::{Email, MailTransport, RecipientKind, RecipientLimit, Secret};

use super::helpers::*;
use crate::support;
use crate::support::assert_no_secrets;
use crate::support::smtp_server::{RcptReply, ServerOptions, TestServer};

const UNKNOWN: &str = "unknown@example.org";
const FAR: &str = "far@example.net";
const FULL: &str = "full@example.org";

/// A server that refuses `UNKNOWN`, `FAR` and `FULL` each with a reply of its own.
async fn server() -> TestServer {
    TestServer::start(ServerOptions {
        rcpt_replies: vec![
            RcptReply::always(UNKNOWN, "550 5.1.1 User unknown"),
            RcptReply::always(FAR, "550 5.7.1 Relaying denied"),
            RcptReply::always(FULL, "452 4.2.2 Mailbox full"),
        ],
        ..ServerOptions::default()
    })
    .await
}

/// Each refusal as (address, code, enhanced code, text, permanent, auth).
fn replies(refusals: &[mail_connector::Refusal]) -> Vec<(&str, u16, &str, &str, bool, bool)> {
    refusals
        .iter()
        .map(|r| {
            (
                r.recipient.mailbox.address(),
                r.code,
                r.enhanced_code.as_deref().unwrap_or(""),
                r.text.as_str(),
                r.is_permanent(),
                r.is_auth(),
            )
        })
        .collect()
}

#[tokio::test]
async fn three_recipients_refused_three_ways_keep_three_replies() {
    let server = server().await;
    let transport = logged_in(&server).build().unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .to(UNKNOWN)
        .cc(FAR)
        .bcc(FULL)
        .subject("Hello")
        .text("Hello there")
        .build()
        .unwrap();
    let error = transport.send(&email).await.unwrap_err();
    let p = partial(&error);
    assert_eq!(p.delivered, ["ann@example.org"]);
    assert_eq!(p.not_sent, [UNKNOWN, FAR, FULL]);
    assert_eq!(p.refused_permanently, [UNKNOWN, FAR]);
    assert_eq!(
        replies(p.refusals),
        [
            (UNKNOWN, 550, "5.1.1", "User unknown", true, false),
            (FAR, 550, "5.7.1", "Relaying denied", true, true),
            (FULL, 452, "4.2.2", "Mailbox full", false, false),
        ]
    );
    let kinds: Vec<RecipientKind> = p.refusals.iter().map(|r| r.recipient.kind).collect();
    assert_eq!(
        kinds,
        [RecipientKind::To, RecipientKind::Cc, RecipientKind::Bcc]
    );
    // The source (the temporary refusal) first, then the others, each said once.
    let text = error.to_string();
    assert!(
        text.ends_with(
            "SMTP rcpt failed: 452 4.2.2 recipient <full@example.org> refused: Mailbox full; \
             also refused: unknown@example.org: 550 5.1.1 User unknown; far@example.net: 550 \
             5.7.1 Relaying denied"
        ),
        "{text}"
    );
    assert_eq!(text.matches("Mailbox full").count(), 1, "{text}");
    assert!(!text.contains('\n'), "{text}");

    // Every recipient refused: nothing sent, every reply kept all the same.
    let error = transport
        .send(&email_to(&[FULL, FAR, UNKNOWN]))
        .await
        .unwrap_err();
    let p = partial(&error);
    assert_eq!(p.delivered_messages, 0);
    let addresses: Vec<&str> = replies(p.refusals).iter().map(|r| r.0).collect();
    assert_eq!(addresses, [FULL, FAR, UNKNOWN], "in the envelope's order");
    assert_eq!(p.refused_permanently, [FAR, UNKNOWN]);
    assert_eq!(server.rcpt_commands(FULL), 2, "one transaction per send");
}

/// Many refused: all are in `refusals`, and the message names a few and counts the rest.
#[tokio::test]
async fn many_refusals_are_all_kept_and_the_message_stays_readable() {
    let refused: Vec<String> = (0..12).map(|i| format!("r{i:02}@example.org")).collect();
    let server = TestServer::start(ServerOptions {
        rcpt_replies: refused
            .iter()
            .map(|a| RcptReply::always(a, "550 5.1.1 User unknown"))
            .collect(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let mut to: Vec<&str> = vec!["ann@example.org"];
    to.extend(refused.iter().map(String::as_str));
    let error = transport.send(&email_to(&to)).await.unwrap_err();
    let p = partial(&error);
    let addresses: Vec<&str> = replies(p.refusals).iter().map(|r| r.0).collect();
    assert_eq!(addresses, refused);
    let text = error.to_string();
    // The source is the first refusal; three others are named, eight counted.
    assert!(
        text.contains("recipient <r00@example.org> refused: User unknown; also refused: "),
        "{text}"
    );
    assert!(text.contains("r03@example.org: 550 5.1.1"), "{text}");
    assert!(!text.contains("r04@example.org"), "{text}");
    assert!(text.ends_with("; and 8 more"), "{text}");
}

/// A recipient limit merges each part's refusals into its error: both of a part that was
/// refused wholly after an earlier part went out, and the one of the part after it; or the
/// one of a part of one recipient, the parts after it still sent.
#[tokio::test]
async fn a_recipient_limit_keeps_the_refusals_of_every_part() {
    let server = server().await;
    let transport = RecipientLimit::new(logged_in(&server).build().unwrap(), 2);
    let email = email_to(&["ann@example.org", "bob@example.org", UNKNOWN, FAR, FULL]);
    let error = transport.send(&email).await.unwrap_err();
    let p = partial(&error);
    assert_eq!(p.delivered, ["ann@example.org", "bob@example.org"]);
    assert_eq!(p.not_sent, [UNKNOWN, FAR, FULL]);
    assert_eq!(
        replies(p.refusals),
        [
            (UNKNOWN, 550, "5.1.1", "User unknown", true, false),
            (FAR, 550, "5.7.1", "Relaying denied", true, true),
            (FULL, 452, "4.2.2", "Mailbox full", false, false),
        ]
    );
    assert_eq!(p.refused_permanently, [UNKNOWN, FAR]);
    // The source is the temporary refusal: FULL is worth a retry.
    assert!(p.source.is_transient(), "{:?}", p.source);
    assert!(server.rcpt_commands(FULL) >= 1, "its part was sent");

    // One per message: the part of FULL alone fails with its (temporary) refusal, which is
    // the error of that part, and still one of the refusals; cy's part still goes.
    let transport = RecipientLimit::new(logged_in(&server).build().unwrap(), 1);
    let email = email_to(&["ann@example.org", FULL, "cy@example.org"]);
    let error = transport.send(&email).await.unwrap_err();
    let p = partial(&error);
    assert_eq!(p.delivered, ["ann@example.org", "cy@example.org"]);
    assert_eq!(p.not_sent, [FULL]);
    assert!(p.refused_permanently.is_empty());
    assert_eq!(
        replies(p.refusals),
        [(FULL, 452, "4.2.2", "Mailbox full", false, false)]
    );
    // The source is that refusal: the message says it once.
    let text = error.to_string();
    assert_eq!(text.matches("Mailbox full").count(), 1, "{text}");
    assert_eq!(server.rcpt_commands("cy@example.org"), 1);
}

/// A server that quotes the session's password in its refusal: the refusal's text, the
/// error and the log carry `[redacted]` instead, raw or base64.
#[tokio::test]
async fn a_refusal_that_quotes_the_password_is_redacted() {
    use base64::Engine as _;
    let (logs, _guard) = support::capture_logs();
    let password = "pw-5e1f0a-never-print";
    let b64 = base64::engine::general_purpose::STANDARD.encode(password);
    let server = TestServer::start(ServerOptions {
        users: vec![(USER.into(), password.into())],
        rcpt_replies: vec![RcptReply::always(
            FAR,
            &format!("550 5.7.1 Relaying denied to {USER} (password {password}, sent as {b64})"),
        )],
        ..ServerOptions::default()
    })
    .await;
    let transport = starttls(&server)
        .basic_auth(USER, Secret::new(password))
        .build()
        .unwrap();
    let error = transport
        .send(&email_to(&["ann@example.org", FAR]))
        .await
        .unwrap_err();
    let p = partial(&error);
    let [refusal] = p.refusals else {
        panic!("{error:?}")
    };
    assert_eq!(refusal.enhanced_code.as_deref(), Some("5.7.1"));
    assert!(
        refusal
            .text
            .starts_with("Relaying denied to no-reply@example.org (password [redacted]"),
        "{}",
        refusal.text
    );
    let printed = format!("{error} {error:?} {refusal} {refusal:?} {}", logs.text());
    // This send's refusal (by its server's port) is in the capture: the check is not vacuous.
    support::logged_line(
        &logs,
        &["recipient refused", &format!("port={} ", server.port())],
    );
    assert_no_secrets(&printed, &[password, &b64]);
}

/// A reply of any length (lines of at most 512 octets, as SMTP allows, but as many as the
/// server likes) is kept to 400 characters.
#[tokio::test]
async fn a_long_refusal_is_cut_to_its_bound() {
    let line = "no such user here ".repeat(8);
    let long = format!("550-5.1.1 {line}\r\n").repeat(5) + &format!("550 5.1.1 {line}");
    let server = TestServer::start(ServerOptions {
        rcpt_replies: vec![RcptReply::always(UNKNOWN, &long)],
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&email_to(&["ann@example.org", UNKNOWN]))
        .await
        .unwrap_err();
    let p = partial(&error);
    let [refusal] = p.refusals else {
        panic!("{error:?}")
    };
    assert!(refusal.text.starts_with("no such user here"), "{refusal}");
    assert!(refusal.text.chars().count() <= 400, "{refusal}");
    assert!(refusal.text.chars().count() > 300, "{refusal}");
}
