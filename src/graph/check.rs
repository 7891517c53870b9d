//! `check` for Graph: the token and its permission, then a probe of the mailbox that sends
//! nothing, all within one deadline.

use std::time::Duration;

use tokio::time::Instant;

use super::GraphTransport;
use super::call::{GraphRequest, Repeat};
use crate::check::{CheckReport, CheckStatus, CheckStep, FailureKind};
use crate::error::{Error, Result};
use crate::http::host_of;

impl GraphTransport {
    pub(super) async fn run_check(&self) -> Result<CheckReport> {
        // One deadline (the send deadline) bounds the whole check, token included.
        let deadline = Instant::now() + self.send_deadline;
        let mut report = CheckReport::default();
        let steps = tokio::time::timeout_at(
            deadline,
            self.client
                .tokens
                .check_steps(&self.client.scope, &["Mail.Send"]),
        )
        .await;
        let Ok(steps) = steps else {
            let tokens = &*self.client.tokens;
            let source = tokens
                .token_endpoint()
                .map(|endpoint| format!("`{}`", host_of(endpoint)))
                .unwrap_or_else(|| "the token provider".to_owned());
            report.push(CheckStep::failed(
                "token",
                format!(
                    "no access token from {source} within the check's deadline of {:?}",
                    self.send_deadline
                ),
                Some(crate::credentials::timeout_remedy(tokens)),
            ));
            return Ok(report);
        };
        // The mailbox probe needs a token that Graph may take: a secret that expires soon (or
        // already did, while a cached token lives on) does not stop it.
        let token_ok = steps
            .iter()
            .filter(|s| s.name == "token")
            .all(|s| s.status != CheckStatus::Failed);
        let permission_ok = steps
            .iter()
            .filter(|s| s.name == "permission")
            .all(|s| s.status != CheckStatus::Failed);
        for step in steps {
            report.push(step);
        }
        let claims =
            match tokio::time::timeout_at(deadline, self.client.tokens.token(&self.client.scope))
                .await
            {
                Ok(Ok(token)) => token.claims(),
                _ => None,
            };
        if let Some(claims) = &claims
            && claims.has_role("Mail.Send")
            && !claims.has_role("Mail.ReadWrite")
        {
            report.push(CheckStep::warning(
                "large mail",
                "the token lacks Mail.ReadWrite: messages whose attachments come to 3 MB or more, and MIME-form messages over 2 MB, go through a draft and will fail",
                "add the Microsoft Graph `Mail.ReadWrite` Application permission and grant admin consent",
            ));
        }
        // An app token without the `Mail.Send` role may still send: Exchange Online's RBAC for
        // Applications grants it, scoped to mailboxes, without any role in the token. Only the
        // probe can tell.
        let no_role = claims
            .as_ref()
            .is_some_and(|c| c.scp.is_none() && !c.has_role("Mail.Send"));
        if token_ok && (permission_ok || no_role) {
            let mailbox = self.probe_mailbox(deadline).await;
            match (no_role, mailbox.status) {
                (true, CheckStatus::Ok) => {
                    for step in report.steps.iter_mut().filter(|s| s.name == "permission") {
                        *step = CheckStep::warning(
                            "permission",
                            "the token carries no `Mail.Send` role, yet Exchange lets this app \
                             send from the mailbox: Exchange Online RBAC for Applications grants \
                             it",
                            "nothing to change; do not also grant Microsoft Graph's `Mail.Send` \
                             in Entra ID, which would let the app send from every mailbox",
                        );
                    }
                    report.push(mailbox);
                }
                // Refused for the missing permission: the permission step says how to grant it.
                (true, CheckStatus::Failed) if mailbox.kind == Some(FailureKind::Auth) => {}
                _ => report.push(mailbox),
            }
        }
        Ok(report)
    }

    async fn probe_mailbox(&self, deadline: Instant) -> CheckStep {
        // Graph resolves the mailbox and checks the app's right to send from it before it
        // validates the message, so a message without recipients is refused with
        // ErrorInvalidRecipients when all is well — proof with Mail.Send alone, and no mail
        // is delivered or saved. A missing mailbox answers 404 and a mailbox outside an
        // application access policy 403.
        let url = match self.url(&["sendMail"]) {
            Ok(url) => url,
            Err(error) => return CheckStep::from_error("mailbox", &error),
        };
        let body = serde_json::json!({
            "message": {
                "subject": "mail-connector configuration check (never delivered)",
                "body": {"contentType": "Text", "content": ""}
            },
            "saveToSentItems": false
        });
        let deadline = deadline.min(Instant::now() + Duration::from_secs(30));
        let result = self
            .client
            .execute(
                &GraphRequest::post_json(
                    "mailbox check",
                    &url,
                    body.to_string().into_bytes(),
                    Repeat::OnlyIfNotProcessed,
                ),
                deadline,
            )
            .await;
        let mailbox = self.mailbox.address();
        match result {
            Err(Error::Graph {
                code: Some(code), ..
            }) if code == "ErrorInvalidRecipients" => CheckStep::ok(
                "mailbox",
                format!("{mailbox} is a mailbox this app may send from"),
            ),
            Ok(_) => CheckStep::ok("mailbox", format!("{mailbox} accepted the check")),
            Err(error) => CheckStep::from_error("mailbox", &error),
        }
    }
}
