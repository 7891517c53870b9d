//! [`Mailbox`] — one address with an optional display name, safe to write in a header and on
//! the SMTP envelope (the checks of its text are in `address`); [`ToMailbox`], what the
//! builder accepts as a mailbox.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use super::address::{
    MAX_NAME_CHARS, ascii_domain, check_address, check_wire_address, encoded_name, why_not_a_name,
    why_not_an_address,
};
use super::header::{check_header_text, preview};
use crate::error::{Error, Result};

/// An email address with an optional display name, e.g. `Ann Example <ann@example.org>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    name: Option<String>,
    address: String,
}

impl Mailbox {
    /// Makes a mailbox from an address and an optional display name.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] when the address is not a valid email address, cannot be
    /// sent as exactly one address (a control, line-separator or invisible character, `<`,
    /// `>`, `,` or `;`, a quoted part a header would split), is longer than RFC 5321 allows
    /// (64-octet local part, 254 octets in all, also once an IDN domain is in its ASCII form),
    /// has a domain label longer than 63 octets in that form, or the name contains a line
    /// break or another control character or is longer than 256 characters.
    ///
    /// Spaces around the name are dropped, and a run of spaces or tabs in it becomes one
    /// space, as mail clients show a display name.
    pub fn new(name: Option<&str>, address: &str) -> Result<Self> {
        let address = address.trim();
        check_address(address)?;
        let parsed = lettre::Address::from_str(address).map_err(|e| {
            Error::invalid_message(
                "address",
                format!(
                    "`{address}` is not a valid email address ({})",
                    why_not_an_address(address).unwrap_or(&e.to_string())
                ),
            )
        })?;
        let name = match name.map(str::trim) {
            Some("") | None => None,
            Some(name) => {
                check_header_text("name", name)?;
                if name.chars().count() > MAX_NAME_CHARS {
                    return Err(Error::invalid_message(
                        "name",
                        format!(
                            "the display name of `{address}` is longer than {MAX_NAME_CHARS} \
                             characters; shorten it"
                        ),
                    ));
                }
                // A run of spaces or tabs is one space, as a reader of the header shows
                // it (and lettre reads it back): kept as given, the name would not come
                // back the same from the header, and the mailbox would be refused.
                Some(
                    name.split([' ', '\t'])
                        .filter(|w| !w.is_empty())
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            }
        };
        // The message header lists mailboxes as text that is parsed back (by lettre when it
        // derives the SMTP envelope, and by every recipient): this one must come back as
        // exactly one mailbox, the same one.
        let written = lettre::message::Mailbox::new(name.clone(), parsed).to_string();
        let reparsed = lettre::message::Mailboxes::from_str(&written).ok();
        let mut reparsed = reparsed.iter().flat_map(|m| m.iter());
        let same = match (reparsed.next(), reparsed.next()) {
            (Some(m), None) => AsRef::<str>::as_ref(&m.email) == address && m.name == name,
            _ => false,
        };
        if !same {
            return Err(Error::invalid_message(
                "address",
                format!(
                    "`{}` cannot be written in a message header as one mailbox; use a plain \
                     address such as `name@example.org`",
                    written.escape_debug()
                ),
            ));
        }
        let mailbox = Self {
            name,
            address: address.to_owned(),
        };
        if let Cow::Owned(wire) = mailbox.wire_address() {
            check_wire_address(address, &wire)?;
        }
        Ok(mailbox)
    }

    /// Parses `ann@example.org` or `Ann Example <ann@example.org>` (a quoted name works too).
    /// A name in RFC 2047 encoded words, as copied from a message header
    /// (`=?utf-8?q?Caf=C3=A9?= <cafe@example.org>`), is decoded (`Café`).
    ///
    /// ```
    /// let ann: mail_connector::Mailbox = "Ann Example <ann@example.org>".parse()?;
    /// assert_eq!(ann.name(), Some("Ann Example"));
    /// assert_eq!(ann.address(), "ann@example.org");
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] when the text is not a mailbox.
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(Error::invalid_message(
                "address",
                format!(
                    "`{}` contains the control character {c:?}; write \
                     `name@example.org` or `Name <name@example.org>`",
                    preview(text)
                ),
            ));
        }
        let parsed = lettre::message::Mailbox::from_str(text.trim()).map_err(|e| {
            // A list where one mailbox goes: "contains a space" would be no help.
            if text.matches('@').count() > 1 && text.contains([',', ';']) {
                return Error::invalid_message(
                    "address",
                    format!(
                        "`{text}` holds more than one address; give each on its own, one \
                         mailbox (`name@example.org` or `Name <name@example.org>`) for each \
                         `to`, `cc` or `bcc`"
                    ),
                );
            }
            // The address part, for saying what is wrong with it: inside `<…>` when there is one.
            let address = text
                .rsplit_once('<')
                .map_or(text, |(_, rest)| rest.trim_end().trim_end_matches('>'))
                .trim();
            Error::invalid_message(
                "address",
                format!(
                    "`{text}` is not a valid mailbox ({}); write `name@example.org` or \
                     `Name <name@example.org>`",
                    why_not_a_name(text)
                        .or_else(|| why_not_an_address(address).map(str::to_owned))
                        .unwrap_or_else(|| e.to_string())
                ),
            )
        })?;
        let decoded = parsed
            .name
            .as_deref()
            .and_then(|name| encoded_name(text.trim(), name));
        Self::new(
            decoded.as_deref().or(parsed.name.as_deref()),
            parsed.email.as_ref(),
        )
    }

    /// The address, e.g. `ann@example.org`.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The display name, if any.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The address as it goes on the SMTP envelope and in a message header: with an ASCII
    /// local part, the domain in its ASCII (IDNA) form, `ann@xn--bcher-kva.de` for
    /// `ann@bücher.de`, which any server takes. Only a local part that is not ASCII needs
    /// SMTPUTF8 (RFC 6531), and such an address is written as it is. So is a domain with no
    /// IDNA form, which a server then judges.
    pub(crate) fn wire_address(&self) -> Cow<'_, str> {
        // Nearly every address: nothing to look for (Graph writes each one of every send).
        if self.address.is_ascii() {
            return Cow::Borrowed(&self.address);
        }
        let Some((local, domain)) = self.address.rsplit_once('@') else {
            return Cow::Borrowed(&self.address);
        };
        match (local.is_ascii(), ascii_domain(domain)) {
            (true, Some(Cow::Owned(domain))) => Cow::Owned(format!("{local}@{domain}")),
            _ => Cow::Borrowed(&self.address),
        }
    }

    /// Whether `other` is the same address as a mail server takes it: the domain compared in
    /// its ASCII form (an IDN domain as `xn--…`, so `ann@bücher.de` is `ann@xn--bcher-kva.de`)
    /// and without regard to case, the local part without regard to the case of its ASCII
    /// letters, as Exchange and most servers treat it. Other characters of a local part are
    /// compared as written: Unicode has no case rule a server is bound by, and two addresses
    /// wrongly taken as one would cost a recipient their mail. Display names do not count.
    /// This is the one rule for duplicate recipients ([`Email::recipients`]), for whether an
    /// email's From is the transport's own mailbox, and for the queue's per-mailbox limits.
    ///
    /// [`Email::recipients`]: crate::Email::recipients
    ///
    /// ```
    /// use mail_connector::Mailbox;
    ///
    /// let ann = Mailbox::parse("Ann <Ann@Bücher.de>")?;
    /// assert!(ann.same_address(&Mailbox::parse("ann@xn--bcher-kva.de")?));
    /// assert!(!ann.same_address(&Mailbox::parse("ann@example.org")?));
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    #[must_use]
    pub fn same_address(&self, other: &Mailbox) -> bool {
        if self.address.eq_ignore_ascii_case(&other.address) {
            return true;
        }
        if self.address.is_ascii() && other.address.is_ascii() {
            return false;
        }
        self.address_key() == other.address_key()
    }

    /// The address as [`Mailbox::same_address`] compares it, as one string: equal for two
    /// mailboxes exactly when they are the same address.
    pub(crate) fn address_key(&self) -> String {
        match self.address.rsplit_once('@') {
            Some((local, domain)) => {
                let domain = ascii_domain(domain).unwrap_or(Cow::Borrowed(domain));
                format!(
                    "{}@{}",
                    local.to_ascii_lowercase(),
                    domain.to_ascii_lowercase()
                )
            }
            None => self.address.to_ascii_lowercase(),
        }
    }
}

impl FromStr for Mailbox {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => {
                let needs_quotes = name
                    .chars()
                    .any(|c| !(c.is_alphanumeric() || c == ' ' || c == '-' || c == '\''));
                if needs_quotes {
                    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
                    write!(f, "\"{escaped}\" <{}>", self.address)
                } else {
                    write!(f, "{name} <{}>", self.address)
                }
            }
            None => f.write_str(&self.address),
        }
    }
}

/// Anything the builder accepts as a mailbox: text to parse, or a [`Mailbox`].
///
/// Sealed; implemented for `&str`, `String`, `Mailbox`, `&Mailbox`, and `Result<Mailbox>` (a
/// mailbox made elsewhere, whose error `build` then reports under the builder's field name).
pub trait ToMailbox: sealed::Sealed {
    /// Converts, or says why the value is not a mailbox.
    #[doc(hidden)]
    fn to_mailbox(self) -> Result<Mailbox>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
    impl Sealed for super::Mailbox {}
    impl Sealed for &super::Mailbox {}
    impl Sealed for crate::error::Result<super::Mailbox> {}
}

impl ToMailbox for &str {
    fn to_mailbox(self) -> Result<Mailbox> {
        Mailbox::parse(self)
    }
}
impl ToMailbox for String {
    fn to_mailbox(self) -> Result<Mailbox> {
        Mailbox::parse(&self)
    }
}
impl ToMailbox for &String {
    fn to_mailbox(self) -> Result<Mailbox> {
        Mailbox::parse(self)
    }
}
impl ToMailbox for Mailbox {
    fn to_mailbox(self) -> Result<Mailbox> {
        Ok(self)
    }
}
impl ToMailbox for &Mailbox {
    fn to_mailbox(self) -> Result<Mailbox> {
        Ok(self.clone())
    }
}
impl ToMailbox for Result<Mailbox> {
    fn to_mailbox(self) -> Result<Mailbox> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_names_that_need_it() {
        let m = Mailbox::new(Some("Doe, Jane"), "jane@example.org").unwrap();
        assert_eq!(m.to_string(), "\"Doe, Jane\" <jane@example.org>");
        assert_eq!(Mailbox::parse(&m.to_string()).unwrap(), m);
        let m = Mailbox::new(Some("Ann"), "ann@example.org").unwrap();
        assert_eq!(m.to_string(), "Ann <ann@example.org>");
    }

    #[test]
    fn wire_address_writes_an_idn_domain_in_ascii_unless_the_local_part_is_not() {
        let wire = |a: &str| Mailbox::new(None, a).unwrap().wire_address().into_owned();
        assert_eq!(wire("ann@bücher.de"), "ann@xn--bcher-kva.de");
        assert_eq!(wire("ann@example.org"), "ann@example.org");
        assert_eq!(wire("jürgen@bücher.de"), "jürgen@bücher.de");
        assert_eq!(wire("jürgen@example.org"), "jürgen@example.org");
    }

    #[test]
    fn an_encoded_display_name_is_decoded() {
        let name = |text: &str| Mailbox::parse(text).unwrap().name().map(str::to_owned);
        assert_eq!(
            name("=?utf-8?q?Caf=C3=A9?= <cafe@example.org>").as_deref(),
            Some("Café")
        );
        assert_eq!(
            name("=?ISO-8859-1?Q?Andr=E9?= Pirard <andre@example.org>").as_deref(),
            Some("André Pirard")
        );
        assert_eq!(
            name("=?UTF-8?B?0JDQvdC90LA=?= <anna@example.org>").as_deref(),
            Some("Анна")
        );
        // The multi-byte charsets of real mail.
        assert_eq!(
            name("=?iso-2022-jp?b?GyRCJUYlOSVIGyhC?= <a@example.org>").as_deref(),
            Some("テスト")
        );
        assert_eq!(
            name("=?shift_jis?b?g2WDWINn?= <a@example.org>").as_deref(),
            Some("テスト")
        );
        assert_eq!(
            name("=?gbk?b?1tDOxA==?= <a@example.org>").as_deref(),
            Some("中文")
        );
        // Text that only looks like the start of one is kept as written.
        assert_eq!(name("a=?b <a@example.org>").as_deref(), Some("a=?b"));
        // In quotes an encoded word is text (RFC 2047, section 5).
        assert_eq!(
            name("\"=?utf-8?q?Caf=C3=A9?=\" <cafe@example.org>").as_deref(),
            Some("=?utf-8?q?Caf=C3=A9?=")
        );
        // What does not decode to text keeps the name as written: bytes no charset reads,
        // a control character.
        assert_eq!(
            name("=?x-unknown?b?/w==?= <a@example.org>").as_deref(),
            Some("=?x-unknown?b?/w==?=")
        );
        assert_eq!(
            name("=?utf-8?q?Ann=09Smith?= <a@example.org>").as_deref(),
            Some("=?utf-8?q?Ann=09Smith?=")
        );
        // A bare address gets no name from it.
        assert_eq!(name("=?utf-8?q?x?=@example.org"), None);
        assert_eq!(name("Ann <ann@example.org>").as_deref(), Some("Ann"));
        assert_eq!(
            Mailbox::parse("=?utf-8?q?Caf=C3=A9?= <cafe@example.org>")
                .unwrap()
                .address(),
            "cafe@example.org"
        );
    }

    #[test]
    fn same_address_ignores_case_names_and_the_form_of_an_idn_domain() {
        let m = |a: &str| Mailbox::parse(a).unwrap();
        let same = |a: &str, b: &str| {
            let (a, b) = (m(a), m(b));
            assert_eq!(
                a.same_address(&b),
                b.same_address(&a),
                "{a} / {b}: not symmetric"
            );
            assert_eq!(
                a.same_address(&b),
                a.address_key() == b.address_key(),
                "{a} / {b}: the key disagrees"
            );
            a.same_address(&b)
        };
        assert!(same("Ann <ann@example.org>", "ANN@Example.ORG"));
        assert!(same("ann@bücher.de", "Ann@XN--BCHER-KVA.DE"));
        assert!(same("jürgen@bücher.de", "jürgen@BÜCHER.DE"));
        assert!(same("jürgen@bücher.de", "Jürgen@xn--bcher-kva.de"));
        // Beyond ASCII letters, a local part is compared as written: no recipient is taken
        // for another by a Unicode case rule (the Kelvin sign lower-cases to `k`).
        assert!(!same("jürgen@bücher.de", "JÜRGEN@bücher.de"));
        assert!(!same("kate@example.org", "\u{212A}ate@example.org"));
        assert!(!same("οδυσσευς@example.org", "ΟΔΥΣΣΕΥΣ@example.org"));
        assert!(!same("ann@example.org", "anne@example.org"));
        assert!(!same("ann@bücher.de", "ann@bucher.de"));
        assert!(!same("jürgen@bücher.de", "jurgen@bücher.de"));
    }
}
