//! The checks every header value goes through — no line breaks or control characters, a size
//! limit — and the policy for headers a caller sets: which the crate owns, which are structured
//! (written verbatim) and which must appear once.

use crate::error::{Error, Result};

/// The longest subject and custom header value, in bytes (UTF-8). Exchange Online caps all the
/// headers of a message at 256 KB; a longer subject is almost certainly a mistake.
pub(crate) const MAX_HEADER_VALUE_BYTES: usize = 16 * 1024;

/// The longest custom header name, in characters.
pub(crate) const MAX_HEADER_NAME_CHARS: usize = 64;

/// Refuses CR, LF and other control characters (tab is allowed) in a header value.
pub(super) fn check_header_text(field: &str, value: &str) -> Result<()> {
    let found = value
        .chars()
        .find(|&c| (c.is_control() && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}'));
    if let Some(c) = found {
        let what = match c {
            '\r' | '\n' => "a line break, which could inject headers".to_owned(),
            '\u{2028}' | '\u{2029}' => format!("the line separator {c:?}"),
            other => format!("the control character {other:?}"),
        };
        return Err(Error::invalid_message(
            field,
            format!("`{}` contains {what}; remove it", preview(value)),
        ));
    }
    Ok(())
}

pub(super) fn check_header_size(field: &str, value: &str) -> Result<()> {
    if value.len() > MAX_HEADER_VALUE_BYTES {
        return Err(Error::invalid_message(
            field,
            format!(
                "the value is {} bytes long; at most {MAX_HEADER_VALUE_BYTES} are allowed \
                 (put long text in the body)",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// The value escaped for an error message, cut after 80 characters.
pub(super) fn preview(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(80)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(80).is_some() {
        out.push('…');
    }
    out
}

/// The longest word of a structured header: it is written as it is, on one line.
const MAX_STRUCTURED_WORD: usize = 900;

/// Headers the crate writes itself, each with what to use instead.
const OWNED: &[(&str, &str)] = &[
    ("From", "set it with `from`"),
    ("Sender", "the transport's mailbox is the sender"),
    ("To", "add recipients with `to`"),
    ("Cc", "add recipients with `cc`"),
    ("Bcc", "add recipients with `bcc`"),
    ("Reply-To", "set it with `reply_to`"),
    ("Subject", "set it with `subject`"),
    ("Date", "the transport stamps the time of sending"),
    ("MIME-Version", "the MIME writer sets it"),
    ("Importance", "set it with `importance`"),
    (
        "Return-Path",
        "the receiving server writes it from the envelope",
    ),
    ("DKIM-Signature", "set `dkim_domain` and friends to sign"),
    (
        "Received",
        "each server the message passes writes its own trace header",
    ),
    (
        "Received-SPF",
        "the receiving server writes the result of its own checks",
    ),
    (
        "Authentication-Results",
        "the receiving server writes the result of its own checks (one written by the sender \
         would only mislead)",
    ),
];

/// Families of headers written by others, by their prefix: `Resent-*` describes a message
/// sent again by its receiver (a `Resent-Bcc` would show its recipients to everyone), `ARC-*`
/// is written by servers that forward the message.
const OWNED_PREFIXES: &[(&str, &str)] = &[
    (
        "Resent-",
        "`Resent-*` headers describe a message sent again by whoever received it; send a new \
         email instead",
    ),
    (
        "ARC-",
        "`ARC-*` headers are written by the servers that forward a message",
    ),
];

/// Headers whose value is a structure (message ids, URLs in angle brackets, a keyword list):
/// written as given, folded only at spaces, never RFC 2047-encoded (an encoded word would make
/// the structure unreadable), so their value must be printable ASCII.
const STRUCTURED: &[&str] = &[
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "List-Help",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Archived-At",
    "Auto-Submitted",
    "Precedence",
    "Feedback-ID",
    "Require-Recipient-Valid-Since",
];

/// Headers a message carries at most once (RFC 5322 §3.6, RFC 8058).
const SINGLE: &[&str] = &[
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Auto-Submitted",
];

/// Whether `name` is a structured header, written verbatim (see [`STRUCTURED`]).
pub(crate) fn is_structured(name: &str) -> bool {
    STRUCTURED.iter().any(|s| s.eq_ignore_ascii_case(name))
        || name
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("list-"))
}

/// Whether `name` is an `X-` header (the only kind Graph's JSON form takes).
#[cfg(feature = "graph")]
pub(crate) fn is_x_header(name: &str) -> bool {
    name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-"))
}

/// Checks one caller-set header: a valid name the crate does not own, a value without control
/// characters, ASCII msg-ids where ids are expected, and no second copy of a single header.
pub(super) fn check_custom_header(
    index: usize,
    name: &str,
    value: &str,
    earlier: &[(String, String)],
) -> Result<()> {
    let field = format!("headers[{index}]");
    let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if !valid_name {
        return Err(Error::invalid_message(
            field,
            format!(
                "`{}` is not a valid header name (printable ASCII, no `:` or space)",
                name.escape_debug()
            ),
        ));
    }
    if name.chars().count() > MAX_HEADER_NAME_CHARS {
        return Err(Error::invalid_message(
            field,
            format!(
                "the header name `{}…` is longer than {MAX_HEADER_NAME_CHARS} characters",
                name.chars().take(20).collect::<String>()
            ),
        ));
    }
    let owned = OWNED
        .iter()
        .find(|(owned, _)| owned.eq_ignore_ascii_case(name));
    let content = name
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("content-"));
    if let Some((_, instead)) = owned {
        return Err(Error::invalid_message(
            field,
            format!("`{name}` is written by the crate and cannot be set as a header; {instead}"),
        ));
    }
    if let Some((_, why)) = OWNED_PREFIXES.iter().find(|(prefix, _)| {
        name.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    }) {
        return Err(Error::invalid_message(
            field,
            format!("`{name}` cannot be set as a header: {why}"),
        ));
    }
    if content {
        return Err(Error::invalid_message(
            field,
            format!(
                "`{name}` is written by the MIME writer and cannot be set as a header; bodies \
                 and attachments set their own Content-* headers"
            ),
        ));
    }
    check_header_text(&field, value)?;
    check_header_size(&field, value)?;
    if SINGLE.iter().any(|s| s.eq_ignore_ascii_case(name))
        && earlier.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        return Err(Error::invalid_message(
            field,
            format!("`{name}` is set twice; a message carries it once"),
        ));
    }
    if is_structured(name) && !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(Error::invalid_message(
            field,
            format!(
                "`{name}` must be printable ASCII (it is a structured header, sent as written); \
                 got `{}`",
                preview(value)
            ),
        ));
    }
    if is_structured(name)
        && value
            .split(' ')
            .any(|word| word.len() > MAX_STRUCTURED_WORD)
    {
        return Err(Error::invalid_message(
            field,
            format!(
                "`{name}` has a word longer than {MAX_STRUCTURED_WORD} bytes, which no header \
                 line can hold (RFC 5322 allows 998 octets a line)"
            ),
        ));
    }
    let ids = if name.eq_ignore_ascii_case("Message-ID") {
        Some(1..=1)
    } else if name.eq_ignore_ascii_case("In-Reply-To") || name.eq_ignore_ascii_case("References") {
        Some(1..=usize::MAX)
    } else {
        None
    };
    if let Some(count) = ids {
        let all_ids: Vec<&str> = value.split_whitespace().collect();
        let well_formed = all_ids.iter().all(|id| is_msg_id(id));
        if !well_formed || !count.contains(&all_ids.len()) {
            let what = match count.end() {
                1 => "one message id",
                _ => "message ids separated by spaces",
            };
            return Err(Error::invalid_message(
                field,
                format!(
                    "`{name}` must be {what} written `<left@right>`, got `{}`",
                    preview(value)
                ),
            ));
        }
    }
    Ok(())
}

/// `<left@right>`: angle brackets around an id with one `@`, no spaces or brackets inside.
pub(crate) fn is_msg_id(id: &str) -> bool {
    let Some(inner) = id.strip_prefix('<').and_then(|s| s.strip_suffix('>')) else {
        return false;
    };
    let mut halves = inner.split('@');
    let (Some(left), Some(right), None) = (halves.next(), halves.next(), halves.next()) else {
        return false;
    };
    let ok = |s: &str| !s.is_empty() && !s.bytes().any(|b| matches!(b, b'<' | b'>' | b' '));
    ok(left) && ok(right) && inner.len() <= 250
}
