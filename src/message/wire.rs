//! The serde form of [`Email`], [`Mailbox`], [`Attachment`] and [`Importance`], described in
//! [`Email`'s docs](super::Email#the-serde-form). Deserialising goes through
//! [`EmailBuilder::build`](super::EmailBuilder::build), so a stored or received email is as valid
//! as a built one.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Attachment, AttachmentContent, Email, Importance, Mailbox};

#[derive(Serialize)]
struct MailboxOut<'a> {
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// A mailbox is written as `{"address": …, "name": …}`; `"Ann <ann@example.org>"` is accepted
/// too when reading.
enum MailboxIn {
    Text(String),
    Form {
        address: String,
        name: Option<String>,
    },
}

/// Read by hand rather than as an untagged enum, which would read `{"address", "nmae"}`
/// without its misspelt name, and say of anything else only that it matched no variant.
impl<'de> Deserialize<'de> for MailboxIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MailboxVisitor)
    }
}

struct MailboxVisitor;

impl<'de> Visitor<'de> for MailboxVisitor {
    type Value = MailboxIn;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "a mailbox: \"Name <name@example.org>\" or {\"address\": \"name@example.org\", \
             \"name\": \"Name\"}",
        )
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<MailboxIn, E> {
        Ok(MailboxIn::Text(text.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MailboxIn, A::Error> {
        const FIELDS: &[&str] = &["address", "name"];
        let (mut address, mut name) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "address" => address = Some(map.next_value::<String>()?),
                "name" => name = map.next_value::<Option<String>>()?,
                other => return Err(A::Error::unknown_field(other, FIELDS)),
            }
        }
        let address = address.ok_or_else(|| A::Error::missing_field("address"))?;
        Ok(MailboxIn::Form { address, name })
    }
}

impl Serialize for Mailbox {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MailboxOut {
            address: self.address(),
            name: self.name(),
        }
        .serialize(serializer)
    }
}

impl MailboxIn {
    fn parse(self) -> crate::Result<Mailbox> {
        match self {
            MailboxIn::Text(text) => text.parse(),
            MailboxIn::Form { address, name } => Mailbox::new(name.as_deref(), &address),
        }
    }
}

impl<'de> Deserialize<'de> for Mailbox {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        MailboxIn::deserialize(deserializer)?
            .parse()
            .map_err(D::Error::custom)
    }
}

impl Serialize for Importance {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            Importance::Low => "low",
            Importance::Normal => "normal",
            Importance::High => "high",
        })
    }
}

impl<'de> Deserialize<'de> for Importance {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.to_ascii_lowercase().as_str() {
            "low" => Ok(Importance::Low),
            "normal" => Ok(Importance::Normal),
            "high" => Ok(Importance::High),
            other => Err(D::Error::custom(format!(
                "`{other}` is not an importance; use low, normal or high"
            ))),
        }
    }
}

#[derive(Serialize)]
struct AttachmentOut<'a> {
    name: &'a str,
    content_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a std::path::Path>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachmentIn {
    name: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    content_id: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    path: Option<PathBuf>,
}

impl Serialize for Attachment {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (data, path) = match self.content() {
            AttachmentContent::Bytes(bytes) => (Some(STANDARD.encode(bytes)), None),
            AttachmentContent::File(path) => (None, Some(path)),
        };
        AttachmentOut {
            name: self.name(),
            content_type: self.content_type(),
            content_id: self.content_id(),
            data,
            path,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Attachment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let input = AttachmentIn::deserialize(deserializer)?;
        let attachment = match (input.data, input.path) {
            (Some(data), None) => {
                let bytes = STANDARD.decode(data.as_bytes()).map_err(|e| {
                    D::Error::custom(format!(
                        "the `data` of attachment `{}` is not standard base64 ({e})",
                        input.name
                    ))
                })?;
                Attachment::from_bytes(input.name.clone(), bytes)
            }
            // Never read: whoever could send such data could make this process mail out
            // any file it can read (keys, configuration). The path is not quoted back.
            (None, Some(_)) => {
                return Err(D::Error::custom(format!(
                    "attachment `{}` names a file (`path`), which an email read from data may \
                     not do: anyone who can send such data could have any file this process \
                     can read mailed out. Send the bytes as `data` (standard base64) — \
                     `Email::load_attachments` before serialising does that — or attach the \
                     file in code with `Attachment::from_path`",
                    input.name
                )));
            }
            _ => {
                return Err(D::Error::custom(format!(
                    "attachment `{}` needs exactly one of `data` (base64) or `path`",
                    input.name
                )));
            }
        };
        let attachment = match input.content_type {
            Some(content_type) => attachment.with_content_type(content_type),
            None => attachment,
        };
        Ok(match input.content_id {
            Some(content_id) => attachment.inline(content_id),
            None => attachment,
        })
    }
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderIn {
    name: String,
    value: String,
}

#[derive(Serialize)]
struct EmailOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a Mailbox>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    to: &'a [Mailbox],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    cc: &'a [Mailbox],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    bcc: &'a [Mailbox],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    reply_to: &'a [Mailbox],
    subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    html: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    attachments: &'a [Attachment],
    #[serde(skip_serializing_if = "is_normal")]
    importance: Importance,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<HeaderOut<'a>>,
}

/// A prepared email: the message in standard base64 and its envelope recipients.
#[derive(Serialize)]
struct PreparedOut<'a> {
    mime: String,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    to: &'a [Mailbox],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    cc: &'a [Mailbox],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    bcc: &'a [Mailbox],
}

fn is_normal(importance: &Importance) -> bool {
    *importance == Importance::Normal
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailIn {
    #[serde(default)]
    from: Option<MailboxIn>,
    #[serde(default)]
    to: Vec<MailboxIn>,
    #[serde(default)]
    cc: Vec<MailboxIn>,
    #[serde(default)]
    bcc: Vec<MailboxIn>,
    #[serde(default)]
    reply_to: Vec<MailboxIn>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    importance: Importance,
    #[serde(default)]
    headers: Vec<HeaderIn>,
    #[serde(default)]
    mime: Option<String>,
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(mime) = self.mime() {
            return PreparedOut {
                mime: STANDARD.encode(mime),
                to: self.to(),
                cc: self.cc(),
                bcc: self.bcc(),
            }
            .serialize(serializer);
        }
        EmailOut {
            from: self.from(),
            to: self.to(),
            cc: self.cc(),
            bcc: self.bcc(),
            reply_to: self.reply_to(),
            subject: self.subject(),
            text: self.text(),
            html: self.html(),
            attachments: self.attachments(),
            importance: self.importance(),
            headers: self
                .headers()
                .iter()
                .map(|(name, value)| HeaderOut { name, value })
                .collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let input = EmailIn::deserialize(deserializer)?;
        let mut builder = Email::builder()
            .subject(input.subject)
            .importance(input.importance);
        if let Some(from) = input.from {
            builder = builder.from(from.parse());
        }
        for to in input.to {
            builder = builder.to(to.parse());
        }
        for cc in input.cc {
            builder = builder.cc(cc.parse());
        }
        for bcc in input.bcc {
            builder = builder.bcc(bcc.parse());
        }
        for reply_to in input.reply_to {
            builder = builder.reply_to(reply_to.parse());
        }
        if let Some(text) = input.text {
            builder = builder.text(text);
        }
        if let Some(html) = input.html {
            builder = builder.html(html);
        }
        for attachment in input.attachments {
            builder = builder.attachment(attachment);
        }
        for header in input.headers {
            builder = builder.header(header.name, header.value);
        }
        if let Some(mime) = input.mime {
            let bytes = STANDARD
                .decode(mime.as_bytes())
                .map_err(|e| D::Error::custom(format!("`mime` is not standard base64 ({e})")))?;
            builder = builder.mime(bytes);
        }
        builder.build().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests;
