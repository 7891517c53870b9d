//! [`ClientCertificateCredential`]: the client-credentials grant with a certificate
//! (a signed JWT client assertion, "private_key_jwt").

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_lc_rs::digest;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;

use crate::credentials::endpoint::TokenEndpoint;
use crate::credentials::source::{Attempts, Fetch, FetchFailure};
use crate::credentials::token::AccessToken;
use crate::error::{Error, Result, settings_file};
use crate::secret::REDACTED;

/// `client_assertion_type` for a JWT client assertion.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a client assertion is valid: Microsoft asks for 5–10 minutes.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// How the client assertion is signed and which certificate thumbprint it names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256 and the SHA-256 thumbprint (`x5t#S256`): Microsoft's current
    /// guidance and MSAL's default.
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and the SHA-1 thumbprint (`x5t`): the older scheme,
    /// for ADFS and older setups.
    Rs256,
}

/// Fetches tokens from Entra ID with a certificate: each request carries a fresh, short-lived
/// JWT (`client_assertion`) signed with the certificate's private key.
///
/// `Debug` shows the endpoint, client id and thumbprint, never the key.
#[derive(Clone)]
pub struct ClientCertificateCredential {
    endpoint: TokenEndpoint,
    client_id: String,
    key: EncodingKey,
    x5t: String,
    x5t_s256: String,
    algorithm: AssertionAlgorithm,
    not_after: Option<time::OffsetDateTime>,
}

/// The claims Entra ID requires in a client assertion.
#[derive(Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

impl ClientCertificateCredential {
    /// Reads the certificate (`client_certificate_file`) and its private key
    /// (`client_private_key_file`, PKCS#8 or PKCS#1 RSA) from PEM files.
    pub(crate) fn from_pem_files(
        endpoint: TokenEndpoint,
        client_id: String,
        certificate_file: &Path,
        private_key_file: &Path,
        algorithm: AssertionAlgorithm,
    ) -> Result<Self> {
        let certificate = std::fs::read(certificate_file).map_err(|e| {
            Error::settings_file(
                "client_certificate_file",
                settings_file::CERTIFICATE,
                certificate_file,
                e,
            )
        })?;
        let key = std::fs::read(private_key_file).map_err(|e| {
            Error::settings_file(
                "client_private_key_file",
                settings_file::PRIVATE_KEY,
                private_key_file,
                e,
            )
        })?;
        Self::from_pem(endpoint, client_id, &certificate, &key, algorithm)
    }

    pub(crate) fn from_pem(
        endpoint: TokenEndpoint,
        client_id: String,
        certificate_pem: &[u8],
        private_key_pem: &[u8],
        algorithm: AssertionAlgorithm,
    ) -> Result<Self> {
        let certificate = CertificateDer::pem_slice_iter(certificate_pem)
            .next()
            .and_then(std::result::Result::ok)
            .ok_or_else(|| Error::InvalidCredential {
                setting: "client_certificate_file",
                reason: "holds no PEM `BEGIN CERTIFICATE` block".into(),
            })?;
        // jsonwebtoken's error text never contains key material.
        let key =
            EncodingKey::from_rsa_pem(private_key_pem).map_err(|e| Error::InvalidCredential {
                setting: "client_private_key_file",
                reason: format!("is not a PEM RSA private key (PKCS#8 or PKCS#1): {e}"),
            })?;
        // A key of another certificate (a renewed certificate beside the old key) signs
        // assertions Entra ID refuses at every token request: say so now, naming both files.
        if let (Some(certificate_key), Some(private_key)) = (
            certificate_public_key(&certificate),
            private_key_public_key(private_key_pem),
        ) && certificate_key != private_key
        {
            return Err(Error::InvalidCredential {
                setting: "client_private_key_file",
                reason: "is not the private key of the certificate in `client_certificate_file` \
                         (their public keys differ): set `client_private_key_file` to the key \
                         the certificate was created with, or `client_certificate_file` to the \
                         certificate of this key — Entra ID refuses assertions signed with \
                         another key (AADSTS700027)"
                    .into(),
            });
        }
        let thumbprint =
            |algorithm| URL_SAFE_NO_PAD.encode(digest::digest(algorithm, &certificate));
        let credential = Self {
            endpoint,
            client_id,
            key,
            x5t: thumbprint(&digest::SHA1_FOR_LEGACY_USE_ONLY),
            x5t_s256: thumbprint(&digest::SHA256),
            algorithm,
            not_after: not_after(&certificate),
        };
        // Sign once now, so a bad key fails at start-up rather than at the first email.
        credential
            .assertion(SystemTime::now())
            .map_err(|_| Error::InvalidCredential {
                setting: "client_private_key_file",
                reason: "the key cannot sign (it must be an RSA key of 2048 bits or more)".into(),
            })?;
        Ok(credential)
    }

    /// When the certificate expires (its notAfter), if it could be read.
    pub(crate) fn not_after(&self) -> Option<time::OffsetDateTime> {
        self.not_after
    }

    /// A new signed client assertion valid from `now` for ten minutes.
    fn assertion(&self, now: SystemTime) -> Result<String> {
        let (algorithm, x5t, x5t_s256) = match self.algorithm {
            AssertionAlgorithm::Ps256 => (Algorithm::PS256, None, Some(self.x5t_s256.clone())),
            AssertionAlgorithm::Rs256 => (Algorithm::RS256, Some(self.x5t.clone()), None),
        };
        let mut header = Header::new(algorithm);
        header.typ = Some("JWT".into());
        header.x5t = x5t;
        header.x5t_s256 = x5t_s256;
        let issued = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = AssertionClaims {
            aud: self.endpoint.url(),
            iss: &self.client_id,
            sub: &self.client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: issued,
            iat: issued,
            exp: issued + ASSERTION_LIFETIME.as_secs(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| Error::InvalidCredential {
            setting: "client_private_key_file",
            reason: format!("cannot sign the client assertion: {e}"),
        })
    }
}

/// The certificate's public key (an RSA key's `RSAPublicKey` DER); `None` when the DER is
/// not a certificate the X.509 parser understands.
fn certificate_public_key(certificate: &[u8]) -> Option<Vec<u8>> {
    x509_parser::parse_x509_certificate(certificate)
        .ok()
        .map(|(_, parsed)| parsed.public_key().subject_public_key.data.to_vec())
}

/// The public half of a PEM RSA private key (PKCS#8 or PKCS#1), as `RSAPublicKey` DER, to
/// compare with the certificate's; `None` when it cannot be read here (signing then says).
fn private_key_public_key(private_key_pem: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::signature::KeyPair as _;
    let pair = match PrivateKeyDer::from_pem_slice(private_key_pem).ok()? {
        PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).ok()?,
        PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()).ok()?,
        _ => return None,
    };
    Some(pair.public_key().as_ref().to_vec())
}

/// The certificate's notAfter, read with an X.509 parser; `None` when the DER is not a
/// certificate it understands (Entra ID then refuses it, with its own error).
fn not_after(certificate: &[u8]) -> Option<time::OffsetDateTime> {
    x509_parser::parse_x509_certificate(certificate)
        .ok()
        .map(|(_, parsed)| parsed.validity().not_after.to_datetime())
}

impl fmt::Debug for ClientCertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificateCredential")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("key", &REDACTED)
            .field("x5t#S256", &self.x5t_s256)
            .field("algorithm", &self.algorithm)
            .field("not_after", &self.not_after)
            .finish()
    }
}

#[async_trait]
impl Fetch for ClientCertificateCredential {
    async fn fetch(&self, scope: &str, attempts: Attempts) -> Result<AccessToken, FetchFailure> {
        self.endpoint
            .request(scope, attempts, || {
                Ok(vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", self.client_id.clone()),
                    ("client_assertion_type", JWT_BEARER.to_owned()),
                    ("client_assertion", self.assertion(SystemTime::now())?),
                    ("scope", scope.to_owned()),
                ])
            })
            .await
    }
}
