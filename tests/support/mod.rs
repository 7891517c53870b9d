//! Helpers shared by the integration tests.
#![allow(dead_code)]

use mail_connector::{Attachment, Email};

/// A secret value that must never show up in any output.
pub const KNOWN_SECRET: &str = "Zq8~known-secret-value-7f3a";

/// An email exercising most of the model: names, all roles, both bodies, attachments.
pub fn rich_email() -> Email {
    Email::builder()
        .to("Ann Example <ann@example.org>")
        .to("bob@example.org")
        .cc("\"Doe, Jane\" <jane@example.org>")
        .bcc("audit@example.org")
        .reply_to("support@example.org")
        .subject("Grüße aus Köln — report ✅")
        .text("Hello,\nthe report is attached.\n")
        .html("<p>Hello,</p><p>the report is attached.</p><img src=\"cid:logo\">")
        .attachment(Attachment::from_bytes("report.csv", "id,total\n1,42\n"))
        .attachment(Attachment::from_bytes("logo.png", png_bytes()).inline("logo"))
        .header("X-Report-Id", "42")
        .build()
        .expect("valid email")
}

/// Some bytes that are not valid UTF-8, to prove attachments survive encoding.
pub fn png_bytes() -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    bytes.extend((0..=255u8).cycle().take(3000));
    bytes
}

/// An email to `n` recipients split across To, Cc and Bcc.
pub fn email_to_many(to: usize, cc: usize, bcc: usize) -> Email {
    let mut builder = Email::builder().subject("many").text("hi");
    for i in 0..to {
        builder = builder.to(format!("to{i}@example.org"));
    }
    for i in 0..cc {
        builder = builder.cc(format!("cc{i}@example.org"));
    }
    for i in 0..bcc {
        builder = builder.bcc(format!("bcc{i}@example.org"));
    }
    builder.build().expect("valid email")
}
