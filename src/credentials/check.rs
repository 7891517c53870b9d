//! What `check` reports about the credentials: a token can be had, it carries the
//! permission, which credential is used and where it comes from, and the client secret or
//! certificate is not about to expire.

use std::path::PathBuf;
use std::time::SystemTime;

use super::managed_identity::APP_ROLE_REMEDY;
use super::{AccessToken, Credentials, Inner, TokenClaims};
use crate::check::{CheckStep, FailureKind};
use crate::expiry::ExpiryDate;

impl Credentials {
    /// Building blocks of a transport's `check`: `token` (a token for `scope` can be had),
    /// `permission` (each of `required_roles`, e.g. `Mail.Send`, is in the token's `roles`;
    /// if not, why and the admin-consent URL), `credential` (which kind is used and where it
    /// comes from: a file's path, never its content), and `secret expiry` (from
    /// `client_secret_expires`) or `certificate expiry` (the certificate's notAfter): warning
    /// within 30 days, failure after. A cached token that lacks a required role is fetched
    /// anew first (it may predate admin consent); when that fetch fails, the `token` step
    /// reports the failure and its remedy. Basic and anonymous credentials report one
    /// `credentials` step.
    pub async fn check_steps(&self, scope: &str, required_roles: &[&str]) -> Vec<CheckStep> {
        let oauth = match &*self.inner {
            Inner::OAuth(oauth) => oauth,
            Inner::Basic { user_name, .. } => {
                return vec![CheckStep::ok(
                    "credentials",
                    format!("basic authentication as {user_name}"),
                )];
            }
            Inner::Anonymous => {
                return vec![CheckStep::ok(
                    "credentials",
                    "no authentication (anonymous relay)",
                )];
            }
        };
        let mut steps = Vec::new();
        // A managed identity has no app registration: say first which identity is asked.
        if let CredentialKind::ManagedIdentity(described) = &oauth.kind {
            steps.push(CheckStep::ok("credentials", described.clone()));
        }
        match self
            .access_token(scope)
            .await
            .map(|token| (token.claims(), token))
        {
            // A cached token without a required role may predate admin consent, and keeps its
            // old permissions until it expires: ask for a new one before saying it lacks them.
            Ok((claims, token))
                if claims.as_ref().is_some_and(|claims| {
                    claims.scp.is_none() && required_roles.iter().any(|role| !claims.has_role(role))
                }) =>
            {
                self.invalidate(&token);
                // A failed fetch is what to report: the old token's permissions are stale.
                match self.access_token(scope).await {
                    Ok(fresh) => steps.extend(self.token_steps(scope, &fresh, required_roles)),
                    Err(error) => steps.push(CheckStep::from_error("token", &error)),
                }
            }
            Ok((_, token)) => steps.extend(self.token_steps(scope, &token, required_roles)),
            Err(error) => steps.push(CheckStep::from_error("token", &error)),
        }
        match &oauth.kind {
            CredentialKind::Secret => steps.push(secret_expiry_step(oauth.secret_expires)),
            // A vault rotates it: its date is known only if the caller says so.
            CredentialKind::SecretFile(_) if oauth.secret_expires.is_some() => {
                steps.push(secret_expiry_step(oauth.secret_expires));
            }
            CredentialKind::Certificate { not_after, .. } => {
                steps.push(certificate_expiry_step(*not_after));
            }
            _ => {}
        }
        // Last, so that the steps before it keep their places for callers that index them.
        if oauth.token_endpoint.is_some()
            && !matches!(oauth.kind, CredentialKind::ManagedIdentity(_))
        {
            steps.push(CheckStep::ok("credential", oauth.kind.describe()));
        }
        steps
    }

    /// The `token` step for a token obtained, and the `permission` step when roles are
    /// required.
    fn token_steps(
        &self,
        scope: &str,
        token: &AccessToken,
        required_roles: &[&str],
    ) -> Vec<CheckStep> {
        let left = token
            .expires_at()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let claims = token.claims();
        let tenant = claims
            .as_ref()
            .and_then(|c| c.tid.as_deref())
            .map(|t| format!(", tenant {t}"))
            .unwrap_or_default();
        let mut steps = vec![CheckStep::ok(
            "token",
            format!(
                "access token for {scope} obtained; valid for {} min{tenant}",
                left.as_secs() / 60
            ),
        )];
        if !required_roles.is_empty() {
            steps.push(self.permission_step(claims.as_ref(), required_roles));
        }
        steps
    }

    fn permission_step(&self, claims: Option<&TokenClaims>, required: &[&str]) -> CheckStep {
        let Some(claims) = claims else {
            return CheckStep::warning(
                "permission",
                "the access token is not a JWT, so its permissions cannot be read",
                "nothing to change if sending works",
            );
        };
        if claims.scp.is_some() {
            return CheckStep::failed(
                "permission",
                "the token is a delegated (user) token; app-only sending needs the client-credentials flow",
                Some("use an app registration with a client secret or certificate, not a user sign-in".into()),
            )
            .with_kind(FailureKind::Settings);
        }
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|role| !claims.has_role(role))
            .collect();
        if missing.is_empty() {
            return CheckStep::ok(
                "permission",
                format!("granted: {}", claims.roles.join(", ")),
            );
        }
        if let Inner::OAuth(oauth) = &*self.inner
            && matches!(oauth.kind, CredentialKind::ManagedIdentity(_))
        {
            return CheckStep::failed(
                "permission",
                format!(
                    "the managed identity's token lacks the application permission {}",
                    missing.join(", ")
                ),
                Some(
                    APP_ROLE_REMEDY.replace("`Mail.Send`", &format!("`{}`", missing.join("`, `"))),
                ),
            )
            .with_kind(FailureKind::Auth);
        }
        let consent = self
            .admin_consent_url()
            .map(|url| {
                format!(
                    "; an admin of the tenant can also consent at {url} (for an app without a \
                     redirect URI that page may end in an error: check under API permissions \
                     that the status says Granted)"
                )
            })
            .unwrap_or_default();
        // Exchange's RBAC for Applications grants sending from chosen mailboxes, where the
        // Entra permission covers them all.
        let scoped = match missing.contains(&"Mail.Send") {
            true => {
                " (or, to send from chosen mailboxes only, grant no Mail.Send here and assign \
                 Exchange Online's RBAC for Applications role `Application Mail.Send` scoped to \
                 them)"
            }
            false => "",
        };
        CheckStep::failed(
            "permission",
            format!(
                "the token lacks the application permission {} (granted: {})",
                missing.join(", "),
                if claims.roles.is_empty() {
                    "none".to_owned()
                } else {
                    claims.roles.join(", ")
                }
            ),
            Some(format!(
                "the permission was not added as an Application permission, or admin consent was not granted: in the app registration open API permissions, add Microsoft Graph → Application permissions → {}, then click Grant admin consent{consent}{scoped}",
                missing.join(", ")
            )),
        )
        .with_kind(FailureKind::Auth)
    }
}

fn secret_expiry_step(expires: Option<ExpiryDate>) -> CheckStep {
    const NAME: &str = "secret expiry";
    let Some(date) = expires else {
        return CheckStep::warning(
            NAME,
            "the client secret's expiry date is not known",
            "set `client_secret_expires` (YYYY-MM-DD, the Expires column under Certificates & secrets) so that check warns before it expires",
        );
    };
    let days = date.days_left();
    let renew = "create a new secret under Certificates & secrets, then update `client_secret` and `client_secret_expires`";
    if days < 0 {
        CheckStep::failed(
            NAME,
            format!("the client secret expired on {date}"),
            Some(renew.to_owned()),
        )
        .with_kind(FailureKind::Auth)
    } else if days <= 30 {
        CheckStep::warning(
            NAME,
            format!("the client secret expires on {date}, in {days} days"),
            renew,
        )
    } else {
        CheckStep::ok(
            NAME,
            format!("the client secret expires on {date}, in {days} days"),
        )
    }
}

/// Which credential the app signs in with, and where it comes from.
#[derive(Debug, Clone)]
pub(super) enum CredentialKind {
    /// A client secret given as a value.
    Secret,
    /// A client secret read from this file at each token request.
    SecretFile(PathBuf),
    /// A certificate (this file) and its private key.
    Certificate {
        file: PathBuf,
        not_after: Option<time::OffsetDateTime>,
    },
    /// Workload identity federation with the token in this file.
    WorkloadIdentity(PathBuf),
    /// A caller's [`TokenProvider`](super::TokenProvider).
    Provider,
    /// The host's managed identity: which one, and its endpoint (never App Service's header).
    ManagedIdentity(String),
}

impl CredentialKind {
    /// How to grant Graph's `Mail.Send` to this identity when the app registration's steps
    /// do not apply (see [`TokenProvider::permission_remedy`](super::TokenProvider::permission_remedy)).
    pub(super) fn permission_remedy(&self) -> Option<String> {
        matches!(self, Self::ManagedIdentity(_)).then(|| APP_ROLE_REMEDY.to_owned())
    }

    /// The first part of the cache key: different kinds never share cached tokens.
    pub(super) fn cache_tag(&self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::SecretFile(_) => "secret-file",
            Self::Certificate { .. } => "certificate",
            Self::WorkloadIdentity(_) => "workload-identity",
            Self::Provider => "token-source",
            Self::ManagedIdentity(_) => "managed-identity",
        }
    }

    /// For `check`: the kind and its origin (a path, never a value).
    fn describe(&self) -> String {
        match self {
            Self::Secret => "client secret (from the settings)".to_owned(),
            Self::SecretFile(path) => format!(
                "client secret read from the file {} at each token request",
                path.display()
            ),
            Self::Certificate { file, .. } => {
                format!("certificate {} with its private key", file.display())
            }
            Self::WorkloadIdentity(path) => format!(
                "workload identity federation: the token in {} is read at each token request",
                path.display()
            ),
            Self::Provider => "a token provider".to_owned(),
            Self::ManagedIdentity(described) => described.clone(),
        }
    }
}

fn certificate_expiry_step(not_after: Option<time::OffsetDateTime>) -> CheckStep {
    const NAME: &str = "certificate expiry";
    let renew = "create a new certificate, upload it under Certificates & secrets of the app registration, then update `client_certificate_file` and `client_private_key_file`";
    let Some(not_after) = not_after else {
        return CheckStep::warning(
            NAME,
            "the certificate's expiry date cannot be read",
            "check that `client_certificate_file` holds the X.509 certificate uploaded to the app registration",
        );
    };
    let date = not_after.date();
    let left = not_after - time::OffsetDateTime::now_utc();
    let days = left.whole_days();
    if left.is_negative() {
        CheckStep::failed(
            NAME,
            format!("the certificate expired on {date}"),
            Some(renew.to_owned()),
        )
        .with_kind(FailureKind::Auth)
    } else if days <= 30 {
        CheckStep::warning(
            NAME,
            format!("the certificate expires on {date}, in {days} days"),
            renew,
        )
    } else {
        CheckStep::ok(
            NAME,
            format!("the certificate expires on {date}, in {days} days"),
        )
    }
}
