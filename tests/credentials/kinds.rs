//! Basic and anonymous credentials, and what OAuth needs.

use httpmock::MockServer;
use mail_connector::{AuthMode, CheckStatus, ConnectorSettings, Secret};

use crate::support::*;

#[tokio::test]
async fn basic_and_anonymous_credentials() {
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(AuthMode::Basic);
    settings.user_name = Some("relay@contoso.com".into());
    settings.password = Some(Secret::new("hunter2-password"));
    let basic = settings.credentials().unwrap();
    assert!(!basic.is_oauth());
    let (user, password) = basic.user_password().unwrap();
    assert_eq!(
        (user, password.expose_secret()),
        ("relay@contoso.com", "hunter2-password")
    );
    let error = basic.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert!(error.to_string().contains("auth_mode"), "{error}");
    assert_eq!(
        basic.check_steps(GRAPH_SCOPE, &["Mail.Send"]).await[0].status,
        CheckStatus::Ok
    );

    settings.password = None;
    let error = settings.credentials().unwrap_err();
    assert!(error.to_string().contains("`password`"), "{error}");

    settings.auth_mode = Some(AuthMode::None);
    let anonymous = settings.credentials().unwrap();
    assert!(anonymous.user_password().is_none() && !anonymous.is_oauth());
}

#[test]
fn oauth_needs_a_secret_or_both_certificate_files() {
    let server = MockServer::start();
    let mut settings = secret_settings(&server, TENANT);
    settings.client_secret = None;
    let error = settings.validate().unwrap_err().to_string();
    assert!(
        error.contains("`client_secret`")
            && error.contains("`client_certificate_file`")
            && error.contains("`client_private_key_file`"),
        "{error}"
    );
    assert!(settings.credentials().is_err());

    settings.client_certificate_file = Some(fixture("test-client.pem"));
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("`client_private_key_file`"), "{error}");

    settings.client_private_key_file = Some(fixture("test-client.key"));
    settings.validate().unwrap();

    settings.client_private_key_file = Some(fixture("missing.key"));
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("missing.key"), "{error}");

    let from_env = ConnectorSettings::from_env_vars([
        (
            "MAIL_CONNECTOR_CLIENT_CERTIFICATE_FILE",
            "/etc/mail/cert.pem",
        ),
        (
            "MAIL_CONNECTOR_CLIENT_PRIVATE_KEY_FILE",
            "/etc/mail/key.pem",
        ),
        (
            "MAIL_CONNECTOR_OAUTH_SCOPE",
            "https://graph.microsoft.us/.default",
        ),
    ])
    .unwrap();
    assert_eq!(
        from_env.client_private_key_file.unwrap().to_str(),
        Some("/etc/mail/key.pem")
    );
    assert_eq!(
        from_env.oauth_scope.as_deref(),
        Some("https://graph.microsoft.us/.default")
    );
}
