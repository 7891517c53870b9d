//! Server replies: 4xx retried, 5xx not, and an unanswered end of data is uncertain.

use std::time::Duration;

use mail_connector::{Delivery, Error, MailTransport, SmtpStage};

use super::helpers::*;
use crate::support::smtp_server::{ServerOptions, TestServer};

#[tokio::test]
async fn a_4xx_reply_is_retried_then_accepted() {
    let server = TestServer::start(ServerOptions {
        transient_mail_failures: 2,
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    assert_eq!(server.mail_from_commands(), 3);
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_5xx_reply_is_not_retried_and_basic_auth_retirement_points_to_oauth() {
    let server = TestServer::start(ServerOptions {
        transient_mail_failures: 1,
        transient_reply: "550 5.7.30 Basic authentication is not supported for Client Submission."
            .into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(server.mail_from_commands(), 1);
    assert!(!error.is_transient());
    assert!(error.remedy().unwrap().contains("`oauth`"), "{error}");
}

/// Exchange Online refuses the data once the mailbox's daily recipient limit is used up: a
/// refusal (not retried, nothing delivered) whose remedy names the limit and what to do.
#[tokio::test]
async fn a_used_up_daily_limit_is_not_retried_and_says_so() {
    let server = TestServer::start(ServerOptions {
        transient_data_failures: 1,
        transient_data_reply: "554 5.2.0 STOREDRV.Submission.Exception:\
                               SubmissionQuotaExceededException; Failed to process message due \
                               to a permanent exception"
            .into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(server.mail_from_commands(), 1);
    assert_eq!(error.delivery(), Delivery::NotSent, "{error:?}");
    assert!(!error.is_transient());
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("10,000 recipients"), "{remedy}");
    assert!(remedy.contains("`user_name`"), "{remedy}");
}

#[tokio::test]
async fn a_4xx_reply_to_the_end_of_data_is_retried_and_delivered_once() {
    // Exchange answers `432 4.3.2` to the final `.`: an explicit refusal, safe to resend.
    let server = TestServer::start(ServerOptions {
        transient_data_failures: 2,
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    assert_eq!(server.rejected_data(), 2);
    assert_eq!(server.mail_from_commands(), 3);
    assert_eq!(server.messages().len(), 1, "accepted exactly once");
}

/// A `421` is the server closing the session (RFC 5321 3.8): the retry goes on a new
/// connection, even when the server (or a proxy in front of it) leaves that one open.
#[tokio::test]
async fn a_421_to_the_end_of_data_is_retried_on_a_new_connection() {
    let server = TestServer::start(ServerOptions {
        transient_data_failures: 1,
        transient_data_reply: "421 4.3.2 Service not available, closing transmission channel"
            .into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    bounded(transport.send(&simple_email("ann@example.org")))
        .await
        .unwrap();
    assert_eq!(server.rejected_data(), 1);
    assert_eq!(server.messages().len(), 1, "accepted exactly once");
    assert_eq!(
        transport.connections_opened(),
        2,
        "the retry went on the session the 421 ended"
    );
}

#[tokio::test]
async fn a_timeout_after_the_data_is_uncertain_and_not_retried() {
    let server = TestServer::start(ServerOptions {
        silent_after_data: true,
        ..ServerOptions::default()
    })
    .await;
    // Ten seconds: reaching the data must not spend the deadline on a loaded machine; only
    // the silence after the data does.
    let transport = logged_in(&server)
        .send_deadline(Duration::from_secs(10))
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::Uncertain, "{error:?}");
    assert!(matches!(
        error,
        Error::Smtp {
            stage: SmtpStage::Data,
            ..
        }
    ));
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.mail_from_commands(), 1, "must not be retried");
}

/// Exchange Online refuses `MAIL FROM` with `550 5.7.60` when the envelope sender (the
/// builder's `sender`) is not the account that logged in and the account has no Send As
/// on it: a permanent refusal whose remedy names the sender, the login and the grant.
#[tokio::test]
async fn a_sender_the_login_may_not_send_as_names_the_sender_and_the_grant() {
    let server = TestServer::start(ServerOptions {
        transient_mail_failures: 1,
        transient_reply: "550 5.7.60 SMTP; Client does not have permissions to send as this \
                          sender"
            .into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server)
        .sender("alerts@example.org".parse().unwrap())
        .build()
        .unwrap();
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert_eq!(server.mail_from_commands(), 1);
    assert!(!error.is_transient(), "{error}");
    assert!(error.is_auth(), "{error}");
    let remedy = error.remedy().unwrap_or_default();
    assert!(remedy.contains("`sender`"), "{remedy}");
    assert!(remedy.contains("`user_name`"), "{remedy}");
    assert!(remedy.contains("Add-RecipientPermission"), "{remedy}");
}

/// `5.7.60` for a transport made from settings, whose envelope sender is the login itself:
/// the sign-in name is not an address of the mailbox (a UPN apart from its primary SMTP
/// address), which the remedy names. After the data, it is the From header the login may
/// not use.
#[tokio::test]
async fn a_login_that_is_not_an_address_of_its_mailbox_is_named_as_such() {
    let server = TestServer::start(ServerOptions {
        transient_mail_failures: 1,
        transient_reply: "550 5.7.60 SMTP; Client does not have permissions to send as this \
                          sender"
            .into(),
        ..ServerOptions::default()
    })
    .await;
    let error = basic_settings(&server)
        .build()
        .unwrap()
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    let remedy = error.remedy().unwrap_or_default();
    assert!(remedy.contains("primary SMTP address"), "{remedy}");

    let server = TestServer::start(ServerOptions {
        transient_data_failures: 1,
        transient_data_reply: "550 5.7.60 SMTP; Client does not have permissions to send as \
                               this sender"
            .into(),
        ..ServerOptions::default()
    })
    .await;
    let error = basic_settings(&server)
        .build()
        .unwrap()
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    let remedy = error.remedy().unwrap_or_default();
    assert!(remedy.contains("From address"), "{remedy}");
    assert!(!remedy.contains("MAIL FROM"), "{remedy}");
}
