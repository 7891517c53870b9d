//! Randomized emails through the SMTP transport: what the server receives is what was
//! built. The envelope (`MAIL FROM`, one `RCPT TO` per distinct recipient, Bcc included),
//! the data (no `Bcc` header, lines that begin with a dot, long lines), SMTPUTF8 refused
//! clearly by a server without it, the recipient limit's transactions and the report.
//!
//! The emails come from the generator the Graph test uses (tests/support/random_email.rs).
//! Deterministic: case `i` is made from the seed `SMTP_RANDOM_SEED` (default [`SEED`]) plus
//! `i`. A failure prints both; `SMTP_RANDOM_SEED=… SMTP_RANDOM_CASE=i` replays that case
//! alone.

use fastrand::Rng;
use mail_connector::{
    Email, MailTransport, Mailbox, RecipientKind, RecipientLimit, SendReport, SmtpTransport,
};
use mail_parser::{MessageParser, MimeHeaders};

use super::helpers::*;
use crate::support::random_email::{
    Case, as_read, expected_wire_address, lines, mailboxes, spaces,
};
use crate::support::smtp_server::{Received, ServerOptions, ServerTls, TestServer};

const SEED: u64 = 0x736d_7470_5f72_6e64;
const CASES: u64 = 200;
const SENDER: &str = "no-reply@contoso.com";

/// Prints how to replay the case when a check in it fails.
struct Replay(u64, u64);

impl Drop for Replay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "random SMTP email failed: replay with SMTP_RANDOM_SEED={} SMTP_RANDOM_CASE={}",
                self.0, self.1
            );
        }
    }
}

/// A server and the transport that sends to it.
struct Target {
    server: TestServer,
    transport: SmtpTransport,
    smtputf8: bool,
}

/// Exchange-like (STARTTLS, AUTH, SMTPUTF8); one without SMTPUTF8; a 7-bit relay in
/// plaintext (neither SMTPUTF8 nor 8BITMIME, no AUTH).
async fn targets() -> Vec<Target> {
    let sender = Mailbox::parse(SENDER).unwrap();
    let mut targets = Vec::new();
    for no_smtputf8 in [false, true] {
        let server = TestServer::start(ServerOptions {
            no_smtputf8,
            ..ServerOptions::default()
        })
        .await;
        let transport = logged_in(&server).sender(sender.clone()).build().unwrap();
        targets.push(Target {
            server,
            transport,
            smtputf8: !no_smtputf8,
        });
    }
    let server = TestServer::start(ServerOptions {
        tls: ServerTls::None,
        mechanisms: Vec::new(),
        no_smtputf8: true,
        no_8bitmime: true,
        ..ServerOptions::default()
    })
    .await;
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .sender(sender)
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    targets.push(Target {
        server,
        transport,
        smtputf8: false,
    });
    targets
}

/// An address as `Mailbox::same_address` compares it: ASCII letters of the local part in
/// either case, the domain in any case; other letters of a local part as written.
fn key(address: &str) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap();
    format!("{}@{}", local.to_ascii_lowercase(), domain.to_lowercase())
}

/// The distinct recipients of `email` in To, Cc, Bcc order, each in its first role: an
/// address listed again (ASCII letters in another case, its IDN domain in either form) is
/// the same one.
fn distinct(email: &Email) -> Vec<(RecipientKind, String)> {
    let mut seen: Vec<(RecipientKind, String)> = Vec::new();
    let lists = [
        (RecipientKind::To, email.to()),
        (RecipientKind::Cc, email.cc()),
        (RecipientKind::Bcc, email.bcc()),
    ];
    for (kind, list) in lists {
        for mailbox in list {
            let wire = expected_wire_address(mailbox.address());
            if !seen.iter().any(|(_, a)| key(a) == key(&wire)) {
                seen.push((kind, wire));
            }
        }
    }
    seen
}

/// The addresses that make the transaction need SMTPUTF8: envelope recipients, and the
/// addresses the sent header block names (Reply-To; a prepared message's To, Cc and
/// Reply-To, its Bcc being dropped), whose wire form is not ASCII.
fn needs_smtputf8(case: &Case) -> Vec<String> {
    let email = &case.email;
    let mut named: Vec<&Mailbox> = email
        .to()
        .iter()
        .chain(email.cc())
        .chain(email.bcc())
        .collect();
    named.extend(email.reply_to());
    if let Some(built) = &case.built {
        named.extend(built.to().iter().chain(built.cc()).chain(built.reply_to()));
    }
    named
        .into_iter()
        .map(|m| m.address().to_owned())
        .filter(|a| !expected_wire_address(a).is_ascii())
        .collect()
}

#[tokio::test]
async fn random_emails_reach_the_smtp_server_as_they_were_built() {
    let seed = std::env::var("SMTP_RANDOM_SEED").map_or(SEED, |s| s.parse().unwrap());
    let only = std::env::var("SMTP_RANDOM_CASE")
        .ok()
        .map(|s| s.parse::<u64>().unwrap());
    let targets = targets().await;
    // How often each outcome came: (sent, split, refused for SMTPUTF8).
    let mut outcomes = std::collections::BTreeMap::<&str, u32>::new();
    for index in (0..CASES).filter(|c| only.is_none_or(|o| o == *c)) {
        let _replay = Replay(seed, index);
        let case = Case::generate(seed.wrapping_add(index)).await;
        // The target and limit from a stream of their own: the emails stay the Graph test's.
        let mut rng = Rng::with_seed(seed.wrapping_add(index) ^ 0x5eed);
        let target = &targets[rng.usize(..targets.len())];
        let limit = [0, 0, 1, 2, 3][rng.usize(..5)];
        let before = target.server.messages().len();
        let sent = match limit {
            0 => bounded(target.transport.send(&case.email)).await,
            _ => {
                let limited = RecipientLimit::new(target.transport.clone(), limit);
                bounded(limited.send(&case.email)).await
            }
        };
        let received: Vec<Received> = target.server.messages().split_off(before);
        let non_ascii = needs_smtputf8(&case);
        if !non_ascii.is_empty() && !target.smtputf8 {
            let error = sent.expect_err("a non-ASCII address to a server without SMTPUTF8");
            let text = format!("{error} {:?}", std::error::Error::source(&error));
            // Only in a prepared message's own header: that header block is named.
            let named = non_ascii.iter().any(|a| text.contains(a))
                || (case.built.is_some() && text.contains("header block is not ASCII"));
            assert!(
                text.contains("SMTPUTF8") && named,
                "the error names SMTPUTF8 and one of {non_ascii:?}: {text}"
            );
            // Split, the parts before the one with such an address went out: a partial
            // delivery that says so (`RecipientLimit`); none of them carries one.
            let rcpt_to: Vec<String> = received.iter().flat_map(|m| m.rcpt_to.clone()).collect();
            assert!(rcpt_to.iter().all(|a| a.is_ascii()), "{rcpt_to:?}");
            if !received.is_empty() {
                let partial = partial(&error);
                let delivered: Vec<String> = partial
                    .delivered
                    .iter()
                    .map(|a| expected_wire_address(a))
                    .collect();
                assert_eq!(delivered, rcpt_to, "the partial delivery names who got it");
                assert!(
                    non_ascii.iter().any(|a| partial.not_sent.contains(a)),
                    "{non_ascii:?} not sent: {:?}",
                    partial.not_sent
                );
            }
            *outcomes.entry("refused for SMTPUTF8").or_default() += 1;
            continue;
        }
        let report = sent.unwrap_or_else(|e| panic!("sent: {e} ({e:?})"));
        *outcomes
            .entry(if received.len() > 1 { "split" } else { "sent" })
            .or_default() += 1;
        check_envelope(&case.email, limit, &received);
        check_report(&case.email, &report, &received);
        for (message, data) in report.messages.iter().zip(&received) {
            check_data(&case, &message.recipients, data);
        }
    }
    eprintln!("outcomes: {outcomes:?}");
    if only.is_none() {
        for outcome in ["sent", "split", "refused for SMTPUTF8"] {
            assert!(
                outcomes.get(outcome) >= Some(&10),
                "{outcome} too rare: {outcomes:?}"
            );
        }
    }
}

/// `MAIL FROM` the sender; each distinct recipient `RCPT TO` exactly once across the
/// transactions, in order, at most `limit` in each.
fn check_envelope(email: &Email, limit: usize, received: &[Received]) {
    let expected: Vec<String> = distinct(email).into_iter().map(|(_, a)| a).collect();
    let parts = match limit {
        0 => 1,
        limit => expected.len().div_ceil(limit),
    };
    let rcpt_to: Vec<_> = received.iter().map(|m| &m.rcpt_to).collect();
    assert_eq!(
        received.len(),
        parts,
        "one transaction per part: {rcpt_to:?}"
    );
    for message in received {
        assert_eq!(message.mail_from, SENDER, "MAIL FROM");
        assert!(limit == 0 || message.rcpt_to.len() <= limit, "{rcpt_to:?}");
    }
    let rcpt_to: Vec<String> = received.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    assert_eq!(rcpt_to, expected, "RCPT TO, each distinct recipient once");
}

/// Every recipient once, in its first role, in the message the server got it in; each
/// message's id its `Message-ID`.
fn check_report(email: &Email, report: &SendReport, received: &[Received]) {
    let reported: Vec<(RecipientKind, String)> = report
        .recipients()
        .map(|r| (r.kind, expected_wire_address(r.mailbox.address())))
        .collect();
    assert_eq!(
        reported,
        distinct(email),
        "the report: every recipient once"
    );
    assert_eq!(
        report.messages.len(),
        received.len(),
        "a message per transaction"
    );
    for (message, data) in report.messages.iter().zip(received) {
        let addresses: Vec<String> = message
            .recipients
            .iter()
            .map(|r| expected_wire_address(r.mailbox.address()))
            .collect();
        assert_eq!(
            addresses, data.rcpt_to,
            "the report's message is the transaction"
        );
        let parsed = MessageParser::new().parse(&data.data).expect("MIME");
        let id = message.id.as_deref().map(|id| id.trim_matches(['<', '>']));
        assert_eq!(id, parsed.message_id(), "the report's id is the Message-ID");
    }
}

/// The data as written: CRLF line ends only, no line over 998 octets, no `Bcc` header; read
/// back, the headers, bodies (lines that begin with a dot whole) and attachments as built.
/// A message of a split names its part's To and Cc recipients (`Email::with_recipients`).
fn check_data(case: &Case, part: &[mail_connector::Recipient], received: &Received) {
    let data = &received.data;
    for line in data.split_inclusive(|b| *b == b'\n') {
        let Some(line) = line.strip_suffix(b"\r\n") else {
            panic!("a line without CRLF: {:?}", String::from_utf8_lossy(line));
        };
        assert!(
            !line.contains(&b'\r') && !line.contains(&b'\n'),
            "a bare CR"
        );
        assert!(line.len() <= 998, "a line of {} octets", line.len());
    }
    let end = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let header = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
    assert!(
        !header.starts_with("bcc:") && !header.contains("\r\nbcc:"),
        "a Bcc header went to the recipients"
    );
    let message = MessageParser::new()
        .with_minimal_headers()
        .default_header_text()
        .parse(data)
        .expect("MIME");
    let email = &case.email;
    let built = case.built.as_ref().unwrap_or(email);
    let whole = part.len() == email.recipients().count();
    let of = |kind| {
        part.iter()
            .filter(move |r| r.kind == kind)
            .map(|r| &r.mailbox)
    };
    let (to, cc) = match (&case.built, whole) {
        (Some(built), _) => (as_read(built.to()), as_read(built.cc())),
        (None, true) => (as_read(email.to()), as_read(email.cc())),
        (None, false) => (
            as_read(of(RecipientKind::To)),
            as_read(of(RecipientKind::Cc)),
        ),
    };
    assert_eq!(mailboxes(message.to()), to, "To");
    assert_eq!(mailboxes(message.cc()), cc, "Cc");
    assert_eq!(mailboxes(message.reply_to()), as_read(built.reply_to()));
    let sender = Mailbox::parse(SENDER).unwrap();
    let from = built.from().unwrap_or(&sender);
    assert_eq!(mailboxes(message.from()), as_read([from]), "From");
    assert_eq!(
        spaces(message.subject().unwrap_or_default()),
        spaces(built.subject()),
        "subject"
    );
    if let Some(html) = built.html() {
        let got = message.body_html(0).map(|t| lines(&t));
        assert_eq!(got.as_deref(), Some(lines(html).as_str()), "html");
    }
    if let Some(text) = built.text() {
        let got = message.body_text(0).map(|t| lines(&t));
        assert_eq!(got.as_deref(), Some(lines(text).as_str()), "text");
    }
    let mut got: Vec<(String, Vec<u8>)> = message
        .attachments()
        .map(|p| {
            let name = p.attachment_name().unwrap_or_default().to_owned();
            (name, p.contents().to_vec())
        })
        .collect();
    let mut expected: Vec<(String, Vec<u8>)> = built
        .attachments()
        .iter()
        .map(|a| match a.content() {
            mail_connector::AttachmentContent::Bytes(bytes) => {
                (a.name().to_owned(), bytes.to_vec())
            }
            _ => panic!("attachments are made from bytes here"),
        })
        .collect();
    got.sort();
    expected.sort();
    assert!(
        got == expected,
        "attachments: names {got:?}",
        got = names(&got)
    );
}

fn names(list: &[(String, Vec<u8>)]) -> Vec<(&str, usize)> {
    list.iter().map(|(n, b)| (n.as_str(), b.len())).collect()
}
