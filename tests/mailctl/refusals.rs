//! `mailctl send` when the SMTP server refuses recipients each with its own reply: the exit
//! code weighs every reply, not only the error's source — a permission or policy refused for
//! good (`5.7.x`) exits 4 whatever the order of the refusals — and the output names each
//! recipient's reply.

use super::helpers::{addresses, json};
use super::smtp::{refusing, send_to};

const RELAY: (&str, &str) = ("far@example.net", "550 5.7.1 Relaying denied");
const UNKNOWN: (&str, &str) = ("gone@example.org", "550 5.1.1 User unknown");
const FULL: (&str, &str) = ("full@example.org", "452 4.2.2 Mailbox full");

/// `mailctl send --json` to the recipients of `replies`, each refused with its reply, in
/// that order: the exit code and the document.
async fn refused(replies: &[(&str, &str)]) -> (Option<i32>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let (server, config) = refusing(replies, dir.path()).await;
    let to: Vec<&str> = replies.iter().map(|(address, _)| *address).collect();
    let (output, stdout, _) = send_to(&config, &to, true).await;
    assert!(server.messages().is_empty(), "every recipient was refused");
    (output.status.code(), json(&stdout))
}

/// Each `(address, code, permanent, auth)` of the document's `refusals`.
fn refusals(document: &serde_json::Value) -> Vec<(String, u64, bool, bool)> {
    document["refusals"]
        .as_array()
        .unwrap_or_else(|| panic!("no refusals in {document}"))
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_owned(),
                r["code"].as_u64().unwrap(),
                r["permanent"].as_bool().unwrap(),
                r["auth"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_relay_refused_beside_a_full_mailbox_exits_4_in_either_order() {
    for replies in [[RELAY, FULL], [FULL, RELAY]] {
        let (code, document) = refused(&replies).await;
        assert_eq!(code, Some(4), "{replies:?}: {document}");
        assert_eq!(document["kind"], "refused");
        // The error says so itself, whichever refusal is its source.
        assert_eq!(document["error"]["auth"], true, "{document}");
        assert_eq!(document["status"], "failed");
        let mut expected = vec![
            ("far@example.net".to_owned(), 550, true, true),
            ("full@example.org".to_owned(), 452, false, false),
        ];
        if replies[0] == FULL {
            expected.reverse();
        }
        assert_eq!(refusals(&document), expected, "{document}");
        let relay = document["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == "far@example.net")
            .unwrap();
        assert_eq!(relay["enhanced_code"], "5.7.1");
        assert_eq!(relay["text"], "Relaying denied");
    }
}

#[tokio::test]
async fn an_unknown_mailbox_beside_a_full_one_exits_1_in_either_order() {
    for replies in [[UNKNOWN, FULL], [FULL, UNKNOWN]] {
        let (code, document) = refused(&replies).await;
        assert_eq!(code, Some(1), "{replies:?}: {document}");
        assert_eq!(document["kind"], "failed");
        assert_eq!(document["error"]["auth"], false, "{document}");
        assert_eq!(refusals(&document).len(), 2, "{document}");
    }
}

/// Only permanent refusals, the `5.7.1` not the first (so not the error's source): 4 all the
/// same. A relay refused beside a delivery is still 6: some got it, do not resend blindly.
#[tokio::test]
async fn a_relay_refused_among_permanent_refusals_exits_4_and_a_delivery_still_6() {
    let (code, document) = refused(&[UNKNOWN, RELAY]).await;
    assert_eq!(code, Some(4), "{document}");

    let dir = tempfile::tempdir().unwrap();
    let (server, config) = refusing(&[RELAY], dir.path()).await;
    let (output, stdout, stderr) = send_to(&config, &["ann@example.org", RELAY.0], true).await;
    assert_eq!(output.status.code(), Some(6), "{stdout}{stderr}");
    assert_eq!(server.messages().len(), 1);
}

/// The text output names each refused recipient's reply, and the error line the source's
/// and then the others'.
#[tokio::test]
async fn the_text_output_names_each_reply() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, config) = refusing(&[RELAY, FULL, UNKNOWN], dir.path()).await;
    let to = ["ann@example.org", RELAY.0, FULL.0, UNKNOWN.0];
    let (output, stdout, stderr) = send_to(&config, &to, false).await;
    assert_eq!(output.status.code(), Some(6), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("refused To:"))
        .collect();
    assert_eq!(
        lines,
        [
            "refused To: far@example.net: 550 5.7.1 Relaying denied",
            "refused To: full@example.org: 452 4.2.2 Mailbox full",
            "refused To: gone@example.org: 550 5.1.1 User unknown",
        ],
        "{stdout}"
    );
    let error = stderr.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        error.ends_with(
            "refused: Mailbox full; also refused: far@example.net: 550 5.7.1 Relaying denied; \
             gone@example.org: 550 5.1.1 User unknown"
        ),
        "{error}"
    );
}

/// An address given twice (in another case) is one recipient: one `RCPT TO`, and a failed
/// send lists it once in `not_sent` and `refusals`.
#[tokio::test]
async fn an_address_given_twice_is_listed_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, config) = refusing(&[UNKNOWN], dir.path()).await;
    let (output, stdout, stderr) = send_to(&config, &[UNKNOWN.0, "Gone@Example.org"], true).await;
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    let document = json(&stdout);
    assert_eq!(document["status"], "failed");
    assert_eq!(addresses(&document, "not_sent"), [UNKNOWN.0], "{document}");
    assert_eq!(server.rcpt_commands(UNKNOWN.0), 1);
}
