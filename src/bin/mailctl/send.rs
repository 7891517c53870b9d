//! `mailctl send`: build one email from the flags and send it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mail_connector::{Attachment, Email, Error, MailTransport};

use crate::config::{ConfigArg, load_settings};
use crate::output::{Output, OutputArgs};

#[derive(Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    output: OutputArgs,
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

pub(crate) async fn send(args: SendArgs) -> ExitCode {
    let out = Output::new(args.output);
    let settings = match load_settings(&args.config) {
        Ok(settings) => settings,
        Err(error) => return out.failed(&error, None),
    };
    let email = match build_email(&args) {
        Ok(email) => email,
        Err(error) => return out.failed(&error, None),
    };
    let transport = match settings.build() {
        Ok(transport) => transport,
        Err(error) => return out.failed(&error, Some(&email)),
    };
    eprintln!("mailctl: using {}", settings.summary());
    match transport.send(&email).await {
        Ok(report) => out.sent(&report),
        Err(error) => out.failed(&error, Some(&email)),
    }
}
