//! Settings: TOML, JSON and environment; per-mode validation; the disabled connector.

use mail_connector::{
    AuthMode, Cloud, ConnectorSettings, Email, Error, MailTransport, SmtpTls, TransportKind,
};

use crate::support;
use crate::support::KNOWN_SECRET;
use crate::support::assert_no_secrets;

pub(super) const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub(super) const TENANT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

pub(super) fn problems(error: Error) -> Vec<(String, String)> {
    match error {
        Error::InvalidSettings { problems, .. } => {
            problems.into_iter().map(|p| (p.field, p.message)).collect()
        }
        other => panic!("expected InvalidSettings, got {other:?}"),
    }
}

pub(super) fn fields(error: Error) -> Vec<String> {
    problems(error).into_iter().map(|(f, _)| f).collect()
}

#[test]
fn every_key_loads_from_toml() {
    let toml = format!(
        r#"
        enabled = true
        auth_mode = "oauth"
        transport = "graph"
        user_name = "no-reply@contoso.com"
        oauth_client_id = "{CLIENT_ID}"
        client_secret = "{KNOWN_SECRET}"
        tenant_id = "{TENANT_ID}"
        client_secret_expires = 2027-06-30
        password = "{KNOWN_SECRET}"
        use_ssl = true
        smtp_host = "smtp.office365.com"
        smtp_port = 587
        smtp_tls = "starttls"
        recipient_limit = 25
        cloud = "us-gov"
        authority_host = "https://login.example"
        graph_endpoint = "https://graph.example"
        outbox_dir = "out"
        "#
    );
    let s = ConnectorSettings::from_toml_str(&toml).unwrap();
    assert!(s.enabled);
    assert_eq!(s.auth_mode, Some(AuthMode::OAuth));
    assert_eq!(s.transport, Some(TransportKind::Graph));
    assert_eq!(s.user_name.as_deref(), Some("no-reply@contoso.com"));
    assert_eq!(s.oauth_client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(
        s.client_secret.as_ref().unwrap().expose_secret(),
        KNOWN_SECRET
    );
    assert_eq!(s.client_secret_expires.unwrap().to_string(), "2027-06-30");
    assert_eq!(s.smtp_tls, Some(SmtpTls::Starttls));
    assert_eq!(s.smtp_port, Some(587));
    assert_eq!(s.recipient_limit, 25);
    assert_eq!(s.cloud, Cloud::UsGov);
    assert_eq!(s.authority_host(), "https://login.example");
    assert_eq!(s.graph_endpoint(), "https://graph.example");
    assert_eq!(s.outbox_dir.as_deref(), Some(std::path::Path::new("out")));
    // A quoted date works as well as a TOML date.
    let s = ConnectorSettings::from_toml_str("client_secret_expires = \"2027-01-31\"").unwrap();
    assert_eq!(s.client_secret_expires.unwrap().to_string(), "2027-01-31");
}

#[test]
fn defaults_match_the_admin_screen() {
    let s = ConnectorSettings::from_toml_str("").unwrap();
    assert!(s.enabled);
    assert_eq!(s.recipient_limit, 0);
    assert_eq!(s.cloud, Cloud::Global);
    assert_eq!(s.smtp_tls_mode(), SmtpTls::Starttls);
    assert_eq!(s.graph_endpoint(), "https://graph.microsoft.com");
    assert_eq!(s.authority_host(), "https://login.microsoftonline.com");
}

#[test]
fn loads_from_json() {
    let json = format!(
        r#"{{"auth_mode":"basic","user_name":"relay@contoso.com","password":"{KNOWN_SECRET}",
            "smtp_host":"mail.contoso.com","smtp_port":465,"use_ssl":true,"recipient_limit":3}}"#
    );
    let s = ConnectorSettings::from_json_str(&json).unwrap();
    assert_eq!(s.auth_mode, Some(AuthMode::Basic));
    assert_eq!(s.transport_kind(), TransportKind::Smtp);
    assert_eq!(s.smtp_tls_mode(), SmtpTls::Implicit);
    assert_eq!(s.password.as_ref().unwrap().expose_secret(), KNOWN_SECRET);
    assert!(s.validate().is_ok());
}

#[test]
fn loads_from_environment_variables() {
    let s = ConnectorSettings::from_env_vars([
        ("MAIL_CONNECTOR_ENABLED", "TRUE"),
        ("MAIL_CONNECTOR_AUTH_MODE", "OAuth"),
        ("MAIL_CONNECTOR_USER_NAME", "no-reply@contoso.com"),
        ("MAIL_CONNECTOR_OAUTH_CLIENT_ID", CLIENT_ID),
        ("MAIL_CONNECTOR_CLIENT_SECRET", KNOWN_SECRET),
        ("MAIL_CONNECTOR_TENANT_ID", "contoso.onmicrosoft.com"),
        ("MAIL_CONNECTOR_USE_SSL", "no"),
        ("MAIL_CONNECTOR_SMTP_PORT", "2525"),
        ("MAIL_CONNECTOR_RECIPIENT_LIMIT", "100"),
        ("MAIL_CONNECTOR_CLOUD", "china"),
        ("MAIL_CONNECTOR_CLIENT_SECRET_EXPIRES", "2027-12-01"),
        ("MAIL_CONNECTOR_CONFIG", "/ignored/by/settings.toml"),
        ("HOME", "/root"),
    ])
    .unwrap();
    assert_eq!(s.auth_mode, Some(AuthMode::OAuth));
    assert_eq!(s.use_ssl, Some(false));
    assert_eq!(s.smtp_port, Some(2525));
    assert_eq!(s.recipient_limit, 100);
    assert_eq!(s.cloud, Cloud::China);
    assert!(s.validate().is_ok(), "{:?}", s.validate());
}

#[test]
fn bad_environment_values_name_the_variable() {
    let error = ConnectorSettings::from_env_vars([
        ("MAIL_CONNECTOR_RECIPIENT_LIMIT", "ten"),
        ("MAIL_CONNECTOR_USE_SSL", "maybe"),
        // Unknown: warned about, not an error (tests/settings/compose.rs).
        ("MAIL_CONNECTOR_TENANT", "typo"),
    ])
    .unwrap_err();
    let found = problems(error);
    let text = format!("{found:?}");
    assert_eq!(found.len(), 2, "{text}");
    assert!(
        text.contains("MAIL_CONNECTOR_RECIPIENT_LIMIT` must be a whole number"),
        "{text}"
    );
    assert!(
        text.contains("MAIL_CONNECTOR_USE_SSL` must be true or false"),
        "{text}"
    );
    assert!(!text.contains("MAIL_CONNECTOR_TENANT`"), "{text}");
    // A secret set in the wrong variable is not echoed back.
    let error =
        ConnectorSettings::from_env_vars([("MAIL_CONNECTOR_SMTP_PORT", KNOWN_SECRET)]).unwrap_err();
    let text = format!("{error} {error:?}");
    assert_no_secrets(&text, &[KNOWN_SECRET]);
    assert!(text.contains("MAIL_CONNECTOR_SMTP_PORT"), "{text}");
    let error = ConnectorSettings::from_env_vars([("MAIL_CONNECTOR_AUTH_MODE", "kerberos")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("oauth, basic, none"), "{error}");
}

/// A variable whose value is no choice of its setting (`MAIL_CONNECTOR_AUTH_MODE=kerberos`)
/// is named with that setting, and the fix says which to correct: the environment has no
/// line and column, no double quotes to point to, as a file has.
#[test]
fn a_variable_with_a_value_not_among_the_choices_is_named_with_its_setting() {
    let file = ConnectorSettings::from_toml_str("user_name = \"no-reply@example.org\"").unwrap();
    let error = file
        .with_env_vars([
            ("MAIL_CONNECTOR_AUTH_MODE", "kerberos"),
            ("MAIL_CONNECTOR_SMTP_HOST", "smtp.example.org"),
            ("MAIL_CONNECTOR_CLOUD", KNOWN_SECRET),
        ])
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("`MAIL_CONNECTOR_AUTH_MODE`"), "{text}");
    assert!(text.contains("oauth, basic, none"), "{text}");
    assert!(text.contains("`MAIL_CONNECTOR_CLOUD`"), "{text}");
    assert!(!text.contains("SMTP_HOST"), "{text}");
    let remedy = error.remedy().unwrap();
    assert_eq!(remedy, "fix these settings: `auth_mode`, `cloud`");
    assert_no_secrets(&format!("{error} {error:?} {remedy}"), &[KNOWN_SECRET]);
}

#[test]
fn unknown_keys_and_wrong_types_in_files_are_named() {
    let error = ConnectorSettings::from_toml_str("tennant_id = \"x\"")
        .unwrap_err()
        .to_string();
    assert!(error.contains("tennant_id"), "{error}");
    let error = ConnectorSettings::from_toml_str("recipient_limit = \"ten\"")
        .unwrap_err()
        .to_string();
    assert!(error.contains("key `recipient_limit`"), "{error}");
    let error = ConnectorSettings::from_json_str("{\"cloud\": \"mars\"}")
        .unwrap_err()
        .to_string();
    assert!(error.contains("global, us-gov, us-dod, china"), "{error}");
    let error = ConnectorSettings::from_toml_str("client_secret_expires = \"31.12.2027\"")
        .unwrap_err()
        .to_string();
    assert!(error.contains("YYYY-MM-DD"), "{error}");
}

/// A JSON file's reader is not told to write TOML: the remedy of a file that cannot be read
/// holds for both formats (text in double quotes, only the documented keys).
#[test]
fn a_json_file_that_cannot_be_read_gets_no_toml_advice() {
    for error in [
        ConnectorSettings::from_json_str("{\"tennant_id\": \"x\"}").unwrap_err(),
        ConnectorSettings::from_json_str("{\"recipient_limit\": 5,}").unwrap_err(),
        ConnectorSettings::from_toml_str("tennant_id = \"x\"").unwrap_err(),
    ] {
        let remedy = error.remedy().expect("a remedy");
        assert!(!remedy.contains("key = value"), "{remedy}");
        assert!(remedy.contains("double quotes"), "{remedy}");
        assert!(remedy.contains("settings table"), "{remedy}");
    }
}

#[test]
fn files_load_by_extension_and_env_overrides_them() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("mail.toml");
    std::fs::write(&toml, "auth_mode = \"basic\"\nrecipient_limit = 7\n").unwrap();
    assert_eq!(
        ConnectorSettings::from_file(&toml).unwrap().recipient_limit,
        7
    );
    let json = dir.path().join("mail.json");
    std::fs::write(&json, "{\"recipient_limit\": 9}").unwrap();
    assert_eq!(
        ConnectorSettings::from_file(&json).unwrap().recipient_limit,
        9
    );
    let missing = ConnectorSettings::from_file(dir.path().join("none.toml")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing:?}");
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "auth_mode = ").unwrap();
    let error = ConnectorSettings::from_file(&broken)
        .unwrap_err()
        .to_string();
    assert!(error.contains("broken.toml"), "{error}");
}

#[tokio::test]
async fn a_disabled_connector_needs_nothing_and_sends_nothing() {
    let s = ConnectorSettings::from_toml_str("enabled = false\nauth_mode = \"oauth\"").unwrap();
    assert!(s.validate().is_ok());
    let transport = s.build().unwrap();
    let email = Email::builder().to("ann@example.org").build().unwrap();
    let error = transport.send(&email).await.unwrap_err();
    assert!(matches!(error, Error::Disabled), "{error:?}");
    assert!(error.to_string().contains("disabled"));
    assert!(error.remedy().unwrap().contains("enabled = true"));
    assert!(matches!(transport.check().await, Err(Error::Disabled)));
    assert!(s.summary().starts_with("disabled"));
}

/// Disabled, or writing to the outbox, settings send nothing — also through the builders a
/// caller configures further (`smtp_builder`, `graph_builder`, as `examples/smtp.rs` does),
/// which used to make a transport that sent for real.
#[cfg(all(feature = "smtp", feature = "graph"))]
#[tokio::test]
async fn the_transport_builders_send_nothing_when_disabled_or_writing_to_the_outbox() {
    use crate::support::smtp_server::{ServerOptions, TestServer};

    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let sending = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"basic\"\nuser_name = \"no-reply@example.org\"\npassword = \"correct horse\"\n\
         smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls_ca_file = {:?}\n",
        server.port(),
        server.ca_file.path().display().to_string(),
    ))
    .unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .subject("Staging")
        .build()
        .unwrap();
    // These settings do send, through the builder too.
    let smtp = sending.smtp_builder().unwrap().build().unwrap();
    smtp.send(&email).await.unwrap();
    assert_eq!(server.messages().len(), 1);

    let mut disabled = sending.clone();
    disabled.enabled = false;
    let mut outbox = sending.clone();
    outbox.outbox_dir = Some(dir.path().join("outbox"));
    for settings in [&disabled, &outbox] {
        if let Ok(builder) = settings.smtp_builder() {
            let sent = builder.build().unwrap().send(&email).await;
            panic!("{} made an SMTP transport: {sent:?}", settings.summary());
        }
    }
    assert_eq!(server.messages().len(), 1, "nothing more was sent");
    assert!(matches!(disabled.smtp_builder(), Err(Error::Disabled)));
    let error = outbox.smtp_builder().unwrap_err();
    let problems = problems(error);
    assert_eq!(problems[0].0, "outbox_dir");
    assert!(
        problems[0].1.contains("remove `outbox_dir` to send"),
        "{problems:?}"
    );

    // Graph alike, for settings that would build a Graph transport.
    let mut graph = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
         oauth_client_id = \"{CLIENT_ID}\"\nclient_secret = \"{KNOWN_SECRET}\"\n\
         tenant_id = \"{TENANT_ID}\""
    ))
    .unwrap();
    assert!(graph.graph_builder().is_ok());
    graph.enabled = false;
    assert!(matches!(graph.graph_builder(), Err(Error::Disabled)));
    graph.enabled = true;
    graph.outbox_dir = Some(dir.path().join("outbox"));
    assert_eq!(fields(graph.graph_builder().unwrap_err()), ["outbox_dir"]);
    // `build` still gives the outbox for them.
    graph.build().unwrap().send(&email).await.unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .count(),
        1
    );
}

#[cfg(feature = "graph")]
#[test]
fn oauth_settings_build_a_graph_transport_without_network() {
    let s = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\noauth_client_id = \"{CLIENT_ID}\"\nclient_secret = \"{KNOWN_SECRET}\"\ntenant_id = \"{TENANT_ID}\""
    ))
    .unwrap();
    assert!(s.build().is_ok());
    assert!(
        s.summary()
            .starts_with("Microsoft Graph at https://graph.microsoft.com as no-reply@contoso.com")
    );
}

#[tokio::test]
async fn outbox_settings_build_an_outbox_with_the_recipient_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = ConnectorSettings::default();
    s.outbox_dir = Some(dir.path().to_owned());
    s.user_name = Some("no-reply@contoso.com".into());
    s.recipient_limit = 2;
    let transport = s.build().unwrap();
    let report = transport
        .send(&support::email_to_many(3, 1, 1))
        .await
        .unwrap();
    assert_eq!(report.messages.len(), 3);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    assert!(s.summary().starts_with("outbox"));
}

#[test]
fn debug_and_errors_never_show_secrets() {
    let s = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"oauth\"\nclient_secret = \"{KNOWN_SECRET}\"\npassword = \"{KNOWN_SECRET}\""
    ))
    .unwrap();
    let debug = format!("{s:?} {s:#?}");
    assert_no_secrets(&debug, &[KNOWN_SECRET]);
    assert!(debug.contains("[redacted]"));
    let error = s.validate().unwrap_err();
    let printed = format!("{error} {error:?} {:?} {}", error.remedy(), s.summary());
    assert_no_secrets(&printed, &[KNOWN_SECRET]);
    // A password written into a host is shown by neither the summary nor `Debug`.
    for (field, url) in [
        (
            "graph_endpoint",
            "https://admin:hunter2-secret@graph.example",
        ),
        ("smtp_host", "admin:hunter2-secret@smtp.example"),
        // Characters that end a URL's host part, inside the password.
        (
            "graph_endpoint",
            "https://admin:hunter2-secret/x?y#z@graph.example",
        ),
        ("smtp_host", "admin:hunter2-secret/x?y#z@smtp.example"),
    ] {
        // Basic authentication goes by SMTP, OAuth by Graph.
        let s = ConnectorSettings::from_toml_str(&format!(
            "auth_mode = \"{}\"\n{field} = \"{url}\"",
            if field == "smtp_host" {
                "basic"
            } else {
                "oauth"
            }
        ))
        .unwrap();
        let error = s.validate().unwrap_err();
        let shown = format!("{} {s:?} {error} {error:?}", s.summary());
        assert_no_secrets(&shown, &["hunter2-secret"]);
        assert!(shown.contains("…@"), "{shown}");
        assert!(
            error.to_string().contains("user name or password"),
            "{error}"
        );
    }
    // A numeric password is taken as text; a mistyped one is not echoed.
    let s = ConnectorSettings::from_toml_str("password = 98765432").unwrap();
    assert_eq!(s.password.unwrap().expose_secret(), "98765432");
    let error = ConnectorSettings::from_json_str("{\"client_secret\": 1234.5678}").unwrap_err();
    assert_no_secrets(&error.to_string(), &["1234.5678"]);
    // A secret pasted into the wrong field is not echoed by parse errors either.
    let error = ConnectorSettings::from_toml_str(&format!("client_secret = [\"{KNOWN_SECRET}\"]"))
        .unwrap_err();
    assert_no_secrets(&format!("{error} {error:?}"), &[KNOWN_SECRET]);
}

/// `KEY=${UNSET}` in a compose file or a manifest sets an empty variable: it counts as
/// unset — no error for a number, no file value wiped — and text values lose the spaces and
/// line break a mounted file leaves, a secret only its line break.
#[test]
fn empty_variables_are_unset_and_values_are_trimmed() {
    let file = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"basic\"\nuser_name = \"no-reply@contoso.com\"\nsmtp_host = \"smtp.contoso.com\"\npassword = \"{KNOWN_SECRET}\""
    ))
    .unwrap();
    let s = file
        .with_env_vars([
            ("MAIL_CONNECTOR_PASSWORD", ""),
            ("MAIL_CONNECTOR_SMTP_PORT", ""),
            ("MAIL_CONNECTOR_USE_SSL", "  "),
            ("MAIL_CONNECTOR_AUTH_MODE", ""),
            ("MAIL_CONNECTOR_OUTBOX_DIR", ""),
            ("MAIL_CONNECTOR_SMTP_HOST", " mail.contoso.com\n"),
        ])
        .unwrap();
    assert_eq!(s.password.as_ref().unwrap().expose_secret(), KNOWN_SECRET);
    assert_eq!(s.smtp_port, None);
    assert_eq!(s.use_ssl, None);
    assert_eq!(s.auth_mode, Some(AuthMode::Basic));
    assert_eq!(s.outbox_dir, None);
    assert_eq!(s.smtp_host.as_deref(), Some("mail.contoso.com"));
    assert!(s.validate().is_ok(), "{:?}", s.validate());
    let s =
        ConnectorSettings::from_env_vars([("MAIL_CONNECTOR_PASSWORD", " pass word \r\n")]).unwrap();
    assert_eq!(s.password.unwrap().expose_secret(), " pass word ");
}

#[test]
fn out_of_range_numbers_in_the_environment_name_the_variable() {
    let error = ConnectorSettings::from_env_vars([("MAIL_CONNECTOR_SMTP_PORT", "70000")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("`MAIL_CONNECTOR_SMTP_PORT` must be a whole number from 0 to 65535"),
        "{error}"
    );
    let error =
        ConnectorSettings::from_env_vars([("MAIL_CONNECTOR_RECIPIENT_LIMIT", "5000000000")])
            .unwrap_err()
            .to_string();
    assert!(error.contains("MAIL_CONNECTOR_RECIPIENT_LIMIT"), "{error}");
}
