//! Settings validation per Authentication Mode and transport: every missing field at once,
//! values of the wrong shape, and combinations that cannot work — each named, with its fix.

use mail_connector::ConnectorSettings;

use super::loading::{CLIENT_ID, TENANT_ID, fields, problems};
use crate::support::KNOWN_SECRET;
use crate::support::assert_no_secrets;

#[test]
fn oauth_reports_every_missing_field_at_once() {
    let s = ConnectorSettings::from_toml_str("auth_mode = \"oauth\"").unwrap();
    let found = problems(s.validate().unwrap_err());
    let names: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        ["user_name", "oauth_client_id", "tenant_id", "client_secret"]
    );
    let text: Vec<&str> = found.iter().map(|(_, m)| m.as_str()).collect();
    assert!(
        text.contains(&"OAuth Client ID (`oauth_client_id`) is required when Authentication Mode is OAuth: copy the Application (client) ID from the app registration's Overview page"),
        "{text:?}"
    );
    assert!(text[3].contains("Value (not its Secret ID)"), "{}", text[3]);
    // `build` reports the same.
    assert_eq!(fields(s.build().err().unwrap()), names);
}

/// The Secret ID (a GUID) pasted where the secret's Value belongs is caught before any
/// request, without showing it; a real Value passes.
#[test]
fn a_secret_id_pasted_as_the_secret_is_named() {
    let secret_id = "6f0c5a0e-3b1d-4c7e-9a2f-0d8e7b6c5a41";
    let settings = |secret: &str| {
        ConnectorSettings::from_toml_str(&format!(
            "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
             oauth_client_id = \"{CLIENT_ID}\"\ntenant_id = \"{TENANT_ID}\"\n\
             client_secret = \"{secret}\"\n"
        ))
        .unwrap()
    };
    let error = settings(secret_id).validate().unwrap_err();
    let text = error.to_string();
    assert!(!text.contains(secret_id), "{text}");
    let found = problems(error);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "client_secret");
    assert!(found[0].1.contains("Value column"), "{}", found[0].1);
    settings("Xq98Q~abcdefghijklmnopqrstuvwxyz0123456789")
        .validate()
        .unwrap();
    // Only the portal's hyphenated form: 32 hex digits may be another authority's secret.
    settings("6f0c5a0e3b1d4c7e9a2f0d8e7b6c5a41")
        .validate()
        .unwrap();
}

#[test]
fn oauth_values_are_checked_for_shape() {
    let s = ConnectorSettings::from_toml_str(&format!(
        r#"auth_mode = "oauth"
        user_name = "not an address"
        oauth_client_id = "my-app"
        client_secret = "{KNOWN_SECRET}"
        tenant_id = "common"
        graph_endpoint = "http://graph.example""#
    ))
    .unwrap();
    let found = problems(s.validate().unwrap_err());
    let names: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "user_name",
            "oauth_client_id",
            "tenant_id",
            "graph_endpoint"
        ]
    );
    assert!(found[1].1.contains("is not a GUID"), "{}", found[1].1);
    assert!(
        found[2].1.contains("cannot be used for app-only"),
        "{}",
        found[2].1
    );
    assert!(found[3].1.contains("must use https"), "{}", found[3].1);
    // Plain http is fine for a loopback test server.
    let mut ok = s.clone();
    ok.user_name = Some("no-reply@contoso.com".into());
    ok.oauth_client_id = Some(CLIENT_ID.into());
    ok.tenant_id = Some(TENANT_ID.into());
    ok.graph_endpoint = Some("http://127.0.0.1:8080".into());
    assert!(ok.validate().is_ok(), "{:?}", ok.validate());
    // A GUID in another form than the portal's would be refused by Entra ID only at the
    // first token request: refused here, with the form to write.
    let canonical = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    for other in [
        "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}",
        "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "3f2504e04f8911d39a0c0305e82c3301",
    ] {
        let mut s = ok.clone();
        s.oauth_client_id = Some(other.into());
        s.tenant_id = Some(other.into());
        let found = problems(s.validate().unwrap_err());
        let names: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, ["oauth_client_id", "tenant_id"], "{other}");
        for (_, message) in &found {
            assert!(
                message.contains(&format!("write it as `{canonical}`")),
                "{message}"
            );
        }
    }
}

/// A well-known port with the other TLS mode would hang at the greeting or fail the
/// handshake: refused at validation, naming the port and the setting that chose the mode.
#[test]
fn a_port_with_the_other_tls_mode_is_refused() {
    let base = "auth_mode = \"basic\"\nuser_name = \"no-reply@contoso.com\"\npassword = \"x\"\nsmtp_host = \"smtp.contoso.com\"\nsmtp_allow_plaintext_credentials_dangerous = true\n";
    for (extra, chosen_by) in [
        ("smtp_port = 465\nuse_ssl = false", "Use SSL (`use_ssl`)"),
        ("smtp_port = 465\nsmtp_tls = \"starttls\"", "`smtp_tls`"),
        ("smtp_port = 465\nsmtp_tls = \"none\"", "`smtp_tls`"),
        ("smtp_port = 587\nsmtp_tls = \"implicit\"", "`smtp_tls`"),
    ] {
        let s = ConnectorSettings::from_toml_str(&format!("{base}{extra}")).unwrap();
        let found = problems(s.validate().unwrap_err());
        assert_eq!(found.len(), 1, "{extra}: {found:?}");
        let (field, message) = &found[0];
        assert_eq!(field, "smtp_port", "{extra}");
        assert!(message.contains(chosen_by), "{extra}: {message}");
    }
    for fine in [
        "smtp_port = 465",
        "smtp_port = 465\nsmtp_tls = \"implicit\"",
        "smtp_port = 587\nuse_ssl = false",
        "smtp_port = 2525\nsmtp_tls = \"implicit\"",
        "smtp_port = 25",
    ] {
        let s = ConnectorSettings::from_toml_str(&format!("{base}{fine}")).unwrap();
        assert!(s.validate().is_ok(), "{fine}: {:?}", s.validate());
    }
}

/// A queue URL that cannot open (an unknown scheme, or a queue this build lacks) is said by
/// `validate`, without quoting the URL (it may hold a password) — not first at a send.
#[test]
fn a_queue_url_that_cannot_open_is_refused_at_validation() {
    let base =
        "auth_mode = \"none\"\nuser_name = \"no-reply@contoso.com\"\nsmtp_host = \"localhost\"\n";
    let s = ConnectorSettings::from_toml_str(&format!(
        "{base}queue_url = \"mysql://app:{KNOWN_SECRET}@db/mail\""
    ))
    .unwrap();
    let error = s.validate().unwrap_err();
    let found = problems(error.clone());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "queue_url");
    let expected = if cfg!(any(feature = "queue-sqlite", feature = "queue-postgres")) {
        "must start with `sqlite://` or `postgres://`"
    } else {
        "this build has no queue"
    };
    assert!(found[0].1.contains(expected), "{}", found[0].1);
    assert_no_secrets(&format!("{error} {error:?}"), &[KNOWN_SECRET]);
    let s =
        ConnectorSettings::from_toml_str(&format!("{base}queue_url = \"sqlite://q.db\"")).unwrap();
    assert_eq!(
        s.validate().is_ok(),
        cfg!(feature = "queue-sqlite"),
        "{:?}",
        s.validate()
    );
}

/// Exchange Online's SMTP resource in a national cloud is not documented: SMTP with OAuth
/// there needs `oauth_scope`, rather than asking that cloud's login host for the global one.
#[test]
fn smtp_with_oauth_in_a_national_cloud_needs_its_scope() {
    let base = format!(
        "auth_mode = \"oauth\"\ntransport = \"smtp\"\nuser_name = \"no-reply@contoso.us\"\n\
         oauth_client_id = \"{CLIENT_ID}\"\nclient_secret = \"{KNOWN_SECRET}\"\n\
         tenant_id = \"{TENANT_ID}\"\nsmtp_host = \"smtp.office365.us\"\n"
    );
    let s = ConnectorSettings::from_toml_str(&format!("{base}cloud = \"us-gov\"")).unwrap();
    let found = problems(s.validate().unwrap_err());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "oauth_scope");
    assert!(found[0].1.contains("`us-gov` cloud"), "{}", found[0].1);
    let s = ConnectorSettings::from_toml_str(&format!(
        "{base}cloud = \"us-gov\"\noauth_scope = \"https://outlook.office365.us/.default\""
    ))
    .unwrap();
    assert!(s.validate().is_ok(), "{:?}", s.validate());
    let s = ConnectorSettings::from_toml_str(&base).unwrap();
    assert!(s.validate().is_ok(), "global: {:?}", s.validate());
}

#[test]
fn basic_and_none_need_smtp() {
    let s =
        ConnectorSettings::from_toml_str("auth_mode = \"basic\"\ntransport = \"graph\"").unwrap();
    let found = problems(s.validate().unwrap_err());
    let names: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, ["user_name", "password", "transport"]);
    assert!(
        found[2]
            .1
            .contains("Transport `graph` needs Authentication Mode OAuth")
    );

    // Anonymous relay: no default host, since it is not Exchange Online.
    let s =
        ConnectorSettings::from_toml_str("auth_mode = \"none\"\nuser_name = \"app@contoso.com\"")
            .unwrap();
    assert_eq!(fields(s.validate().unwrap_err()), ["smtp_host"]);
    // Basic defaults to Exchange Online's submission host.
    let s = ConnectorSettings::from_toml_str(&format!(
        "auth_mode = \"basic\"\nuser_name = \"app@contoso.com\"\npassword = \"{KNOWN_SECRET}\""
    ))
    .unwrap();
    assert_eq!(s.smtp_host(), Some("smtp.office365.com"));
    assert!(s.validate().is_ok());
    let mut bad = s.clone();
    bad.smtp_host = Some("smtp.office365.com:587".into());
    bad.smtp_port = Some(0);
    bad.tls_ca_file = Some("/no/such/ca.pem".into());
    assert_eq!(
        fields(bad.validate().unwrap_err()),
        ["smtp_host", "smtp_port", "tls_ca_file"]
    );
}

#[test]
fn auth_mode_is_required_when_enabled() {
    let s = ConnectorSettings::default();
    let found = problems(s.validate().unwrap_err());
    assert_eq!(found[0].0, "auth_mode");
    assert!(found[0].1.contains("choose `oauth`, `basic` or `none`"));
}

/// A choice left empty — an admin form's unselected drop-down, written out as `""` — is
/// unset, as an empty `MAIL_CONNECTOR_*` variable is: a disabled connector still loads,
/// and an enabled one is told what is required rather than that `""` is no valid value.
#[test]
fn an_empty_choice_is_unset() {
    let toml = "enabled = false\nauth_mode = \"\"\ntransport = \"\"\nsmtp_tls = \" \"\n\
                oauth_credential = \"\"\n";
    let json = r#"{"enabled": false, "auth_mode": "", "transport": " ", "smtp_tls": "",
                   "oauth_credential": null}"#;
    for settings in [
        ConnectorSettings::from_toml_str(toml).unwrap(),
        ConnectorSettings::from_json_str(json).unwrap(),
    ] {
        assert_eq!(settings.auth_mode, None);
        assert_eq!(settings.transport, None);
        assert_eq!(settings.smtp_tls, None);
        assert_eq!(settings.oauth_credential, None);
        assert!(settings.validate().is_ok());
    }
    let enabled = ConnectorSettings::from_toml_str(&toml.replace("false", "true")).unwrap();
    let found = problems(enabled.validate().unwrap_err());
    assert_eq!(found[0].0, "auth_mode");
    assert!(found[0].1.contains("is required"), "{found:?}");
    // A value that is there is still checked.
    let error = ConnectorSettings::from_toml_str("auth_mode = \"kerberos\"")
        .unwrap_err()
        .to_string();
    assert!(error.contains("use one of: oauth, basic, none"), "{error}");
}

/// A form that writes every field, the unused ones as `""`: the empty file and identity
/// fields are unset, so the client secret that is set is the credential — not a
/// certificate whose file `` does not exist.
#[test]
fn empty_credential_fields_do_not_choose_the_credential() {
    let json = serde_json::json!({
        "auth_mode": "oauth",
        "user_name": "no-reply@contoso.com",
        "oauth_client_id": CLIENT_ID,
        "tenant_id": TENANT_ID,
        "client_secret": KNOWN_SECRET,
        "client_certificate_file": "",
        "client_private_key_file": "",
        "client_secret_file": "",
        "federated_token_file": " ",
        "managed_identity_client_id": "",
        "managed_identity_endpoint": "",
        "tls_ca_file": "",
        "dkim_private_key_file": "",
    });
    let settings = ConnectorSettings::from_json_value(json).unwrap();
    assert_eq!(
        settings.oauth_credential_kind(),
        Some(mail_connector::OAuthCredential::Secret)
    );
    settings.validate().unwrap();
    assert!(
        settings.summary().ends_with("oauth (client secret)"),
        "{}",
        settings.summary()
    );
    // Without the secret, nothing says which credential: the message names every kind.
    let mut without = settings.clone();
    without.client_secret = None;
    assert_eq!(without.oauth_credential_kind(), None);
}

/// `0` means "no limit" for `recipient_limit` and `queue_rate_per_minute`; for the attempts
/// and deliveries in flight it cannot, and used to become 1 unsaid (one attempt: a queued
/// message failed for good at its first temporary error). Refused, naming the key.
#[cfg(feature = "queue-sqlite")]
#[test]
fn a_queue_limit_of_0_that_cannot_mean_no_limit_is_refused() {
    let base = "auth_mode = \"none\"\nuser_name = \"no-reply@contoso.com\"\n\
                smtp_host = \"localhost\"\nqueue_url = \"sqlite://q.db\"\n";
    for key in ["queue_max_attempts", "queue_max_in_flight"] {
        let s = ConnectorSettings::from_toml_str(&format!("{base}{key} = 0")).unwrap();
        let found = problems(s.validate().unwrap_err());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, key);
        assert!(found[0].1.contains("at least 1"), "{}", found[0].1);
        assert!(found[0].1.contains("not \"no limit\""), "{}", found[0].1);
        let one = ConnectorSettings::from_toml_str(&format!("{base}{key} = 1")).unwrap();
        one.validate().unwrap();
    }
    // Where 0 is "no limit", it still is.
    let s = ConnectorSettings::from_toml_str(&format!("{base}queue_rate_per_minute = 0")).unwrap();
    s.validate().unwrap();
}

/// A Tenant ID is a GUID or a domain name (letters, digits, `-` and at least one `.`);
/// anything else is refused, naming the field, before a sign-in fails far from it.
#[test]
fn a_tenant_id_must_be_a_guid_or_a_domain_name() {
    let check = |tenant: &str| {
        let text = format!(
            "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
             oauth_client_id = \"{CLIENT_ID}\"\nclient_secret = \"s\"\ntenant_id = \"{tenant}\"\n"
        );
        let settings = ConnectorSettings::from_toml_str(&text).unwrap();
        settings.validate().err().map(problems).unwrap_or_default()
    };
    for tenant in [TENANT_ID, "contoso.onmicrosoft.com", "contoso-ltd.com"] {
        assert_eq!(check(tenant), [], "{tenant}");
    }
    for tenant in ["contoso", "contoso_ltd.com", "contoso ltd.com"] {
        let found = check(tenant);
        assert_eq!(found.len(), 1, "{tenant}: {found:?}");
        assert_eq!(found[0].0, "tenant_id", "{tenant}");
        assert!(
            found[0].1.contains("neither a GUID nor a domain"),
            "{found:?}"
        );
    }
}

/// A certificate needs both its files, and a credential file that is set must exist: each
/// missing one is named with its key and what to supply; files that exist pass.
#[test]
fn certificate_and_credential_files_are_required_and_must_exist() {
    use crate::support::fixture;

    let (cert, key) = (fixture("test-client.pem"), fixture("test-client.key"));
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone.pem");
    let with = |extra: String| {
        ConnectorSettings::from_toml_str(&format!(
            "auth_mode = \"oauth\"\nuser_name = \"no-reply@contoso.com\"\n\
             oauth_client_id = \"{CLIENT_ID}\"\ntenant_id = \"{TENANT_ID}\"\n{extra}"
        ))
        .unwrap()
    };
    let pair = |cert: &std::path::Path, key: &std::path::Path| {
        format!("client_certificate_file = {cert:?}\nclient_private_key_file = {key:?}\n")
    };
    with(pair(&cert, &key)).validate().unwrap();

    let refused = |settings: ConnectorSettings, field: &str, says: &str| {
        let found = problems(settings.validate().unwrap_err());
        assert!(
            found.iter().any(|(f, m)| f == field && m.contains(says)),
            "{field}: {found:?}"
        );
    };
    let (missing, required) = ("does not exist or is not a file", "is required with");
    refused(with(pair(&gone, &key)), "client_certificate_file", missing);
    refused(with(pair(&cert, &gone)), "client_private_key_file", missing);
    refused(
        with(format!("client_certificate_file = {cert:?}\n")),
        "client_private_key_file",
        required,
    );
    refused(
        with(format!("client_private_key_file = {key:?}\n")),
        "client_certificate_file",
        required,
    );
    refused(
        with("oauth_credential = \"certificate\"\n".into()),
        "client_certificate_file",
        "`client_private_key_file`) are required",
    );
    refused(
        with(format!("client_secret_file = {gone:?}\n")),
        "client_secret_file",
        missing,
    );
    refused(
        with(format!(
            "oauth_credential = \"workload_identity\"\nfederated_token_file = {gone:?}\n"
        )),
        "federated_token_file",
        missing,
    );
}
