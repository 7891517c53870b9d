//! The text of an address, apart from the [`Mailbox`](super::Mailbox) made of it: what cannot
//! be sent as one address, the usual mistakes named, an IDN domain in ASCII, and a display
//! name in RFC 2047 encoded words decoded.

use std::borrow::Cow;

use crate::error::{Error, Result};

/// The display name `name` that lettre read from `text` (one mailbox), decoded, when it is
/// written in RFC 2047 encoded words, as a mailbox copied from a message header is
/// (`=?utf-8?q?Caf=C3=A9?= <cafe@example.org>`); `None` when it has none. Kept encoded, the
/// name would reach Graph, reports and logs as `=?utf-8?…`, and be encoded a second time in
/// the message written for SMTP.
///
/// Only a name outside quotes is decoded (RFC 2047, section 5: an encoded word in a quoted
/// string is text), and only when what comes out is text: a charset that cannot be read
/// (the replacement character) or a control character keeps the name as written.
pub(super) fn encoded_name(text: &str, name: &str) -> Option<String> {
    if !name.contains("=?") || text.starts_with('"') {
        return None;
    }
    let header = format!("From: {text}\r\n\r\n");
    let message = mail_parser::MessageParser::new()
        .with_address_headers()
        .parse_headers(header.as_bytes())?;
    let mut mailboxes = message.from()?.iter();
    match (mailboxes.next(), mailboxes.next()) {
        (Some(mailbox), None) => mailbox
            .name()
            .filter(|decoded| {
                !decoded.contains("=?")
                    && !decoded.contains(char::REPLACEMENT_CHARACTER)
                    && !decoded.chars().any(char::is_control)
            })
            .map(str::to_owned),
        _ => None,
    }
}

/// `domain` in ASCII: as it is when it is ASCII, else its IDNA form (`xn--…`, what the `url`
/// crate's host parser makes of it); `None` when it has none (not a valid domain name).
pub(crate) fn ascii_domain(domain: &str) -> Option<Cow<'_, str>> {
    if domain.is_ascii() {
        return Some(Cow::Borrowed(domain));
    }
    match url::Host::parse(domain) {
        Ok(url::Host::Domain(ascii)) if ascii.is_ascii() => Some(Cow::Owned(ascii)),
        _ => None,
    }
}

/// What is wrong with an address lettre refused, in words, when it is one of the usual
/// mistakes; `None` leaves lettre's own reason.
pub(super) fn why_not_an_address(address: &str) -> Option<&'static str> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Some("it has no `@`: an address is `name@domain`");
    };
    Some(if local.is_empty() {
        "it has nothing before the `@`"
    } else if domain.is_empty() {
        "it has no domain after the `@`"
    } else if address.chars().any(char::is_whitespace) {
        "it contains a space"
    } else if domain.starts_with('[') {
        "its domain is an IP address in brackets; use a domain name"
    } else if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        "its domain is not a domain name: a dot at an end, or two in a row"
    } else if local.contains('@') && !local.starts_with('"') {
        "it has more than one `@`"
    } else if domain
        .chars()
        .any(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        // Only when the domain alone is refused: lettre takes some (`_`, `+`) that no
        // host name has, so a mistake elsewhere is not blamed on them.
        && lettre::Address::new("x", domain).is_err()
    {
        "its domain has a character no domain name has (a domain is letters, digits, `-` \
         and `.`)"
    } else {
        return None;
    })
}

/// What is wrong with `text`, `Name <address>` that lettre refused, when its address is
/// valid and its name holds a character a display name may hold only in double quotes (the
/// usual `Doe, Jane <jane@example.org>`): the character, and the mailbox written so.
pub(super) fn why_not_a_name(text: &str) -> Option<String> {
    let (name, rest) = text.trim().rsplit_once('<')?;
    let name = name.trim();
    if name.starts_with('"') {
        return None;
    }
    let address = rest.trim_end().strip_suffix('>')?.trim();
    // Only an address this crate takes: else the form suggested would be refused too.
    address.parse::<lettre::Address>().ok()?;
    if why_not_an_address(address).is_some() || check_address(address).is_err() {
        return None;
    }
    // A `"` may stand in a name unquoted (`Jane "JD" Doe`): named only when nothing else is.
    let special = |c: &char| {
        matches!(
            c,
            ',' | ';' | ':' | '(' | ')' | '[' | ']' | '<' | '>' | '@' | '\\'
        )
    };
    let c = name
        .chars()
        .find(special)
        .or_else(|| name.chars().find(|&c| c == '"'))?;
    let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
    Some(format!(
        "its name holds `{c}`, which a name may hold only in double quotes: write \
         `\"{quoted}\" <{address}>`"
    ))
}

/// The longest display name, in characters: with the longest address, the header line stays
/// well within RFC 5322's 998 octets.
pub(super) const MAX_NAME_CHARS: usize = 256;

/// Refuses what cannot be sent as one address on the SMTP envelope and in a header: control
/// characters, line and paragraph separators, other whitespace than a space (within quotes),
/// invisible and bidirectional formatting characters, `<`, `>`, `,` and `;`, and addresses
/// longer than RFC 5321 allows (64-octet local part, 254 octets in all).
pub(super) fn check_address(address: &str) -> Result<()> {
    let fix = "use a plain address such as `name@example.org`";
    let bad = address.chars().find(|&c| {
        c.is_control()
            || (c.is_whitespace() && c != ' ')
            || matches!(
                c,
                '<' | '>'
                    | ','
                    | ';'
                    | '\u{200B}'..='\u{200F}'
                    | '\u{202A}'..='\u{202E}'
                    | '\u{2060}'..='\u{2064}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{FEFF}'
            )
    });
    if let Some(c) = bad {
        return Err(Error::invalid_message(
            "address",
            format!(
                "`{}` contains {c:?} (U+{:04X}), which cannot be part of an address; {fix}",
                address.escape_debug(),
                u32::from(c)
            ),
        ));
    }
    let local = address.rsplit_once('@').map_or(address, |(local, _)| local);
    if local.len() > 64 || address.len() > 254 {
        return Err(Error::invalid_message(
            "address",
            format!(
                "`{}…` is too long: RFC 5321 allows a local part of 64 octets and an address \
                 of 254 ({} and {} here)",
                address.chars().take(40).collect::<String>(),
                local.len(),
                address.len()
            ),
        ));
    }
    Ok(())
}

/// Refuses an address whose domain is not ASCII and whose ASCII (IDNA) form, `wire`, the form
/// written on the envelope and in the headers, is no valid address: a label longer than 63
/// octets once punycoded (`Grüße` and 56 more letters is 61 characters but 70 octets), or an
/// address longer than RFC 5321's 254 octets. Otherwise the email builds and every send of
/// it fails.
pub(super) fn check_wire_address(address: &str, wire: &str) -> Result<()> {
    let too_long = wire.len() > 254;
    if too_long || wire.parse::<lettre::Address>().is_err() {
        let domain = wire.rsplit_once('@').map_or(wire, |(_, domain)| domain);
        return Err(Error::invalid_message(
            "address",
            format!(
                "`{}` cannot be sent: its domain is written `{domain}` in a message (its ASCII \
                 form, IDNA), {}; use a shorter domain, such as `name@example.org`",
                address.escape_debug(),
                match too_long {
                    true => "which makes the address longer than the 254 octets RFC 5321 allows",
                    false => "which has a label longer than the 63 octets DNS allows",
                }
            ),
        ));
    }
    Ok(())
}
