//! Unit tests of the error type: its questions and remedies.

use super::*;
use std::time::Duration;

use crate::message::{Mailbox, RecipientKind};
use crate::transport::SentMessage;

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

/// A failure after which nobody got the email is transient as its cause is; once a
/// recipient got it, or one was refused for good, resending the whole email is not safe.
#[test]
fn a_partial_delivery_is_transient_only_when_resending_is_safe() {
    let outage = || Error::transport("relay", "421 try later", Transience::Transient);
    let got = || SendReport::single(SentMessage::new(vec![to("ann@example.org")], None));
    let refused = || {
        vec![Refusal::new(
            to("bob@example.org"),
            550,
            "5.1.1 no such user",
        )]
    };
    let bob = || vec![to("bob@example.org")];
    let nobody = Error::partial_delivery(SendReport::default(), vec![], bob(), vec![], outage());
    assert!(nobody.is_transient(), "{nobody}");
    let delivered = Error::partial_delivery(got(), vec![], bob(), vec![], outage());
    assert!(!delivered.is_transient(), "{delivered}");
    let refused =
        Error::partial_delivery(SendReport::default(), vec![], bob(), refused(), outage());
    assert!(!refused.is_transient(), "{refused}");
    let permanent = Error::transport("relay", "554 rejected", Transience::Permanent);
    let failed = Error::partial_delivery(SendReport::default(), vec![], bob(), vec![], permanent);
    assert!(!failed.is_transient(), "{failed}");
}

/// Entra's answer decides for a token request, and so does its status: a throttled (429)
/// or failing (5xx) token endpoint is waited out, a refusal (4xx) is an authentication
/// failure; the status is reported.
#[test]
fn a_token_request_is_transient_when_entra_says_so_or_throttles_or_fails() {
    let answered = |status, transient| Error::TokenRequest {
        status,
        error: "invalid_request".into(),
        codes: Box::default(),
        summary: "refused".into(),
        trace_id: None,
        correlation_id: None,
        transient,
        advice: Advice::default(),
    };
    for (status, transient, expected) in [
        (400, false, false),
        (401, false, false),
        (400, true, true),
        (429, false, true),
        (500, false, true),
        (503, false, true),
    ] {
        let error = answered(status, transient);
        assert_eq!(error.is_transient(), expected, "{status} {transient}");
        assert_eq!(error.is_auth(), !expected, "{status} {transient}");
        assert_eq!(error.status(), Some(status));
    }
}

/// A transport's error marked as the settings' fault, or a split that delivered nothing and
/// failed as its first part did for the settings, is a settings error; a split that
/// delivered to someone, or left someone uncertain, is not.
#[test]
fn a_settings_failure_stays_one_only_while_nothing_went_out() {
    let wrong = || {
        Error::transport("relay", "no such region", Transience::Permanent)
            .with_remedy("set `RELAY_REGION`")
            .with_settings()
    };
    assert!(wrong().is_settings());
    let bob = || vec![to("bob@example.org")];
    let got = || SendReport::single(SentMessage::new(vec![to("ann@example.org")], None));
    let nothing = Error::partial_delivery(SendReport::default(), vec![], bob(), vec![], wrong());
    assert!(nothing.is_settings(), "{nothing}");
    let delivered = Error::partial_delivery(got(), vec![], bob(), vec![], wrong());
    assert!(!delivered.is_settings(), "{delivered}");
    let uncertain = Error::partial_delivery(SendReport::default(), bob(), vec![], vec![], wrong());
    assert!(!uncertain.is_settings(), "{uncertain}");
    let outage = Error::transport("relay", "421 try later", Transience::Transient);
    let outage = Error::partial_delivery(SendReport::default(), vec![], bob(), vec![], outage);
    assert!(!outage.is_settings(), "{outage}");
}

/// A split whose delivery to a recipient is uncertain may have delivered the email; one
/// whose recipients were only not sent did not.
#[test]
fn a_partial_delivery_is_uncertain_when_a_recipient_is() {
    let timeout = || Error::transport("relay", "timed out", Transience::Transient);
    let bob = || vec![to("bob@example.org")];
    let uncertain =
        Error::partial_delivery(SendReport::default(), bob(), vec![], vec![], timeout());
    assert_eq!(uncertain.delivery(), Delivery::Uncertain);
    let not_sent = Error::partial_delivery(SendReport::default(), vec![], bob(), vec![], timeout());
    assert_eq!(not_sent.delivery(), Delivery::NotSent);
}

/// An unusable credential is an authentication problem as well as the settings'.
#[test]
fn an_unusable_credential_is_an_auth_error() {
    let credential = Error::InvalidCredential {
        setting: "client_private_key_file",
        reason: "no key".into(),
    };
    assert!(credential.is_auth());
    assert!(!Error::Disabled.is_auth());
}

/// The settings file itself that cannot be read names no setting to correct: the remedy is
/// about the path.
#[test]
fn an_unreadable_settings_file_names_no_setting_to_correct() {
    let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
    let error = Error::settings_file(
        WHOLE_SETTINGS,
        settings_file::SETTINGS,
        "mail.toml",
        missing,
    );
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("check that the path exists"), "{remedy}");
    assert!(!remedy.contains("`settings`"), "{remedy}");
}

/// The status a server answered with, and the wait it asked for, are reported by the
/// errors that carry them, also through a split that stopped on one.
#[test]
fn the_servers_status_and_wait_are_reported() {
    let wait = Duration::from_secs(30);
    let graph = Error::Graph {
        operation: "send mail",
        status: Some(429),
        code: Some("ApplicationThrottled".into()),
        message: "throttled".into(),
        request_id: None,
        client_request_id: None,
        transient: true,
        delivery: Delivery::NotSent,
        advice: Advice::default(),
    }
    .with_retry_after(wait);
    assert_eq!(graph.status(), Some(429));
    assert_eq!(graph.retry_after(), Some(wait));
    let smtp = Error::Smtp {
        stage: SmtpStage::Data,
        code: Some(451),
        enhanced_code: None,
        message: "try later".into(),
        mechanism: None,
        transient: true,
        delivery: Delivery::NotSent,
        advice: Advice::default(),
    };
    assert_eq!(smtp.status(), Some(451));
    assert_eq!(smtp.retry_after(), None);
    let bob = vec![to("bob@example.org")];
    let split = Error::partial_delivery(SendReport::default(), vec![], bob, vec![], graph);
    assert_eq!(split.status(), Some(429));
    assert_eq!(split.retry_after(), Some(wait));
    let relay = Error::transport("relay", "429", Transience::Transient).with_retry_after(wait);
    assert_eq!(relay.retry_after(), Some(wait));
    assert_eq!(relay.status(), None);
    assert_eq!(Error::Disabled.status(), None);
    assert_eq!(Error::Disabled.retry_after(), None);
}
