//! Secrets never appear in `Debug` or errors.

use std::sync::Arc;

use mail_connector::smtp::SmtpTransport;
use mail_connector::smtp::SmtpTransportBuilder;
use mail_connector::{MailTransport, Secret};

use super::helpers::*;
use crate::support;
use crate::support::FakeTokens;
use crate::support::assert_no_secrets;
use crate::support::smtp_server::{ServerOptions, TestServer};

#[tokio::test]
async fn secrets_never_appear_in_debug_or_errors() {
    let (logs, _guard) = support::capture_logs();

    let password = "pw-7c3a9e-never-print";
    let token = "eyJ0eXAi-token-never-print";
    // A careless server that echoes the AUTH lines it received in its failure reply.
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["PLAIN", "XOAUTH2"],
        echo_auth_on_failure: true,
        ..ServerOptions::default()
    })
    .await;
    let login_server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN"],
        echo_auth_on_failure: true,
        ..ServerOptions::default()
    })
    .await;
    let mut settings = basic_settings(&server);
    settings.password = Some(Secret::new(password));
    let basic_builder = settings.smtp_builder().unwrap();
    let basic = settings
        .smtp_builder()
        .and_then(SmtpTransportBuilder::build)
        .unwrap();
    let basic_error = basic
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    let basic_report = basic.check().await.unwrap();
    let mut login_settings = basic_settings(&login_server);
    login_settings.password = Some(Secret::new(password));
    let login = login_settings
        .smtp_builder()
        .and_then(SmtpTransportBuilder::build)
        .unwrap();
    let login_error = login
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    let tokens = Arc::new(FakeTokens::new(&[token]));
    let oauth_builder = starttls(&server).xoauth2(USER, tokens);
    let oauth = oauth_builder.clone().build().unwrap();
    let oauth_error = oauth
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    let report = oauth.check().await.unwrap();
    // The blobs as they went on the wire, base64 included.
    let blob = format!("user={USER}\x01auth=Bearer {token}\x01\x01");
    let plain = format!("\0{USER}\0{password}");
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let printed = format!(
        "{settings:?} {basic_builder:?} {basic:?} {basic_error} {basic_error:?} {:?} \
         {basic_report} {basic_report:?} {login_error} {login_error:?} {:?} \
         {oauth_builder:?} {oauth:?} {oauth_error} {oauth_error:?} {:?} {report} {report:?}",
        basic_error.remedy(),
        login_error.remedy(),
        oauth_error.remedy(),
    );
    // This test's own sends (their servers' ports), so that the checks below are not vacuous.
    for port in [server.port(), login_server.port()] {
        support::logged_line(&logs, &["send failed", &format!("port={port} ")]);
    }
    let logged = logs.text();
    let secrets = [password, token, &b64(&blob), &b64(&plain), &b64(password)];
    assert_no_secrets(&printed, &secrets);
    assert_no_secrets(&logged, &secrets);
    // The server did see them, and echoed them: the assertions above are not vacuous.
    let auths = server.auths();
    assert!(auths.iter().any(|a| a.decoded.contains(password)));
    assert!(auths.iter().any(|a| a.decoded == blob));
    assert!(login_server.auths()[0].decoded.contains(password));
    for error in [&basic_error, &login_error, &oauth_error] {
        assert!(error.to_string().contains("[redacted]"), "{error}");
    }
}

/// What `Debug` shows of a transport's login: how it logs in and as whom, the password
/// redacted and a token provider only named, so that a transport printed in a log says what
/// it does (and the checks above, that the secrets are absent, are not vacuous).
#[test]
fn debug_names_the_login_and_its_user_without_the_secret() {
    let password = "pw-51b0d2-never-print";
    let basic = SmtpTransport::implicit_tls("127.0.0.1")
        .basic_auth(USER, Secret::new(password))
        .build()
        .unwrap();
    let printed = format!("{basic:?}");
    assert!(
        printed.contains(&format!(
            r#"auth: Basic {{ user: "{USER}", password: Secret([redacted]) }}"#
        )),
        "{printed}"
    );
    assert_no_secrets(&printed, &[password]);

    let token = "eyJ0eXAi-debug-token-never-print";
    let oauth = SmtpTransport::starttls("127.0.0.1")
        .xoauth2(USER, Arc::new(FakeTokens::new(&[token])))
        .build()
        .unwrap();
    let printed = format!("{oauth:?}");
    assert!(
        printed.contains(&format!(
            r#"auth: Xoauth2 {{ user: "{USER}", provider: [token provider] }}"#
        )),
        "{printed}"
    );
    assert_no_secrets(&printed, &[token]);

    let relay = SmtpTransport::builder_dangerous("127.0.0.1")
        .build()
        .unwrap();
    assert!(format!("{relay:?}").contains("auth: None"), "{relay:?}");
}
