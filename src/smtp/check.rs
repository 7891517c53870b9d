//! Checking a connection without sending mail: each step of a session (connect, TLS, EHLO,
//! AUTH and QUIT) reported as it goes, and the warning about an endpoint known not to work.

use super::auth::Auth;
use super::connect::{Connector, Deadline, QUIT_TIMEOUT, Tls, abort_quickly, quiet};
use super::remedy::from_lettre_redacted;
use crate::check::{CheckReport, CheckStep};
use crate::error::{Delivery, Error, SmtpStage};

impl Connector {
    /// Connect, TLS, EHLO, AUTH and QUIT, each reported as a step; no mail is sent. A step
    /// that gets no answer fails at `deadline` at the latest.
    pub(super) async fn check(&self, deadline: Deadline) -> CheckReport {
        let mut report = CheckReport::default();
        if let Some(warning) = endpoint_warning(&self.host, self.port) {
            report.push(warning);
        }
        let mut conn = match self.connect_plain_or_implicit(deadline).await {
            Ok(conn) => conn,
            Err(error) => {
                let name = match &error {
                    Error::Smtp {
                        stage: SmtpStage::Tls,
                        ..
                    } => "tls",
                    _ => "connect",
                };
                report.push(CheckStep::from_error(name, &error));
                return report;
            }
        };
        report.push(CheckStep::ok(
            "connect",
            format!("connected to {}:{}", self.host, self.port),
        ));
        match &self.tls {
            Tls::Implicit(_) => report.push(CheckStep::ok(
                "tls",
                "implicit TLS; the server certificate was verified",
            )),
            Tls::Starttls(params) => match self.starttls(&mut conn, params, deadline).await {
                Ok(()) => report.push(CheckStep::ok(
                    "tls",
                    "STARTTLS; the server certificate was verified",
                )),
                Err(error) => {
                    report.push(CheckStep::from_error("tls", &error));
                    return report;
                }
            },
            Tls::None => report.push(CheckStep::warning(
                "tls",
                "no TLS: mail and credentials cross the network unencrypted",
                "set Use SSL (`use_ssl = true`) unless the server is on this machine",
            )),
        }
        report.push(CheckStep::ok(
            "ehlo",
            format!("server capabilities: {}", conn.server_info()),
        ));
        let secrets = match self.authenticate(&mut conn, deadline).await {
            Ok(token) => {
                report.push(CheckStep::ok(
                    "auth",
                    match &self.auth {
                        Auth::None => "no authentication (anonymous relay)".to_owned(),
                        Auth::Basic { user, .. } => format!("logged in as {user} (basic)"),
                        Auth::Xoauth2 { user, .. } => format!("logged in as {user} (XOAUTH2)"),
                    },
                ));
                self.secrets(token.as_ref())
            }
            Err(error) => {
                report.push(CheckStep::from_error("auth", &error));
                abort_quickly(&mut conn).await;
                return report;
            }
        };
        match tokio::time::timeout(QUIT_TIMEOUT, quiet(conn.quit())).await {
            Ok(Ok(_)) => report.push(CheckStep::ok("quit", "session closed; no mail was sent")),
            Ok(Err(e)) => report.push(CheckStep::warning(
                "quit",
                format!("QUIT failed: {}", {
                    let secrets: Vec<&[u8]> = secrets
                        .iter()
                        .map(|s| s.expose_secret().as_bytes())
                        .collect();
                    from_lettre_redacted(SmtpStage::Connect, None, &e, Delivery::NotSent, &secrets)
                }),
                "none needed for sending; the server closed the session early",
            )),
            Err(_elapsed) => report.push(CheckStep::warning(
                "quit",
                format!("no answer to QUIT within {QUIT_TIMEOUT:?}; the connection was dropped"),
                "none needed for sending",
            )),
        }
        report
    }
}

/// A warning for an endpoint known not to work: Exchange Online supports client
/// submission only with STARTTLS on port 587 (or 25); its port 465 is not an SMTP AUTH
/// endpoint.
fn endpoint_warning(host: &str, port: u16) -> Option<CheckStep> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (host.ends_with("office365.com") && port == 465).then(|| {
        CheckStep::warning(
            "endpoint",
            format!(
                "{host}:465 is not a client submission endpoint of Exchange Online, which \
                 supports SMTP AUTH only with STARTTLS on port 587 (or 25)"
            ),
            "set `smtp_port = 587` with Use SSL on (`use_ssl = true`, STARTTLS)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CheckStatus;

    #[test]
    fn exchange_online_on_port_465_is_warned_about() {
        let step = endpoint_warning("smtp.office365.com", 465).unwrap();
        assert_eq!(step.status, CheckStatus::Warning);
        assert!(step.remedy.as_deref().unwrap().contains("587"));
        assert!(endpoint_warning("SMTP.Office365.com.", 465).is_some());
        assert!(endpoint_warning("smtp.office365.com", 587).is_none());
        assert!(endpoint_warning("mail.example.org", 465).is_none());
    }
}
