//! Each cloud has its own login host and Graph scope; scopes can be overridden.

use httpmock::Method::POST;
use httpmock::MockServer;
use mail_connector::{AuthMode, Cloud, ConnectorSettings};

use crate::support::*;

#[test]
fn each_cloud_has_its_graph_scope_and_login_host() {
    let cases = [
        (
            Cloud::Global,
            "https://graph.microsoft.com/.default",
            "https://login.microsoftonline.com",
        ),
        (
            Cloud::UsGov,
            "https://graph.microsoft.us/.default",
            "https://login.microsoftonline.us",
        ),
        (
            Cloud::UsDod,
            "https://dod-graph.microsoft.us/.default",
            "https://login.microsoftonline.us",
        ),
        (
            Cloud::China,
            "https://microsoftgraph.chinacloudapi.cn/.default",
            "https://login.partner.microsoftonline.cn",
        ),
    ];
    for (cloud, scope, login) in cases {
        let mut settings = ConnectorSettings::default();
        settings.auth_mode = Some(AuthMode::OAuth);
        settings.cloud = cloud;
        settings.tenant_id = Some(TENANT.into());
        settings.oauth_client_id = Some(CLIENT_ID.into());
        settings.client_secret = Some(SECRET.into());
        assert_eq!(settings.graph_scope(), scope, "{cloud}");
        let credentials = settings.credentials().unwrap();
        assert_eq!(
            credentials.token_endpoint().unwrap(),
            format!("{login}/{TENANT}/oauth2/v2.0/token"),
            "{cloud}"
        );
        assert_eq!(
            credentials.admin_consent_url().unwrap(),
            format!("{login}/{TENANT}/adminconsent?client_id={CLIENT_ID}")
        );
        // A proxy in front of Graph does not change the resource the token is for.
        settings.graph_endpoint = Some("https://graph-proxy.internal.example".into());
        assert_eq!(settings.graph_scope(), scope, "{cloud}");
    }
}

#[tokio::test]
async fn each_cloud_requests_its_own_scope() {
    let server = MockServer::start_async().await;
    for (i, cloud) in [Cloud::Global, Cloud::UsGov, Cloud::UsDod, Cloud::China]
        .into_iter()
        .enumerate()
    {
        let tenant = format!("cloud{i}.example.org");
        let mut settings = secret_settings(&server, &tenant);
        settings.cloud = cloud;
        let scope = format!("{}/.default", cloud.graph_endpoint());
        let mock = server
            .mock_async(|when, then| {
                when.method(POST)
                    .path(token_path(&tenant))
                    .form_urlencoded_tuple("scope", &scope);
                then.status(200).json_body(token_body("t", 3599));
            })
            .await;
        let credentials = settings.credentials().unwrap();
        credentials
            .access_token(&settings.graph_scope())
            .await
            .unwrap();
        assert_eq!(mock.calls_async().await, 1, "{cloud}");
    }
}

#[test]
fn scope_overrides_and_smtp_scope() {
    let mut settings = ConnectorSettings::default();
    assert_eq!(
        settings.smtp_scope(),
        "https://outlook.office365.com/.default"
    );
    settings.oauth_scope = Some("https://graph.microsoft.us/.default".into());
    assert_eq!(
        settings.graph_scope(),
        "https://graph.microsoft.us/.default"
    );
    assert_eq!(settings.smtp_scope(), "https://graph.microsoft.us/.default");
}
