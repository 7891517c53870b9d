//! The remedy for an XOAUTH2 token Exchange Online refused, narrowed by what the token's own
//! claims say: a token for another resource, an app-only token without `SMTP.SendAsApp`, or
//! one with it (then the Exchange side is missing). A delegated token, or one whose claims
//! cannot be read, keeps the remedy that lists every step.
//!
//! The claims are read without verification and only to word the advice; only identifiers
//! (the audience, the app and service principal IDs, role names) go into it, never the token.

use super::exchange::XOAUTH2_REFUSED;
use crate::credentials::TokenClaims;
use crate::error::Error;

/// The application permission (an app role of Office 365 Exchange Online) for XOAUTH2.
const SEND_AS_APP: &str = "SMTP.SendAsApp";

/// Exchange Online's resource as a token's `aud`: its app ID (v2 tokens, the same in every
/// cloud) or one of its URIs (v1 tokens). The national clouds' hosts are taken from public
/// configurations, not from Microsoft's documentation; listing one too many only means a
/// token for it is judged by its roles.
const EXCHANGE_AUDIENCES: &[&str] = &[
    "00000002-0000-0ff1-ce00-000000000000",
    "https://outlook.office365.com",
    "https://outlook.office.com",
    "https://outlook.office365.us",
    "https://outlook-dod.office365.us",
    "https://partner.outlook.cn",
];

/// What is known of the refused token besides its claims.
pub(crate) struct RefusedToken<'a> {
    /// The scope the transport asked the token for.
    pub scope: &'a str,
    /// Whether the identity is an app registration, whose API permissions page grants
    /// application permissions (a managed identity has none).
    pub app_registration: bool,
}

impl RefusedToken<'_> {
    /// `error` with its remedy narrowed to the step `token`'s claims point to, when it is
    /// an XOAUTH2 refusal whose remedy lists every step; any other error is returned as it is.
    pub(crate) fn narrow(&self, error: Error, token: &str) -> Error {
        if error.remedy().as_deref() != Some(XOAUTH2_REFUSED) {
            return error;
        }
        match TokenClaims::decode_unverified(token).and_then(|claims| self.remedy(&claims)) {
            Some(remedy) => error.with_remedy(remedy),
            None => error,
        }
    }

    /// The step `claims` say is missing; `None` when they do not say (a delegated token, or
    /// no audience: not an Entra ID access token).
    fn remedy(&self, claims: &TokenClaims) -> Option<String> {
        if claims.scp.is_some() {
            return None;
        }
        let audience = claims.aud.as_deref()?;
        if !is_exchange(audience) {
            return Some(self.other_resource(audience));
        }
        let app_id = claims
            .client_id()
            .and_then(identifier)
            .unwrap_or("<oauth_client_id>");
        if claims.has_role(SEND_AS_APP) {
            let object_id = claims
                .oid
                .as_deref()
                .and_then(identifier)
                .unwrap_or("<Enterprise application object ID>");
            return Some(exchange_side(app_id, object_id));
        }
        Some(self.no_role(claims, app_id))
    }

    fn other_resource(&self, audience: &str) -> String {
        let audience: String = audience
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        let head = format!(
            "the access token is for another resource (its audience is `{audience}`), not \
             Office 365 Exchange Online, so Exchange refuses it"
        );
        if is_exchange(resource_of(self.scope)) {
            // Exchange's scope was asked for, yet the token is not for it.
            format!(
                "{head}, though the transport asked for `{}`: the token source (a token \
                 provider of your own) ignores the scope it is asked for; have it issue tokens \
                 for that scope",
                self.scope
            )
        } else {
            format!(
                "{head}: the token scope is `{}`; set OAuth scope (`oauth_scope`) to \
                 `https://outlook.office365.com/.default`, or leave it unset, which is the \
                 default for SMTP (in a national cloud, that cloud's Exchange Online resource, \
                 e.g. `https://outlook.office365.us/.default`)",
                self.scope
            )
        }
    }

    fn no_role(&self, claims: &TokenClaims, app_id: &str) -> String {
        let roles: Vec<&str> = claims
            .roles
            .iter()
            .filter_map(|role| identifier_like(role))
            .collect();
        let held = match roles.as_slice() {
            [] => "it carries no application permission at all".to_owned(),
            roles => format!("it carries only `{}`", roles.join("`, `")),
        };
        let grant = if self.app_registration {
            format!(
                "in the app registration add the Office 365 Exchange Online application \
                 permission `{SEND_AS_APP}` (API permissions → Add a permission → APIs my \
                 organization uses → Office 365 Exchange Online → Application permissions) and \
                 click \"Grant admin consent\""
            )
        } else {
            format!(
                "the portal cannot grant application permissions to a managed identity: assign \
                 Office 365 Exchange Online's app role `{SEND_AS_APP}` to the identity's service \
                 principal with Microsoft Graph PowerShell (`New-MgServicePrincipalAppRoleAssignment \
                 -ServicePrincipalId <identity's object id> -PrincipalId <identity's object id> \
                 -ResourceId <Office 365 Exchange Online's service principal id> -AppRoleId <id \
                 of {SEND_AS_APP} in its appRoles>`)"
            )
        };
        let stale = if self.app_registration {
            "a token fetched before consent keeps its old roles; the transport fetches a new \
             one after each refusal, so the next send uses the grant"
        } else {
            "a token fetched before the assignment keeps its old roles; the transport fetches \
             a new one after each refusal, though a managed identity's endpoint may serve its \
             old token for a while longer"
        };
        format!(
            "the access token has no `{SEND_AS_APP}` role ({held}): {grant}; {stale}. If the \
             app is instead given mailboxes through Exchange Online's RBAC for Applications (no \
             API permission), check that its service principal is registered \
             (`Get-ServicePrincipal`) and holds the role `Application {SEND_AS_APP}` \
             (`Get-ManagementRoleAssignment -RoleAssignee {app_id}`)"
        )
    }
}

/// The remedy for a token that carries `SMTP.SendAsApp`: the app registration is done, what
/// is missing is on Exchange Online's side.
fn exchange_side(app_id: &str, object_id: &str) -> String {
    format!(
        "the access token carries `{SEND_AS_APP}`, so the app registration is in order; \
         Exchange Online does not let the app use the mailbox. In Exchange Online PowerShell \
         register the app's service principal with `New-ServicePrincipal -AppId {app_id} \
         -ObjectId {object_id}` (the Enterprise application's object ID, not the App \
         registration's; `Get-ServicePrincipal` lists those registered), give it the mailbox \
         with `Add-MailboxPermission -Identity <user_name> -User <service principal ID> \
         -AccessRights FullAccess`, and check that SMTP AUTH is enabled for the mailbox \
         (`Set-CASMailbox -Identity <user_name> -SmtpClientAuthenticationDisabled $false`)"
    )
}

/// Whether a token audience (or a scope's resource) is Exchange Online's.
fn is_exchange(audience: &str) -> bool {
    let audience = audience.trim().trim_end_matches('/');
    EXCHANGE_AUDIENCES
        .iter()
        .any(|known| known.eq_ignore_ascii_case(audience))
}

/// The resource of a `{resource}/.default` scope (the scope itself when it has no suffix).
fn resource_of(scope: &str) -> &str {
    scope.trim().trim_end_matches("/.default")
}

/// `value` when it looks like an ID (a GUID's characters), to be shown in a command.
fn identifier(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    ok.then_some(value)
}

/// `value` when it looks like a role name (`SMTP.SendAsApp`, `Mail.Send`).
fn identifier_like(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ok.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::SMTP_SCOPE;

    fn claims(json: serde_json::Value) -> TokenClaims {
        serde_json::from_value(json).unwrap()
    }

    const APP: RefusedToken<'static> = RefusedToken {
        scope: SMTP_SCOPE,
        app_registration: true,
    };

    #[test]
    fn each_kind_of_token_gets_its_own_step() {
        let graph = APP
            .remedy(&claims(serde_json::json!({
                "aud": "https://graph.microsoft.com", "roles": ["Mail.Send"]
            })))
            .unwrap();
        assert!(graph.contains("`https://graph.microsoft.com`"), "{graph}");
        assert!(graph.contains("ignores the scope"), "{graph}");
        let graph_scope = RefusedToken {
            scope: "https://graph.microsoft.com/.default",
            ..APP
        }
        .remedy(&claims(
            serde_json::json!({"aud": "00000003-0000-0000-c000-000000000000"}),
        ))
        .unwrap();
        assert!(graph_scope.contains("`oauth_scope`"), "{graph_scope}");
        assert!(!graph_scope.contains("SendAsApp"), "{graph_scope}");

        // v1 (URI with a slash) and v2 (app ID) audiences are both Exchange's.
        for aud in [
            "https://outlook.office365.com/",
            "00000002-0000-0ff1-ce00-000000000000",
        ] {
            let none = APP
                .remedy(&claims(serde_json::json!({"aud": aud, "roles": []})))
                .unwrap();
            assert!(none.contains("no application permission at all"), "{none}");
            assert!(none.contains("Grant admin consent"), "{none}");
            assert!(!none.contains("Add-MailboxPermission"), "{none}");
        }
        let managed = RefusedToken {
            app_registration: false,
            ..APP
        }
        .remedy(&claims(serde_json::json!({
            "aud": "https://outlook.office365.com", "roles": ["Mail.Send"]
        })))
        .unwrap();
        assert!(managed.contains("only `Mail.Send`"), "{managed}");
        assert!(managed.contains("managed identity"), "{managed}");

        let granted = APP
            .remedy(&claims(serde_json::json!({
                "aud": "https://outlook.office365.com",
                "roles": ["smtp.sendasapp"],
                "azp": "0f0e0d0c-0000-0000-0000-00000000000a",
                "oid": "5e5e5e5e-0000-0000-0000-00000000000b",
            })))
            .unwrap();
        assert!(
            granted.contains(
                "New-ServicePrincipal -AppId 0f0e0d0c-0000-0000-0000-00000000000a \
                 -ObjectId 5e5e5e5e-0000-0000-0000-00000000000b"
            ),
            "{granted}"
        );
        assert!(granted.contains("Set-CASMailbox"), "{granted}");
        assert!(!granted.contains("admin consent"), "{granted}");
    }

    #[test]
    fn claims_that_say_nothing_keep_every_step() {
        let delegated = claims(serde_json::json!({
            "aud": "https://outlook.office.com", "scp": "SMTP.Send"
        }));
        assert_eq!(APP.remedy(&delegated), None);
        assert_eq!(APP.remedy(&claims(serde_json::json!({"roles": []}))), None);
        let generic = super::super::with_advice(Error::Smtp {
            stage: crate::error::SmtpStage::Auth,
            code: Some(535),
            enhanced_code: Some("5.7.3".into()),
            message: "Authentication unsuccessful".into(),
            mechanism: Some("XOAUTH2".into()),
            transient: false,
            delivery: crate::error::Delivery::NotSent,
            advice: crate::error::Advice::default(),
        });
        let kept = APP.narrow(generic, "opaque-token");
        assert_eq!(kept.remedy().as_deref(), Some(XOAUTH2_REFUSED));
    }

    /// A refusal of an XOAUTH2 login, as the transport makes it.
    fn refusal(mechanism: &str) -> Error {
        super::super::with_advice(Error::Smtp {
            stage: crate::error::SmtpStage::Auth,
            code: Some(535),
            enhanced_code: Some("5.7.3".into()),
            message: "Authentication unsuccessful".into(),
            mechanism: Some(mechanism.into()),
            transient: false,
            delivery: crate::error::Delivery::NotSent,
            advice: crate::error::Advice::default(),
        })
    }

    /// An unsigned JWT carrying `claims`, as a token source would hand it over.
    fn token(claims: &serde_json::Value) -> String {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("eyJhbGciOiJub25lIn0.{payload}.sig")
    }

    /// The refused token's claims replace the every-step remedy of an XOAUTH2 refusal, and
    /// leave any other remedy (a password refused) as it is.
    #[test]
    fn a_readable_token_narrows_only_the_token_remedy() {
        let granted = token(&serde_json::json!({
            "aud": "https://outlook.office365.com", "roles": ["SMTP.SendAsApp"],
        }));
        let narrowed = APP.narrow(refusal("XOAUTH2"), &granted);
        let remedy = narrowed.remedy().unwrap();
        assert!(remedy.contains("app registration is in order"), "{remedy}");
        assert!(!remedy.contains("admin consent"), "{remedy}");

        let password = refusal("LOGIN");
        let before = password.remedy();
        assert_ne!(before.as_deref(), Some(XOAUTH2_REFUSED), "{before:?}");
        assert_eq!(APP.narrow(password, &granted).remedy(), before);
    }

    #[test]
    fn only_identifiers_are_shown() {
        assert_eq!(identifier("0f0e-AB"), Some("0f0e-AB"));
        assert_eq!(identifier("`; rm -rf"), None);
        assert_eq!(identifier_like("Mail.Send"), Some("Mail.Send"));
        assert_eq!(identifier_like("a b"), None);
    }
}
