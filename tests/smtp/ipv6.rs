//! An SMTP server at an IPv6 address, over real IPv6 loopback (`::1`): reached, and named in
//! messages as `[::1]:port`, never `::1:port` (whose last group reads as the port).

use std::time::Duration;

use mail_connector::{
    CheckStatus, ConnectorSettings, MailTransport, Mailbox, SmtpStage, SmtpTransport,
};

use super::helpers::{USER, fast_retry, simple_email, stage_of};
use crate::support::smtp_server::{ServerOptions, ServerTls, TestServer};

/// A relay without TLS or AUTH, as an anonymous relay on the local network is.
fn relay() -> ServerOptions {
    ServerOptions {
        tls: ServerTls::None,
        mechanisms: Vec::new(),
        ..ServerOptions::default()
    }
}

fn assert_bracketed(text: &str, port: u16) {
    assert!(text.contains(&format!("[::1]:{port}")), "{text}");
    assert!(!text.contains(&format!(" ::1:{port}")), "{text}");
}

#[tokio::test]
async fn check_names_an_ipv6_server_in_brackets() {
    let server = TestServer::start_on("[::1]:0", relay()).await;
    // As the admin screen takes it: in brackets, or bare.
    for host in ["[::1]", "::1"] {
        let settings = ConnectorSettings::from_toml_str(&format!(
            "auth_mode = \"none\"\ntransport = \"smtp\"\nsmtp_tls = \"none\"\n\
             smtp_host = \"{host}\"\nsmtp_port = {}\nuser_name = \"{USER}\"\n",
            server.port()
        ))
        .unwrap();
        assert_bracketed(&settings.summary(), server.port());
        let report = settings.build().unwrap().check().await.unwrap();
        // No TLS to this machine (loopback) is no warning.
        assert_eq!(report.status(), CheckStatus::Ok, "{report}");
        let connect = report.steps.iter().find(|s| s.name == "connect").unwrap();
        assert_bracketed(&connect.detail, server.port());
    }
    // Built in code, bare or in brackets as a URL writes it.
    for host in ["::1", "[::1]"] {
        let transport = SmtpTransport::builder_dangerous(host)
            .sender(Mailbox::parse(USER).unwrap())
            .port(server.port())
            .build()
            .unwrap();
        transport
            .send(&simple_email("ann@example.org"))
            .await
            .unwrap();
    }
    assert_eq!(server.messages().len(), 2);
}

#[tokio::test]
async fn a_refused_or_silent_ipv6_server_is_named_in_brackets() {
    // A port nobody listens on: taken from the system, then let go.
    let port = std::net::TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let transport = SmtpTransport::builder_dangerous("::1")
        .sender(Mailbox::parse(USER).unwrap())
        .port(port)
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(stage_of(&error), Some(SmtpStage::Connect), "{error:?}");
    assert!(error.to_string().contains("cannot connect to"), "{error}");
    assert_bracketed(&error.to_string(), port);

    let server = TestServer::start_on(
        "[::1]:0",
        ServerOptions {
            no_greeting: true,
            ..relay()
        },
    )
    .await;
    let transport = SmtpTransport::builder_dangerous("::1")
        .port(server.port())
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let report = transport.check().await.unwrap();
    let connect = &report.steps[0];
    assert_eq!(connect.status, CheckStatus::Failed, "{report}");
    assert!(connect.detail.contains("no answer from"), "{report}");
    assert_bracketed(&connect.detail, server.port());
}
