//! Settings → transport: what the built transport does with the settings' values.

#![cfg(feature = "smtp")]

use mail_connector::{ConnectorSettings, Email, MailTransport};

use crate::support::smtp_server::{ServerOptions, TestServer};

/// A User Name written with a display name (`No Reply <no-reply@example.org>`), which
/// validation accepts as the sender, logs in as the mailbox's address — not as the whole
/// text, which the server refused as a wrong user name or password — and sends as the
/// mailbox, with the name shown in `From`.
#[tokio::test]
async fn a_user_name_with_a_display_name_logs_in_as_its_address() {
    let server = TestServer::start(ServerOptions::default()).await;
    let settings = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"basic\"\nuser_name = \"No Reply <no-reply@example.org>\"\n\
         password = \"correct horse\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
         tls_ca_file = {:?}\n",
        server.port(),
        server.ca_file.path().display().to_string(),
    ))
    .unwrap();
    settings.validate().unwrap();
    let credentials = settings.credentials().unwrap();
    assert_eq!(
        credentials.user_password().map(|(user, _)| user),
        Some("no-reply@example.org")
    );
    let email = Email::builder()
        .to("ann@example.org")
        .subject("Display name")
        .text("Hello")
        .build()
        .unwrap();
    let sent = settings.build().unwrap().send(&email).await;
    let auths = server.auths();
    assert!(
        auths.iter().all(|auth| auth.accepted),
        "{sent:?}: {auths:?}"
    );
    sent.unwrap();
    assert!(
        auths[0].decoded.contains("no-reply@example.org") && !auths[0].decoded.contains("No Reply"),
        "{auths:?}"
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].mail_from, "no-reply@example.org");
    let data = String::from_utf8_lossy(&messages[0].data);
    assert!(
        data.contains("From: No Reply <no-reply@example.org>")
            || data.contains("From: \"No Reply\" <no-reply@example.org>"),
        "{data}"
    );
}

/// An SMTP relay by its IPv6 address — bare, or in brackets as in a URL — is a host, not a
/// host with a port: accepted, given to the transport without the brackets, and shown in
/// brackets before the port.
#[test]
fn an_ipv6_smtp_host_is_a_host() {
    for written in ["2001:db8::25", "[2001:db8::25]", "::1"] {
        let settings = ConnectorSettings::from_toml_str(&format!(
            "auth_mode = \"none\"\nuser_name = \"no-reply@example.org\"\n\
             smtp_host = \"{written}\"\nsmtp_port = 25\nuse_ssl = false\n"
        ))
        .unwrap();
        settings.validate().unwrap();
        let bare = written.trim_matches(['[', ']']);
        assert_eq!(settings.smtp_host(), Some(bare));
        assert!(
            settings
                .summary()
                .starts_with(&format!("SMTP [{bare}]:25 (none)")),
            "{}",
            settings.summary()
        );
        settings.build().unwrap();
    }
    // A host with a port is still refused, naming `smtp_port`.
    let settings = ConnectorSettings::from_toml_str(
        "auth_mode = \"none\"\nuser_name = \"no-reply@example.org\"\n\
         smtp_host = \"relay.example.org:25\"\n",
    )
    .unwrap();
    let text = settings.validate().unwrap_err().to_string();
    assert!(text.contains("put the port in `smtp_port`"), "{text}");
}

/// A `TransportBuilder` in a log shows its settings, secrets redacted, and whether the
/// caller gave a token provider — never the provider itself, whose own `Debug` may show its
/// credentials.
#[test]
fn a_transport_builder_shows_its_settings_and_whether_a_provider_was_given() {
    use mail_connector::{Credentials, Secret};

    use crate::support::{CLIENT_ID, KNOWN_SECRET, TENANT, assert_no_secrets};

    let settings = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
         client_secret = \"{KNOWN_SECRET}\"\n"
    ))
    .unwrap();
    let own = format!("{:?}", settings.builder());
    assert!(own.contains("own_token_provider: false"), "{own}");
    let provider = Credentials::client_secret(TENANT, CLIENT_ID, Secret::new(KNOWN_SECRET))
        .build()
        .unwrap();
    let given = format!("{:?}", settings.builder().token_provider(provider));
    assert!(given.contains("own_token_provider: true"), "{given}");
    for shown in [&own, &given] {
        assert!(shown.contains("no-reply@contoso.com"), "{shown}");
        assert_no_secrets(shown, &[KNOWN_SECRET]);
    }
}
