//! Checking the connection without sending mail: [`SmtpTransport`]'s
//! [`check`](MailTransport::check) (a permit, the token, then each step of a session:
//! connect, TLS, EHLO, AUTH and QUIT), and the warning about an endpoint known not to work.

use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::extension::{Extension, ServerInfo};
use tokio::time::Instant;

use super::SmtpTransport;
use super::auth::{Auth, token_timeout};
use super::connect::{Connector, Deadline, QUIT_TIMEOUT, Tls, TlsProbe, abort_quickly, quiet};
use super::remedy::from_lettre_redacted;
use crate::check::{CheckReport, CheckStep, FailureKind};
use crate::error::{Delivery, Error, Result, SmtpStage};
#[cfg(doc)]
use crate::transport::MailTransport;

impl SmtpTransport {
    /// The transport's [`check`](MailTransport::check): a permit, the token, then
    /// [`Connector::check`].
    pub(super) async fn check_inner(&self) -> Result<CheckReport> {
        let inner = &self.inner;
        let deadline = Deadline::after(inner.send_deadline, "check");
        let Ok(Ok(_permit)) = tokio::time::timeout_at(deadline.at, inner.permits.acquire()).await
        else {
            let mut report = CheckReport::default();
            if inner.permits.is_closed() {
                report.push(CheckStep::failed(
                    "connect",
                    "the transport was closed (`SmtpTransport::close`)",
                    Some("check with a transport that is not closed".to_owned()),
                ));
                return Ok(report);
            }
            report.push(
                CheckStep::failed(
                    "connect",
                    format!(
                        "all {} connections stayed busy with sends for {:?}",
                        inner.max_concurrency, inner.send_deadline
                    ),
                    Some(
                        "run the check again when fewer emails are being sent, or raise the send \
                     timeout"
                            .to_owned(),
                    ),
                )
                .with_kind(FailureKind::Transient),
            );
            return Ok(report);
        };
        // Every open connection is in use under a permit or idle in the pool: one more
        // would exceed the limit (Exchange Online answers 432 4.3.2 to a 4th).
        if let Some(idle) = inner.pool.pop() {
            idle.abort().await;
        }
        let mut report = CheckReport::default();
        #[cfg(feature = "dkim")]
        if let Some(signer) = &inner.dkim {
            report.push(signer.check_step());
        }
        if let Auth::Xoauth2 {
            provider, scope, ..
        } = &inner.connector.auth
        {
            // The same deadline: a login host that accepts connections and never answers
            // must not hold the check for the token client's own retries and timeouts.
            let start = Instant::now();
            // No role is required: with Exchange's RBAC for Applications the token carries
            // none, and the AUTH step shows whether Exchange accepts it.
            match tokio::time::timeout_at(deadline.at, provider.check_steps(scope, &[])).await {
                Ok(steps) => report.steps.extend(steps),
                Err(_elapsed) => {
                    report.push(
                        CheckStep::failed(
                            "token",
                            token_timeout(&**provider, start.elapsed(), deadline),
                            Some(crate::credentials::timeout_remedy(&**provider)),
                        )
                        .with_kind(FailureKind::Transient),
                    );
                    return Ok(report);
                }
            }
        }
        report
            .steps
            .extend(inner.connector.check(deadline).await.steps);
        Ok(report)
    }
}

impl Connector {
    /// Connect, TLS, EHLO, AUTH and QUIT, each reported as a step; no mail is sent. A step
    /// that gets no answer fails at `deadline` at the latest.
    pub(super) async fn check(&self, deadline: Deadline) -> CheckReport {
        let mut report = CheckReport::default();
        if let Some(warning) = endpoint_warning(&self.host, self.port) {
            report.push(warning);
        }
        let mut conn = match self
            .connect_plain_or_implicit(deadline, &TlsProbe::default())
            .await
        {
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
            format!("connected to {}", self.server()),
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
            Tls::None => report.push(no_tls_step(&self.host)),
        }
        report.push(CheckStep::ok("ehlo", capabilities(conn.server_info())));
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

/// The server's name and the EHLO extensions this client uses, in a fixed order:
/// `mail.example.org offers 8BITMIME, SMTPUTF8, AUTH LOGIN XOAUTH2`.
fn capabilities(info: &ServerInfo) -> String {
    let mut offered: Vec<String> = [
        Extension::EightBitMime,
        Extension::SmtpUtfEight,
        Extension::StartTls,
    ]
    .into_iter()
    .filter(|e| info.supports_feature(*e))
    .map(|e| e.to_string())
    .collect();
    let mechanisms: Vec<String> = [Mechanism::Plain, Mechanism::Login, Mechanism::Xoauth2]
        .into_iter()
        .filter(|m| info.supports_auth_mechanism(*m))
        .map(|m| m.to_string())
        .collect();
    if !mechanisms.is_empty() {
        offered.push(format!("AUTH {}", mechanisms.join(" ")));
    }
    if offered.is_empty() {
        format!(
            "{} offers none of the extensions this client uses",
            info.name()
        )
    } else {
        format!("{} offers {}", info.name(), offered.join(", "))
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
                "{} is not a client submission endpoint of Exchange Online, which \
                 supports SMTP AUTH only with STARTTLS on port 587 (or 25)",
                crate::net::host_port(&host, port)
            ),
            "set `smtp_port = 587` with Use SSL on (`use_ssl = true`, STARTTLS)",
        )
    })
}

/// The `tls` step of a session without TLS to `host`: fine to this machine (loopback, by
/// the rule that lets credentials go there without TLS, `net::is_loopback_host`, where a
/// developer's or a sidecar's relay listens), a warning to any other host.
fn no_tls_step(host: &str) -> CheckStep {
    if crate::net::is_loopback_host(host) {
        return CheckStep::ok(
            "tls",
            "no TLS, to this machine (loopback): nothing crosses the network",
        );
    }
    CheckStep::warning(
        "tls",
        "no TLS: mail and credentials cross the network unencrypted",
        "set Use SSL (`use_ssl = true`) unless the server is on this machine",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CheckStatus;

    #[test]
    fn capabilities_are_listed_in_words_in_a_fixed_order() {
        use lettre::transport::smtp::response::{Category, Code, Detail, Response, Severity};
        let reply = |lines: &[&str]| {
            let code = Code::new(
                Severity::PositiveCompletion,
                Category::MailSystem,
                Detail::Zero,
            );
            let lines = lines.iter().map(|l| (*l).to_owned()).collect();
            ServerInfo::from_response(&Response::new(code, lines)).unwrap()
        };
        let info = reply(&[
            "mail.example.org greets you",
            "AUTH XOAUTH2 LOGIN",
            "STARTTLS",
            "SMTPUTF8",
            "8BITMIME",
            "SIZE 1000",
        ]);
        assert_eq!(
            capabilities(&info),
            "mail.example.org offers 8BITMIME, SMTPUTF8, STARTTLS, AUTH LOGIN XOAUTH2"
        );
        assert_eq!(
            capabilities(&reply(&["relay.example.org", "SIZE 1000"])),
            "relay.example.org offers none of the extensions this client uses"
        );
    }

    #[test]
    fn no_tls_is_warned_about_except_to_this_machine() {
        for host in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost",
        ] {
            let step = no_tls_step(host);
            assert_eq!(step.status, CheckStatus::Ok, "{host}: {step:?}");
            assert!(step.detail.contains("loopback"), "{host}: {step:?}");
        }
        for host in [
            "mail.example.org",
            "192.168.1.10",
            "10.0.0.1",
            "[2001:db8::1]",
        ] {
            let step = no_tls_step(host);
            assert_eq!(step.status, CheckStatus::Warning, "{host}: {step:?}");
            assert!(step.detail.contains("unencrypted"), "{host}: {step:?}");
            assert!(step.remedy.as_deref().unwrap().contains("`use_ssl = true`"));
        }
    }

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
