//! Logging in: AUTH PLAIN or LOGIN with a password, XOAUTH2 with a token (and once more with
//! a fresh token when the server refuses it), and the secrets each sends, to redact from
//! the server's replies.

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;

use super::connect::{Connector, Deadline, quiet};
use super::remedy::{RefusedToken, client_error, from_lettre_redacted};
use crate::credentials::TokenProvider;
use crate::error::{Delivery, Error, Result, SmtpStage};
use crate::secret::Secret;

/// How the connection logs in; also what the builder holds until `build`.
#[derive(Clone)]
pub(super) enum Auth {
    None,
    Basic {
        user: String,
        password: Secret,
    },
    Xoauth2 {
        user: String,
        provider: std::sync::Arc<dyn TokenProvider>,
        /// The scope of the tokens, e.g. Exchange Online's.
        scope: String,
    },
}

// By hand: the provider's own Debug is not ours to trust with its cached token.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { user, password } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", password)
                .finish(),
            Self::Xoauth2 { user, .. } => f
                .debug_struct("Xoauth2")
                .field("user", user)
                .field("provider", &format_args!("[token provider]"))
                .finish(),
        }
    }
}

impl Connector {
    /// Logs in, each exchange within the stage deadline; returns the XOAUTH2 token used,
    /// if any.
    pub(super) async fn authenticate(
        &self,
        conn: &mut AsyncSmtpConnection,
        deadline: Deadline,
    ) -> Result<Option<Secret>> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Basic { user, password } => {
                let offered = conn
                    .server_info()
                    .get_auth_mechanism(&[Mechanism::Plain, Mechanism::Login]);
                let Some(mechanism) = offered else {
                    return Err(no_mechanism(conn, "PLAIN or LOGIN"));
                };
                let credentials =
                    Credentials::new(user.clone(), password.expose_secret().to_owned());
                let login = async {
                    quiet(conn.auth(&[mechanism], &credentials))
                        .await
                        .map(drop)
                        .map_err(|e| {
                            // A server may echo what we sent: the PLAIN response or the LOGIN
                            // password.
                            let plain = format!("\0{user}\0{}", password.expose_secret());
                            from_lettre_redacted(
                                SmtpStage::Auth,
                                Some(&mechanism.to_string()),
                                &e,
                                Delivery::NotSent,
                                &[password.expose_secret().as_bytes(), plain.as_bytes()],
                            )
                        })
                };
                self.stage(deadline, SmtpStage::Auth, "to AUTH", login)
                    .await?;
                Ok(None)
            }
            Auth::Xoauth2 {
                user,
                provider,
                scope,
            } => {
                if !conn
                    .server_info()
                    .supports_auth_mechanism(Mechanism::Xoauth2)
                {
                    return Err(no_mechanism(conn, "XOAUTH2"));
                }
                let access = self.token(provider.as_ref(), scope, deadline).await?;
                let token = Secret::new(access.expose_secret());
                // What a refusal's remedy may say of the token, from its claims.
                let known = RefusedToken {
                    scope,
                    app_registration: provider.permission_remedy().is_none(),
                };
                let login = xoauth2(conn, user, &token, None, &known);
                match self
                    .stage(deadline, SmtpStage::Auth, "to AUTH", login)
                    .await
                {
                    Ok(()) => Ok(Some(token)),
                    // Not when SMTP AUTH is disabled (5.7.139) or basic auth retired (5.7.30):
                    // a fresh token cannot fix those.
                    Err(Error::Smtp {
                        code: Some(535),
                        enhanced_code,
                        ..
                    }) if !matches!(enhanced_code.as_deref(), Some("5.7.139" | "5.7.30")) => {
                        // The token may have been revoked or expired early: a fresh one, once.
                        tracing::debug!("XOAUTH2 token refused (535); retrying with a fresh one");
                        provider.invalidate(&access);
                        let refused = token;
                        let access = self.token(provider.as_ref(), scope, deadline).await?;
                        let token = Secret::new(access.expose_secret());
                        let login = xoauth2(conn, user, &token, Some(&refused), &known);
                        self.stage(deadline, SmtpStage::Auth, "to AUTH", login)
                            .await?;
                        Ok(Some(token))
                    }
                    // Refused with an error challenge (RFC 7628): the session is mid-exchange,
                    // so no second try on it; the token is dropped for the next one.
                    Err(error) if refused_by_challenge(&error) => {
                        tracing::debug!("XOAUTH2 token refused (error challenge); dropping it");
                        provider.invalidate(&access);
                        Err(error)
                    }
                    Err(error) => Err(error),
                }
            }
        }
    }

    /// Everything secret a session logged in with `token` sends (the password or token,
    /// and the SASL blobs carrying it): none of it may come back in an error.
    pub(super) fn secrets(&self, token: Option<&Secret>) -> Vec<Secret> {
        match (&self.auth, token) {
            (Auth::Basic { user, password }, _) => vec![
                password.clone(),
                Secret::new(format!("\0{user}\0{}", password.expose_secret())),
            ],
            (Auth::Xoauth2 { user, .. }, Some(token)) => {
                vec![token.clone(), Secret::new(xoauth2_blob(user, token))]
            }
            _ => Vec::new(),
        }
    }
}

fn no_mechanism(conn: &AsyncSmtpConnection, wanted: &str) -> Error {
    client_error(
        SmtpStage::Auth,
        format!(
            "the server offers no {wanted} authentication (it says: {})",
            conn.server_info()
        ),
        false,
        Delivery::NotSent,
    )
}

/// Logs in with XOAUTH2; `refused` is a token this session already sent (and the server
/// refused), which must not come back in an error either. A refusal's remedy names the
/// step `token`'s claims point to (see [`RefusedToken`]).
async fn xoauth2(
    conn: &mut AsyncSmtpConnection,
    user: &str,
    token: &Secret,
    refused: Option<&Secret>,
    known: &RefusedToken<'_>,
) -> Result<()> {
    // lettre's Mechanism::Xoauth2 formats `user=…\x01auth=Bearer …\x01\x01` and base64s it.
    let credentials = Credentials::new(user.to_owned(), token.expose_secret().to_owned());
    quiet(conn.auth(&[Mechanism::Xoauth2], &credentials))
        .await
        .map(drop)
        .map_err(|e| {
            // A server may echo the AUTH line, and with it the token.
            let blobs: Vec<String> = std::iter::once(token)
                .chain(refused)
                .map(|t| xoauth2_blob(user, t))
                .collect();
            let mut secrets: Vec<&[u8]> = blobs.iter().map(|b| b.as_bytes()).collect();
            secrets.push(token.expose_secret().as_bytes());
            secrets.extend(refused.map(|t| t.expose_secret().as_bytes()));
            let error = from_lettre_redacted(
                SmtpStage::Auth,
                Some("XOAUTH2"),
                &e,
                Delivery::NotSent,
                &secrets,
            );
            known.narrow(error, token.expose_secret())
        })
}

/// The XOAUTH2 initial response before base64, as lettre sends it.
fn xoauth2_blob(user: &str, token: &Secret) -> String {
    format!(
        "user={user}\x01auth=Bearer {}\x01\x01",
        token.expose_secret()
    )
}

/// Whether `error` is an XOAUTH2 token refused with an error challenge.
fn refused_by_challenge(error: &Error) -> bool {
    matches!(error, Error::Smtp { code: None, message, .. } if super::remedy::is_token_challenge(message))
}

/// The message for a token provider that did not answer in time, naming where its tokens
/// come from (the login host's token endpoint, a managed identity's endpoint).
pub(super) fn token_timeout(
    provider: &dyn TokenProvider,
    waited: std::time::Duration,
    deadline: Deadline,
) -> String {
    let source = match provider.token_endpoint() {
        Some(endpoint) => format!("the token endpoint `{endpoint}`"),
        None => "the token provider".to_owned(),
    };
    format!(
        "no access token within {waited:.1?}: {source} did not answer before {}; the SMTP \
         server was not at fault",
        deadline.describe()
    )
}
