//! The email both Graph benches send, and the JSON the transport makes of it — what the plain
//! reqwest baselines post, so that the two sides send the same bytes.

use mail_connector::Email;

pub fn email() -> Email {
    Email::builder()
        .to("Ann Example <ann@example.org>")
        .subject("Your export is ready")
        .text("Download it from the portal.")
        .build()
        .unwrap()
}

/// The JSON `GraphTransport` sends for [`email`], for the plain reqwest baselines.
pub fn same_json() -> Vec<u8> {
    serde_json::json!({
        "message": {
            "subject": "Your export is ready",
            "body": {"contentType": "Text", "content": "Download it from the portal."},
            "toRecipients": [{"emailAddress": {"address": "ann@example.org", "name": "Ann Example"}}]
        },
        "saveToSentItems": true
    })
    .to_string()
    .into_bytes()
}
