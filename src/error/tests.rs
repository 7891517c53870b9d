//! Unit tests of the error type: its questions and remedies.

use super::*;
use crate::message::{Mailbox, RecipientKind};

/// A `To` recipient at `address`, for the error module's tests.
pub(super) fn to(address: &str) -> Recipient {
    Recipient {
        mailbox: Mailbox::new(None, address).unwrap(),
        kind: RecipientKind::To,
    }
}

#[test]
fn transport_errors_carry_transience_and_delivery() {
    let error = Error::transport("queue", "full", Transience::Transient);
    assert!(error.is_transient());
    assert_eq!(error.delivery(), Delivery::NotSent);
    let error = error.with_uncertain_delivery();
    assert_eq!(error.delivery(), Delivery::Uncertain);
    assert!(!Error::Disabled.is_transient());
}

#[test]
fn settings_error_lists_every_problem() {
    let error = Error::InvalidSettings {
        problems: vec![
            SettingsProblem {
                field: "tenant_id".into(),
                message: "Tenant ID (`tenant_id`) is required".into(),
            },
            SettingsProblem {
                field: "oauth_client_id".into(),
                message: "OAuth Client ID (`oauth_client_id`) is required".into(),
            },
        ],
    };
    let text = error.to_string();
    assert!(
        text.contains("`tenant_id`") && text.contains("`oauth_client_id`"),
        "{text}"
    );
    assert_eq!(
        error.remedy().unwrap(),
        "fix these settings: `tenant_id`, `oauth_client_id`"
    );
    assert!(error.is_settings() && !error.is_auth() && !error.is_transient());
}

#[test]
fn settings_that_do_not_parse_get_a_remedy_about_where_the_error_points() {
    let error = Error::settings(
        WHOLE_SETTINGS,
        "cannot read the settings from `mail.toml`: line 2, column 7: expected `=`",
    );
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("line and column"), "{remedy}");
    assert!(!remedy.contains("`settings`"), "{remedy}");
}

#[test]
fn settings_errors_are_told_apart_from_auth_and_outages() {
    let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
    let read = Error::settings_file(
        WHOLE_SETTINGS,
        settings_file::SETTINGS,
        "mail.toml",
        missing,
    );
    assert!(read.is_settings());
    let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
    let key = Error::settings_file("tls_ca_file", "read the trusted CA file", "ca.pem", missing);
    assert!(key.is_settings());
    assert!(key.remedy().unwrap().contains("`tls_ca_file`"));
    let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
    assert!(!Error::io("read the attachment", "a.pdf", missing).is_settings());
    assert!(Error::Disabled.is_settings());
    let credential = Error::InvalidCredential {
        setting: "client_private_key_file",
        reason: "no key".into(),
    };
    assert!(credential.is_settings());
    assert!(!Error::transport("queue", "down", Transience::Transient).is_settings());
    assert!(!Error::invalid_message("to[0]", "not an address").is_settings());
}

/// A full disk or used-up quota passes once space is freed: transient, and the remedy says so
/// — for the outbox folder the settings name too, which is then no setting's fault.
#[test]
fn a_full_disk_is_transient_and_says_to_free_space() {
    let folder = "/var/mail/outbox";
    let make = |setting: Option<&'static str>, kind| {
        let source = std::io::Error::from(kind);
        match setting {
            Some(setting) => {
                Error::settings_file(setting, "write into the outbox folder", folder, source)
            }
            None => Error::io("write into the outbox folder", folder, source),
        }
    };
    for setting in [None, Some(OUTBOX_DIR)] {
        for kind in [
            std::io::ErrorKind::StorageFull,
            std::io::ErrorKind::QuotaExceeded,
        ] {
            let error = make(setting, kind);
            assert!(error.is_transient(), "{kind:?}");
            assert!(!error.is_settings(), "{kind:?}");
            assert!(error.remedy().unwrap().contains("free space"), "{kind:?}");
        }
        let denied = make(setting, std::io::ErrorKind::PermissionDenied);
        assert!(!denied.is_transient());
        assert_eq!(denied.is_settings(), setting.is_some());
        let remedy = denied.remedy().unwrap();
        assert!(!remedy.contains("free space"));
        assert_eq!(remedy.contains(folder), setting.is_some(), "{remedy}");
    }
}
