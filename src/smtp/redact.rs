//! Redaction of the SMTP server's reply text: [`redact`] removes every trace of the secrets we
//! sent (the password or token, and the SASL blobs carrying them), raw or base64-encoded, before
//! the text goes into an error.

const REDACTED: &str = "[redacted]";

/// The shortest piece of a secret (raw, or of its base64 encoding) that is recognised and
/// removed wherever it appears.
const MIN_CHUNK: usize = 8;

/// Removes `secrets` from a server's reply text.
///
/// The text is compared with its whitespace removed, because a server that echoes what it
/// received may split it over several reply lines (which lettre joins with spaces) or wrap
/// its base64. Removed are: each secret whole, and every piece of [`MIN_CHUNK`] characters
/// or more of a secret (only those without control characters: the password or token, not
/// the SASL blobs, whose user name part is no secret) or of its base64 encoding, at each of
/// the three byte alignments it can have inside a larger encoded blob (the PLAIN or XOAUTH2
/// response). A run of removed characters, with the whitespace inside it, becomes one
/// `[redacted]`.
pub(super) fn redact(text: &str, secrets: &[&[u8]]) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use std::collections::HashSet;

    let secrets: Vec<&[u8]> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    if secrets.is_empty() {
        return text.to_owned();
    }
    let compact = |s: &str| -> Vec<char> { s.chars().filter(|c| !c.is_whitespace()).collect() };
    // Matched whole, at any length.
    let mut whole: Vec<Vec<char>> = Vec::new();
    // Matched by any piece of MIN_CHUNK characters.
    let mut pieces: HashSet<Vec<char>> = HashSet::new();
    let mut add_pieces = |chars: &[char]| {
        for window in chars.windows(MIN_CHUNK) {
            pieces.insert(window.to_vec());
        }
    };
    for secret in &secrets {
        if let Ok(raw) = std::str::from_utf8(secret) {
            let raw = compact(raw);
            if !raw.iter().any(|c| c.is_control()) {
                add_pieces(&raw);
            }
            whole.push(raw);
        }
        // Whole (as LOGIN sends the password), and the characters that stay the same
        // wherever the secret sits in a longer encoded blob (drop the partial first and
        // last quantum).
        for offset in 0..3 {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(secret);
            let encoded: Vec<char> = STANDARD.encode(&bytes).chars().collect();
            if offset == 0 {
                whole.push(encoded.clone());
            }
            let start = if offset == 0 { 0 } else { 4 };
            let end = encoded.len().saturating_sub(4);
            if end > start {
                add_pieces(&encoded[start..end]);
            }
            if offset == 0 {
                add_pieces(&encoded);
            }
        }
    }
    whole.retain(|w| !w.is_empty());

    let chars = compact(text);
    let mut marked = vec![false; chars.len()];
    let mut mark = |from: usize, len: usize| {
        for m in &mut marked[from..from + len] {
            *m = true;
        }
    };
    for secret in &whole {
        let mut i = 0;
        while i + secret.len() <= chars.len() {
            if chars[i..i + secret.len()] == secret[..] {
                mark(i, secret.len());
                i += secret.len();
            } else {
                i += 1;
            }
        }
    }
    for (i, window) in chars.windows(MIN_CHUNK).enumerate() {
        if pieces.contains(window) {
            mark(i, MIN_CHUNK);
        }
    }

    // Back to the text: a run of base64 characters with a piece of a secret in it goes
    // whole (its first and last characters may encode a byte of the secret too).
    let text: Vec<char> = text.chars().collect();
    let mut secret_at = vec![false; text.len()];
    let mut next = 0;
    for (i, c) in text.iter().enumerate() {
        if !c.is_whitespace() {
            secret_at[i] = marked[next];
            next += 1;
        }
    }
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    let mut start = 0;
    while start < text.len() {
        let end = (start..text.len())
            .find(|&i| !is_b64(text[i]))
            .unwrap_or(text.len());
        if secret_at[start..end].contains(&true) {
            secret_at[start..end].fill(true);
        }
        start = end + 1;
    }

    let mut out = String::with_capacity(text.len());
    let mut in_secret = false;
    let mut gap = String::new();
    for (&c, &secret) in text.iter().zip(&secret_at) {
        if c.is_whitespace() {
            if in_secret {
                gap.push(c);
            } else {
                out.push(c);
            }
            continue;
        }
        if secret {
            if !in_secret {
                out.push_str(REDACTED);
                in_secret = true;
            }
            gap.clear();
        } else {
            if in_secret {
                out.push_str(&gap);
                gap.clear();
                in_secret = false;
            }
            out.push(c);
        }
    }
    out.push_str(&gap);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_raw_and_in_base64_at_any_alignment() {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD;
        let password = b"pw-7c3a9e-never-print";
        let plain = b"\0no-reply@example.org\0pw-7c3a9e-never-print";
        let secrets: [&[u8]; 2] = [password, plain];
        let login = STANDARD.encode(password);
        let blob = STANDARD.encode(plain);
        for text in [
            format!("5.7.8 bad: AUTH PLAIN {blob}"),
            format!("5.7.8 bad: {login}"),
            format!("5.7.8 bad: {}", &blob[..20]),
            format!("5.7.8 bad: {}", &blob[12..]),
            "5.7.8 bad: pw-7c3a9e-never-print".to_owned(),
        ] {
            let redacted = redact(&text, &secrets);
            assert!(redacted.starts_with("5.7.8 bad: "), "{redacted}");
            assert!(redacted.contains(REDACTED), "{text} -> {redacted}");
            assert!(!redacted.contains("never-print"), "{redacted}");
            assert!(!redacted.contains(&login), "{redacted}");
        }
        // Every encoding of the password at any alignment is caught.
        for prefix in [&b""[..], b"a", b"ab"] {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(password);
            bytes.extend_from_slice(b"tail");
            let text = format!("echo {}", STANDARD.encode(&bytes));
            assert_eq!(redact(&text, &secrets), format!("echo {REDACTED}"));
        }
        assert_eq!(
            redact("5.7.8 Authentication credentials invalid", &secrets),
            "5.7.8 Authentication credentials invalid"
        );
    }

    /// An echo of part of a secret is removed too: a piece of the raw password, the end of
    /// its base64 (as LOGIN sends it); the user name inside a PLAIN blob is no secret and stays.
    #[test]
    fn pieces_of_a_secret_are_redacted_but_not_the_user_name() {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD;
        let password = b"pw-7c3a9e-never-print";
        let plain = b"\0no-reply@example.org\0pw-7c3a9e-never-print";
        let login = STANDARD.encode(password);
        let tail = &login[login.len() - MIN_CHUNK..];
        for text in [
            "5.7.8 bad: 7c3a9e-never".to_owned(),
            format!("5.7.8 bad: {tail}"),
        ] {
            for secrets in [&[&password[..]][..], &[password, plain]] {
                assert_eq!(
                    redact(&text, secrets),
                    format!("5.7.8 bad: {REDACTED}"),
                    "{text}"
                );
            }
        }
        let refused = "5.7.8 no-reply@example.org: authentication failed";
        assert_eq!(redact(refused, &[password, plain]), refused);
    }

    /// A secret shorter than a piece is still removed where it appears whole, raw or in
    /// base64; a password of only spaces has nothing to find, and the text comes back as it is.
    #[test]
    fn short_secrets_are_redacted_whole() {
        let short = b"k3y";
        // base64 of "k3y".
        for echoed in ["k3y", "azN5"] {
            let text = format!("535 bad: {echoed}, again {echoed} end");
            assert_eq!(
                redact(&text, &[short]),
                format!("535 bad: {REDACTED}, again {REDACTED} end"),
                "{text}"
            );
        }
        // On a thread of its own, so that a redaction that never ends fails the test (after a
        // minute: a deadline, not a measure of speed) instead of hanging the suite.
        let (done, returned) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let text = "535 5.7.8 Authentication credentials invalid";
            let _ = done.send(redact(text, &[b"   ", b"\t"]) == text);
        });
        let same = returned
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the redaction of a blank secret never returned");
        assert!(same, "a blank secret changed the text");
    }
}
