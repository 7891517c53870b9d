//! The checks every header value goes through — no line breaks or control characters, a size
//! limit — and the limits on custom headers, shared by mailboxes, attachments and the builder.

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
