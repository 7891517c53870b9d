//! Issue 13: settings written back (`Serialize`, secrets redacted unless asked), settings
//! embedded as a table of a host's own file with environment overrides on top, unknown
//! `MAIL_CONNECTOR_*` variables warned about, unknown file keys refused with a did-you-mean.

use mail_connector::settings::SecretsIn;
use mail_connector::{AuthMode, Cloud, ConnectorSettings, Error, OAuthCredential, SmtpTls};

use crate::support::{KNOWN_SECRET, assert_no_secrets, capture_logs};

/// A value for every key of the settings table (as many as make sense together and apart).
fn every_key() -> String {
    format!(
        r#"
        enabled = false
        auth_mode = "oauth"
        transport = "smtp"
        user_name = "no-reply@contoso.com"
        oauth_client_id = "00000000-0000-0000-0000-000000000001"
        client_secret = "{KNOWN_SECRET}"
        tenant_id = "contoso.onmicrosoft.com"
        client_certificate_file = "/etc/mail/cert.pem"
        client_private_key_file = "/etc/mail/key.pem"
        oauth_credential = "certificate"
        client_secret_file = "/run/secrets/mail"
        managed_identity_client_id = "22222222-0000-0000-0000-000000000002"
        managed_identity_endpoint = "http://169.254.169.254/metadata/identity/oauth2/token"
        federated_token_file = "/var/run/token"
        oauth_scope = "https://outlook.office365.com/.default"
        client_secret_expires = 2027-06-30
        password = "{KNOWN_SECRET}-password"
        use_ssl = false
        smtp_host = "smtp.example.org"
        smtp_port = 2525
        smtp_tls = "implicit"
        smtp_allow_plaintext_credentials_dangerous = true
        recipient_limit = 25
        cloud = "us-gov"
        authority_host = "https://login.example"
        graph_endpoint = "https://graph.example"
        tls_ca_file = "/etc/mail/ca.pem"
        outbox_dir = "out"
        save_to_sent_items = false
        allow_send_as = true
        "#
    )
}

#[test]
fn settings_written_in_plain_read_back_equal() {
    let original = ConnectorSettings::from_toml_str(&every_key()).unwrap();
    let toml = original.to_toml_string(SecretsIn::Plain).unwrap();
    let from_toml = ConnectorSettings::from_toml_str(&toml).unwrap();
    let json = original.to_json_string(SecretsIn::Plain).unwrap();
    let from_json = ConnectorSettings::from_json_str(&json).unwrap();
    for again in [&from_toml, &from_json] {
        // Every key, secrets included, survives the trip.
        assert_eq!(
            again.to_json_value(SecretsIn::Plain).unwrap(),
            original.to_json_value(SecretsIn::Plain).unwrap()
        );
        assert_eq!(
            again.client_secret.as_ref().unwrap().expose_secret(),
            KNOWN_SECRET
        );
        assert!(!again.enabled);
        assert_eq!(again.auth_mode, Some(AuthMode::OAuth));
        assert_eq!(again.oauth_credential, Some(OAuthCredential::Certificate));
        assert_eq!(again.smtp_tls, Some(SmtpTls::Implicit));
        assert_eq!(again.cloud, Cloud::UsGov);
        assert_eq!(
            again.client_secret_expires.unwrap().to_string(),
            "2027-06-30"
        );
    }
    // Keys come in the order of the settings table, whatever the format.
    for text in [&toml, &json] {
        let enabled = text.find("enabled").unwrap();
        let auth_mode = text.find("auth_mode").unwrap();
        let allow_send_as = text.find("allow_send_as").unwrap();
        assert!(enabled < auth_mode && auth_mode < allow_send_as, "{text}");
    }
    // Unset keys are left out rather than written as empty values.
    let sparse = ConnectorSettings::default()
        .to_toml_string(SecretsIn::Plain)
        .unwrap();
    assert!(!sparse.contains("user_name"), "{sparse}");
    assert!(sparse.contains("enabled = true"), "{sparse}");
    let defaults = ConnectorSettings::from_toml_str(&sparse).unwrap();
    assert_eq!(
        defaults.to_json_value(SecretsIn::Plain).unwrap(),
        ConnectorSettings::default()
            .to_json_value(SecretsIn::Plain)
            .unwrap()
    );
}

#[test]
fn secrets_are_redacted_unless_asked_for_in_plain() {
    let settings = ConnectorSettings::from_toml_str(&every_key()).unwrap();
    let redacted = [
        settings.to_toml_string(SecretsIn::Redacted).unwrap(),
        settings.to_json_string(SecretsIn::Redacted).unwrap(),
        settings
            .to_json_value(SecretsIn::Redacted)
            .unwrap()
            .to_string(),
        // The derived `Serialize`, as a host's own configuration struct would use it.
        serde_json::to_string(&settings).unwrap(),
        toml::to_string(&settings).unwrap(),
    ];
    for text in &redacted {
        assert_no_secrets(text, &[KNOWN_SECRET]);
        assert_eq!(text.matches("[redacted]").count(), 2, "{text}");
    }
    // A plain form happened in between: the redacted form is still redacted afterwards.
    assert!(
        settings
            .to_toml_string(SecretsIn::Plain)
            .unwrap()
            .contains(KNOWN_SECRET)
    );
    let again = serde_json::to_string(&settings).unwrap();
    assert_no_secrets(&again, &[KNOWN_SECRET]);
    assert_eq!(again.matches("[redacted]").count(), 2, "{again}");

    // A redacted file read back keeps the placeholders for the environment to replace;
    // left without a variable they are refused, naming the key and the variable — once the
    // connector is enabled: a disabled one needs no secret (these settings are disabled).
    let read_back = ConnectorSettings::from_toml_str(&redacted[0]).unwrap();
    assert!(!read_back.enabled);
    read_back
        .clone()
        .with_env_vars([("PATH", "/usr/bin")])
        .unwrap();
    let error = read_back
        .with_env_vars([("MAIL_CONNECTOR_ENABLED", "true")])
        .unwrap_err()
        .to_string();
    for name in [
        "`client_secret`",
        "`MAIL_CONNECTOR_CLIENT_SECRET`",
        "`password`",
        "`MAIL_CONNECTOR_PASSWORD`",
    ] {
        assert!(error.contains(name), "{name} missing from {error}");
    }
}

#[test]
fn a_table_of_the_hosts_own_toml_file_with_environment_overrides() {
    let app: toml::Table = toml::from_str(
        r#"
        [server]
        port = 8080

        [mail]
        auth_mode = "basic"
        user_name = "no-reply@example.org"
        smtp_host = "smtp.example.org"
        recipient_limit = 10
        client_secret_expires = 2027-06-30
        "#,
    )
    .unwrap();
    let mail = app["mail"].clone();
    let settings = ConnectorSettings::from_toml_value(mail)
        .unwrap()
        .with_env_vars([
            ("MAIL_CONNECTOR_PASSWORD", KNOWN_SECRET),
            ("MAIL_CONNECTOR_RECIPIENT_LIMIT", "50"),
            ("MAIL_CONNECTOR_SMTP_PORT", "465"),
            ("PATH", "/usr/bin"),
        ])
        .unwrap();
    assert_eq!(settings.auth_mode, Some(AuthMode::Basic));
    assert_eq!(settings.smtp_host.as_deref(), Some("smtp.example.org"));
    assert_eq!(settings.recipient_limit, 50, "the environment wins");
    assert_eq!(settings.smtp_port(), 465);
    assert_eq!(settings.smtp_tls_mode(), SmtpTls::Implicit);
    assert_eq!(settings.password.unwrap().expose_secret(), KNOWN_SECRET);
    assert_eq!(
        settings.client_secret_expires.unwrap().to_string(),
        "2027-06-30"
    );

    // Nothing to override: the same settings.
    let none: [(&str, &str); 0] = [];
    let same = ConnectorSettings::from_toml_value(app["mail"].clone())
        .unwrap()
        .with_env_vars(none)
        .unwrap();
    assert_eq!(same.recipient_limit, 10);
}

#[test]
fn a_member_of_the_hosts_own_json_document_and_a_field_of_its_config_struct() {
    let app: serde_json::Value = serde_json::json!({
        "listen": "0.0.0.0:8080",
        "mail": { "auth_mode": "oauth", "user_name": "no-reply@contoso.com", "cloud": "china" }
    });
    let settings = ConnectorSettings::from_json_value(app["mail"].clone())
        .unwrap()
        .with_env_vars([("MAIL_CONNECTOR_CLOUD", "us-dod")])
        .unwrap();
    assert_eq!(settings.cloud, Cloud::UsDod);
    assert_eq!(settings.user_name.as_deref(), Some("no-reply@contoso.com"));

    // A host that deserializes its whole configuration, settings included, with serde.
    #[derive(serde::Deserialize)]
    struct AppConfig {
        #[allow(dead_code)]
        listen: String,
        mail: ConnectorSettings,
    }
    let config: AppConfig = serde_json::from_value(app).unwrap();
    let mail = config
        .mail
        .with_env_vars([("MAIL_CONNECTOR_USER_NAME", "alerts@contoso.com")])
        .unwrap();
    assert_eq!(mail.user_name.as_deref(), Some("alerts@contoso.com"));
    assert_eq!(mail.cloud, Cloud::China);

    // An override of the wrong type names the variable.
    let error = ConnectorSettings::default()
        .with_env_vars([("MAIL_CONNECTOR_SMTP_PORT", "submission")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("MAIL_CONNECTOR_SMTP_PORT"), "{error}");
    // Not a table at all.
    let error = ConnectorSettings::from_json_value(serde_json::json!([1, 2]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("expected a table"), "{error}");
}

#[test]
fn an_unknown_environment_variable_is_warned_about_not_fatal() {
    let (logs, _guard) = capture_logs();
    let settings = ConnectorSettings::from_env_vars([
        ("MAIL_CONNECTOR_TENNANT_ID", KNOWN_SECRET),
        ("MAIL_CONNECTOR_RECIPIENT_LIMIT", "3"),
    ])
    .unwrap();
    assert_eq!(settings.recipient_limit, 3);
    let settings = ConnectorSettings::default()
        .with_env_vars([("MAIL_CONNECTOR_COLOUR_SCHEME", "dark")])
        .unwrap();
    assert!(settings.enabled);

    let text = logs.text();
    let warning = text
        .lines()
        .find(|line| line.contains("MAIL_CONNECTOR_TENNANT_ID"))
        .unwrap_or_else(|| panic!("no warning about the variable in:\n{text}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("did you mean `MAIL_CONNECTOR_TENANT_ID`?"),
        "{warning}"
    );
    let far = text
        .lines()
        .find(|line| line.contains("MAIL_CONNECTOR_COLOUR_SCHEME"))
        .unwrap_or_else(|| panic!("no warning about the variable in:\n{text}"));
    assert!(
        far.contains("is ignored") && !far.contains("did you mean"),
        "{far}"
    );
    // The variable's value may be a secret: never logged.
    assert_no_secrets(&text, &[KNOWN_SECRET]);
}

#[test]
fn an_unknown_file_key_is_refused_with_a_did_you_mean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.toml");
    std::fs::write(&path, "user_name = \"a@example.org\"\nsmtp_hots = \"x\"\n").unwrap();
    let errors: Vec<Error> = vec![
        ConnectorSettings::from_toml_str("tennant_id = \"x\"").unwrap_err(),
        ConnectorSettings::from_json_str("{\"tennant_id\": \"x\"}").unwrap_err(),
        ConnectorSettings::from_toml_value(toml::Value::Table(
            toml::from_str("tennant_id = \"x\"").unwrap(),
        ))
        .unwrap_err(),
        ConnectorSettings::from_json_value(serde_json::json!({ "tennant_id": "x" })).unwrap_err(),
    ];
    for error in errors {
        let text = error.to_string();
        assert!(matches!(error, Error::InvalidSettings { .. }), "{error:?}");
        assert!(
            text.contains("unknown field `tennant_id`; did you mean `tenant_id`?"),
            "{text}"
        );
    }
    let text = ConnectorSettings::from_file(&path).unwrap_err().to_string();
    assert!(text.contains("did you mean `smtp_host`?"), "{text}");
    assert!(text.contains("line 2"), "{text}");
    // Nothing near: the list of known keys instead.
    let text = ConnectorSettings::from_toml_str("zzzzzzzzzz = 1")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("expected one of") && text.contains("`tenant_id`"),
        "{text}"
    );
}

/// A key in another case or with `-` for `_` (as other tools' TOML has it) is refused with
/// the key meant, not only with the list of every key: the name itself, not shaped like a
/// settings key, stays hidden (it could be anything), the suggestion is a known key.
#[test]
fn a_key_in_another_case_or_with_hyphens_gets_a_did_you_mean() {
    for (key, meant) in [
        ("Tenant_ID", "tenant_id"),
        ("SMTP_HOST", "smtp_host"),
        ("smtp-host", "smtp_host"),
        ("client-secret", "client_secret"),
        ("Recipient-Limit", "recipient_limit"),
    ] {
        for error in [
            ConnectorSettings::from_toml_str(&format!("{key} = \"x\"")).unwrap_err(),
            ConnectorSettings::from_json_str(&format!("{{\"{key}\": \"x\"}}")).unwrap_err(),
        ] {
            let text = error.to_string();
            assert!(
                text.contains(&format!("; did you mean `{meant}`?")),
                "{key}: {text}"
            );
            assert!(!text.contains("expected one of"), "{key}: {text}");
        }
    }
}

/// A longer key may be further off and still be the one meant: a third of its letters may
/// differ (`authority_url`, four letters from `authority_host`).
#[test]
fn a_long_key_four_letters_off_gets_a_did_you_mean() {
    let text = ConnectorSettings::from_toml_str("authority_url = \"https://login.example\"")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("unknown field `authority_url`; did you mean `authority_host`?"),
        "{text}"
    );
}

/// TOML and JSON hold text: a path that is not UTF-8 cannot be written, and says so.
#[cfg(unix)]
#[test]
fn a_path_that_is_not_text_cannot_be_written_but_takes_overrides() {
    use std::os::unix::ffi::OsStrExt;
    let mut settings = ConnectorSettings::default();
    settings.outbox_dir = Some(std::ffi::OsStr::from_bytes(b"/tmp/out\xff").into());
    for error in [
        settings.to_toml_string(SecretsIn::Redacted).unwrap_err(),
        settings.to_json_string(SecretsIn::Plain).unwrap_err(),
    ] {
        let text = error.to_string();
        assert!(text.contains("cannot write the settings"), "{text}");
        assert!(text.contains("UTF-8"), "{text}");
    }
    // Environment overrides need no writing: the path is kept as it is.
    let overridden = settings
        .clone()
        .with_env_vars([("MAIL_CONNECTOR_RECIPIENT_LIMIT", "7")])
        .unwrap();
    assert_eq!(overridden.recipient_limit, 7);
    assert_eq!(overridden.outbox_dir, settings.outbox_dir);
}

/// A value of the wrong type is named by its key from every source: a TOML or JSON text or
/// file, and a host's own TOML or JSON value. The value itself is never quoted (it may be
/// a secret). serde_json's own message says only what it expected.
#[test]
fn a_wrongly_typed_value_is_named_by_its_key_wherever_the_settings_come_from() {
    let dir = tempfile::tempdir().unwrap();
    let json_file = dir.path().join("mail.json");
    let toml_file = dir.path().join("mail.toml");
    for (key, toml_value, json_value) in [
        ("smtp_port", "\"port-abc\"", serde_json::json!("port-abc")),
        ("password", "true", serde_json::json!(true)),
        (
            "recipient_limit",
            "\"limit-abc\"",
            serde_json::json!("limit-abc"),
        ),
        (
            "tenant_id",
            "[\"tenant-abc\"]",
            serde_json::json!(["tenant-abc"]),
        ),
    ] {
        let toml_text = format!("user_name = \"a@contoso.com\"\n{key} = {toml_value}\n");
        let json = serde_json::json!({ "user_name": "a@contoso.com", key: json_value });
        std::fs::write(&toml_file, &toml_text).unwrap();
        std::fs::write(&json_file, json.to_string()).unwrap();
        let errors = [
            ConnectorSettings::from_toml_str(&toml_text).unwrap_err(),
            ConnectorSettings::from_json_str(&json.to_string()).unwrap_err(),
            ConnectorSettings::from_file(&toml_file).unwrap_err(),
            ConnectorSettings::from_file(&json_file).unwrap_err(),
            ConnectorSettings::from_toml_value(toml::from_str(&toml_text).unwrap()).unwrap_err(),
            ConnectorSettings::from_json_value(json.clone()).unwrap_err(),
        ];
        for error in errors {
            let text = error.to_string();
            assert!(matches!(error, Error::InvalidSettings { .. }), "{error:?}");
            assert!(text.contains(&format!("key `{key}`: invalid")), "{text}");
            assert!(!text.contains("abc"), "{text}");
        }
    }
    // JSON text keeps its line and column besides.
    let text = ConnectorSettings::from_json_str("{\n  \"smtp_port\": true\n}")
        .unwrap_err()
        .to_string();
    assert!(text.contains("key `smtp_port`: invalid type"), "{text}");
    assert!(text.contains("line 2"), "{text}");
    // Anything after the object is still refused.
    let text = ConnectorSettings::from_json_str("{\"smtp_port\": 25} x")
        .unwrap_err()
        .to_string();
    assert!(text.contains("trailing characters"), "{text}");
}

/// A bare TOML date is read by the date field alone, from a file and from a host's TOML
/// value alike: a text key refuses it, naming the key, rather than take the date's text in
/// one place and not the other.
#[test]
fn a_bare_toml_date_is_a_date_only_where_a_date_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mail.toml");
    let text = "tenant_id = 2026-01-01\n";
    std::fs::write(&file, text).unwrap();
    for error in [
        ConnectorSettings::from_file(&file).unwrap_err(),
        ConnectorSettings::from_toml_str(text).unwrap_err(),
        ConnectorSettings::from_toml_value(toml::from_str(text).unwrap()).unwrap_err(),
    ] {
        let text = error.to_string();
        assert!(text.contains("key `tenant_id`: invalid type"), "{text}");
    }
    let text = "client_secret_expires = 2027-06-30\n";
    std::fs::write(&file, text).unwrap();
    for settings in [
        ConnectorSettings::from_file(&file).unwrap(),
        ConnectorSettings::from_toml_str(text).unwrap(),
        ConnectorSettings::from_toml_value(toml::from_str(text).unwrap()).unwrap(),
    ] {
        let expires = settings.client_secret_expires.map(|date| date.to_string());
        assert_eq!(expires.as_deref(), Some("2027-06-30"));
    }
}
