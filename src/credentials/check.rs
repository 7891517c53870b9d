//! What `check` reports about the credentials: a token can be had, it carries the
//! permission, and the client secret is not about to expire.

use std::time::SystemTime;

use super::managed_identity::APP_ROLE_REMEDY;
use super::{Credentials, Inner, TokenClaims};
use crate::check::CheckStep;
use crate::expiry::ExpiryDate;

impl Credentials {
    /// Building blocks of a transport's `check`: `token` (a token for `scope` can be had),
    /// `permission` (each of `required_roles`, e.g. `Mail.Send`, is in the token's `roles`;
    /// if not, why and the admin-consent URL) and `secret expiry` (from
    /// `client_secret_expires`: warning within 30 days, failure after). Basic and anonymous
    /// credentials report one `credentials` step; a managed identity starts with a
    /// `credentials` step naming its kind and endpoint.
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
        if let Some(described) = &oauth.managed_identity {
            steps.push(CheckStep::ok("credentials", described.clone()));
        }
        match self.access_token(scope).await {
            Ok(token) => {
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
                steps.push(CheckStep::ok(
                    "token",
                    format!(
                        "access token for {scope} obtained; valid for {} min{tenant}",
                        left.as_secs() / 60
                    ),
                ));
                if !required_roles.is_empty() {
                    steps.push(self.permission_step(claims.as_ref(), required_roles));
                }
            }
            Err(error) => steps.push(CheckStep::from_error("token", &error)),
        }
        if !oauth.uses_certificate
            && oauth.token_endpoint.is_some()
            && oauth.managed_identity.is_none()
        {
            steps.push(secret_expiry_step(oauth.secret_expires));
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
            );
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
            && oauth.managed_identity.is_some()
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
            );
        }
        let consent = self
            .admin_consent_url()
            .map(|url| format!("; an admin of the tenant can also consent at {url}"))
            .unwrap_or_default();
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
                "the permission was not added as an Application permission, or admin consent was not granted: in the app registration open API permissions, add Microsoft Graph → Application permissions → {}, then click Grant admin consent{consent}",
                missing.join(", ")
            )),
        )
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
