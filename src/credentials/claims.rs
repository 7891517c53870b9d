//! The access token's claims, read without verification for diagnostics.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// Claims of an app-only access token that explain permission problems.
///
/// Decoded **without verifying** the signature: Microsoft asks clients to treat access
/// tokens as opaque, so use these only to tell an admin what was granted, never to decide
/// access.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TokenClaims {
    /// Granted application permissions, e.g. `["Mail.Send"]`. Empty when admin consent was
    /// not granted.
    pub roles: Vec<String>,
    /// Delegated scopes: present only in user tokens, so a sign of the wrong flow.
    pub scp: Option<String>,
    /// The tenant the token was issued for.
    pub tid: Option<String>,
    /// The audience (the resource), e.g. `https://graph.microsoft.com`.
    pub aud: Option<String>,
    /// Expiry, Unix seconds.
    pub exp: Option<i64>,
    /// The client id of the app (v2 tokens).
    pub azp: Option<String>,
    /// The client id of the app (v1 tokens).
    pub appid: Option<String>,
    /// The object ID of the app's service principal (its Enterprise application), which
    /// Exchange Online's `New-ServicePrincipal -ObjectId` wants.
    pub oid: Option<String>,
}

impl TokenClaims {
    /// Decodes the payload of a compact JWT (`header.payload.signature`) without verifying
    /// it. `None` when the text is not a JWT with a JSON payload.
    ///
    /// ```
    /// use mail_connector::credentials::TokenClaims;
    ///
    /// // {"roles":["Mail.Send"],"tid":"t"} as an unsigned JWT.
    /// let jwt = "e30.eyJyb2xlcyI6WyJNYWlsLlNlbmQiXSwidGlkIjoidCJ9.";
    /// let claims = TokenClaims::decode_unverified(jwt).unwrap();
    /// assert!(claims.has_role("Mail.Send"));
    /// assert_eq!(claims.tid.as_deref(), Some("t"));
    /// ```
    #[must_use]
    pub fn decode_unverified(jwt: &str) -> Option<Self> {
        let mut parts = jwt.split('.');
        let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        // Some issuers pad base64url; the JWT spec does not, so accept both.
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether `roles` holds `role` (compared case-insensitively, as Entra role values are
    /// case-insensitive in practice).
    #[must_use]
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    /// The client id the token was issued to (`azp` or `appid`).
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.azp.as_deref().or(self.appid.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_jwts() {
        assert!(TokenClaims::decode_unverified("opaque-token").is_none());
        assert!(TokenClaims::decode_unverified("a.b.c.d").is_none());
        assert!(TokenClaims::decode_unverified("e30.!!!.x").is_none());
    }

    #[test]
    fn reads_roles_and_tenant() {
        let payload = URL_SAFE_NO_PAD.encode(
            br#"{"aud":"https://graph.microsoft.com","roles":["Mail.Send","Mail.ReadWrite"],"tid":"tenant-1","exp":1700000000,"azp":"client-1","oid":"sp-1"}"#,
        );
        let claims = TokenClaims::decode_unverified(&format!("e30.{payload}.sig")).unwrap();
        assert!(claims.has_role("mail.send"));
        assert_eq!(claims.exp, Some(1_700_000_000));
        assert_eq!(claims.client_id(), Some("client-1"));
        assert_eq!(claims.aud.as_deref(), Some("https://graph.microsoft.com"));
        assert_eq!(claims.oid.as_deref(), Some("sp-1"));
    }
}
