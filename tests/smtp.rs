//! SmtpTransport against a real SMTP server on loopback (tests/support/smtp_server.rs).

mod support;

use std::sync::Arc;
use std::time::Duration;

use mail_connector::smtp::SmtpTransportBuilder;
use mail_connector::{
    Attachment, CheckStatus, ConnectorSettings, Delivery, Email, Error, MailTransport, RetryPolicy,
    Secret, SmtpStage, SmtpTransport,
};
use mail_parser::{MessageParser, MimeHeaders};
use support::smtp_server::{ServerOptions, ServerTls, TestServer};
use support::{FakeTokens, mailctl};

const USER: &str = "no-reply@example.org";
const PASSWORD: &str = "correct horse";

fn settings_toml(server: &TestServer, extra: &str) -> ConnectorSettings {
    ConnectorSettings::from_toml_str(&format!(
        "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls_ca_file = {:?}\nuser_name = \"{USER}\"\n{extra}",
        server.port(),
        server.ca_file.path().display().to_string(),
    ))
    .unwrap()
}

fn basic_settings(server: &TestServer) -> ConnectorSettings {
    settings_toml(
        server,
        &format!("auth_mode = \"basic\"\npassword = \"{PASSWORD}\"\n"),
    )
}

fn starttls(server: &TestServer) -> SmtpTransportBuilder {
    SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
}

/// STARTTLS with the test user's password and quick retries.
fn logged_in(server: &TestServer) -> SmtpTransportBuilder {
    starttls(server)
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(fast_retry())
}

fn simple_email(to: &str) -> Email {
    Email::builder()
        .to(to)
        .subject("Hello")
        .text("Hello there")
        .build()
        .unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..mail_connector::smtp::default_retry_policy()
    }
}

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
    transport
        .send(&simple_email("ann@example.org"))
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
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Tls,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(server.auths().is_empty(), "credentials sent without TLS");
    assert!(server.messages().is_empty());
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
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Tls,
                ..
            }
        ),
        "{error:?}"
    );
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

#[tokio::test]
async fn wrong_password_reports_the_fix_and_no_secret() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN"],
        ..ServerOptions::default()
    })
    .await;
    let secret = "wrong-pass-5f1e2d";
    let transport = starttls(&server)
        .basic_auth(USER, Secret::new(secret))
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Smtp { stage: SmtpStage::Auth, code: Some(535), enhanced_code: Some(e), .. } if e == "5.7.8"
        ),
        "{error:?}"
    );
    assert!(error.is_auth());
    assert!(!error.is_transient());
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.remedy().unwrap().contains("`password`"));
    assert_eq!(server.auths().len(), 1, "a 5xx must not be retried");
    let printed = format!("{error} {error:?} {transport:?} {:?}", error.remedy());
    assert!(!printed.contains(secret), "{printed}");
}

#[tokio::test]
async fn smtp_auth_disabled_for_the_tenant_names_set_casmailbox() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN"],
        users: vec![],
        auth_failure: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = basic_settings(&server).build().unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("Set-CASMailbox"), "{remedy}");
    assert!(
        remedy.contains("-SmtpClientAuthenticationDisabled $false"),
        "{remedy}"
    );
}

#[tokio::test]
async fn xoauth2_sends_the_exact_sasl_string() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN", "XOAUTH2"],
        tokens: vec!["token-1".into()],
        ..ServerOptions::default()
    })
    .await;
    let tokens = Arc::new(FakeTokens::new(&["token-1"]));
    let builder = starttls(&server).xoauth2(USER, tokens.clone());
    assert!(!format!("{builder:?}").contains("token-1"));
    let transport = builder.build().unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    let auths = server.auths();
    assert_eq!(auths.len(), 1);
    assert_eq!(auths[0].mechanism, "XOAUTH2");
    assert_eq!(
        auths[0].decoded,
        "user=no-reply@example.org\x01auth=Bearer token-1\x01\x01"
    );
    assert!(auths[0].accepted);
    assert!(tokens.invalidated().is_empty());
    assert!(!format!("{transport:?}").contains("token-1"));
}

#[tokio::test]
async fn xoauth2_535_invalidates_the_token_and_retries_once() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        tokens: vec!["fresh".into()],
        auth_failure: "535 5.7.3 Authentication unsuccessful".into(),
        ..ServerOptions::default()
    })
    .await;
    let tokens = Arc::new(FakeTokens::new(&["stale", "fresh"]));
    let transport = starttls(&server)
        .xoauth2(USER, tokens.clone())
        .build()
        .unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    assert_eq!(tokens.invalidated(), ["stale"]);
    let decoded: Vec<_> = server.auths().into_iter().map(|a| a.decoded).collect();
    assert_eq!(
        decoded,
        [
            "user=no-reply@example.org\x01auth=Bearer stale\x01\x01",
            "user=no-reply@example.org\x01auth=Bearer fresh\x01\x01",
        ]
    );

    // Refused again with the fresh token: one retry only, then the setup remedy.
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        auth_failure:
            "535 5.7.3 Authentication unsuccessful [SN4PR0601CA0002.namprd06.prod.outlook.com]"
                .into(),
        ..ServerOptions::default()
    })
    .await;
    let tokens = Arc::new(FakeTokens::new(&["bad-1", "bad-2", "bad-3"]));
    let transport = starttls(&server)
        .xoauth2(USER, tokens.clone())
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(server.auths().len(), 2);
    assert_eq!(tokens.invalidated(), ["bad-1"]);
    assert!(error.is_auth());
    let remedy = error.remedy().unwrap();
    for step in [
        "SMTP.SendAsApp",
        "New-ServicePrincipal",
        "Add-MailboxPermission",
    ] {
        assert!(remedy.contains(step), "{remedy}");
    }
    let printed = format!("{error} {error:?}");
    assert!(!printed.contains("bad-2"), "{printed}");
}

#[tokio::test]
async fn xoauth2_with_smtp_auth_disabled_does_not_burn_a_fresh_token() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        tokens: vec![],
        auth_failure: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is \
                       disabled for the Tenant."
            .into(),
        ..ServerOptions::default()
    })
    .await;
    let tokens = Arc::new(FakeTokens::new(&["token-1", "token-2"]));
    let transport = starttls(&server)
        .xoauth2(USER, tokens.clone())
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(server.auths().len(), 1, "a fresh token cannot fix 5.7.139");
    assert!(tokens.invalidated().is_empty());
    assert!(
        error.remedy().unwrap().contains("Set-CASMailbox"),
        "{error}"
    );
}

#[tokio::test]
async fn a_pooled_connection_is_replaced_when_the_token_changes() {
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["XOAUTH2"],
        tokens: vec!["token-1".into(), "token-2".into()],
        ..ServerOptions::default()
    })
    .await;
    let tokens = Arc::new(FakeTokens::new(&["token-1"]));
    let transport = starttls(&server)
        .xoauth2(USER, tokens.clone())
        .build()
        .unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    assert_eq!(server.connections(), 1, "same token: connection reused");
    tokens.rotate("token-2");
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    assert_eq!(server.connections(), 2);
    let last = server.auths().pop().unwrap();
    assert!(last.decoded.contains("Bearer token-2"));
    assert_eq!(server.messages().len(), 3);
}

#[tokio::test]
async fn connections_are_reused_across_sends() {
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = basic_settings(&server).build().unwrap();
    for _ in 0..5 {
        transport
            .send(&simple_email("ann@example.org"))
            .await
            .unwrap();
    }
    assert_eq!(server.messages().len(), 5);
    assert_eq!(server.connections(), 1);
    assert_eq!(server.auths().len(), 1);
}

#[tokio::test]
async fn a_connection_closed_by_the_server_is_replaced_transparently() {
    let server = TestServer::start(ServerOptions {
        close_after_message: true,
        ..ServerOptions::default()
    })
    .await;
    // No retries: the replacement must not depend on the retry loop.
    let transport = starttls(&server)
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(RetryPolicy {
            max_retries: 0,
            ..mail_connector::smtp::default_retry_policy()
        })
        .build()
        .unwrap();
    for _ in 0..3 {
        transport
            .send(&simple_email("ann@example.org"))
            .await
            .unwrap();
    }
    assert_eq!(server.messages().len(), 3);
    assert_eq!(server.connections(), 3);
    assert_eq!(transport.connections_opened(), 3);
}

#[tokio::test]
async fn a_4xx_reply_is_retried_then_accepted() {
    let server = TestServer::start(ServerOptions {
        transient_mail_failures: 2,
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    assert_eq!(server.mail_from_commands(), 3);
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_5xx_reply_is_not_retried_and_basic_auth_retirement_points_to_oauth() {
    let server = TestServer::start(ServerOptions {
        transient_mail_failures: 1,
        transient_reply: "550 5.7.30 Basic authentication is not supported for Client Submission."
            .into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(server.mail_from_commands(), 1);
    assert!(!error.is_transient());
    assert!(error.remedy().unwrap().contains("`oauth`"), "{error}");
}

#[tokio::test]
async fn refused_recipients_are_reported_exactly() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["nobody@example.org".into(), "ghost@example.org".into()],
        ..ServerOptions::default()
    })
    .await;
    let transport = basic_settings(&server).build().unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .to("nobody@example.org")
        .bcc("ghost@example.org")
        .bcc("bob@example.org")
        .subject("Hi")
        .build()
        .unwrap();
    let error = transport.send(&email).await.unwrap_err();
    let Error::PartialDelivery {
        delivered,
        not_sent,
        uncertain,
        source,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    let addresses = |r: &mut dyn Iterator<Item = &mail_connector::Recipient>| {
        r.map(|r| r.mailbox.address().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        addresses(&mut delivered.recipients()),
        ["ann@example.org", "bob@example.org"]
    );
    assert_eq!(
        addresses(&mut not_sent.iter()),
        ["nobody@example.org", "ghost@example.org"]
    );
    assert!(uncertain.is_empty());
    assert!(
        matches!(
            **source,
            Error::Smtp {
                stage: SmtpStage::Rcpt,
                code: Some(550),
                ..
            }
        ),
        "{source:?}"
    );
    assert_eq!(
        server.messages()[0].rcpt_to,
        ["ann@example.org", "bob@example.org"]
    );

    // Everyone refused: nothing is sent, and the refusal itself is the error.
    let email = Email::builder()
        .to("nobody@example.org")
        .to("ghost@example.org")
        .build()
        .unwrap();
    let error = transport.send(&email).await.unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Smtp { stage: SmtpStage::Rcpt, code: Some(550), message, .. }
                if message.contains("nobody@example.org")
        ),
        "{error:?}"
    );
    assert_eq!(server.messages().len(), 1);
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(!error.is_transient());
}

#[tokio::test]
async fn every_recipient_refused_temporarily_is_retried_as_a_whole() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["nobody@example.org".into()],
        refused_reply: "450 4.2.1 Mailbox busy".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&simple_email("nobody@example.org"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Rcpt,
                code: Some(450),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert_eq!(server.mail_from_commands(), 4, "retried up to max_attempts");
}

#[tokio::test]
async fn a_421_at_rcpt_ends_the_session_instead_of_refusing_the_recipient() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["nobody@example.org".into()],
        refused_reply: "421 4.3.2 Service not available, closing transmission channel".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = starttls(&server)
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(RetryPolicy {
            max_retries: 1,
            ..fast_retry()
        })
        .build()
        .unwrap();
    let email = Email::builder()
        .to("nobody@example.org")
        .to("ann@example.org")
        .build()
        .unwrap();
    let error = transport.send(&email).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Rcpt,
                code: Some(421),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    assert!(server.messages().is_empty(), "no DATA on a closing session");
    assert_eq!(server.connections(), 2, "a new connection for the retry");
}

#[tokio::test]
async fn a_4xx_reply_to_the_end_of_data_is_retried_and_delivered_once() {
    // Exchange answers `432 4.3.2` to the final `.`: an explicit refusal, safe to resend.
    let server = TestServer::start(ServerOptions {
        transient_data_failures: 2,
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    assert_eq!(server.rejected_data(), 2);
    assert_eq!(server.mail_from_commands(), 3);
    assert_eq!(server.messages().len(), 1, "accepted exactly once");
}

#[tokio::test]
async fn a_timeout_after_the_data_is_uncertain_and_not_retried() {
    let server = TestServer::start(ServerOptions {
        silent_after_data: true,
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server)
        .send_deadline(Duration::from_millis(1500))
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::Uncertain, "{error:?}");
    assert!(matches!(
        error,
        Error::Smtp {
            stage: SmtpStage::Data,
            ..
        }
    ));
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.mail_from_commands(), 1, "must not be retried");
}

#[tokio::test]
async fn refused_recipients_stay_not_sent_when_the_data_goes_unanswered() {
    let server = TestServer::start(ServerOptions {
        silent_after_data: true,
        refused: vec!["nobody@example.org".into()],
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server)
        .send_deadline(Duration::from_millis(1000))
        .build()
        .unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .to("nobody@example.org")
        .subject("Hi")
        .build()
        .unwrap();
    let error = transport.send(&email).await.unwrap_err();
    let Error::PartialDelivery {
        delivered,
        uncertain,
        not_sent,
        source,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(delivered.recipients().count(), 0);
    let addresses = |r: &[mail_connector::Recipient]| {
        r.iter()
            .map(|r| r.mailbox.address().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(addresses(uncertain), ["ann@example.org"]);
    assert_eq!(addresses(not_sent), ["nobody@example.org"]);
    assert!(
        matches!(
            **source,
            Error::Smtp {
                stage: SmtpStage::Data,
                ..
            }
        ),
        "{source:?}"
    );
    assert_eq!(error.delivery(), Delivery::Uncertain);
    assert!(!error.is_transient());
    assert_eq!(server.mail_from_commands(), 1, "must not be retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_sends_stay_within_the_connection_limit() {
    for limit in [3usize, 1] {
        let server = TestServer::start(ServerOptions::default()).await;
        let transport = Arc::new(
            starttls(&server)
                .basic_auth(USER, Secret::new(PASSWORD))
                .max_concurrency(limit)
                .build()
                .unwrap(),
        );
        let sends: Vec<_> = (0..50)
            .map(|i| {
                let transport = transport.clone();
                tokio::spawn(async move {
                    transport
                        .send(&simple_email(&format!("user{i}@example.org")))
                        .await
                })
            })
            .collect();
        for send in sends {
            send.await.unwrap().unwrap();
        }
        assert_eq!(server.messages().len(), 50);
        assert!(
            server.max_active() <= limit,
            "{} simultaneous connections with a limit of {limit}",
            server.max_active()
        );
        assert!(server.connections() <= limit);
        assert!(transport.connections_opened() <= limit as u64);
    }
}

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
    assert!(!report.to_string().contains("nope-4242"));
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
        .send_deadline(Duration::from_secs(5))
        .build()
        .unwrap();

    let started = std::time::Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(10), transport.check())
        .await
        .expect("check() must not hang")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{report}");
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
    let started = std::time::Instant::now();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{error}");
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Connect,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    assert!(error.remedy().unwrap().contains("TLS mode"), "{error}");
    assert_eq!(server.connections(), 3, "one for check, two attempts");
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

#[tokio::test]
async fn oauth_over_smtp_from_settings_uses_the_credentials_provider() {
    use httpmock::{Method::POST, MockServer};
    // Entra ID hands out token-1, token-2, …; the server accepts only token-2, so the first
    // login fails with 535, the provider's token is invalidated and a fresh one fetched.
    let entra = MockServer::start_async().await;
    let (fetches, responder) = support::numbered_tokens(3600);
    let token_mock = entra.mock(|when, then| {
        when.method(POST)
            .path(support::token_path(support::TENANT))
            .form_urlencoded_tuple("scope", "https://outlook.office365.com/.default")
            .form_urlencoded_tuple("client_secret", support::SECRET);
        then.respond_with(responder);
    });
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN", "XOAUTH2"],
        tokens: vec!["token-2".into()],
        auth_failure: "535 5.7.3 Authentication unsuccessful".into(),
        ..ServerOptions::default()
    })
    .await;
    let settings = settings_toml(
        &server,
        &format!(
            "auth_mode = \"oauth\"\ntransport = \"smtp\"\noauth_client_id = \"{}\"\n\
             client_secret = \"{}\"\ntenant_id = \"{}\"\nauthority_host = \"{}\"\n",
            support::CLIENT_ID,
            support::SECRET,
            support::TENANT,
            entra.base_url()
        ),
    );
    let transport = settings.build().unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    let decoded: Vec<_> = server.auths().into_iter().map(|a| a.decoded).collect();
    assert_eq!(
        decoded,
        [
            "user=no-reply@example.org\x01auth=Bearer token-1\x01\x01",
            "user=no-reply@example.org\x01auth=Bearer token-2\x01\x01",
        ]
    );
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The next send reuses the pooled, logged-in connection and the cached token.
    transport
        .send(&simple_email("bob@example.org"))
        .await
        .unwrap();
    token_mock.assert_calls(2);
    assert_eq!(server.messages().len(), 2);
    let printed = format!(
        "{:?}",
        settings
            .smtp_builder()
            .and_then(SmtpTransportBuilder::build)
            .unwrap()
    );
    assert!(
        !printed.contains(support::SECRET) && !printed.contains("token-2"),
        "{printed}"
    );
}

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
    let logged = logs.text();
    assert!(logged.contains("send failed"), "nothing captured: {logged}");
    for secret in [password, token, &b64(&blob), &b64(&plain), &b64(password)] {
        assert!(!printed.contains(secret), "`{secret}` leaked: {printed}");
        assert!(!logged.contains(secret), "`{secret}` logged: {logged}");
    }
    // The server did see them, and echoed them: the assertions above are not vacuous.
    let auths = server.auths();
    assert!(auths.iter().any(|a| a.decoded.contains(password)));
    assert!(auths.iter().any(|a| a.decoded == blob));
    assert!(login_server.auths()[0].decoded.contains(password));
    for error in [&basic_error, &login_error, &oauth_error] {
        assert!(error.to_string().contains("[redacted]"), "{error}");
    }
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

#[tokio::test]
async fn the_mailbox_is_the_envelope_sender_and_send_as_follows_the_policy() {
    let server = TestServer::start(ServerOptions::default()).await;
    let email = Email::builder()
        .from("Support <support@example.org>")
        .to("ann@example.org")
        .subject("Hi")
        .build()
        .unwrap();

    // From settings, another From needs `allow_send_as`, as with Graph.
    let refused = basic_settings(&server)
        .build()
        .unwrap()
        .send(&email)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("send-as"), "{refused}");
    assert!(server.messages().is_empty(), "refused before connecting");

    // Allowed: the From header is the email's, the envelope sender the mailbox.
    let mut settings = basic_settings(&server);
    settings.allow_send_as = true;
    let transport = settings.build().unwrap();
    transport.send(&email).await.unwrap();
    let received = server.messages().pop().unwrap();
    assert_eq!(received.mail_from, USER);
    let parsed = MessageParser::default().parse(&received.data).unwrap();
    assert_eq!(
        parsed.from().unwrap().first().unwrap().address(),
        Some("support@example.org")
    );

    let strict = starttls(&server)
        .basic_auth(USER, Secret::new(PASSWORD))
        .send_as(mail_connector::smtp::SendAsPolicy::MailboxOnly)
        .build()
        .unwrap();
    let error = strict.send(&email).await.unwrap_err();
    assert!(matches!(error, Error::InvalidMessage { .. }), "{error:?}");
    assert_eq!(server.messages().len(), 1, "refused before connecting");
    let own = Email::builder()
        .from(USER)
        .to("ann@example.org")
        .build()
        .unwrap();
    strict.send(&own).await.unwrap();
}

async fn run_mailctl(args: Vec<String>, config: &std::path::Path) -> (bool, String) {
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = mailctl()
            .args(&args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    })
    .await
    .unwrap()
}

fn write_config(dir: &std::path::Path, server: &TestServer, extra: &str) -> std::path::PathBuf {
    let path = dir.join("smtp.toml");
    std::fs::write(
        &path,
        format!(
            "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls_ca_file = {:?}\nuser_name = \"{USER}\"\n{extra}",
            server.port(),
            server.ca_file.path().display().to_string()
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn mailctl_sends_and_checks_with_basic_auth() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &server,
        &format!("auth_mode = \"basic\"\npassword = \"{PASSWORD}\"\n"),
    );
    let send: Vec<String> = [
        "send",
        "--to",
        "ann@example.org",
        "--subject",
        "Hi",
        "--text",
        "Hello",
    ]
    .map(String::from)
    .to_vec();
    let (ok, output) = run_mailctl(send, &config).await;
    assert!(ok, "{output}");
    assert_eq!(server.messages().len(), 1);
    let (ok, output) = run_mailctl(vec!["check".into()], &config).await;
    assert!(ok, "{output}");
    for step in ["connect", "tls", "ehlo", "auth", "quit"] {
        assert!(
            output
                .lines()
                .any(|l| l.starts_with(step) && l.contains(" ok ")),
            "{step}: {output}"
        );
    }
    assert!(!output.contains(PASSWORD), "{output}");
}

#[tokio::test]
async fn mailctl_sends_and_checks_with_oauth_over_smtp() {
    use httpmock::{Method::POST, MockServer};
    let entra = MockServer::start_async().await;
    let body = support::token_body("smtp-token", 3600);
    entra.mock(|when, then| {
        when.method(POST)
            .path(support::token_path(support::TENANT))
            .form_urlencoded_tuple("scope", "https://outlook.office365.com/.default");
        then.status(200).json_body(body);
    });
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["LOGIN", "XOAUTH2"],
        tokens: vec!["smtp-token".into()],
        ..ServerOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &server,
        &format!(
            "auth_mode = \"oauth\"\ntransport = \"smtp\"\noauth_client_id = \"{}\"\nclient_secret = \"{}\"\ntenant_id = \"{}\"\nauthority_host = \"{}\"\nclient_secret_expires = \"2099-12-31\"\n",
            support::CLIENT_ID,
            support::SECRET,
            support::TENANT,
            entra.base_url()
        ),
    );
    let send: Vec<String> = [
        "send",
        "--to",
        "ann@example.org",
        "--subject",
        "Hi",
        "--text",
        "Hello",
    ]
    .map(String::from)
    .to_vec();
    let (ok, output) = run_mailctl(send, &config).await;
    assert!(ok, "{output}");
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.auths()[0].mechanism, "XOAUTH2");
    let (ok, output) = run_mailctl(vec!["check".into()], &config).await;
    assert!(ok, "{output}");
    // The credential steps come first: the token and the client secret's expiry.
    for step in ["token", "secret"] {
        assert!(
            output
                .lines()
                .any(|l| l.starts_with(step) && l.contains(" ok ")),
            "{step}: {output}"
        );
    }
    assert!(
        output
            .lines()
            .any(|l| l.starts_with("auth") && l.contains(" ok ")),
        "{output}"
    );
    assert!(
        !output.contains(support::SECRET) && !output.contains("smtp-token"),
        "{output}"
    );
}
