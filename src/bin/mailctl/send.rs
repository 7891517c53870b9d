//! `mailctl send`: build one email from the flags (or read a prepared one with `--eml`) and
//! send it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mail_connector::{Attachment, Email, Error, MailTransport};

use crate::config::{ConfigArg, load_settings};
use crate::output::{OUTBOX, Output, OutputArgs};

#[derive(Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    output: OutputArgs,
    /// Recipient, `ann@example.org` or `"Ann Example <ann@example.org>"`; repeat for more.
    /// With `--eml`, `--to`/`--cc`/`--bcc` replace the file's recipients as the envelope.
    #[arg(long, value_name = "ADDR", required_unless_present = "eml", num_args = 1..)]
    to: Vec<String>,
    /// Cc recipient; repeat for more.
    #[arg(long, value_name = "ADDR")]
    cc: Vec<String>,
    /// Bcc recipient; repeat for more.
    #[arg(long, value_name = "ADDR")]
    bcc: Vec<String>,
    /// Reply-To address.
    #[arg(long, value_name = "ADDR")]
    reply_to: Option<String>,
    /// Subject line.
    #[arg(long, required_unless_present = "eml")]
    subject: Option<String>,
    /// Plain-text body.
    #[arg(long)]
    text: Option<String>,
    /// HTML body.
    #[arg(long)]
    html: Option<String>,
    /// File to attach; repeat for more.
    #[arg(long, value_name = "PATH")]
    attach: Vec<PathBuf>,
    /// A header, `"Name: value"` (`Message-ID`, `In-Reply-To`, `References`,
    /// `List-Unsubscribe`, `List-Unsubscribe-Post`, `X-…`, …); repeat for more.
    #[arg(long, value_name = "NAME: VALUE", value_parser = parse_header)]
    header: Vec<(String, String)>,
    /// Send this prepared RFC 5322 message (an `.eml` file, e.g. one from the outbox) as it
    /// is, instead of building one; its To/Cc/Bcc are the recipients unless `--to`, `--cc`
    /// or `--bcc` are given.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["subject", "text", "html", "attach", "header", "reply_to"]
    )]
    eml: Option<PathBuf>,
    /// With `queue_url` set: the idempotency key (the same key again enqueues nothing).
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
}

/// `Name: value` → (`Name`, `value`); the library checks the name and value.
fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not `Name: value`"))?;
    Ok((name.trim().to_owned(), value.trim_start().to_owned()))
}

fn build_email(args: &SendArgs) -> Result<Email, Error> {
    let mut builder = Email::builder();
    if let Some(path) = &args.eml {
        builder = builder.mime_file(path);
    }
    if let Some(subject) = &args.subject {
        builder = builder.subject(subject);
    }
    for (name, value) in &args.header {
        builder = builder.header(name, value);
    }
    for to in &args.to {
        builder = builder.to(to);
    }
    for cc in &args.cc {
        builder = builder.cc(cc);
    }
    for bcc in &args.bcc {
        builder = builder.bcc(bcc);
    }
    if let Some(reply_to) = &args.reply_to {
        builder = builder.reply_to(reply_to);
    }
    if let Some(text) = &args.text {
        builder = builder.text(text);
    }
    if let Some(html) = &args.html {
        builder = builder.html(html);
    }
    for path in &args.attach {
        builder = builder.attachment(Attachment::from_path(path)?);
    }
    builder.build()
}

pub(crate) async fn send(args: SendArgs) -> ExitCode {
    let out = Output::new(args.output);
    let settings = match load_settings(&args.config) {
        Ok(settings) => settings,
        Err(error) => return out.failed(None, &error, None),
    };
    // Which transport the messages go through, for the output: the outbox delivers nothing.
    let transport = if settings.outbox_dir.is_some() {
        OUTBOX
    } else {
        settings.transport_kind().as_str()
    };
    let email = match build_email(&args) {
        Ok(email) => email,
        Err(error) => return out.failed(Some(transport), &error, None),
    };
    if settings
        .queue_url
        .as_ref()
        .is_some_and(|url| !url.expose_secret().trim().is_empty())
    {
        return match crate::queue::enqueue(&settings, &email, args.idempotency_key).await {
            Ok(id) => out.queued(&id),
            Err(error) => out.failed(Some("queue"), &error, Some(&email)),
        };
    }
    let sender = match settings.build() {
        Ok(sender) => sender,
        Err(error) => return out.failed(Some(transport), &error, Some(&email)),
    };
    eprintln!("mailctl: using {}", settings.summary());
    match sender.send(&email).await {
        Ok(report) => out.sent(transport, &report),
        Err(error) => out.failed(Some(transport), &error, Some(&email)),
    }
}
