//! The serde form: round trips, refusals and what is left out.

use super::*;

fn full_email() -> Email {
    Email::builder()
        .from("Reports <reports@example.org>")
        .to("Ann Example <ann@example.org>")
        .to("bob@example.org")
        .cc("Zoë Ü <zoe@example.org>")
        .bcc("audit@example.org")
        .reply_to("help@example.org")
        .subject("Nightly report ✅")
        .text("The report is attached.")
        .html("<p>The report is attached. <img src=\"cid:logo\"></p>")
        .attachment(Attachment::from_bytes("report.csv", "a,b\n1,2\n"))
        .attachment(
            Attachment::from_bytes("logo.png", vec![0x89, b'P', b'N', b'G', 0, 255]).inline("logo"),
        )
        .attachment(Attachment::from_bytes("data", vec![1, 2, 3]).with_content_type("text/csv"))
        .importance(Importance::High)
        .header("X-Report-Id", "42")
        .build()
        .unwrap()
}

#[test]
fn every_kind_of_content_survives_a_json_round_trip() {
    let email = full_email();
    let json = serde_json::to_string(&email).unwrap();
    let back: Email = serde_json::from_str(&json).unwrap();
    assert_eq!(back, email);
    assert!(json.contains(r#""importance":"high""#), "{json}");
    assert!(json.contains(r#""data":"AQID""#), "{json}");
}

#[test]
fn a_file_attachment_is_written_as_its_path_until_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello").unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_path(&path).unwrap())
        .build()
        .unwrap();
    let json = serde_json::to_value(&email).unwrap();
    assert_eq!(json["attachments"][0]["path"], path.to_str().unwrap());
    // Written for inspection, never read back: received data must not name files to mail.
    let refused = serde_json::from_value::<Email>(json)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("attachment `notes.txt` names a file"),
        "{refused}"
    );
    assert!(!refused.contains(path.to_str().unwrap()), "{refused}");
    let secret = serde_json::json!({
        "to": ["ann@example.org"],
        "attachments": [{"name": "x", "path": "/etc/passwd"}],
    });
    let refused = serde_json::from_value::<Email>(secret)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("`data`"), "{refused}");

    let loaded = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(email.clone().load_attachments())
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let json = serde_json::to_value(&loaded).unwrap();
    assert_eq!(json["attachments"][0]["data"], "aGVsbG8=");
    assert_eq!(json["attachments"][0]["content_type"], "text/plain");
    let back: Email = serde_json::from_value(json).unwrap();
    assert_eq!(back, loaded);
    assert_ne!(back, email, "bytes and a path are different contents");
}

#[test]
fn deserialising_validates_like_the_builder() {
    let cases = [
        (r#"{"subject":"no recipient"}"#, "no recipient"),
        (r#"{"to":["not an address"]}"#, "to[0]: `not an address`"),
        (
            r#"{"to":["a@example.org"],"subject":"a\r\nBcc: evil@example.org"}"#,
            "line break",
        ),
        (
            r#"{"to":["a@example.org"],"headers":[{"name":"Bcc","value":"x"}]}"#,
            "cannot be set as a header",
        ),
        (
            r#"{"to":["a@example.org"],"attachments":[{"name":"a","data":"!!"}]}"#,
            "not standard base64",
        ),
        (
            r#"{"to":["a@example.org"],"attachments":[{"name":"a"}]}"#,
            "exactly one of `data`",
        ),
        (
            r#"{"to":["a@example.org"],"importance":"urgent"}"#,
            "low, normal or high",
        ),
        (
            r#"{"to":["a@example.org"],"sender":"x"}"#,
            "unknown field `sender`",
        ),
    ];
    for (json, expected) in cases {
        let error = serde_json::from_str::<Email>(json).unwrap_err().to_string();
        assert!(error.contains(expected), "{json}: {error}");
    }
}

/// Defaults are left out of the form: a normal-importance email has no `importance`.
#[test]
fn normal_importance_is_left_out_and_others_are_written() {
    let email = |importance| {
        Email::builder()
            .to("ann@example.org")
            .importance(importance)
            .build()
            .unwrap()
    };
    let normal = serde_json::to_string(&email(Importance::Normal)).unwrap();
    assert!(!normal.contains("importance"), "{normal}");
    let low = serde_json::to_string(&email(Importance::Low)).unwrap();
    assert!(low.contains(r#""importance":"low""#), "{low}");
}

#[test]
fn mailboxes_read_from_text_or_form() {
    let text: Mailbox = serde_json::from_str(r#""Ann <ann@example.org>""#).unwrap();
    let form: Mailbox =
        serde_json::from_str(r#"{"name":"Ann","address":"ann@example.org"}"#).unwrap();
    assert_eq!(text, form);
    assert_eq!(
        serde_json::to_string(&form).unwrap(),
        r#"{"address":"ann@example.org","name":"Ann"}"#
    );
}
