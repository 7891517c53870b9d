//! Arbitrary emails for the fuzz targets: an `Input` holds every part a caller gives the
//! builder, made from pieces (quotes, encoded-word markers, line breaks, IDN domains) that
//! reach the interesting paths far sooner than random characters do.

use arbitrary::{Arbitrary, Result, Unstructured};
use mail_connector::{Attachment, Email, Importance, Mailbox};

/// Pieces that reach the interesting paths far sooner than random characters do.
const TOKENS: &[&str] = &[
    " ",
    "  ",
    "\t",
    "\r",
    "\n",
    "\r\n",
    "\"",
    "\\",
    "<",
    ">",
    ",",
    ";",
    ":",
    "(",
    ")",
    "@",
    ".",
    "=?",
    "?=",
    "=?utf-8?q?",
    "=?utf-8?b?",
    "?q?",
    "_",
    "=",
    "=20",
    "ü",
    "é",
    "日本",
    "😀",
    "\u{2028}",
    "\u{200b}",
    "\u{feff}",
    "\u{202e}",
    "\u{0}",
    "\u{7f}",
    "\u{85}",
    "Bcc:",
    "To: x@y.z",
    "From",
    "--",
    "\r\n.\r\n",
    ".",
    "..",
    "\u{a0}",
    "%",
    "+",
    "'",
    "[",
    "]",
];

const DOMAINS: &[&str] = &[
    "example.org",
    "bücher.de",
    "xn--bcher-kva.de",
    "EXAMPLE.ORG",
    "[127.0.0.1]",
    "日本.jp",
    "a.b",
    "ex-ample.org",
];

const HEADER_NAMES: &[&str] = &[
    "X-Report-Id",
    "X-A",
    "Keywords",
    "Comments",
    "List-Id",
    "List-Unsubscribe",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Very-Long-Header-Name-That-Leaves-Little-Room-On-The-First-Line-X",
    "Organization",
];

const CONTENT_TYPES: &[&str] = &[
    "application/pdf",
    "text/plain",
    "text/csv; charset=utf-8",
    "message/rfc822",
    "message/global",
    "image/png",
    "application/octet-stream; name=\"x y\"",
];

fn text(u: &mut Unstructured<'_>, max_pieces: usize) -> Result<String> {
    let pieces = u.int_in_range(0..=max_pieces)?;
    let mut out = String::new();
    for _ in 0..pieces {
        match u.int_in_range(0..=9u8)? {
            0..=3 => out.push(char::from(u.int_in_range(b' '..=b'~')?)),
            4..=5 => out.push_str(u.choose(TOKENS)?),
            6 => out.push(u.arbitrary::<char>()?),
            7 => out.push_str(&"a".repeat(u.int_in_range(1..=90)?)),
            8 => out.push_str(&" ".repeat(u.int_in_range(1..=20)?)),
            _ => out.push_str(u.choose(&["word", "Grüße", "ok", "x", "Re:"])?),
        }
    }
    Ok(out)
}

fn address(u: &mut Unstructured<'_>) -> Result<String> {
    let local = match u.int_in_range(0..=3u8)? {
        0 => text(u, 4)?,
        1 => "\"a b\"".to_owned(),
        2 => "zoë".to_owned(),
        _ => u.choose(&["ann", "b.c", "x+tag", "a_b-c"])?.to_string(),
    };
    let domain = match u.ratio(1, 8)? {
        true => text(u, 3)?,
        false => u.choose(DOMAINS)?.to_string(),
    };
    Ok(format!("{local}@{domain}"))
}

/// A mailbox: through `Mailbox::new` (name and address apart) or parsed from text.
fn mailbox(u: &mut Unstructured<'_>) -> Result<mail_connector::Result<Mailbox>> {
    let address = address(u)?;
    let name = match u.arbitrary::<bool>()? {
        true => Some(text(u, 12)?),
        false => None,
    };
    Ok(match u.arbitrary::<bool>()? {
        true => Mailbox::new(name.as_deref(), &address),
        false => match name {
            Some(name) => format!("{name} <{address}>").parse(),
            None => address.parse(),
        },
    })
}

#[derive(Debug)]
pub struct Input {
    from: Option<mail_connector::Result<Mailbox>>,
    to: Vec<mail_connector::Result<Mailbox>>,
    cc: Vec<mail_connector::Result<Mailbox>>,
    bcc: Vec<mail_connector::Result<Mailbox>>,
    reply_to: Vec<mail_connector::Result<Mailbox>>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    headers: Vec<(String, String)>,
    attachments: Vec<Attachment>,
    importance: Importance,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let list = |u: &mut Unstructured<'a>, max| -> Result<Vec<_>> {
            let n = u.int_in_range(0..=max)?;
            (0..n).map(|_| mailbox(u)).collect()
        };
        let from = match u.arbitrary::<bool>()? {
            true => Some(mailbox(u)?),
            false => None,
        };
        let to = list(u, 3)?;
        let cc = list(u, 2)?;
        let bcc = list(u, 2)?;
        let reply_to = list(u, 1)?;
        let subject = text(u, 40)?;
        let text_body = match u.arbitrary::<bool>()? {
            true => Some(text(u, 60)?),
            false => None,
        };
        let html = match u.ratio(1, 3)? {
            true => Some(text(u, 30)?),
            false => None,
        };
        let mut headers = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            let name = match u.ratio(1, 6)? {
                true => text(u, 3)?,
                false => u.choose(HEADER_NAMES)?.to_string(),
            };
            let value = match u.ratio(1, 4)? {
                true => format!("<{}@example.org>", text(u, 3)?),
                false => text(u, 30)?,
            };
            headers.push((name, value));
        }
        let mut attachments = Vec::new();
        for _ in 0..u.int_in_range(0..=2)? {
            let name = text(u, 10)?;
            let bytes = Vec::<u8>::arbitrary(u)?;
            let mut attachment = Attachment::from_bytes(name, bytes);
            if u.ratio(1, 3)? {
                attachment = attachment.with_content_type(match u.ratio(1, 5)? {
                    true => text(u, 5)?,
                    false => u.choose(CONTENT_TYPES)?.to_string(),
                });
            }
            if u.ratio(1, 3)? {
                attachment = attachment.inline(text(u, 4)?);
            }
            attachments.push(attachment);
        }
        let importance = *u.choose(&[Importance::Low, Importance::Normal, Importance::High])?;
        Ok(Input {
            from,
            to,
            cc,
            bcc,
            reply_to,
            subject,
            text: text_body,
            html,
            headers,
            attachments,
            importance,
        })
    }
}

pub fn build(input: Input) -> mail_connector::Result<Email> {
    let mut builder = Email::builder()
        .subject(input.subject)
        .importance(input.importance);
    if let Some(from) = input.from {
        builder = builder.from(from);
    }
    for m in input.to {
        builder = builder.to(m);
    }
    for m in input.cc {
        builder = builder.cc(m);
    }
    for m in input.bcc {
        builder = builder.bcc(m);
    }
    for m in input.reply_to {
        builder = builder.reply_to(m);
    }
    if let Some(text) = input.text {
        builder = builder.text(text);
    }
    if let Some(html) = input.html {
        builder = builder.html(html);
    }
    for (name, value) in input.headers {
        builder = builder.header(name, value);
    }
    for attachment in input.attachments {
        builder = builder.attachment(attachment);
    }
    builder.build()
}
