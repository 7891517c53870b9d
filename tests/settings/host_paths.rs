//! A path in `authority_host` or `graph_endpoint`: the tenant or token path MSAL and the
//! portal write, or Graph Explorer's `/v1.0`, is refused before any request (the crate adds
//! both itself, so requests went to `…/{tenant}/{tenant}/…` or `…/v1.0/v1.0/…` and failed
//! far from the setting); a proxy's or gateway's own path prefix is taken as it is.

use mail_connector::ConnectorSettings;

use super::loading::{CLIENT_ID, TENANT_ID, problems};

/// The problems `validate` finds with Graph settings for `tenant` and `key = value`.
fn found(tenant: &str, key: &str, value: &str) -> Vec<(String, String)> {
    let text = format!(
        "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
         oauth_client_id = \"{CLIENT_ID}\"\nclient_secret = \"s\"\n\
         tenant_id = \"{tenant}\"\n{key} = \"{value}\"\n"
    );
    let settings = ConnectorSettings::from_toml_str(&text).unwrap();
    settings.validate().err().map(problems).unwrap_or_default()
}

#[test]
fn a_tenant_or_token_path_in_the_authority_host_is_refused() {
    let guid_path = format!("https://login.microsoftonline.com/{TENANT_ID}/");
    for (tenant, value) in [
        ("contoso.onmicrosoft.com", guid_path.as_str()),
        (
            "contoso.onmicrosoft.com",
            "https://login.microsoftonline.com/common",
        ),
        (
            "contoso.onmicrosoft.com",
            "https://login.microsoftonline.com/Organizations",
        ),
        (
            "contoso.onmicrosoft.com",
            "https://login.microsoftonline.com/consumers/",
        ),
        (
            "fabrikam.com",
            "https://login.microsoftonline.com/contoso.onmicrosoft.com",
        ),
        (
            "contoso.onmicrosoft.com",
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
        ),
        // Microsoft's own login hosts have no path of their own: any is a tenant.
        (
            "contoso.onmicrosoft.com",
            "https://login.microsoftonline.com/fabrikam.com",
        ),
        (
            "contoso.onmicrosoft.com",
            "https://login.microsoftonline.us/contoso.onmicrosoft.us",
        ),
        // Behind a proxy's own prefix, the tenant is still a tenant.
        (
            "contoso.onmicrosoft.com",
            "https://proxy.contoso.com/entra/common",
        ),
        (
            "fabrikam.com",
            "https://proxy.contoso.com/entra/contoso.onmicrosoft.com",
        ),
        (
            "fabrikam.com",
            "https://proxy.contoso.com/entra/Fabrikam.com/",
        ),
        (
            TENANT_ID,
            "https://proxy.contoso.com/entra/oauth2/v2.0/token",
        ),
    ] {
        let found = found(tenant, "authority_host", value);
        assert_eq!(found.len(), 1, "{value}: {found:?}");
        assert_eq!(found[0].0, "authority_host", "{value}");
        let message = &found[0].1;
        assert!(
            message.contains("the tenant goes in Tenant ID (`tenant_id`)"),
            "{message}"
        );
        assert!(
            message.contains("e.g. `https://login.microsoftonline.com`"),
            "{message}"
        );
        // The setting is the one to fix: not told to set itself over a variable.
        assert!(!message.contains("wins over the variable"), "{message}");
    }
}

#[test]
fn an_api_version_path_on_a_graph_host_is_refused() {
    for value in [
        "https://graph.microsoft.com/v1.0",
        "https://graph.microsoft.com/beta/",
        "https://graph.microsoft.us/v1.0/",
        "https://GRAPH.microsoft.com/v1.0/me/sendMail",
        // The crate adds `/v1.0` after any prefix: `…/v1.0/v1.0/…` is never meant.
        "https://proxy.contoso.com/graph/v1.0",
    ] {
        let found = found(TENANT_ID, "graph_endpoint", value);
        assert_eq!(found.len(), 1, "{value}: {found:?}");
        assert_eq!(found[0].0, "graph_endpoint", "{value}");
        let message = &found[0].1;
        assert!(message.contains("the crate adds `/v1.0`"), "{message}");
        assert!(
            message.contains("e.g. `https://graph.microsoft.com`"),
            "{message}"
        );
    }
}

/// Egress gateways route by the upstream host or a name of their own in the path; ADFS and
/// B2C authorities have their own shapes. None of these is a tenant or an API version.
#[test]
fn a_proxy_or_gateway_path_prefix_is_taken_as_it_is() {
    for (key, value) in [
        (
            "authority_host",
            "https://egress.corp.example/login.microsoftonline.com",
        ),
        ("authority_host", "https://egress.corp.example/aad/v2.0"),
        ("authority_host", "https://proxy.contoso.com/entra"),
        ("authority_host", "https://adfs.contoso.com/adfs"),
        ("authority_host", "https://contoso.b2clogin.com"),
        ("authority_host", "https://login.microsoftonline.com/"),
        ("graph_endpoint", "https://gw.corp.example/beta"),
        (
            "graph_endpoint",
            "https://egress.corp.example/graph.microsoft.com/",
        ),
        ("graph_endpoint", "https://proxy.contoso.com/graph/"),
        ("graph_endpoint", "https://graph.microsoft.com/"),
    ] {
        for tenant in ["contoso.onmicrosoft.com", TENANT_ID] {
            let found = found(tenant, key, value);
            assert!(found.is_empty(), "{value}: {found:?}");
        }
    }
}

/// SMTP with OAuth fetches its token from the authority host too, so a tenant path there is
/// refused as for Graph; with basic authentication the setting is unused and not checked.
#[test]
fn the_authority_host_is_checked_for_smtp_only_when_oauth_uses_it() {
    let common = "authority_host = \"https://login.microsoftonline.com/common\"";
    let smtp = "transport = \"smtp\"\nsmtp_host = \"smtp.office365.com\"\n\
                user_name = \"no-reply@contoso.com\"\n";
    let oauth = format!(
        "{smtp}auth_mode = \"oauth\"\noauth_client_id = \"{CLIENT_ID}\"\nclient_secret = \"s\"\n\
         tenant_id = \"{TENANT_ID}\"\n{common}\n"
    );
    let basic = format!("{smtp}auth_mode = \"basic\"\npassword = \"p\"\n{common}\n");
    let fields = |text: &str| -> Vec<String> {
        let settings = ConnectorSettings::from_toml_str(text).unwrap();
        let found = settings.validate().err().map(problems).unwrap_or_default();
        found.into_iter().map(|(field, _)| field).collect()
    };
    assert_eq!(fields(&oauth), ["authority_host"]);
    assert_eq!(fields(&basic), Vec::<String>::new());
}
