//! `mailctl send`: build one email from the flags and send it.

use std::path::PathBuf;

use clap::Args;
use mail_connector::{Attachment, Email, Error, MailTransport};

use crate::config::{ConfigArg, load_settings};

#[derive(Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Recipient, `ann@example.org` or `"Ann Example <ann@example.org>"`; repeat for more.
    #[arg(long, value_name = "ADDR", required = true, num_args = 1..)]
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
    #[arg(long)]
    subject: String,
    /// Plain-text body.
    #[arg(long)]
    text: Option<String>,
    /// HTML body.
    #[arg(long)]
    html: Option<String>,
    /// File to attach; repeat for more.
    #[arg(long, value_name = "PATH")]
    attach: Vec<PathBuf>,
    /// With `queue_url` set: the idempotency key (the same key again enqueues nothing).
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
}

fn build_email(args: &SendArgs) -> Result<Email, Error> {
    let mut builder = Email::builder().subject(&args.subject);
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

pub(crate) async fn send(args: SendArgs) -> Result<(), Error> {
    let settings = load_settings(&args.config)?;
    let email = build_email(&args)?;
    if settings.queue_url.is_some() {
        return crate::queue::enqueue(&settings, &email, args.idempotency_key).await;
    }
    let transport = settings.build()?;
    eprintln!("mailctl: using {}", settings.summary());
    let report = transport.send(&email).await?;
    for message in &report.messages {
        let recipients: Vec<String> = message.recipients.iter().map(ToString::to_string).collect();
        println!(
            "sent to {} [{}]",
            recipients.join(", "),
            message.id.as_deref().unwrap_or("no id returned")
        );
    }
    Ok(())
}
