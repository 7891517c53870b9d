//! Issue 13 review: settings written with `SecretsIn::Redacted` stored next to the code, the
//! secret supplied by `MAIL_CONNECTOR_*`; and URL settings that carry credentials.

use mail_connector::settings::SecretsIn;
use mail_connector::{ConnectorSettings, Error};
#[cfg(feature = "smtp")]
use mail_connector::{Email, MailTransport};

#[cfg(feature = "smtp")]
use crate::support::smtp_server::{ServerOptions, TestServer};
use crate::support::{KNOWN_SECRET, assert_no_secrets};

#[cfg(feature = "smtp")]
const PASSWORD: &str = "correct horse";

/// Basic-auth settings for the loopback SMTP server, with its password.
#[cfg(feature = "smtp")]
fn basic_settings(server: &TestServer) -> ConnectorSettings {
    ConnectorSettings::from_toml_str(&format!(
        "enabled = true\nauth_mode = \"basic\"\nuser_name = \"no-reply@example.org\"\n\
         password = \"{PASSWORD}\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
         tls_ca_file = {:?}\n",
        server.port(),
        server.ca_file.path().display().to_string(),
    ))
    .unwrap()
}

#[cfg(feature = "smtp")]
fn email() -> Email {
    Email::builder()
        .to("ann@example.org")
        .subject("Redacted settings")
        .text("Hello")
        .build()
        .unwrap()
}

/// The redacted settings as a TOML file, a JSON file and a JSON value.
fn redacted_forms(settings: &ConnectorSettings, dir: &std::path::Path) -> Vec<ConnectorSettings> {
    let toml = dir.join("mail.toml");
    std::fs::write(&toml, settings.to_toml_string(SecretsIn::Redacted).unwrap()).unwrap();
    let json = dir.join("mail.json");
    std::fs::write(&json, settings.to_json_string(SecretsIn::Redacted).unwrap()).unwrap();
    let value = settings.to_json_value(SecretsIn::Redacted).unwrap();
    vec![
        ConnectorSettings::from_file(&toml).unwrap(),
        ConnectorSettings::from_file(&json).unwrap(),
        ConnectorSettings::from_json_value(value).unwrap(),
    ]
}

#[cfg(feature = "smtp")]
#[tokio::test]
async fn a_redacted_file_loads_and_sends_with_the_secret_from_the_environment() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = basic_settings(&server);
    let forms = redacted_forms(&settings, dir.path());
    let count = forms.len();
    for form in forms {
        let loaded = form
            .with_env_vars([("MAIL_CONNECTOR_PASSWORD", PASSWORD)])
            .unwrap();
        loaded.build().unwrap().send(&email()).await.unwrap();
    }
    // Each one logged in with the password from the environment, and sent.
    assert_eq!(server.messages().len(), count);
    assert!(server.auths().iter().all(|auth| auth.accepted));
}

#[test]
fn a_redacted_file_without_the_variable_names_the_key_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ConnectorSettings::from_toml_str(
        "enabled = true\nauth_mode = \"basic\"\nuser_name = \"no-reply@example.org\"\n\
         smtp_host = \"smtp.example.org\"\n",
    )
    .unwrap();
    settings.password = Some(mail_connector::Secret::new(KNOWN_SECRET));
    let unrelated = [("MAIL_CONNECTOR_RECIPIENT_LIMIT", "3")];
    for form in redacted_forms(&settings, dir.path()) {
        for error in [
            form.clone().with_env_vars(unrelated).unwrap_err(),
            form.validate().unwrap_err(),
            form.build().err().expect("a placeholder cannot build"),
        ] {
            let text = format!("{error} {error:?} {:?}", error.remedy());
            assert!(text.contains("`password`"), "{text}");
            assert!(text.contains("`MAIL_CONNECTOR_PASSWORD`"), "{text}");
            assert_no_secrets(&text, &[KNOWN_SECRET]);
        }
    }
}

#[test]
fn urls_with_credentials_are_refused_naming_the_field_and_never_shown() {
    let user_info = format!("mail-admin:{KNOWN_SECRET}@");
    let oauth = |extra: &str| {
        ConnectorSettings::from_toml_str(&format!(
            "enabled = true\nauth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
             oauth_client_id = \"00000000-0000-0000-0000-000000000001\"\n\
             tenant_id = \"contoso.onmicrosoft.com\"\nclient_secret = \"s\"\n{extra}\n"
        ))
        .unwrap()
    };
    let cases = [
        (
            "graph_endpoint",
            oauth(&format!(
                "graph_endpoint = \"https://{user_info}graph.example\""
            )),
        ),
        (
            "authority_host",
            oauth(&format!(
                "authority_host = \"https://{user_info}login.example\""
            )),
        ),
        (
            "managed_identity_endpoint",
            oauth(&format!(
                "oauth_credential = \"managed-identity\"\n\
                 managed_identity_endpoint = \"http://{user_info}169.254.169.254/token\""
            )),
        ),
    ];
    for (field, settings) in cases {
        let errors = [
            settings.validate().unwrap_err(),
            settings
                .build()
                .err()
                .expect("credentials in a URL cannot build"),
        ];
        for error in &errors {
            let text = format!("{error} {error:?} {:?}", error.remedy());
            assert!(text.contains(&format!("`{field}`")), "{text}");
            assert!(text.contains("remove the credentials"), "{text}");
            assert_no_secrets(&text, &[KNOWN_SECRET, "mail-admin"]);
        }
        let Error::InvalidSettings { problems, .. } = &errors[0] else {
            panic!("{:?}", errors[0]);
        };
        assert!(problems.iter().any(|p| p.field == field), "{problems:?}");
        for written in [
            settings.to_toml_string(SecretsIn::Redacted).unwrap(),
            settings.to_json_string(SecretsIn::Redacted).unwrap(),
            format!("{settings:?}"),
        ] {
            assert_no_secrets(&written, &[KNOWN_SECRET]);
        }
    }
}

/// A host's `[mail]` table, parsed with the re-exported `toml`, written redacted: the
/// environment supplies the secret (`from_toml_value(..).with_env()`).
#[test]
fn a_redacted_toml_table_of_the_hosts_file_takes_the_secret_from_the_environment() {
    use mail_connector::toml;
    let written = {
        let mut settings = ConnectorSettings::default();
        settings.client_secret = Some(mail_connector::Secret::new(KNOWN_SECRET));
        settings
            .to_toml_string(mail_connector::SecretsIn::Redacted)
            .unwrap()
    };
    assert_no_secrets(&written, &[KNOWN_SECRET]);
    assert!(
        written.contains("client_secret = \"[redacted]\""),
        "{written}"
    );
    let app: toml::Table =
        toml::from_str(&format!("[server]\nport = 1\n\n[mail]\n{written}")).unwrap();
    let mail = app["mail"].clone();
    let settings = ConnectorSettings::from_toml_value(mail.clone())
        .unwrap()
        .with_env_vars([("MAIL_CONNECTOR_CLIENT_SECRET", "from-the-environment")])
        .unwrap();
    assert_eq!(
        settings.client_secret.unwrap().expose_secret(),
        "from-the-environment"
    );
    let error = ConnectorSettings::from_toml_value(mail)
        .unwrap()
        .with_env_vars([("MAIL_CONNECTOR_PASSWORD", "unrelated")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("`client_secret`"), "{error}");
    assert!(error.contains("`MAIL_CONNECTOR_CLIENT_SECRET`"), "{error}");
}

/// Every redacted way of writing the settings — the `to_*` forms, and the derived
/// `Serialize` a host uses when the settings are a field of its own configuration — leaves
/// out a `user:password@` in a host setting, `smtp_host` included, as `Debug` does.
#[test]
fn hosts_with_credentials_are_written_without_them() {
    let user_info = format!("mail-admin:{KNOWN_SECRET}@");
    let settings = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"basic\"\nuser_name = \"no-reply@example.org\"\n\
         smtp_host = \"{user_info}smtp.example.org\"\n\
         graph_endpoint = \"https://{user_info}graph.example\"\n\
         authority_host = \"https://{user_info}login.example\"\n\
         managed_identity_endpoint = \"http://{user_info}169.254.169.254/token\"\n"
    ))
    .unwrap();
    for written in [
        settings.to_toml_string(SecretsIn::Redacted).unwrap(),
        settings.to_json_string(SecretsIn::Redacted).unwrap(),
        settings
            .to_json_value(SecretsIn::Redacted)
            .unwrap()
            .to_string(),
        serde_json::to_string(&settings).unwrap(),
        format!("{settings:?}"),
        settings.summary(),
    ] {
        assert_no_secrets(&written, &[KNOWN_SECRET, "mail-admin"]);
        assert!(written.contains("…@smtp.example.org"), "{written}");
    }
    // In plain, as they are: for the protected place where the secrets belong.
    let plain = settings.to_json_value(SecretsIn::Plain).unwrap();
    assert_eq!(
        plain["smtp_host"],
        format!("{user_info}smtp.example.org").as_str()
    );
    assert_eq!(
        plain["graph_endpoint"],
        format!("https://{user_info}graph.example").as_str()
    );
}
