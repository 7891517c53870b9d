//! Delivery over STARTTLS, implicit TLS and plaintext; certificates are verified.

use std::time::Duration;

use mail_connector::{
    Attachment, ConnectorSettings, Email, Error, MailTransport, Secret, SmtpStage, SmtpTransport,
};
use mail_parser::{MessageParser, MimeHeaders};

use super::helpers::*;
use crate::support::smtp_server::{ServerOptions, ServerTls, TestServer};

#[tokio::test]
async fn starttls_basic_login_delivers_a_well_formed_message() {
    // Like Exchange Online: STARTTLS first, then only LOGIN and XOAUTH2.
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN", "XOAUTH2"],
        ..ServerOptions::default()
    })
    .await;
    let transport = basic_settings(&server).build().unwrap();
    let pdf: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let long_line = "x".repeat(5_000);
    let email = Email::builder()
        .to("Zoë Ünicode <zoe@example.org>")
        .cc("carl@example.org")
        .bcc("hidden@example.org")
        .subject("Grüße – Ihr Bericht ist fertig ✓")
        .text(format!("Hallo Zoë,\n{long_line}\n"))
        .html("<p>Hallo <b>Zoë</b></p><img src=\"cid:logo\">")
        .attachment(Attachment::from_bytes("report.pdf", pdf.clone()))
        .attachment(
            Attachment::from_bytes("logo.png", vec![0x89, b'P', b'N', b'G', 0, 1, 2])
                .with_content_type("image/png")
                .inline("logo"),
        )
        .build()
        .unwrap();

    let report = transport.send(&email).await.unwrap();
    assert_eq!(report.recipients().count(), 3);

    let auths = server.auths();
    assert_eq!(auths.len(), 1);
    assert_eq!(auths[0].mechanism, "LOGIN");
    assert_eq!(auths[0].decoded, format!("{USER}\n{PASSWORD}"));

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let received = &messages[0];
    assert_eq!(received.mail_from, USER);
    assert_eq!(
        received.rcpt_to,
        ["zoe@example.org", "carl@example.org", "hidden@example.org"]
    );
    let raw = String::from_utf8_lossy(&received.data);
    assert!(
        raw.lines().all(|l| l.len() <= 998),
        "a line is longer than 998 octets"
    );
    assert!(
        !raw.to_ascii_lowercase().contains("hidden@example.org"),
        "Bcc leaked into the message"
    );
    assert!(
        raw.contains("Subject: =?utf-8?"),
        "subject not RFC 2047 encoded"
    );

    let parsed = MessageParser::default().parse(&received.data).unwrap();
    assert_eq!(parsed.subject(), Some("Grüße – Ihr Bericht ist fertig ✓"));
    assert!(parsed.date().is_some());
    assert!(parsed.message_id().is_some_and(|id| id.contains('@')));
    assert_eq!(
        parsed.header_raw("MIME-Version").map(str::trim),
        Some("1.0")
    );
    assert!(parsed.bcc().is_none());
    assert_eq!(
        parsed.from().unwrap().first().unwrap().address(),
        Some(USER)
    );
    assert_eq!(
        parsed.to().unwrap().first().unwrap().name(),
        Some("Zoë Ünicode")
    );
    assert!(parsed.body_text(0).unwrap().contains(&long_line));
    assert!(parsed.body_html(0).unwrap().contains("<b>Zoë</b>"));
    assert!(raw.contains("multipart/alternative"));
    let attachment = parsed
        .attachments()
        .find(|a| a.attachment_name() == Some("report.pdf"))
        .expect("pdf attachment");
    assert_eq!(attachment.contents(), pdf.as_slice());
    let logo = parsed
        .attachments()
        .find(|a| a.content_id() == Some("logo"))
        .expect("inline image");
    assert_eq!(logo.contents(), &[0x89, b'P', b'N', b'G', 0, 1, 2]);
    // The report's id is the Message-ID that went out.
    let id = report.messages[0].id.clone().unwrap();
    assert!(id.contains(parsed.message_id().unwrap()), "{id}");
}

#[tokio::test]
async fn implicit_tls_with_auth_plain() {
    let server = TestServer::start(ServerOptions {
        tls: ServerTls::Implicit,
        mechanisms: vec!["PLAIN"],
        ..ServerOptions::default()
    })
    .await;
    let transport = SmtpTransport::implicit_tls("127.0.0.1")
        .port(server.port())
        .tls_ca_file(server.ca_file.path())
        .basic_auth(USER, Secret::new(PASSWORD))
        .build()
        .unwrap();
    // Bounded: a stream that takes the data without writing it leaves the send waiting.
    bounded(transport.send(&simple_email("ann@example.org")))
        .await
        .unwrap();
    let auths = server.auths();
    assert_eq!(auths[0].mechanism, "PLAIN");
    assert_eq!(auths[0].decoded, format!("\0{USER}\0{PASSWORD}"));
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn use_ssl_false_sends_plaintext_to_an_anonymous_relay() {
    let server = TestServer::start(ServerOptions {
        tls: ServerTls::None,
        mechanisms: vec![],
        ..ServerOptions::default()
    })
    .await;
    let transport = settings_toml(&server, "auth_mode = \"none\"\nuse_ssl = false\n")
        .build()
        .unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    assert!(server.auths().is_empty());
    assert_eq!(server.messages()[0].rcpt_to, ["ann@example.org"]);
}

#[tokio::test]
async fn starttls_is_required_when_use_ssl_is_on() {
    let server = TestServer::start(ServerOptions {
        tls: ServerTls::None,
        ..ServerOptions::default()
    })
    .await;
    let transport = basic_settings(&server).build().unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(stage_of(&error), Some(SmtpStage::Tls), "{error:?}");
    assert!(server.auths().is_empty(), "credentials sent without TLS");
    assert!(server.messages().is_empty());
}

/// A server (or a firewall that strips the offer) without STARTTLS is a port or network
/// problem, not a certificate one: the remedy names the port and the network path, and not
/// the certificate's name or a CA, which have nothing to do with it — for a send and for
/// the check alike.
#[tokio::test]
async fn a_server_without_starttls_is_not_told_to_fix_its_certificate() {
    let server = TestServer::start(ServerOptions {
        tls: ServerTls::None,
        ..ServerOptions::default()
    })
    .await;
    let transport = basic_settings(&server).build().unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    let check = transport.check().await.unwrap();
    let tls = check.steps.iter().find(|s| s.name == "tls").unwrap();
    let check_remedy = tls.remedy.clone().unwrap_or_default();
    for (what, message, remedy) in [
        (
            "send",
            error.to_string(),
            error.remedy().unwrap_or_default(),
        ),
        ("check", tls.detail.clone(), check_remedy),
    ] {
        assert!(message.contains("STARTTLS"), "{what}: {message}");
        assert!(message.contains("smtp_tls"), "{what}: {message}");
        assert!(remedy.contains("`smtp_port`"), "{what}: {remedy}");
        assert!(remedy.contains("firewall"), "{what}: {remedy}");
        assert!(!remedy.contains("tls_ca_file"), "{what}: {remedy}");
        assert!(!remedy.contains("certificate"), "{what}: {remedy}");
    }
    assert!(server.auths().is_empty(), "credentials sent without TLS");
}

#[tokio::test]
async fn certificates_are_verified() {
    let server = TestServer::start(ServerOptions::default()).await;
    // No tls_ca_file: the test CA is not trusted.
    let transport = SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(fast_retry())
        .send_deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(stage_of(&error), Some(SmtpStage::Tls), "{error:?}");
    assert!(error.remedy().unwrap().contains("tls_ca_file"));
    assert!(server.auths().is_empty());
}

#[tokio::test]
async fn plaintext_credentials_to_a_remote_host_are_refused_at_build_time() {
    let toml = "auth_mode = \"basic\"\nuser_name = \"no-reply@example.org\"\npassword = \"pw\"\n\
                smtp_host = \"mail.example.org\"\nuse_ssl = false\n";
    let error = ConnectorSettings::from_toml_str(toml)
        .unwrap()
        .build()
        .err()
        .expect("must be refused");
    let Error::InvalidSettings { problems, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        problems[0].field,
        "smtp_allow_plaintext_credentials_dangerous"
    );

    let allowed = format!("{toml}smtp_allow_plaintext_credentials_dangerous = true\n");
    ConnectorSettings::from_toml_str(&allowed)
        .unwrap()
        .build()
        .expect("allowed by the dangerous setting");

    // The builder applies the same rule.
    let error = SmtpTransport::builder_dangerous("mail.example.org")
        .basic_auth(USER, Secret::new("pw"))
        .build()
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("smtp_allow_plaintext_credentials_dangerous")
    );
    SmtpTransport::builder_dangerous("127.0.0.1")
        .basic_auth(USER, Secret::new("pw"))
        .build()
        .expect("loopback is fine");
    SmtpTransport::builder_dangerous("relay.example.org")
        .build()
        .expect("no credentials, no risk");
}

#[test]
fn the_dangerous_plaintext_setting_reads_from_the_environment() {
    let settings = ConnectorSettings::from_env_vars([(
        "MAIL_CONNECTOR_SMTP_ALLOW_PLAINTEXT_CREDENTIALS_DANGEROUS",
        "true",
    )])
    .unwrap();
    assert!(settings.smtp_allow_plaintext_credentials_dangerous);
    assert!(!ConnectorSettings::default().smtp_allow_plaintext_credentials_dangerous);
}

/// Unless set, the port follows the TLS mode: 465 for implicit TLS, 587 (submission) for
/// STARTTLS and for no TLS; a port set is kept whatever the mode.
#[test]
fn the_default_port_follows_the_tls_mode() {
    for (builder, port) in [
        (SmtpTransport::implicit_tls("mail.example.org"), 465),
        (SmtpTransport::starttls("mail.example.org"), 587),
        (SmtpTransport::builder_dangerous("mail.example.org"), 587),
        (
            SmtpTransport::implicit_tls("mail.example.org").port(587),
            587,
        ),
        (SmtpTransport::starttls("mail.example.org").port(2525), 2525),
    ] {
        let transport = builder.build().unwrap();
        let printed = format!("{transport:?}");
        assert!(printed.contains(&format!("port: {port},")), "{printed}");
    }
}
