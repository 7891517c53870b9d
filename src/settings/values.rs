//! The settings' value enums, which parse case-insensitively with aliases, and the expiry date.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Lower-cases and drops spaces, `-`, `_` and `.`, so `OAuth 2.0`, `oauth2` and `OAUTH`
/// compare alike.
fn normalize(value: &str) -> String {
    value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Defines a settings enum that parses case-insensitively with aliases.
macro_rules! settings_enum {
    (
        $(#[$meta:meta])* $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $canonical:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// The canonical settings value.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $canonical, )+ }
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(value: &str) -> Result<Self> {
                let n = normalize(value);
                $( if n == normalize($canonical) $(|| n == normalize($alias))* {
                    return Ok(Self::$variant);
                } )+
                Err(Error::settings($what, format!(
                            "`{value}` is not a valid `{}`; use one of: {}",
                            $what,
                            [$($canonical),+].join(", ")
                        )))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// As its canonical settings value.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(|e: Error| serde::de::Error::custom(e.to_string().trim_start_matches("invalid mail connector settings: ").to_owned()))
            }
        }
    };
}

/// A field with a blank value unset: an admin form's unselected choice (`auth_mode`,
/// `transport`, `smtp_tls`, `oauth_credential`) or unused file or identity field written out
/// as `""`, as an empty `MAIL_CONNECTOR_*` variable is — so that an empty
/// `client_certificate_file` does not make the credential a certificate. Any other value is
/// read as the field's own. (`outbox_dir = ""` is not among them: it is refused, as a
/// staging setting that would otherwise send for real.)
pub(super) fn blank_is_unset<'de, D, T>(deserializer: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::IntoDeserializer;
    match Option::<String>::deserialize(deserializer)? {
        Some(text) if !text.trim().is_empty() => T::deserialize(text.into_deserializer()).map(Some),
        _ => Ok(None),
    }
}

settings_enum! {
    /// The screen's Authentication Mode.
    AuthMode, "auth_mode" {
        /// OAuth 2.0 client credentials from an Entra ID app registration.
        OAuth => "oauth" | "oauth2" | "oauth20" | "modern",
        /// User name and password (SMTP AUTH LOGIN/PLAIN).
        Basic => "basic" | "password",
        /// No authentication: an anonymous SMTP relay.
        None => "none" | "anonymous" | "relay",
    }
}

settings_enum! {
    /// Which protocol sends the mail.
    TransportKind, "transport" {
        /// Microsoft Graph `sendMail`.
        Graph => "graph" | "msgraph" | "microsoft graph",
        /// SMTP submission.
        Smtp => "smtp",
    }
}

settings_enum! {
    /// How the SMTP connection is encrypted.
    SmtpTls, "smtp_tls" {
        /// Plain connection upgraded with STARTTLS, which is required (port 587).
        Starttls => "starttls" | "start tls",
        /// TLS from the first byte (port 465, "SMTPS").
        Implicit => "implicit" | "ssl" | "tls" | "smtps",
        /// No encryption.
        None => "none" | "plain" | "plaintext" | "off",
    }
}

settings_enum! {
    /// How the app signs in to Entra ID when Authentication Mode is OAuth.
    OAuthCredential, "oauth_credential" {
        /// A client secret (`client_secret`, or `client_secret_file` for one a vault rotates).
        Secret => "secret" | "client secret",
        /// A certificate uploaded to the app registration, and its private key.
        Certificate => "certificate" | "cert",
        /// The Azure resource's managed identity: no secret at all.
        ManagedIdentity => "managed_identity" | "msi",
        /// Workload identity federation: the workload's own token (Kubernetes, CI, any OIDC
        /// issuer) as the client assertion.
        WorkloadIdentity => "workload_identity" | "federated" | "federation",
    }
}

settings_enum! {
    /// The Microsoft cloud the tenant lives in.
    Cloud, "cloud" {
        /// The global cloud (including GCC moderate).
        Global => "global" | "public" | "commercial" | "gcc",
        /// US Government L4 (GCC High).
        UsGov => "us-gov" | "gcc high" | "usgovernment" | "l4",
        /// US Government L5 (DoD).
        UsDod => "us-dod" | "dod" | "l5",
        /// China, operated by 21Vianet.
        China => "china" | "21vianet",
    }
}

impl Cloud {
    /// The login (authority) host.
    #[must_use]
    pub fn authority_host(self) -> &'static str {
        match self {
            Self::Global => crate::net::GLOBAL_LOGIN_HOST,
            Self::UsGov | Self::UsDod => "https://login.microsoftonline.us",
            Self::China => "https://login.partner.microsoftonline.cn",
        }
    }

    /// The Microsoft Graph host, which is also the resource the Graph token's scope names.
    #[must_use]
    pub fn graph_endpoint(self) -> &'static str {
        match self {
            Self::Global => crate::net::GLOBAL_GRAPH_HOST,
            Self::UsGov => "https://graph.microsoft.us",
            Self::UsDod => "https://dod-graph.microsoft.us",
            Self::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

// The enum comes from a macro, so `#[derive(Default)]` cannot mark the variant.
#[allow(clippy::derivable_impls)]
impl Default for Cloud {
    fn default() -> Self {
        Self::Global
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_accept_aliases_in_any_case() {
        assert_eq!("OAuth 2.0".parse::<AuthMode>().unwrap(), AuthMode::OAuth);
        assert_eq!("GCC-High".parse::<Cloud>().unwrap(), Cloud::UsGov);
        assert_eq!("SSL".parse::<SmtpTls>().unwrap(), SmtpTls::Implicit);
        let error = "kerberos".parse::<AuthMode>().unwrap_err().to_string();
        assert!(error.contains("oauth, basic, none"), "{error}");
    }

    #[test]
    fn clouds_pick_hosts_together() {
        assert_eq!(
            Cloud::UsDod.graph_endpoint(),
            "https://dod-graph.microsoft.us"
        );
        assert_eq!(
            Cloud::UsDod.authority_host(),
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            Cloud::China.authority_host(),
            "https://login.partner.microsoftonline.cn"
        );
    }
}
