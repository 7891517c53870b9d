//! The serde form of an email: what it refuses, and how it says so.

use mail_connector::{Email, Mailbox};

fn refused(json: &str) -> String {
    match serde_json::from_str::<Email>(json) {
        Ok(email) => panic!("{json} was read: {email:?}"),
        Err(error) => error.to_string(),
    }
}

/// A mailbox object with a misspelt member is refused naming it, as every other object of
/// the form is, rather than read without it (a display name silently lost), and one
/// without its address says that is what it lacks.
#[test]
fn a_mailbox_with_an_unknown_or_missing_member_is_refused_naming_it() {
    let error = refused(r#"{"to":[{"address":"ann@example.org","nmae":"Ann"}]}"#);
    assert!(error.contains("unknown field `nmae`"), "{error}");
    assert!(
        error.contains("`address`") && error.contains("`name`"),
        "{error}"
    );
    let error = refused(r#"{"to":["bob@example.org"],"reply_to":[{"adress":"a@example.org"}]}"#);
    assert!(error.contains("unknown field `adress`"), "{error}");
    let error = refused(r#"{"to":[{"name":"Ann"}]}"#);
    assert!(error.contains("missing field `address`"), "{error}");
    // Neither text nor an object: the error says what a mailbox is.
    let error = refused(r#"{"to":[42]}"#);
    assert!(error.contains("Name <name@example.org>"), "{error}");
    assert!(!error.contains("untagged"), "{error}");

    // Both forms still read, `name` may be null.
    let email: Email = serde_json::from_str(
        r#"{"to":["Ann <ann@example.org>",{"address":"bob@example.org","name":null}],
            "cc":[{"name":"Cy","address":"cy@example.org"}]}"#,
    )
    .unwrap();
    assert_eq!(
        email.to()[0],
        "Ann <ann@example.org>".parse::<Mailbox>().unwrap()
    );
    assert_eq!(email.to()[1].name(), None);
    assert_eq!(email.cc()[0].name(), Some("Cy"));
}
