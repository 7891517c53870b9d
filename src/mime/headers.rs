//! Header values written here rather than by lettre: address lists built once per role,
//! structured headers as given, others RFC 2047-encoded word by word, and the Message-ID.

use std::fmt::Write as _;

use email_encoding::headers::writer::EmailWriter;
use lettre::message::Mailboxes;
use lettre::message::header::{HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::message::{Mailbox, ascii_domain, is_structured};

/// The longest word of a header value written as it is; longer words are encoded so that the
/// line can fold.
const MAX_RAW_WORD: usize = 60;
/// The longest header line wanted (RFC 5322's limit for lines that can fold), CRLF excluded.
const MAX_LINE_LEN: usize = 78;
/// The longest run of spaces written as it is: with a word of [`MAX_RAW_WORD`] (spaces after
/// it included) after it, it still fits a folded line of 78 octets.
const MAX_RAW_SPACES: usize = 16;

/// `mailbox` for a header, its address in [wire form](Mailbox::wire_address): an IDN domain in
/// ASCII, so that the header block needs no SMTPUTF8 unless a local part is not ASCII.
pub(super) fn to_lettre(mailbox: &Mailbox) -> Result<lettre::message::Mailbox> {
    let address = mailbox.wire_address().parse().map_err(|e| {
        Error::invalid_message(
            "address",
            format!("`{}` is not a valid address ({e})", mailbox.address()),
        )
    })?;
    Ok(lettre::message::Mailbox::new(
        mailbox.name().map(str::to_owned),
        address,
    ))
}

/// An address-list header (To, Cc, Bcc, Reply-To) built once, one mailbox per line.
///
/// lettre writes a list on a single line (20,000 recipients made one line of 500 KB) and
/// rebuilds the whole header for each mailbox added (quadratic). The raw value stays lettre's
/// own text of the list, which it parses back to derive the SMTP envelope.
pub(super) fn mailbox_list(name: &'static str, list: &[Mailbox]) -> Result<Option<HeaderValue>> {
    if list.is_empty() {
        return Ok(None);
    }
    let mailboxes = list.iter().map(to_lettre).collect::<Result<Vec<_>>>()?;
    let mut encoded = String::new();
    write_mailboxes(name, &mailboxes, &mut encoded)
        .map_err(|_| Error::invalid_message(name, "cannot encode the address list"))?;
    let raw = Mailboxes::from(mailboxes).to_string();
    Ok(Some(HeaderValue::dangerous_new_pre_encoded(
        HeaderName::new_from_ascii_str(name),
        raw,
        encoded,
    )))
}

/// A complete `Name: a, b` header line (CRLF-terminated) for a list of mailboxes, encoded
/// and folded as the MIME writer does it.
pub(crate) fn address_header_line(name: &'static str, list: &[Mailbox]) -> Result<String> {
    let mailboxes = list.iter().map(to_lettre).collect::<Result<Vec<_>>>()?;
    let mut line = format!("{name}: ");
    write_mailboxes(name, &mailboxes, &mut line)
        .map_err(|_| Error::invalid_message(name, "cannot encode the address list"))?;
    line.push_str("\r\n");
    Ok(line)
}

fn write_mailboxes(
    name: &str,
    mailboxes: &[lettre::message::Mailbox],
    out: &mut String,
) -> std::fmt::Result {
    let mut writer = EmailWriter::new(out, name.len().saturating_add(2), 0, false);
    for (index, mailbox) in mailboxes.iter().enumerate() {
        if index > 0 {
            writer.write_char(',')?;
            writer.new_line()?;
            writer.space();
        }
        // As lettre writes one mailbox: the name quoted or RFC 2047-encoded, then `<address>`.
        if let Some(display) = &mailbox.name {
            email_encoding::headers::quoted_string::encode(display, &mut writer)?;
            writer.space();
            writer.write_char('<')?;
        }
        writer.write_str(mailbox.email.as_ref())?;
        if mailbox.name.is_some() {
            writer.write_char('>')?;
        }
    }
    Ok(())
}

/// A unique Message-ID at the sender's domain: `<random@domain>`. Not the host name, which
/// would tell every recipient the name of the machine that sent it (and look like spam).
///
/// A domain that is not ASCII is written as IDNA (`xn--…`): a Message-ID is ASCII, and one
/// with other characters would be sent as an encoded word, which is no Message-ID at all.
pub(crate) fn new_message_id(sender: &Mailbox) -> String {
    let domain = sender
        .address()
        .rsplit_once('@')
        .map_or("localhost", |(_, domain)| domain);
    let id = uuid::Uuid::new_v4().simple();
    let domain = ascii_domain(domain).unwrap_or(std::borrow::Cow::Borrowed("localhost"));
    format!("<{id}@{domain}>")
}

/// The headers the caller set (but `Message-ID`, which the builder sets), each structured
/// one written as given and the others encoded: see [`structured`] and [`unstructured`].
///
/// lettre keeps one header of a name (each one inserted replaces the one before), so a
/// header set more than once (`Keywords`, `Comments`, `X-` headers: only those a message
/// carries once are refused twice) is one value here that holds every line, in the order
/// set, each with its name as given. None of them is DKIM-signed (the signed ones are
/// written once), so no signer reads such a value as one header.
pub(super) fn custom_headers(headers: &[(String, String)]) -> Result<Vec<HeaderValue>> {
    let mut groups: Vec<(HeaderName, String, String)> = Vec::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("Message-ID") {
            continue;
        }
        let encoded = match is_structured(name) {
            true => structured(name, value)?,
            false => unstructured(name, value)?,
        };
        match groups
            .iter_mut()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name))
        {
            Some((_, _, lines)) => {
                lines.push_str("\r\n");
                lines.push_str(name);
                lines.push_str(": ");
                lines.push_str(&encoded);
            }
            None => groups.push((header_name(name)?, value.clone(), encoded)),
        }
    }
    Ok(groups
        .into_iter()
        .map(|(name, raw, encoded)| HeaderValue::dangerous_new_pre_encoded(name, raw, encoded))
        .collect())
}

fn header_name(name: &str) -> Result<HeaderName> {
    HeaderName::new_from_ascii(name.to_owned())
        .map_err(|_| Error::invalid_message("headers", format!("`{name}` is not a header name")))
}

/// A structured header (`Message-ID`, `References`, `List-Unsubscribe`, …), written as given
/// and folded only at its spaces: an encoded word would make its ids and URLs unreadable.
/// The builder checked that the value is printable ASCII with no word too long for a line.
fn structured(name: &str, value: &str) -> Result<String> {
    let mut encoded = String::with_capacity(value.len().saturating_add(8));
    let mut writer = EmailWriter::new(&mut encoded, name.len().saturating_add(2), 0, false);
    // One space between items: the spaces between ids or URLs in angle brackets mean
    // nothing, and a run kept whole could not fold (5,000 made a line of 5,000 octets).
    for (index, word) in value.split(' ').filter(|word| !word.is_empty()).enumerate() {
        if index > 0 {
            writer.space();
        }
        writer
            .folding()
            .write_str(word)
            .map_err(|_| Error::invalid_message("headers", format!("cannot write `{name}`")))?;
    }
    drop(writer);
    Ok(encoded.trim_end().to_owned())
}

/// An unstructured header (the subject, an `X-` header) encoded and folded here: words that
/// are too long, not printable ASCII, or look like encoded words are RFC 2047-encoded.
fn unstructured(name: &str, value: &str) -> Result<String> {
    let mut encoded = String::with_capacity(value.len().saturating_mul(2));
    encode_words(name, value, &mut encoded)
        .map_err(|_| Error::invalid_message("headers", format!("cannot encode `{name}`")))?;
    Ok(encoded)
}

/// An unstructured header that a message carries once (the subject, `Importance`).
pub(super) fn unstructured_header(name: &str, value: &str) -> Result<HeaderValue> {
    Ok(HeaderValue::dangerous_new_pre_encoded(
        header_name(name)?,
        value.to_owned(),
        unstructured(name, value)?,
    ))
}

/// What an encoded value needs of its first line: the encoded word of one character,
/// `=?utf-8?b?` and `?=` around up to eight base64 characters (a four-byte character).
const MIN_ENCODED_WORD: usize = 20;

/// The writer of header `name`'s value into `out`: on the name's line when the value's
/// first `first` octets fit there, else from the next line (the value begins with a fold):
/// after a name of more than 56 characters not even one encoded character fits.
fn value_writer<'a>(name: &str, first: usize, out: &'a mut String) -> EmailWriter<'a> {
    let after_name = name.len().saturating_add(2);
    if first == 0 || after_name.saturating_add(first) <= MAX_LINE_LEN {
        return EmailWriter::new(out, after_name, 0, false);
    }
    out.push_str("\r\n");
    EmailWriter::new(out, 0, 1, false)
}

fn encode_words(name: &str, value: &str, out: &mut String) -> std::fmt::Result {
    let mut pending = String::new();
    // A line cannot fold inside a run of spaces written as they are (the writer keeps the
    // run whole): a value with a long one is encoded whole, in encoded words that fold and
    // decode back to the spaces.
    let long_run = " ".repeat(MAX_RAW_SPACES + 1);
    if value.contains(&long_run) {
        let mut writer = value_writer(name, MIN_ENCODED_WORD, out);
        pending.push_str(value);
        return flush_encoded(&mut pending, &mut writer, true);
    }
    // Nothing can fold before the first word: unless it fits the first line as it is, spaces
    // before it included, it is encoded with those spaces (encoded words fold), so that the
    // encoder measures the line with them.
    let rest = value.trim_start_matches(' ');
    let leading = &value[..value.len() - rest.len()];
    let mut words = rest.split_inclusive(' ').peekable();
    let first = words.peek().copied().unwrap_or_default();
    let first_len = leading.len() + first.trim_end_matches(' ').len();
    let on_name_line = name.len().saturating_add(2).saturating_add(first_len) <= MAX_LINE_LEN;
    let needs = match writes_raw(first) && on_name_line {
        true => first_len,
        false => MIN_ENCODED_WORD,
    };
    let mut writer = value_writer(name, needs, out);
    let first_fits = writer.projected_line_len() + first_len <= MAX_LINE_LEN;
    if writes_raw(first) && first_fits {
        leading.chars().for_each(|_| writer.space());
    } else {
        pending.push_str(leading);
        pending.push_str(first);
        words.next();
    }
    for word in words {
        let only_spaces = word.bytes().all(|b| b == b' ');
        if only_spaces && !pending.is_empty() {
            // Extra spaces after an encoded run go inside it, where a decoder keeps them.
            pending.push_str(word);
        } else if writes_raw(word) {
            flush_encoded(&mut pending, &mut writer, false)?;
            writer.folding().write_str(word)?;
        } else {
            pending.push_str(word);
        }
    }
    flush_encoded(&mut pending, &mut writer, true)
}

/// Whether a word (with its trailing spaces) can be written as it is: it fits a folded line
/// with its spaces, which the line cannot fold inside.
fn writes_raw(word_and_spaces: &str) -> bool {
    let word = word_and_spaces.trim_end_matches(' ');
    word_and_spaces.len() <= MAX_RAW_WORD
        && word.bytes().all(|b| b.is_ascii_graphic())
        && !word.contains("=?")
}

/// Encodes the words gathered so far, spaces between them included; before a word written
/// as is, one space stays outside the encoded text to separate them.
fn flush_encoded(
    pending: &mut String,
    writer: &mut EmailWriter<'_>,
    last: bool,
) -> std::fmt::Result {
    if pending.is_empty() {
        return Ok(());
    }
    let words = match pending.strip_suffix(' ') {
        Some(words) if !last => words,
        _ => pending.as_str(),
    };
    email_encoding::headers::rfc2047::encode(words, writer)?;
    if words.len() < pending.len() {
        writer.space();
    }
    pending.clear();
    Ok(())
}
