//! Randomized emails through the Graph transport: what reaches Graph — the JSON `sendMail`,
//! the MIME form, a draft with its attachments and upload sessions — is what was built.
//!
//! Deterministic: case `i` is made from the seed `GRAPH_RANDOM_SEED` (default [`SEED`]) plus
//! `i`. A failure prints both; `GRAPH_RANDOM_SEED=… GRAPH_RANDOM_CASE=i` replays that case
//! alone.

mod received;

use std::sync::{Arc, Mutex};

use httpmock::{HttpMockRequest, MockServer};
use mail_connector::{Email, Importance, MailTransport, Mailbox};
use mail_parser::{HeaderValue, Message, MessageParser};
use serde_json::{Value, json};

use super::helpers::*;
use crate::support::random_email::{
    Case, as_read, expected_wire_address, lines, mailboxes, spaces,
};
use received::{Got, Request, Sent};

const SEED: u64 = 0x6772_6170_685f_6a73;
const CASES: u64 = 300;

/// Prints how to replay the case when a check in it fails.
struct Replay(u64, u64);

impl Drop for Replay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "random Graph email failed: replay with GRAPH_RANDOM_SEED={} GRAPH_RANDOM_CASE={}",
                self.0, self.1
            );
        }
    }
}

/// Every request to Graph (not to the token endpoint), answered as Graph answers: 202 for a
/// send, 201 for a draft, an attachment and an upload session, upload ranges by
/// `Content-Range`.
fn capture_graph(server: &MockServer) -> Arc<Mutex<Vec<Request>>> {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&requests);
    let upload_url = server.url("/upload/s");
    server.mock(move |when, then| {
        when.path_excludes("/oauth2/");
        then.respond_with(move |request: &HttpMockRequest| {
            let request = Request::from(request);
            let answer = request.answer(&upload_url);
            keep.lock().unwrap().push(request);
            answer
        });
    });
    requests
}

#[tokio::test]
async fn random_emails_reach_graph_as_they_were_built() {
    let seed = std::env::var("GRAPH_RANDOM_SEED").map_or(SEED, |s| s.parse().unwrap());
    let only = std::env::var("GRAPH_RANDOM_CASE")
        .ok()
        .map(|s| s.parse::<u64>().unwrap());
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let requests = capture_graph(&server);
    let graph = transport(&settings(&server));
    let sender: Mailbox = "no-reply@contoso.com".parse().unwrap();
    // How often each path was taken: (JSON form, draft, prepared).
    let mut paths = std::collections::BTreeMap::<(bool, bool, bool), u32>::new();
    for case in (0..CASES).filter(|c| only.is_none_or(|o| o == *c)) {
        let _replay = Replay(seed, case);
        let case = Case::generate(seed.wrapping_add(case)).await;
        requests.lock().unwrap().clear();
        graph
            .send(&case.email)
            .await
            .expect("Graph accepts the send");
        let sent = Sent::from_requests(std::mem::take(&mut *requests.lock().unwrap()));
        let path = (sent.json.is_some(), sent.draft, case.built.is_some());
        *paths.entry(path).or_insert(0) += 1;
        match (&sent.json, &sent.mime) {
            (Some(json), None) => check_json(&case.email, json, &sent.attachments),
            (None, Some(mime)) => check_mime(&case, mime, &sent.attachments, &sender),
            _ => panic!("neither the JSON nor the MIME form"),
        }
    }
    eprintln!("paths taken (JSON, draft, prepared): {paths:?}");
    if only.is_none() {
        // The JSON and MIME forms, each also through a draft, and prepared messages.
        for path in [
            (true, false, false),
            (false, false, false),
            (false, false, true),
        ] {
            assert!(
                paths.get(&path) >= Some(&10),
                "{path:?} too rare: {paths:?}"
            );
        }
        for path in [
            (true, true, false),
            (false, true, false),
            (false, true, true),
        ] {
            assert!(paths.contains_key(&path), "{path:?} never taken: {paths:?}");
        }
    }
}

fn recipient(mailbox: &Mailbox) -> Value {
    let mut address = json!({"address": expected_wire_address(mailbox.address())});
    if let Some(name) = mailbox.name() {
        address["name"] = json!(name);
    }
    json!({"emailAddress": address})
}

/// Each list as built — every entry once, in order, an IDN domain in its ASCII form (as the
/// crate documents for the wire) — and omitted when empty.
fn check_recipients(message: &Value, property: &str, built: &[Mailbox]) {
    let expected: Vec<Value> = built.iter().map(recipient).collect();
    match message.get(property) {
        None => assert!(built.is_empty(), "{property} missing for {built:?}"),
        Some(got) => assert_eq!(got, &Value::Array(expected), "{property}"),
    }
}

fn check_json(email: &Email, message: &Value, added: &[Got]) {
    assert_eq!(message["subject"], json!(email.subject()), "subject");
    let (kind, content) = match (email.text(), email.html()) {
        (_, Some(html)) => ("HTML", html),
        (text, None) => ("Text", text.unwrap_or_default()),
    };
    assert_eq!(
        message["body"],
        json!({"contentType": kind, "content": content})
    );
    check_recipients(message, "toRecipients", email.to());
    check_recipients(message, "ccRecipients", email.cc());
    check_recipients(message, "bccRecipients", email.bcc());
    check_recipients(message, "replyTo", email.reply_to());
    assert_eq!(
        message.get("from"),
        email.from().map(recipient).as_ref(),
        "from"
    );
    let importance = importance(email.importance()).map(|i| json!(i));
    assert_eq!(message.get("importance"), importance.as_ref(), "importance");
    match message.get("internetMessageHeaders") {
        None => assert!(email.headers().is_empty(), "headers missing"),
        Some(headers) => {
            let headers = headers.as_array().expect("an array");
            assert!(!headers.is_empty() && headers.len() <= 5, "{headers:?}");
            let expected: Vec<Value> = email
                .headers()
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            assert_eq!(headers, &expected);
            for header in headers {
                let name = header["name"].as_str().unwrap();
                assert!(name.to_ascii_lowercase().starts_with("x-"), "{name}");
            }
        }
    }
    let mut got: Vec<Got> = match message.get("attachments") {
        Some(list) => list
            .as_array()
            .unwrap()
            .iter()
            .map(Got::from_json)
            .collect(),
        None => Vec::new(),
    };
    got.extend(added.iter().cloned());
    let expected: Vec<Got> = email.attachments().iter().map(Got::built).collect();
    assert_eq!(got, expected, "attachments, in order");
}

fn check_mime(case: &Case, mime: &[u8], added: &[Got], sender: &Mailbox) {
    let email = &case.email;
    if let Some(prepared) = email.mime() {
        let body = |m: &[u8]| {
            let at = m.windows(4).position(|w| w == b"\r\n\r\n");
            at.map(|at| m[at..].to_vec())
        };
        match (added.is_empty(), case.envelope_given) {
            // Its attachment parts were cut out, to be added to the draft.
            (false, _) => assert!(mime.len() < prepared.len(), "parts cut out"),
            (true, false) => assert!(mime == prepared, "a prepared message is sent as it is"),
            (true, true) => assert!(body(mime) == body(prepared), "only the headers change"),
        }
    }
    if let (Some(built), false) = (&case.built, case.envelope_given) {
        // Email::from_mime read the recipients the builder gave.
        assert_eq!(as_read(email.to()), as_read(built.to()), "from_mime To");
        assert_eq!(as_read(email.cc()), as_read(built.cc()), "from_mime Cc");
        assert_eq!(as_read(email.bcc()), as_read(built.bcc()), "from_mime Bcc");
        // As a reader takes it: spaces at the ends dropped, runs of them one.
        assert_eq!(
            spaces(email.subject()),
            spaces(built.subject()),
            "from_mime subject"
        );
    }
    let message = MessageParser::new()
        .with_minimal_headers()
        .with_message_ids()
        .default_header_text()
        .parse(mime)
        .expect("MIME");
    // Graph's MIME form keeps `Bcc`: Exchange reads the recipients from `To`, `Cc` and
    // `Bcc` and removes `Bcc` before delivery (the `graph` module's docs).
    assert_eq!(mailboxes(message.to()), as_read(email.to()), "To");
    assert_eq!(mailboxes(message.cc()), as_read(email.cc()), "Cc");
    assert_eq!(mailboxes(message.bcc()), as_read(email.bcc()), "Bcc");
    let built = case.built.as_ref().unwrap_or(email);
    assert_eq!(mailboxes(message.reply_to()), as_read(built.reply_to()));
    let from = built.from().unwrap_or(sender);
    assert_eq!(
        mailboxes(message.from()),
        as_read(std::slice::from_ref(from))
    );
    assert_eq!(
        spaces(message.subject().unwrap_or_default()),
        spaces(built.subject()),
        "subject"
    );
    // The MIME form has no `importance` property: the header carries it, once, as built.
    assert_eq!(
        header_texts(&message, "Importance"),
        importance(built.importance()).map_or_else(Vec::new, |i| vec![i.to_owned()]),
        "Importance"
    );
    for (name, value) in built.headers() {
        if name.eq_ignore_ascii_case("Message-ID") {
            assert_eq!(message.message_id(), Some(value.trim_matches(['<', '>'])));
            continue;
        }
        let found = header_texts(&message, name);
        // Keywords are read as a list of phrases: only that the header is there.
        let want = spaces(value);
        assert!(
            found.contains(&want) || (name == "Keywords" && !found.is_empty()),
            "header {name}: {found:?} for {want:?}"
        );
    }
    let text = message.body_text(0).map(|t| lines(&t));
    let html = message.body_html(0).map(|t| lines(&t));
    if let Some(built_html) = built.html() {
        assert_eq!(html.as_deref(), Some(lines(built_html).as_str()), "html");
    }
    if let Some(built_text) = built.text() {
        assert_eq!(text.as_deref(), Some(lines(built_text).as_str()), "text");
    }
    let mut got: Vec<Got> = message.attachments().map(Got::from_part).collect();
    got.extend(added.iter().cloned());
    let expected: Vec<Got> = built.attachments().iter().map(Got::built).collect();
    // In order within each group, inline and not: the MIME holds the inline parts in the
    // `multipart/related` beside the body and the others after it, in the outer
    // `multipart/mixed`, so the two groups cannot interleave as built — and a mail client
    // shows the inline ones in the body, the others in the order given. (A draft adds an
    // email's attachments as built, a prepared message's in its MIME's order.)
    let group = |list: &[Got], inline: bool| -> Vec<Got> {
        // A reader sees the type and subtype of a part's content type, not its parameters.
        let in_group = list.iter().filter(|g| g.is_inline() == inline);
        in_group.cloned().map(Got::bare_type).collect()
    };
    for inline in [true, false] {
        assert_eq!(
            group(&got, inline),
            group(&expected, inline),
            "attachments (inline: {inline}), in order"
        );
    }
}

/// How Graph's `importance` property and the `Importance` header say `importance`: neither
/// is set for normal.
fn importance(importance: Importance) -> Option<&'static str> {
    match importance {
        Importance::Normal => None,
        Importance::Low => Some("low"),
        Importance::High => Some("high"),
    }
}

/// The text of each `name` header of `message`, as a reader takes it.
fn header_texts(message: &Message<'_>, name: &str) -> Vec<String> {
    message
        .headers()
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(|h| match &h.value {
            HeaderValue::Text(t) => spaces(t),
            HeaderValue::Empty => String::new(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Found by the randomized test: a display name with a run of spaces (or a tab), as sloppy
/// data has it, was refused as an address that "cannot be written in a message header";
/// it is sent with one space, as a reader of the header shows it.
#[tokio::test]
async fn a_display_name_with_a_run_of_spaces_is_sent_with_one() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let requests = capture_graph(&server);
    let ann = Mailbox::new(Some("Ann  Example"), "ann@example.org").expect("a valid mailbox");
    let bob = Mailbox::new(Some("Bob\tExample"), "bob@example.org").expect("a valid mailbox");
    let email = Email::builder()
        .to(ann)
        .cc(bob)
        .text("Hello")
        .build()
        .unwrap();
    transport(&settings(&server)).send(&email).await.unwrap();
    let sent = Sent::from_requests(std::mem::take(&mut *requests.lock().unwrap()));
    let message = sent.json.expect("the JSON form");
    assert_eq!(
        message["toRecipients"][0]["emailAddress"]["name"],
        "Ann Example"
    );
    assert_eq!(
        message["ccRecipients"][0]["emailAddress"]["name"],
        "Bob Example"
    );
}
