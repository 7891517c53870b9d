//! `check` over SMTP: each step, without sending, bounded and within the connection limit.

use std::time::Duration;

use mail_connector::{CheckStatus, Delivery, MailTransport, RetryPolicy, Secret, SmtpStage};

use super::helpers::*;
use crate::support::assert_no_secrets;
use crate::support::smtp_server::{ServerOptions, ServerTls, TestServer};

#[tokio::test]
async fn check_reports_each_step_without_sending() {
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = basic_settings(&server).build().unwrap();
    let report = transport.check().await.unwrap();
    let names: Vec<_> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["connect", "tls", "ehlo", "auth", "quit"],
        "{report}"
    );
    assert_eq!(report.status(), CheckStatus::Ok, "{report}");
    assert!(server.messages().is_empty());
    assert_eq!(server.mail_from_commands(), 0);

    let mut settings = basic_settings(&server);
    settings.password = Some(Secret::new("nope-4242"));
    let report = settings.build().unwrap().check().await.unwrap();
    let auth = report.steps.iter().find(|s| s.name == "auth").unwrap();
    assert_eq!(auth.status, CheckStatus::Failed);
    assert!(auth.remedy.as_deref().unwrap().contains("`password`"));
    assert_no_secrets(&report.to_string(), &["nope-4242"]);
}

/// A relay without TLS on this machine (a developer's, or a sidecar's): the session's
/// `tls` step is fine, by the same loopback rule that lets the password go there without
/// TLS; the report is all `ok`.
#[tokio::test]
async fn no_tls_to_a_relay_on_this_machine_is_no_warning() {
    let server = TestServer::start(ServerOptions {
        tls: ServerTls::None,
        mechanisms: vec!["PLAIN", "LOGIN"],
        ..ServerOptions::default()
    })
    .await;
    let extra = format!("auth_mode = \"basic\"\npassword = \"{PASSWORD}\"\nuse_ssl = false\n");
    let transport = settings_toml(&server, &extra).build().unwrap();
    let report = transport.check().await.unwrap();
    let tls = report.steps.iter().find(|s| s.name == "tls").unwrap();
    assert_eq!(tls.status, CheckStatus::Ok, "{report}");
    assert!(tls.detail.contains("loopback"), "{report}");
    assert_eq!(tls.remedy, None, "{report}");
    assert_eq!(report.status(), CheckStatus::Ok, "{report}");
    let auth = report.steps.iter().find(|s| s.name == "auth").unwrap();
    assert!(auth.detail.contains("(basic)"), "{report}");
}

#[tokio::test]
async fn a_server_that_never_greets_fails_check_and_send_within_the_timeout() {
    let server = TestServer::start(ServerOptions {
        no_greeting: true,
        ..ServerOptions::default()
    })
    .await;
    let transport = starttls(&server)
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(RetryPolicy {
            max_retries: 1,
            ..fast_retry()
        })
        .connect_timeout(Duration::from_millis(300))
        // An hour: only the connect timeout can end the check and the send within the
        // guards below, however slow the machine.
        .send_deadline(Duration::from_secs(3600))
        .build()
        .unwrap();

    let report = tokio::time::timeout(Duration::from_secs(120), transport.check())
        .await
        .expect("check() waited out the send deadline, not the connect timeout")
        .unwrap();
    assert_eq!(report.status(), CheckStatus::Failed, "{report}");
    let step = &report.steps[0];
    assert_eq!(step.name, "connect", "{report}");
    assert!(step.detail.contains("no answer"), "{report}");
    assert!(
        step.remedy.as_deref().unwrap().contains("smtp_port"),
        "{report}"
    );

    // A send gives up on each connection after the connect timeout and retries, rather
    // than waiting out the whole send deadline.
    let error = tokio::time::timeout(
        Duration::from_secs(120),
        transport.send(&simple_email("ann@example.org")),
    )
    .await
    .expect("the send waited out the send deadline, not the connect timeout")
    .unwrap_err();
    assert_eq!(stage_of(&error), Some(SmtpStage::Connect), "{error:?}");
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    assert!(error.remedy().unwrap().contains("TLS mode"), "{error}");
    // The check and the send each ask once, after their first silent connection, whether
    // the port speaks implicit TLS (it does not answer that either, so the error stays "no
    // answer"); the send's retry does not ask again.
    assert_eq!(
        server.connections(),
        2 + 3,
        "the check and its TLS question, two attempts and one TLS question"
    );
}

#[tokio::test]
async fn check_stays_within_the_connection_limit() {
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = starttls(&server)
        .basic_auth(USER, Secret::new(PASSWORD))
        .max_concurrency(1)
        .build()
        .unwrap();
    // The send leaves its connection idle in the pool: the limit is reached.
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    let report = transport.check().await.unwrap();
    assert_eq!(report.status(), CheckStatus::Ok, "{report}");
    assert_eq!(server.connections(), 2);
    assert_eq!(
        server.max_active(),
        1,
        "check opened a connection over the limit"
    );
    // Sending still works: a new connection replaces the one the check closed.
    transport
        .send(&simple_email("bob@example.org"))
        .await
        .unwrap();
    assert_eq!(server.messages().len(), 2);
    assert_eq!(server.max_active(), 1);
}
