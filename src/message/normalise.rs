//! A prepared message's bytes made sendable before anything reads them: CRLF line ends, a
//! line break after a last header, and nothing in front of the first header that is not
//! one (a byte-order mark, an mbox `From ` line).

/// The bytes of a prepared message as [`EmailBuilder::mime`](super::EmailBuilder::mime)
/// keeps them.
pub(super) fn prepared(bytes: Vec<u8>) -> Vec<u8> {
    with_final_line_break(crlf_line_ends(without_mbox_separator(
        without_byte_order_mark(bytes),
    )))
}

/// The bytes with every line break made CRLF (a bare CR or LF becomes CRLF), as RFC 5322
/// requires: a bare line break could otherwise end the data early at a lenient receiver
/// (SMTP smuggling). Returned as it is when there is nothing to change.
fn crlf_line_ends(bytes: Vec<u8>) -> Vec<u8> {
    let clean = bytes.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && bytes[i - 1] == b'\r',
        _ => true,
    });
    if clean {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_add(bytes.len() / 16));
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            other => out.push(other),
        }
        i += 1;
    }
    out
}

/// The bytes without a UTF-8 byte-order mark in front, which Windows editors write when they
/// save an `.eml` file: it would make the first header unreadable (here, so a message would
/// have "no `From`", and at every receiver). One anywhere else is left.
fn without_byte_order_mark(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    bytes
}

/// The bytes without the `From sender date` line an mbox file puts before each message (a
/// message split out of one keeps it): it is no header (no colon), so a receiver would
/// start the body there, taking every header after it along. Dropped as `sendmail` drops
/// it; `From :` (RFC 5322's obsolete space before the colon) is a header and stays.
fn without_mbox_separator(mut bytes: Vec<u8>) -> Vec<u8> {
    let Some(rest) = bytes.strip_prefix(b"From ") else {
        return bytes;
    };
    let header = rest
        .iter()
        .find(|&&b| b != b' ' && b != b'\t')
        .is_none_or(|&b| b == b':');
    if header {
        return bytes;
    }
    if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
        bytes.drain(..=end);
    }
    bytes
}

/// A message of headers only (no empty line before a body) ending with a line break: a
/// header on the last line without one is not read by mail-parser (a `Bcc` there named no
/// recipient, yet was still cut). A body is left as it is.
fn with_final_line_break(mut bytes: Vec<u8>) -> Vec<u8> {
    let has_body = bytes.windows(4).any(|w| w == b"\r\n\r\n");
    if !has_body && !bytes.is_empty() && !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An mbox `From sender date` line is dropped; a `From` header with any run of spaces or
    /// tabs before its colon (RFC 5322's obsolete form) is kept.
    #[test]
    fn only_an_mbox_from_line_is_dropped() {
        let dropped: &[u8] = b"From ann@example.org Mon Nov 30 20:00:00 2026\nTo: b@x\n";
        assert_eq!(without_mbox_separator(dropped.to_vec()), b"To: b@x\n");
        for kept in [
            &b"From : a@x\n"[..],
            b"From  : a@x\n",
            b"From \t : a@x\n",
            b"From:a@x\n",
        ] {
            assert_eq!(without_mbox_separator(kept.to_vec()), kept, "{kept:?}");
        }
    }

    #[test]
    fn line_breaks_become_crlf() {
        let cases: [(&[u8], &[u8]); 8] = [
            (b"a\r\nb", b"a\r\nb"),
            (b"a\nb\rc", b"a\r\nb\r\nc"),
            (b"a\n\r.\r\n", b"a\r\n\r\n.\r\n"),
            (b"\n", b"\r\n"),
            // Only bare LFs, only bare CRs, each alone enough to rewrite the message.
            (b"a\nb\n", b"a\r\nb\r\n"),
            (b"\ra\rb", b"\r\na\r\nb"),
            (b"x\r\ny\n", b"x\r\ny\r\n"),
            (b"a\r\n", b"a\r\n"),
        ];
        for (input, expected) in cases {
            assert_eq!(crlf_line_ends(input.to_vec()), expected, "{input:?}");
        }
    }
}
