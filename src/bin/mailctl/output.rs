//! What `mailctl` prints: text for people, or with `--json` one JSON document on stdout for
//! scripts. Text has colour only on a terminal and never with `NO_COLOR`; a failure is one
//! `error:` line (and a `fix:` line with its remedy) on stderr; what came from a server is
//! printed without control characters, so it can neither break the lines nor drive the
//! terminal.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;
use clap::builder::styling::{AnsiColor, Style};
use mail_connector::{
    CheckReport, CheckStatus, Delivery, Email, Error, Recipient, RecipientKind, Refusal, SendReport,
};
use serde_json::{Value, json};

use crate::exit::Exit;

#[derive(Args, Debug, Clone, Copy)]
pub(crate) struct OutputArgs {
    /// Print one JSON document on stdout instead of text, for scripts; the exit code is the
    /// same.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Whether `NO_COLOR` is set to anything but the empty string (<https://no-color.org>).
pub(crate) fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether to colour what goes to `stream`: only a terminal, and only without `NO_COLOR`.
pub(crate) fn colour_for(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && !no_color()
}

/// `text` on one line, with control characters (and the bidirectional overrides that can
/// disguise text) replaced by spaces: error messages quote what servers sent.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            let disguise = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || disguise { ' ' } else { c }
        })
        .collect()
}

/// `send --json`'s `transport` when the messages went to the outbox folder, not to anyone.
pub(crate) const OUTBOX: &str = "outbox";

/// Prints the outcome of a command, as text or JSON, and says which exit code goes with it.
pub(crate) struct Output {
    json: bool,
    colour_out: bool,
    colour_err: bool,
}

impl Output {
    pub(crate) fn new(args: OutputArgs) -> Self {
        Self {
            json: args.json,
            colour_out: colour_for(&std::io::stdout()),
            colour_err: colour_for(&std::io::stderr()),
        }
    }

    fn paint(&self, on: bool, style: Style, text: &str) -> String {
        if on {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }

    /// An email was sent through `transport` (`graph`, `smtp` or `outbox`): the messages
    /// with their ids and recipients.
    pub(crate) fn sent(&self, transport: &str, report: &SendReport) -> ExitCode {
        if self.json {
            let mut document = send_document(Exit::Ok, report, [&Vec::new(); 3], None);
            document["transport"] = transport.into();
            out!("{document}");
        } else {
            self.print_sent(transport, report);
        }
        Exit::Ok.into()
    }

    fn print_sent(&self, transport: &str, report: &SendReport) {
        // The outbox delivers nothing: say where the message went instead.
        let verb = if transport == OUTBOX {
            "written to the outbox for"
        } else {
            "sent to"
        };
        for message in &report.messages {
            out!(
                "{verb} {} [{}]",
                clean(&list(&message.recipients)),
                clean(message.id.as_deref().unwrap_or("no id returned"))
            );
        }
    }

    /// `send` with `queue_url` set: the email was enqueued. The text output is the message
    /// id alone (scripts read it); the JSON is `{"status": "queued", "exit_code": 0, "kind":
    /// "ok", "transport": "queue", "id": …}`, with the `exit_code` and `kind` every document
    /// has.
    pub(crate) fn queued(&self, id: &str) -> ExitCode {
        let exit = Exit::Ok;
        if self.json {
            let document = json!({
                "status": "queued",
                "exit_code": exit.code(),
                "kind": exit.name(),
                "transport": "queue",
                "id": id,
            });
            out!("{document}");
        } else {
            out!("{id}");
        }
        exit.into()
    }

    /// A command failed. `email` is the email a `send` was for, when it was built: then the
    /// output says exactly which recipients got it, which did not and whose delivery is
    /// uncertain.
    pub(crate) fn failed(
        &self,
        transport: Option<&str>,
        error: &Error,
        email: Option<&Email>,
    ) -> ExitCode {
        let exit = Exit::of(error);
        let outcome = email.map(|email| Outcome::of(error, email));
        if self.json {
            let document = match &outcome {
                Some(o) => {
                    let lists = [&o.not_sent, &o.refused_permanently, &o.uncertain];
                    let mut document = send_document(exit, &o.delivered, lists, Some(error));
                    document["refusals"] = o.refusals.iter().map(refusal_json).collect();
                    if let Some(transport) = transport {
                        document["transport"] = transport.into();
                    }
                    document
                }
                None => json!({
                    "status": "failed",
                    "exit_code": exit.code(),
                    "kind": exit.name(),
                    "error": error_json(error, exit),
                }),
            };
            out!("{document}");
            return exit.into();
        }
        if let Some(outcome) = &outcome {
            self.print_sent(transport.unwrap_or_default(), &outcome.delivered);
            if !outcome.not_sent.is_empty() {
                out!("not sent to {}", clean(&list(&outcome.not_sent)));
            }
            if !outcome.refused_permanently.is_empty() {
                out!(
                    "refused permanently, not to be resent: {}",
                    clean(&list(&outcome.refused_permanently))
                );
            }
            for refusal in &outcome.refusals {
                out!("refused {}", clean(&refusal_line(refusal)));
            }
            if !outcome.uncertain.is_empty() {
                out!("delivery uncertain to {}", clean(&list(&outcome.uncertain)));
            }
        }
        self.error(error);
        exit.into()
    }

    /// An error as text on stderr, the one way `mailctl` prints one: its `error:` line and,
    /// when it has a remedy, its `fix:` line.
    pub(crate) fn error(&self, error: &Error) {
        let (message, remedy) = (error.to_string(), error.remedy());
        self.error_lines(&message, remedy.as_deref());
        environment_notes([message.as_str()].into_iter().chain(remedy.as_deref()));
    }

    fn error_lines(&self, message: &str, remedy: Option<&str>) {
        let red = Style::new().bold().fg_color(Some(AnsiColor::Red.into()));
        let yellow = Style::new().fg_color(Some(AnsiColor::Yellow.into()));
        eprintln!(
            "{} {}",
            self.paint(self.colour_err, red, "error:"),
            clean(message)
        );
        if let Some(remedy) = remedy {
            eprintln!(
                "{} {}",
                self.paint(self.colour_err, yellow, "fix:"),
                clean(remedy)
            );
        }
    }

    /// `check` found nothing configured: mail would go to the outbox, nowhere else.
    pub(crate) fn not_configured(&self, message: &str, remedy: &str) -> ExitCode {
        let exit = Exit::Settings;
        if self.json {
            let document = json!({
                "status": "not_configured",
                "exit_code": exit.code(),
                "kind": exit.name(),
                "steps": [],
                "error": {"message": message, "remedy": remedy, "kind": exit.name()},
            });
            out!("{document}");
        } else {
            self.error_lines(message, Some(remedy));
        }
        exit.into()
    }

    /// `check`'s report: one line per step, in columns that fit the longest step name.
    pub(crate) fn check(&self, using: &str, report: &CheckReport) -> ExitCode {
        let exit = Exit::of_check(report);
        if self.json {
            let steps: Vec<Value> = report
                .steps
                .iter()
                .map(|s| {
                    json!({
                        "name": s.name,
                        "status": s.status.to_string(),
                        "detail": s.detail,
                        "remedy": s.remedy,
                        "kind": s.kind.map(|k| k.to_string()),
                        "set_by_environment": match s.status {
                            CheckStatus::Ok => Value::Array(Vec::new()),
                            _ => environment_json([Some(s.detail.as_str()), s.remedy.as_deref()]
                                .into_iter()
                                .flatten()),
                        },
                    })
                })
                .collect();
            let document = json!({
                "status": report.status().to_string(),
                "exit_code": exit.code(),
                "kind": exit.name(),
                "using": using,
                "steps": steps,
            });
            out!("{document}");
            return exit.into();
        }
        out!("using {}", clean(using));
        let width = report
            .steps
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        let status_width = "warning".len();
        for step in &report.steps {
            // Padding outside the colour codes, so that colour does not shift the columns.
            let status = step.status.to_string();
            let pad = " ".repeat(status_width.saturating_sub(status.len()));
            let mut line = format!(
                "{:<width$}  {}{pad}  {}",
                clean(&step.name),
                self.status(&status, step.status),
                clean(&step.detail)
            );
            if let Some(remedy) = &step.remedy {
                line.push_str(&format!(" — fix: {}", clean(remedy)));
            }
            out!("{line}");
        }
        let overall = report.status();
        out!("overall: {}", self.status(&overall.to_string(), overall));
        environment_notes(
            report
                .steps
                .iter()
                .filter(|s| s.status != CheckStatus::Ok)
                .flat_map(|s| [Some(s.detail.as_str()), s.remedy.as_deref()])
                .flatten(),
        );
        exit.into()
    }

    fn status(&self, text: &str, status: CheckStatus) -> String {
        let colour = match status {
            CheckStatus::Ok => AnsiColor::Green,
            CheckStatus::Warning => AnsiColor::Yellow,
            _ => AnsiColor::Red,
        };
        let style = Style::new().fg_color(Some(colour.into()));
        self.paint(self.colour_out, style, text)
    }
}

/// A note on stderr for each setting that `texts` (what failed and how to fix it) name and
/// that a `MAIL_CONNECTOR_<KEY>` variable sets: the fix belongs in the variable, which
/// overrides the settings file.
fn environment_notes<'a>(texts: impl IntoIterator<Item = &'a str>) {
    for (key, variable) in crate::config::set_by_environment(texts) {
        eprintln!(
            "mailctl: `{key}` comes from the environment variable {variable}, which overrides \
             the settings file: make the change there"
        );
    }
}

/// Who got an email after `error`, who did not (and of those, whom a server refused, with
/// its reply, and whom for good), and whose delivery is uncertain.
struct Outcome {
    delivered: SendReport,
    not_sent: Vec<Recipient>,
    refused_permanently: Vec<Recipient>,
    refusals: Vec<Refusal>,
    uncertain: Vec<Recipient>,
}

impl Outcome {
    fn of(error: &Error, email: &Email) -> Self {
        match error {
            Error::PartialDelivery {
                delivered,
                uncertain,
                not_sent,
                refused_permanently,
                refusals,
                ..
            } => Self {
                delivered: delivered.clone(),
                not_sent: not_sent.clone(),
                refused_permanently: refused_permanently.clone(),
                refusals: refusals.to_vec(),
                uncertain: uncertain.clone(),
            },
            _ => {
                // Each address once, as the transports send it.
                let everyone: Vec<Recipient> = email.recipients().collect();
                let (not_sent, uncertain) = match error.delivery() {
                    Delivery::Uncertain => (Vec::new(), everyone),
                    _ => (everyone, Vec::new()),
                };
                Self {
                    delivered: SendReport::default(),
                    not_sent,
                    refused_permanently: Vec::new(),
                    refusals: Vec::new(),
                    uncertain,
                }
            }
        }
    }
}

fn list(recipients: &[Recipient]) -> String {
    recipients
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn recipient_json(recipient: &Recipient) -> Value {
    let kind = match recipient.kind {
        RecipientKind::To => "to",
        RecipientKind::Cc => "cc",
        RecipientKind::Bcc => "bcc",
    };
    json!({
        "kind": kind,
        "address": recipient.mailbox.address(),
        "name": recipient.mailbox.name(),
    })
}

/// A refused recipient and the server's reply on one line: `To: gone@example.org: 550 5.1.1
/// User unknown`.
fn refusal_line(refusal: &Refusal) -> String {
    let mut line = format!("{}: {}", refusal.recipient, refusal.code);
    for part in [
        refusal.enhanced_code.as_deref(),
        Some(refusal.text.as_str()),
    ] {
        if let Some(part) = part.filter(|p| !p.is_empty()) {
            line.push(' ');
            line.push_str(part);
        }
    }
    line
}

/// A refused recipient as in the recipient lists, with the server's reply and its verdict.
fn refusal_json(refusal: &Refusal) -> Value {
    let mut value = recipient_json(&refusal.recipient);
    value["code"] = refusal.code.into();
    value["enhanced_code"] = refusal.enhanced_code.clone().into();
    value["text"] = refusal.text.clone().into();
    value["permanent"] = refusal.is_permanent().into();
    value["auth"] = refusal.is_auth().into();
    value
}

fn recipients_json<'a>(recipients: impl IntoIterator<Item = &'a Recipient>) -> Value {
    Value::Array(recipients.into_iter().map(recipient_json).collect())
}

/// The settings among `texts` that a `MAIL_CONNECTOR_<KEY>` variable sets, as
/// `[{"setting": …, "variable": …}]`.
fn environment_json<'a>(texts: impl IntoIterator<Item = &'a str>) -> Value {
    crate::config::set_by_environment(texts)
        .into_iter()
        .map(|(setting, variable)| json!({"setting": setting, "variable": variable}))
        .collect()
}

fn error_json(error: &Error, exit: Exit) -> Value {
    let (message, remedy) = (error.to_string(), error.remedy());
    json!({
        "set_by_environment": environment_json(
            [message.as_str()].into_iter().chain(remedy.as_deref())
        ),
        "message": message,
        "remedy": remedy,
        "kind": exit.name(),
        "transient": error.is_transient(),
        "auth": error.is_auth(),
        "status": error.status(),
        // Whole seconds, rounded up: waiting a little longer than asked is always fine.
        "retry_after_seconds": error
            .retry_after()
            .map(|d| d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))),
        // Of a partial delivery: whether its source is transient, which `transient` (of the
        // email as a whole, never resent when some got it) does not say.
        "rest_transient": match error {
            Error::PartialDelivery { source, .. } => Some(source.is_transient()),
            _ => None,
        },
    })
}

/// `send`'s document: `status` is `sent`, `partial` (some got it), `uncertain` (some may
/// have) or `failed` (nobody did); `delivered`, `not_sent` and `uncertain` hold every
/// recipient exactly once, `refused_permanently` those of `not_sent` that a server refused
/// for good (`lists` is `not_sent`, `refused_permanently`, `uncertain`), and `refusals`
/// (empty here, filled by [`Output::failed`]) those a server refused, with each one's reply.
fn send_document(
    exit: Exit,
    delivered: &SendReport,
    lists: [&Vec<Recipient>; 3],
    error: Option<&Error>,
) -> Value {
    let [not_sent, refused_permanently, uncertain] = lists;
    let status = match error {
        None => "sent",
        Some(_) if !delivered.messages.is_empty() => "partial",
        Some(_) if !uncertain.is_empty() => "uncertain",
        Some(_) => "failed",
    };
    let messages: Vec<Value> = delivered
        .messages
        .iter()
        .map(|m| json!({"id": m.id, "recipients": recipients_json(&m.recipients)}))
        .collect();
    json!({
        "status": status,
        "exit_code": exit.code(),
        "kind": exit.name(),
        "messages": messages,
        "delivered": recipients_json(delivered.recipients()),
        "not_sent": recipients_json(not_sent),
        "refused_permanently": recipients_json(refused_permanently),
        "refusals": [],
        "uncertain": recipients_json(uncertain),
        "error": error.map(|e| error_json(e, exit)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_keeps_one_line_and_no_escape_codes() {
        assert_eq!(
            clean("550 bad\r\n\u{1b}[31mred\u{202E}x ü"),
            "550 bad   [31mred x ü"
        );
    }
}
