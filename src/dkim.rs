//! DKIM signing (feature `dkim`) for the messages the SMTP and outbox transports build, with
//! lettre's implementation.
//!
//! Set `dkim_domain`, `dkim_selector` and `dkim_private_key_file` in the settings (or give a
//! [`DkimSigner`] to [`SmtpTransportBuilder::dkim`](crate::smtp::SmtpTransportBuilder::dkim) or
//! [`OutboxTransport::with_dkim`](crate::OutboxTransport::with_dkim)). The key is an RSA key
//! (PEM, PKCS#1 `BEGIN RSA PRIVATE KEY` or PKCS#8 `BEGIN PRIVATE KEY`; 2048 bits or more is
//! what receivers expect) or an Ed25519 key (PKCS#8 PEM, or lettre's form: the 32-byte seed in
//! base64). Publish the public key as a TXT record at `{selector}._domainkey.{domain}`
//! (`v=DKIM1; k=rsa; p=…` or `k=ed25519`).
//!
//! The signature covers the body (relaxed canonicalization; simple for a blank body, which
//! lettre's relaxed canonicalization hashes unlike receivers) and the headers `From`, `To`,
//! `Cc`, `Subject`, `Date`, `Message-ID`, `Reply-To`, `In-Reply-To`, `References`,
//! `List-Unsubscribe`, `List-Unsubscribe-Post` and `MIME-Version` (relaxed canonicalization, so
//! a relay's re-folding does not break it). Those the message lacks are listed in `h=` too,
//! so they cannot be added after signing. `Content-Type` and `Content-Transfer-Encoding` are
//! not signed (lettre writes them with the body part, outside the headers it can sign); the
//! body hash covers the bytes of the body, MIME boundaries included.
//!
//! The signed headers may be at most [`MAX_SIGNED_HEADER_BYTES`] (256 KiB, about 10,000 `To`
//! and `Cc` recipients) once written; a longer one is refused before anything is sent (put
//! recipients in `Bcc`, which is not signed, or split the send with
//! [`RecipientLimit`](crate::RecipientLimit)). Signing runs on a thread of its own, with a
//! stack sized for the headers.
//!
//! - **Graph** messages are not signed here: Exchange Online signs outgoing mail with the
//!   tenant's DKIM keys (Microsoft Defender portal, "Email authentication settings").
//! - **Prepared messages** ([`Email::from_mime`](crate::Email::from_mime), `mailctl send
//!   --eml`) are sent as they are and **not signed**, even with the DKIM settings; each such
//!   send logs a warning (with its `Message-ID`, never its content). Sign them where they are
//!   made (a [`lettre::Message`] with `Message::sign` before it is converted).

/// The most bytes of signed header text (the signed headers as written, plus an allowance
/// for the `DKIM-Signature` header) accepted: 256 KiB, the most Exchange Online takes for
/// all the headers of a message (Postfix keeps 100 KB by default), so a longer signed
/// header could not arrive intact anyway. About 10,000 `To`/`Cc` recipients.
#[cfg_attr(not(feature = "dkim"), allow(dead_code))] // public only with the feature
pub const MAX_SIGNED_HEADER_BYTES: usize = 256 * 1024;

#[cfg(feature = "dkim")]
mod enabled {
    use std::path::Path;
    use std::sync::Arc;

    use base64::Engine as _;
    use lettre::message::dkim::{
        DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
        DkimSigningKey,
    };
    use lettre::message::header::HeaderName;

    use super::MAX_SIGNED_HEADER_BYTES;
    use crate::error::{Error, Result};

    /// The headers signed when the message has them.
    const SIGNED: &[&str] = &[
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "Reply-To",
        "In-Reply-To",
        "References",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "MIME-Version",
    ];

    /// Signs messages with DKIM for one domain and selector. Cheap to clone. Its `Debug`
    /// shows the domain, selector and algorithm, never the key.
    ///
    /// ```
    /// use mail_connector::dkim::DkimSigner;
    ///
    /// let error = DkimSigner::new("example.org", "mail", "not a key").unwrap_err();
    /// assert!(error.to_string().contains("not a usable DKIM key"), "{error}");
    /// ```
    #[derive(Clone)]
    pub struct DkimSigner {
        domain: String,
        selector: String,
        algorithm: &'static str,
        config: Arc<DkimConfig>,
        /// For a blank body: the body canonicalised `simple` (see [`DkimSigner::sign`]).
        blank_body: Arc<DkimConfig>,
    }

    impl std::fmt::Debug for DkimSigner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("DkimSigner")
                .field("domain", &self.domain)
                .field("selector", &self.selector)
                .field("algorithm", &self.algorithm)
                .field("key", &"[redacted]")
                .finish()
        }
    }

    fn bad_key(reason: impl std::fmt::Display) -> Error {
        Error::settings(
            "dkim_private_key_file",
            format!(
                "not a usable DKIM key ({reason}); use an RSA key in PEM (PKCS#1 or PKCS#8) or \
                 an Ed25519 key in PKCS#8 PEM, e.g. `openssl genpkey -algorithm ed25519`"
            ),
        )
    }

    impl DkimSigner {
        /// A signer for `domain` (the `d=` tag) and `selector` (`s=`) with `private_key`,
        /// the text of the key file (see the [module docs](crate::dkim)). An IDN domain
        /// (`bücher.de`) signs as its ASCII form (`xn--bcher-kva.de`), the name its DNS
        /// record is published under.
        ///
        /// # Errors
        ///
        /// [`Error::InvalidSettings`] naming `dkim_domain`, `dkim_selector` or
        /// `dkim_private_key_file` when one is empty, not a domain or selector, or not a key
        /// this crate can sign with (an encrypted key, an RSA key under 1024 bits, …). The
        /// error never quotes the key.
        pub fn new(domain: &str, selector: &str, private_key: &str) -> Result<Self> {
            let label_ok = |s: &str| {
                !s.is_empty()
                    && s.split('.').all(|label| {
                        !label.is_empty()
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                    })
            };
            // The `d=` tag is ASCII: an IDN domain signs as its `xn--` form, the name its
            // DNS record is published under.
            let given = domain;
            let domain = crate::message::ascii_domain(given.trim())
                .filter(|ascii| label_ok(ascii))
                .ok_or_else(|| {
                    Error::settings(
                        "dkim_domain",
                        format!("`{given}` is not a domain name (like `example.org`)"),
                    )
                })?;
            let domain = domain.as_ref();
            if !label_ok(selector) {
                return Err(Error::settings(
                    "dkim_selector",
                    format!("`{selector}` is not a DKIM selector (letters, digits, `-`, `.`)"),
                ));
            }
            // A key saved by a Windows editor starts with a byte-order mark, which no PEM
            // reader takes: the key itself is fine.
            let key_text = private_key.trim_start_matches('\u{feff}').trim();
            let (key, algorithm) = parse_key(key_text)?;
            // lettre's signing key cannot be cloned: the second config reads it again.
            let (blank_body_key, _) = parse_key(key_text)?;
            let config = |key, body| {
                let headers = SIGNED
                    .iter()
                    .map(|name| HeaderName::new_from_ascii_str(name))
                    .collect();
                let canonicalization = DkimCanonicalization {
                    header: DkimCanonicalizationType::Relaxed,
                    body,
                };
                let config = DkimConfig::new(
                    selector.to_owned(),
                    domain.to_owned(),
                    key,
                    headers,
                    canonicalization,
                );
                Arc::new(config)
            };
            Ok(Self {
                domain: domain.to_owned(),
                selector: selector.to_owned(),
                algorithm,
                config: config(key, DkimCanonicalizationType::Relaxed),
                blank_body: config(blank_body_key, DkimCanonicalizationType::Simple),
            })
        }

        /// [`DkimSigner::new`] with the key read from `path`.
        ///
        /// # Errors
        ///
        /// [`Error::Io`] when the file cannot be read; otherwise as [`DkimSigner::new`].
        pub fn from_key_file(domain: &str, selector: &str, path: &Path) -> Result<Self> {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::settings_file(
                    "dkim_private_key_file",
                    "read the DKIM key (dkim_private_key_file)",
                    path,
                    e,
                )
            })?;
            Self::new(domain, selector, &text)
        }

        /// The signing domain (`d=`).
        #[must_use]
        pub fn domain(&self) -> &str {
            &self.domain
        }

        /// The selector (`s=`).
        #[must_use]
        pub fn selector(&self) -> &str {
            &self.selector
        }

        /// `rsa-sha256` or `ed25519-sha256`.
        #[must_use]
        pub fn algorithm(&self) -> &'static str {
            self.algorithm
        }

        /// The `check` step: the key signs a sample message.
        pub(crate) fn check_step(&self) -> crate::CheckStep {
            let sample = lettre::Message::builder()
                .from(lettre::message::Mailbox::new(
                    None,
                    lettre::Address::new("check", &self.domain)
                        .unwrap_or_else(|_| lettre::Address::new("check", "example.org").unwrap()),
                ))
                .to(lettre::message::Mailbox::new(
                    None,
                    lettre::Address::new("check", "example.org").unwrap(),
                ))
                .body(String::from("check"));
            // A few hundred bytes of headers: signed here, on the caller's stack.
            let signed = sample.map(|mut message| {
                message.sign(&self.config);
                message.headers().get_raw("DKIM-Signature").is_some()
            });
            match signed {
                Ok(true) => crate::CheckStep::ok(
                    "dkim",
                    format!(
                        "messages are signed {} for d={} s={}; publish the public key at \
                         {}._domainkey.{}",
                        self.algorithm, self.domain, self.selector, self.selector, self.domain
                    ),
                ),
                _ => crate::CheckStep::failed(
                    "dkim",
                    "the DKIM key could not sign a sample message",
                    Some("check `dkim_private_key_file`".to_owned()),
                ),
            }
        }

        /// `message` with a `DKIM-Signature` header added. Headers of the signed list the
        /// message lacks are listed in `h=` too, which also stops them being added later.
        ///
        /// lettre's relaxed header canonicalisation recurses once per byte of the signed
        /// headers, so signing runs on a thread of its own with a stack sized from their
        /// length (see [`MAX_SIGNED_HEADER_BYTES`]), never on the caller's (an async worker's
        /// 2 MB stack overflowed, aborting the process, at about 16 KB of headers).
        ///
        /// A blank body (none, or only empty lines and spaces: an email with a subject
        /// alone) is signed with `simple` body canonicalisation (`c=relaxed/simple`). Relaxed
        /// canonicalisation makes such a body empty, but lettre hashes it as one line break,
        /// so every receiver would fail the signature; `simple` makes it one line break for
        /// lettre and receivers alike. `one_part` says the body is a single part (no
        /// attachment, not text and HTML): only such a body can be blank, and only it is
        /// looked at.
        ///
        /// # Errors
        ///
        /// [`Error::InvalidMessage`] (field `headers`) when the signed headers are longer than
        /// [`MAX_SIGNED_HEADER_BYTES`]; [`Error::Io`] when the thread cannot be started.
        pub(crate) async fn sign(
            &self,
            message: lettre::Message,
            one_part: bool,
        ) -> Result<lettre::Message> {
            let length = signed_header_len(message.headers())
                .saturating_add(self.domain.len() + self.selector.len() + DKIM_HEADER_ALLOWANCE);
            if length > MAX_SIGNED_HEADER_BYTES {
                return Err(Error::invalid_message(
                    "headers",
                    format!(
                        "the headers DKIM signs (From, To, Cc, Subject, References, …) are \
                         {length} bytes once written; at most {MAX_SIGNED_HEADER_BYTES} can be \
                         signed: put recipients in Bcc (not signed) or send to fewer at once \
                         (RecipientLimit)"
                    ),
                ));
            }
            let config = match one_part && body_is_blank(&message.formatted()) {
                true => Arc::clone(&self.blank_body),
                false => Arc::clone(&self.config),
            };
            let (done, signed) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("mail-connector-dkim".to_owned())
                .stack_size(stack_size(length))
                .spawn(move || {
                    let mut message = message;
                    message.sign(&config);
                    let _ = done.send(message);
                })
                .map_err(|e| {
                    Error::io("start the DKIM signing thread", "mail-connector-dkim", e)
                })?;
            signed
                .await
                .map_err(|_| Error::invalid_message("headers", "the DKIM signing thread stopped"))
        }
    }

    /// Whether the body of the formatted `message` (after the first empty line) is blank: no
    /// byte but spaces, tabs and line breaks, which relaxed canonicalisation removes.
    fn body_is_blank(message: &[u8]) -> bool {
        message
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .is_some_and(|end| {
                message[end + 4..]
                    .iter()
                    .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            })
    }

    /// The stack each byte of signed header text may take: lettre's relaxed header
    /// canonicalisation makes at most one call per byte, of 128 bytes of stack in a debug
    /// build (measured: 84 KB of headers need 10.8 MB, 336 KB need 43 MB); twice that.
    const STACK_PER_BYTE: usize = 256;

    /// The stack for the rest of signing (hashing, the RSA or Ed25519 signature).
    const STACK_BASE: usize = 1024 * 1024;

    /// The `DKIM-Signature` header is canonicalised too (on its own): `v=`, `a=`, `c=`, `t=`,
    /// `h=` with the signed names, `bh=`, and `b=` (1,368 characters for an 8192-bit RSA key)
    /// come to under 2 KB besides the domain and selector.
    const DKIM_HEADER_ALLOWANCE: usize = 4096;

    /// The stack for signing headers of `length` bytes: at most 65 MiB, reserved (not
    /// committed) memory that the thread touches only as deep as it recurses.
    fn stack_size(length: usize) -> usize {
        STACK_BASE.saturating_add(length.saturating_mul(STACK_PER_BYTE))
    }

    /// The length of the headers lettre signs, as it writes them: one of each name of
    /// [`SIGNED`] the message has.
    fn signed_header_len(headers: &lettre::message::header::Headers) -> usize {
        let mut rest = headers.clone();
        let mut signed = lettre::message::header::Headers::new();
        for name in SIGNED {
            if let Some(value) = rest.remove_raw(name) {
                signed.insert_raw(value);
            }
        }
        signed.to_string().len()
    }

    /// The label of the first PEM block in `text` (`EC PRIVATE KEY`, `CERTIFICATE`, …).
    fn pem_label(text: &str) -> Option<&str> {
        let (_, rest) = text.split_once("-----BEGIN ")?;
        let (label, _) = rest.split_once("-----")?;
        // Only a label as PEM writes one, never a piece of the key itself.
        (label.len() <= 40 && label.bytes().all(|b| b.is_ascii_uppercase() || b == b' '))
            .then_some(label)
    }

    fn parse_key(text: &str) -> Result<(DkimSigningKey, &'static str)> {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::traits::PublicKeyParts as _;

        const RSA: &str = "rsa-sha256";
        const ED25519: &str = "ed25519-sha256";
        let rsa_key = |key: rsa::RsaPrivateKey| -> Result<(DkimSigningKey, &'static str)> {
            if key.size() < 128 {
                return Err(bad_key(format!(
                    "an RSA key of {} bits; receivers ignore DKIM keys under 1024 bits",
                    key.size() * 8
                )));
            }
            let pem = key
                .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                .map_err(bad_key)?;
            let key = DkimSigningKey::new(&pem, DkimSigningAlgorithm::Rsa).map_err(bad_key)?;
            Ok((key, RSA))
        };
        // PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`), or OpenSSL's traditional form
        // (`BEGIN RSA PRIVATE KEY` with a `Proc-Type: 4,ENCRYPTED` header, as `openssl
        // genrsa -aes256` writes).
        if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(bad_key(
                "the key is encrypted; store it decrypted, readable only by the service",
            ));
        }
        if text.contains("BEGIN RSA PRIVATE KEY") {
            use rsa::pkcs1::DecodeRsaPrivateKey as _;
            let key = rsa::RsaPrivateKey::from_pkcs1_pem(text)
                .map_err(|_| bad_key("an RSA PEM block that cannot be read"))?;
            return rsa_key(key);
        }
        if text.contains("BEGIN PRIVATE KEY") {
            if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(text) {
                return rsa_key(key);
            }
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text)
                .map_err(|_| bad_key("a PKCS#8 key that is neither RSA nor Ed25519"))?;
            let seed = base64::engine::general_purpose::STANDARD.encode(key.to_bytes());
            let key = DkimSigningKey::new(&seed, DkimSigningAlgorithm::Ed25519).map_err(bad_key)?;
            return Ok((key, ED25519));
        }
        if text.contains("-----BEGIN") {
            return Err(bad_key(match pem_label(text) {
                Some("EC PRIVATE KEY") => {
                    "an EC (ECDSA) private key; DKIM signs with RSA or Ed25519 only".to_owned()
                }
                Some("OPENSSH PRIVATE KEY") => "an OpenSSH private key (from `ssh-keygen`), a \
                     format this crate cannot read"
                    .to_owned(),
                Some(label) if label.ends_with("PRIVATE KEY") => {
                    format!("a `{label}`, a kind of private key DKIM cannot sign with")
                }
                Some(label) => format!("a `{label}` PEM block, not a private key"),
                None => "a PEM block that is not a private key".to_owned(),
            }));
        }
        let key = DkimSigningKey::new(text, DkimSigningAlgorithm::Ed25519)
            .map_err(|_| bad_key("neither PEM nor a base64 Ed25519 seed of 32 bytes"))?;
        Ok((key, ED25519))
    }
}

#[cfg(feature = "dkim")]
pub use enabled::DkimSigner;

/// Without the `dkim` feature there is no signer: nothing can make one.
#[cfg(not(feature = "dkim"))]
#[derive(Debug, Clone)]
pub enum DkimSigner {}

#[cfg(not(feature = "dkim"))]
impl DkimSigner {
    pub(crate) async fn sign(
        &self,
        _message: lettre::Message,
        _one_part: bool,
    ) -> crate::Result<lettre::Message> {
        match *self {}
    }
}
