//! Random emails made through the public builder, from one seed each: shared by the
//! randomized Graph and SMTP tests.

use fastrand::Rng;
use mail_connector::{Attachment, Email, EmailBuilder, Importance, Mailbox};

/// Display names that need quoting, escaping or encoding, or look encoded already.
const NAMES: &[&str] = &[
    "Ann Example",
    "Doe, Jane",
    "\"Quoted\" Name",
    "Zoë Ünïcødé",
    "=?utf-8?q?Caf=C3=A9?=",
    "=?UTF-8?B?w6k=?= look-alike",
    "O'Brien; Sales",
    "back\\slash",
    "日本語の名前",
    "Ann (comment)",
    "a.b@c",
    "Ёлка и ель",
    "mail 📧 bot",
    "  padded  ",
    "=?",
    "Ann <not the address>",
];

const LOCALS: &[&str] = &["ann", "Bob.Smith", "o'neil", "x+tag", "jörg", "user_1", "a"];

/// Domains, and the ASCII (IDNA) form the crate documents for an IDN one on the wire.
const DOMAINS: &[(&str, &str)] = &[
    ("example.org", "example.org"),
    ("EXAMPLE.org", "EXAMPLE.org"),
    ("bücher.de", "xn--bcher-kva.de"),
    ("Bücher.de", "xn--bcher-kva.de"),
    ("münchen.de", "xn--mnchen-3ya.de"),
    ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ("mail.sub.example.co.uk", "mail.sub.example.co.uk"),
];

/// `address` as it goes on the wire: a domain that is not ASCII in its ASCII form (IDNA
/// folds case) when the local part is ASCII.
pub(crate) fn expected_wire_address(address: &str) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap();
    let domain = domain.to_lowercase();
    match DOMAINS
        .iter()
        .find(|(d, _)| !d.is_ascii() && d.to_lowercase() == domain)
    {
        Some((_, ascii)) if local.is_ascii() => format!("{local}@{ascii}"),
        _ => address.to_owned(),
    }
}

const TEXT: &[&str] = &[
    "Hello",
    "Grüße ✅",
    "=?utf-8?q?not=20encoded?=",
    " ",
    "\u{a0}nbsp",
    "zero\u{200b}width",
    "\u{2424}",
    "↵ return",
    "\t",
    "\"quoted\"",
    "back\\slash",
    "Re: Fwd:",
    "日本語",
    "<b>&amp;</b>",
    "a-very-long-word-without-any-space-in-it-that-goes-on-and-on-past-the-fold-width",
];

const BODY_EXTRA: &[&str] = &[
    "\r\n",
    "\n",
    "\r",
    "\r\n.\r\n",
    "\nFrom me\n",
    "=3D",
    "\u{2028}",
    // Lines that begin with a dot: SMTP must dot-stuff them.
    "\r\n.leading dot\r\n",
    "\n..two dots\n",
    "\r\n.\n",
];

const X_HEADERS: &[&str] = &["X-Tag", "x-lower", "X-Report-Id", "X-Mailer-Info"];
const OTHER_HEADERS: &[&str] = &["Keywords", "Comments"];

const FILE_NAMES: &[&str] = &[
    "report.csv",
    "Grüße.pdf",
    "\"quoted\".txt",
    "a,b;c.bin",
    "日本.png",
    "Caf=C3=A9 q?.txt",
    "noext",
    "spaces in name.docx",
    "ünï 'single'.json",
    "logo.png",
];

const CONTENT_TYPES: &[&str] = &[
    "application/octet-stream",
    "image/png",
    "text/csv; charset=utf-8",
    "application/pdf",
];

/// One generated email: `email` is what is sent; for a prepared message, `built` is the
/// email its MIME was written from, and `envelope_given` says whether other envelope
/// recipients were given with it.
pub(crate) struct Case {
    pub email: Email,
    pub built: Option<Email>,
    pub envelope_given: bool,
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

/// A few pieces of `TEXT`, sometimes none.
fn text(rng: &mut Rng, max: usize) -> String {
    (0..rng.usize(..=max)).map(|_| pick(rng, TEXT)).collect()
}

fn body(rng: &mut Rng) -> String {
    let mut body = String::new();
    for _ in 0..rng.usize(..6) {
        body.push_str(&text(rng, 3));
        body.push_str(pick(rng, BODY_EXTRA));
    }
    if rng.u8(..8) == 0 {
        body.push_str(&"long line ".repeat(120));
    }
    if rng.u8(..8) == 0 {
        // One word longer than a line may be (998 octets): it must be encoded, not cut.
        body.push_str(&"x".repeat(1200));
    }
    body
}

/// A mailbox, given to the builder as a `Mailbox` or as `"Name" <address>` text.
fn mailbox(rng: &mut Rng, earlier: &[Mailbox]) -> Result<Mailbox, String> {
    if !earlier.is_empty() && rng.u8(..4) == 0 {
        // The same address again, in another case: a duplicate across kinds.
        let again = &earlier[rng.usize(..earlier.len())];
        let address = match rng.bool() {
            true => again.address().to_uppercase(),
            false => again.address().to_owned(),
        };
        return Mailbox::new(again.name(), &address).map_err(|e| format!("{address}: {e}"));
    }
    let address = format!("{}@{}", pick(rng, LOCALS), pick(rng, DOMAINS).0);
    let name = rng.bool().then(|| display_name(rng));
    let name = name.as_deref();
    let made = match (name, rng.bool()) {
        // `Mailbox::parse` refuses a tab, as any control character in the text.
        (Some(name), true) if !name.contains('\t') => {
            let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
            let text = format!("\"{quoted}\" <{address}>");
            Mailbox::parse(&text).map_err(|e| format!("{text}: {e}"))?
        }
        (name, _) => {
            Mailbox::new(name, &address).map_err(|e| format!("{name:?} {address}: {e}"))?
        }
    };
    // Spaces at the ends dropped, a run of them one (`Mailbox::new`).
    let spaced = name.map(|n| {
        n.split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    });
    assert_eq!(made.name(), spaced.as_deref().filter(|n| !n.is_empty()));
    assert_eq!(made.address(), address);
    Ok(made)
}

/// One name of `NAMES`, or two run together.
fn display_name(rng: &mut Rng) -> String {
    match rng.u8(..3) {
        0 => format!("{} {}", pick(rng, NAMES), pick(rng, NAMES)),
        1 => format!("{}{}", pick(rng, NAMES), pick(rng, TEXT)),
        _ => pick(rng, NAMES).to_owned(),
    }
}

fn attachment(rng: &mut Rng, index: usize) -> Attachment {
    let name = pick(rng, FILE_NAMES);
    let mut attachment = match rng.u8(..4) {
        0 => Attachment::from_bytes(name, Vec::new()),
        1 => Attachment::from_bytes(name, text(rng, 8).into_bytes()),
        // Over 3 MiB: a draft and an upload session.
        2 if rng.u8(..5) == 0 => {
            let mut bytes = vec![0; 3 * 1024 * 1024 + rng.usize(..5000)];
            rng.fill(&mut bytes);
            Attachment::from_bytes(name, bytes).with_content_type("application/octet-stream")
        }
        _ => {
            let bytes: Vec<u8> = (0..rng.usize(..3000)).map(|_| rng.u8(..)).collect();
            Attachment::from_bytes(name, bytes).with_content_type("application/octet-stream")
        }
    };
    if rng.u8(..3) == 0 && attachment.content_type() != "application/octet-stream" {
        attachment = attachment.with_content_type(pick(rng, CONTENT_TYPES));
    }
    if rng.u8(..3) == 0 {
        attachment = attachment.inline(format!("part{index}.{}@contoso.com", rng.u16(..)));
    }
    attachment
}

fn add(rng: &mut Rng, made: &mut Vec<Mailbox>) -> Mailbox {
    let mailbox = mailbox(rng, made).unwrap_or_else(|e| panic!("a valid mailbox refused: {e}"));
    made.push(mailbox.clone());
    mailbox
}

/// To, Cc and Bcc recipients (at least one); every mailbox made is added to `made`.
fn recipients(rng: &mut Rng, mut builder: EmailBuilder, made: &mut Vec<Mailbox>) -> EmailBuilder {
    let to = rng.usize(..5);
    let cc = rng.usize(..4);
    let bcc = rng.usize(usize::from(to + cc == 0)..4);
    for _ in 0..to {
        builder = builder.to(add(rng, made));
    }
    for _ in 0..cc {
        builder = builder.cc(add(rng, made));
    }
    for _ in 0..bcc {
        builder = builder.bcc(add(rng, made));
    }
    builder
}

/// Recipients, Reply-To and From.
fn addressed(rng: &mut Rng, builder: EmailBuilder) -> EmailBuilder {
    let mut made = Vec::new();
    let mut builder = recipients(rng, builder, &mut made);
    for _ in 0..rng.usize(..3) {
        builder = builder.reply_to(add(rng, &mut made));
    }
    if rng.u8(..3) == 0 {
        let address = pick(rng, &["no-reply@contoso.com", "No-Reply@Contoso.COM"]);
        let name = rng.bool().then(|| display_name(rng));
        builder = builder.from(Mailbox::new(name.as_deref(), address).unwrap());
    }
    builder
}

fn email(rng: &mut Rng) -> Email {
    let mut builder = addressed(rng, Email::builder()).subject(text(rng, 4));
    match rng.u8(..4) {
        0 => builder = builder.text(body(rng)),
        1 => builder = builder.html(format!("<p>{}</p>", body(rng))),
        2 => builder = builder.text(body(rng)).html(body(rng)),
        _ => {}
    }
    let headers = match rng.u8(..4) {
        0 => 0,
        1 => 6,
        _ => rng.usize(..4),
    };
    for i in 0..headers {
        let name = match rng.u8(..6) {
            0 => pick(rng, OTHER_HEADERS).to_owned(),
            _ => format!("{}-{i}", pick(rng, X_HEADERS)),
        };
        builder = builder.header(name, text(rng, 3));
    }
    if rng.u8(..10) == 0 {
        builder = builder.header("Message-ID", format!("<r{}@contoso.com>", rng.u32(..)));
    }
    builder = builder.importance(pick(
        rng,
        &[Importance::Low, Importance::Normal, Importance::High],
    ));
    for index in 0..rng.usize(..4) {
        builder = builder.attachment(attachment(rng, index));
    }
    builder
        .build()
        .unwrap_or_else(|e| panic!("a valid email refused: {e}"))
}

impl Case {
    pub(crate) async fn generate(seed: u64) -> Case {
        let mut rng = Rng::with_seed(seed);
        let email = email(&mut rng);
        if rng.u8(..5) != 0 {
            return Case {
                email,
                built: None,
                envelope_given: false,
            };
        }
        // A prepared message: the MIME of a built email, from the transport's mailbox.
        let name = rng.bool().then(|| display_name(&mut rng));
        let sender = Mailbox::new(name.as_deref(), "no-reply@contoso.com");
        let built = rebuild_from(&email, sender.unwrap());
        let mime = built.to_mime().await.unwrap();
        let envelope_given = rng.u8(..3) == 0;
        let prepared = match envelope_given {
            true => recipients(&mut rng, Email::builder().mime(mime), &mut Vec::new()),
            false => Email::builder().mime(mime),
        };
        let prepared = prepared
            .build()
            .unwrap_or_else(|e| panic!("prepared refused: {e}"));
        Case {
            email: prepared,
            built: Some(built),
            envelope_given,
        }
    }
}

/// `email` with `from` as its sender.
fn rebuild_from(email: &Email, from: Mailbox) -> Email {
    let mut builder = copied_into(Email::builder().from(from).subject(email.subject()), email);
    if let Some(text) = email.text() {
        builder = builder.text(text);
    }
    if let Some(html) = email.html() {
        builder = builder.html(html);
    }
    builder.importance(email.importance()).build().unwrap()
}

/// `builder` with `email`'s recipients (To, Cc, Bcc), Reply-To, headers and attachments.
pub(crate) fn copied_into(mut builder: EmailBuilder, email: &Email) -> EmailBuilder {
    for m in email.to() {
        builder = builder.to(m);
    }
    for m in email.cc() {
        builder = builder.cc(m);
    }
    for m in email.bcc() {
        builder = builder.bcc(m);
    }
    for m in email.reply_to() {
        builder = builder.reply_to(m);
    }
    for (name, value) in email.headers() {
        builder = builder.header(name, value);
    }
    for attachment in email.attachments() {
        builder = builder.attachment(attachment.clone());
    }
    builder
}

/// What a reader makes of a header's mailboxes: (name, address) pairs.
pub(crate) fn mailboxes(
    address: Option<&mail_parser::Address<'_>>,
) -> Vec<(Option<String>, String)> {
    address.map_or_else(Vec::new, |a| {
        a.iter()
            .map(|m| {
                let name = m.name().map(str::to_owned);
                (name, m.address().unwrap_or_default().to_owned())
            })
            .collect()
    })
}

/// The mailboxes as built, as a reader of the message should find them: (name, address in
/// its wire form) pairs.
pub(crate) fn as_read<'a>(
    built: impl IntoIterator<Item = &'a mail_connector::Mailbox>,
) -> Vec<(Option<String>, String)> {
    built
        .into_iter()
        .map(|m| {
            let name = m.name().map(str::to_owned);
            (name, expected_wire_address(m.address()))
        })
        .collect()
}

/// Runs of spaces as one, none at the ends: what a reader keeps of a header's spacing.
pub(crate) fn spaces(text: &str) -> String {
    text.split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Line ends as a reader compares text: each one `\n`, none at the end.
pub(crate) fn lines(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.trim_end_matches('\n').to_owned()
}
