//! One mail transaction on an open connection: the [`Envelope`] (MAIL FROM and every
//! RCPT TO), the transfer of MAIL/RCPT/DATA, how far it got ([`Progress`]) and the report
//! of which recipients the server accepted and refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::time::Instant;

use lettre::Address;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};

use super::connect::{Connection, quiet};
use super::remedy::client_error;
use crate::error::{
    Delivery, Error, Refusal, Result, SmtpStage, permanent_recipients, refused_message,
};
use crate::message::{Email, Mailbox, Recipient, RecipientKind};
use crate::transport::{SendReport, SentMessage};

/// How far an attempt got: decides whether a timeout leaves delivery uncertain, and for
/// whom.
#[derive(Debug, Clone)]
pub(super) struct Progress {
    pub(super) stage: SmtpStage,
    /// The server answered 354 to DATA and we started writing the message.
    pub(super) data_started: bool,
    /// The whole message was written, and its end (CRLF.CRLF) is being written or was: only
    /// from here may the server have taken it. Set by the writer (see [`EndMarked`]), so it
    /// holds also when the deadline stops the transfer.
    pub(super) data_ended: Arc<AtomicBool>,
    /// The recipients the server accepted at `RCPT TO` (set when DATA starts).
    pub(super) accepted: Vec<Recipient>,
    /// The recipients the server refused at `RCPT TO`, with its replies (set when DATA
    /// starts): certainly not sent, whatever happens to the data.
    pub(super) refusals: Vec<Refusal>,
    /// Every recipient of the transaction, in the envelope's order (set when DATA starts).
    pub(super) recipients: Vec<Recipient>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            stage: SmtpStage::Connect,
            data_started: false,
            data_ended: Arc::default(),
            accepted: Vec::new(),
            refusals: Vec::new(),
            recipients: Vec::new(),
        }
    }
}

impl Progress {
    /// Whether the server may have taken the message when no reply came: only once the end
    /// of the data was on its way. Cut off before that, no server can have accepted it.
    pub(super) fn may_be_delivered(&self) -> bool {
        self.data_ended.load(Ordering::Relaxed)
    }

    /// An error after `RCPT TO` that keeps the recipients refused there: when some were, a
    /// [`Error::PartialDelivery`] that lists them as not sent, with their replies, and the
    /// accepted ones as uncertain when the data's fate is, else as not sent too (the data was
    /// refused, or cut off before its end). Other errors are returned as they are.
    pub(super) fn exact(self, error: Error) -> Error {
        if self.refusals.is_empty() || matches!(error, Error::PartialDelivery { .. }) {
            return error;
        }
        let (uncertain, not_sent) = match error.delivery() {
            Delivery::Uncertain => (
                self.accepted,
                self.refusals.iter().map(|r| r.recipient.clone()).collect(),
            ),
            Delivery::NotSent => (Vec::new(), self.recipients),
        };
        Error::PartialDelivery {
            delivered: SendReport::default(),
            uncertain,
            not_sent,
            refused_permanently: permanent_recipients(&self.refusals),
            refusals: self.refusals.into(),
            source: Box::new(error),
        }
    }
}

/// The size of the pieces the message is handed to lettre in: it copies each to escape its
/// lines that begin with a dot, so a piece rather than the whole message is copied at once.
const DATA_CHUNK: usize = 128 * 1024;

/// The message in pieces, marking `ended` when asked for a piece after the last: lettre
/// asks only once it has written the one before, and writes the end of the data next.
struct EndMarked<'a> {
    chunks: std::slice::Chunks<'a, u8>,
    ended: &'a AtomicBool,
}

impl<'a> Iterator for EndMarked<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let next = self.chunks.next();
        if next.is_none() {
            self.ended.store(true, Ordering::Relaxed);
        }
        next
    }
}

/// The field named when a prepared message's own bytes (its header, its 8-bit body) are
/// what the server cannot take.
const MIME_HEADER: &str = "mime";

/// The field and text of what makes the message's header block not ASCII, when it is not:
/// an address only the headers name (From, Reply-To), else a prepared message's header.
fn non_ascii_header(email: &Email, from: &Mailbox, bytes: &[u8]) -> Option<(&'static str, String)> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    if bytes[..end].is_ascii() {
        return None;
    }
    let named = std::iter::once(("from", from))
        .chain(email.reply_to().iter().map(|m| ("reply_to", m)))
        .find(|(_, m)| !m.wire_address().is_ascii());
    Some(match named {
        Some((field, mailbox)) => (field, mailbox.address().to_owned()),
        None => (MIME_HEADER, String::new()),
    })
}

/// The envelope: the mailbox as `MAIL FROM`, every recipient (Bcc included) as `RCPT TO`,
/// each address once ([`Email::recipients`]): a server would take a second `RCPT TO` of
/// it, and the report would name it twice.
pub(super) struct Envelope {
    from: Address,
    recipients: Vec<(Recipient, Address)>,
    /// The first address that is not ASCII, and the email's field that holds it: sending
    /// needs a server with SMTPUTF8.
    non_ascii: Option<(&'static str, String)>,
}

/// `mailbox` on the envelope, in [wire form](Mailbox::wire_address): an IDN domain in ASCII
/// needs no SMTPUTF8; only a local part that is not ASCII does.
fn address(mailbox: &Mailbox, field: &str) -> Result<Address> {
    mailbox.wire_address().parse().map_err(|e| {
        Error::invalid_message(
            field,
            format!("`{}` is not a valid address ({e})", mailbox.address()),
        )
    })
}

impl Envelope {
    /// The envelope of `email` sent as `mailbox`, whose message (`bytes`) is from
    /// `header_from`.
    /// SMTPUTF8 is needed when an envelope address is not ASCII, and also when the message's
    /// header block is not (a From or Reply-To address, a prepared message's raw UTF-8).
    pub(super) fn new(
        mailbox: &Mailbox,
        email: &Email,
        header_from: &Mailbox,
        bytes: &[u8],
    ) -> Result<Self> {
        let from = address(mailbox, "from")?;
        let recipients = email
            .recipients()
            .map(|r| address(&r.mailbox, "to").map(|a| (r, a)))
            .collect::<Result<Vec<_>>>()?;
        if recipients.is_empty() {
            return Err(Error::invalid_message("to", "the email has no recipients"));
        }
        let text = |a: &Address| AsRef::<str>::as_ref(a).to_owned();
        let non_ascii = if AsRef::<str>::as_ref(&from).is_ascii() {
            recipients
                .iter()
                .find(|(_, a)| !AsRef::<str>::as_ref(a).is_ascii())
                .map(|(r, a)| {
                    let field = match r.kind {
                        RecipientKind::To => "to",
                        RecipientKind::Cc => "cc",
                        RecipientKind::Bcc => "bcc",
                    };
                    (field, text(a))
                })
        } else {
            Some(("from", text(&from)))
        };
        let non_ascii = non_ascii.or_else(|| non_ascii_header(email, header_from, bytes));
        Ok(Self {
            from,
            recipients,
            non_ascii,
        })
    }

    /// The send's result: a report, or [`Error::PartialDelivery`] when recipients were
    /// refused (see [`refusal`]).
    pub(super) fn report(&self, outcome: Accepted, id: Option<String>) -> Result<SendReport> {
        let delivered = if outcome.accepted.is_empty() {
            SendReport::default()
        } else {
            SendReport::single(SentMessage::new(outcome.accepted, id))
        };
        if outcome.refused.is_empty() {
            return Ok(delivered);
        }
        Err(refusal(delivered, outcome.refused))
    }
}

/// The error of a transaction whose server refused `refused` (not empty) at `RCPT TO`
/// and took `delivered`: an [`Error::PartialDelivery`] that lists every refused recipient
/// as not sent, those refused with a permanent reply apart, and each one's reply. Its
/// `source` is the first temporary refusal when there is one, else the first refusal:
/// whether it is transient says whether a retry may reach anyone in `not_sent`.
fn refusal(delivered: SendReport, mut refused: Vec<(Recipient, Error)>) -> Error {
    let refusals = refusals(&refused);
    let index = refused
        .iter()
        .position(|(_, e)| e.is_transient())
        .unwrap_or(0);
    let not_sent = refused.iter().map(|(r, _)| r.clone()).collect();
    let (_, source) = refused.swap_remove(index);
    Error::PartialDelivery {
        delivered,
        uncertain: Vec::new(),
        not_sent,
        refused_permanently: permanent_recipients(&refusals),
        refusals: refusals.into(),
        source: Box::new(source),
    }
}

/// What the server did with the recipients of one transaction.
pub(super) struct Accepted {
    accepted: Vec<Recipient>,
    refused: Vec<(Recipient, Error)>,
}

impl Accepted {
    /// How many recipients the server took.
    pub(super) fn accepted_count(&self) -> usize {
        self.accepted.len()
    }
}

/// Each refused recipient with the server's reply, in the order of the envelope. Every
/// entry of `refused` is a recipient's refusal (its error [refuses the
/// recipient](Error::refuses_recipient)), so none is dropped: [`Progress::exact`] counts
/// its `not_sent` from these.
fn refusals(refused: &[(Recipient, Error)]) -> Vec<Refusal> {
    let refusals: Vec<Refusal> = refused
        .iter()
        .filter_map(|(r, e)| Refusal::of(r, e))
        .collect();
    debug_assert_eq!(
        refusals.len(),
        refused.len(),
        "a refused recipient without its refusal would be lost from `not_sent`"
    );
    refusals
}

/// The error of an attempt whose caller stopped waiting before the data: nobody reads it.
pub(super) fn gave_up(stage: SmtpStage) -> Error {
    client_error(
        stage,
        "the caller stopped waiting; the transaction was abandoned before the data",
        false,
        Delivery::NotSent,
    )
}

impl Connection {
    /// One mail transaction: MAIL FROM, RCPT TO for each recipient, DATA.
    ///
    /// When `cancelled` is set (the caller is gone) before the data, the transaction is
    /// ended with `RSET` at the next step instead of going on.
    ///
    /// `mail_reply_by` bounds the wait for the reply to `MAIL FROM` (on a pooled connection,
    /// which may have died silently while idle): none by then breaks the connection with an
    /// error that lets the caller try a new one.
    pub(super) async fn transfer(
        &mut self,
        envelope: &Envelope,
        bytes: &[u8],
        progress: &mut Progress,
        cancelled: &AtomicBool,
        mail_reply_by: Option<Instant>,
    ) -> Result<Accepted> {
        let gone = || cancelled.load(Ordering::Relaxed);
        progress.stage = SmtpStage::Mail;
        if gone() {
            return Err(gave_up(SmtpStage::Mail));
        }
        let mut parameters = Vec::new();
        let info = self.conn.server_info();
        if let Some((field, address)) = &envelope.non_ascii {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                let what = match *field {
                    MIME_HEADER => "the message's header block is not ASCII (raw UTF-8)".to_owned(),
                    _ => format!("`{address}` is not an ASCII address"),
                };
                return Err(Error::invalid_message(
                    *field,
                    format!(
                        "{what}, and this SMTP server does not support SMTPUTF8: use ASCII \
                         (an address in ASCII; encoded words in a prepared message's \
                         headers), or a server that offers SMTPUTF8"
                    ),
                ));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !bytes.is_ascii() {
            // Only a prepared message can be 8-bit (the crate's own are 7-bit): a server
            // without 8BITMIME may mangle or bounce it, so it is not sent there (RFC 6152).
            if !info.supports_feature(Extension::EightBitMime) {
                return Err(Error::invalid_message(
                    MIME_HEADER,
                    "the message has 8-bit (non-ASCII) data, and this SMTP server does not \
                     support 8BITMIME: encode its body parts as quoted-printable or base64 \
                     (`Content-Transfer-Encoding`), or use a server that offers 8BITMIME",
                ));
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let mail = quiet(
            self.conn
                .command(Mail::new(Some(envelope.from.clone()), parameters)),
        );
        let mail = match mail_reply_by {
            Some(by) => match tokio::time::timeout_at(by, mail).await {
                Ok(reply) => reply,
                Err(_elapsed) => {
                    self.broken = true;
                    return Err(client_error(
                        SmtpStage::Mail,
                        "no reply to MAIL FROM on a pooled connection; it was dropped",
                        true,
                        Delivery::NotSent,
                    ));
                }
            },
            None => mail.await,
        };
        if let Err(e) = mail {
            let error = self.error(SmtpStage::Mail, &e, Delivery::NotSent);
            self.note(&error);
            self.reset().await;
            return Err(error);
        }

        progress.stage = SmtpStage::Rcpt;
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for (recipient, address) in &envelope.recipients {
            if gone() {
                self.reset().await;
                return Err(gave_up(SmtpStage::Rcpt));
            }
            match quiet(self.conn.command(Rcpt::new(address.clone(), vec![]))).await {
                Ok(_) => accepted.push(recipient.clone()),
                Err(e) => {
                    let mut error = self.error(SmtpStage::Rcpt, &e, Delivery::NotSent);
                    // A 421 or no reply: the session ends; "authentication required": the
                    // session's recipients are refused alike. No recipient was refused.
                    if !error.refuses_recipient() {
                        self.note(&error);
                        self.reset().await;
                        return Err(error);
                    }
                    if let Error::Smtp { message, .. } = &mut error {
                        *message = refused_message(recipient.mailbox.address(), message);
                    }
                    tracing::warn!(error = %error, "recipient refused");
                    refused.push((recipient.clone(), error));
                }
            }
        }
        if accepted.is_empty() {
            // Every recipient refused: nothing to send. One recipient's refusal is the error
            // itself; several are a partial delivery with nothing delivered, which names
            // those refused permanently, so that the others are not failed with them. Either
            // is retried within the send only when every refusal was temporary.
            self.reset().await;
            if refused.len() == 1 {
                return Err(refused.swap_remove(0).1);
            }
            return Err(refusal(SendReport::default(), refused));
        }

        if gone() {
            self.reset().await;
            return Err(gave_up(SmtpStage::Data));
        }
        progress.stage = SmtpStage::Data;
        progress.accepted.clone_from(&accepted);
        progress.refusals = refusals(&refused);
        progress.recipients = envelope.recipients.iter().map(|(r, _)| r.clone()).collect();
        if let Err(e) = quiet(self.conn.command(Data)).await {
            let error = self.error(SmtpStage::Data, &e, Delivery::NotSent);
            self.note(&error);
            self.reset().await;
            return Err(error);
        }
        progress.data_started = true;
        let message = EndMarked {
            chunks: bytes.chunks(DATA_CHUNK),
            ended: &progress.data_ended,
        };
        if let Err(e) = quiet(self.conn.message_iter(message)).await {
            // A reply is the server's verdict: not accepted. No reply: it may have been, if
            // the end of the data went out; a message cut off before it was not.
            let delivery = match e.status().is_none() && progress.may_be_delivered() {
                true => Delivery::Uncertain,
                false => Delivery::NotSent,
            };
            let error = self.error(SmtpStage::Data, &e, delivery);
            self.note(&error);
            return Err(error);
        }
        Ok(Accepted { accepted, refused })
    }
}
