//! Basic-auth logins the server answers with a SASL challenge the client cannot answer
//! (`334` and text that is neither LOGIN's "Username:" / "Password:" nor anything PLAIN
//! expects): lettre gives up without a reply code. Such a server will answer the same way
//! next time, so the send fails once, permanently, and the password is not sent again; the
//! failure is one of the settings, so a queue holds the mailbox.

use mail_connector::{Error, MailTransport, Secret, SmtpStage, SmtpTransport};

use super::helpers::*;
use crate::support::hostile_smtp::{self, Hostile};

/// A plaintext server offering only `mechanism`, answering its AUTH with a challenge
/// (`334` and base64 of "Realm:").
async fn challenging(mechanism: &'static str) -> Hostile {
    hostile_smtp::replier(move |command, _auth| {
        let verb = command.split_whitespace().next().unwrap_or("");
        if verb.eq_ignore_ascii_case("EHLO") {
            Some(format!("250-challenger\r\n250 AUTH {mechanism}\r\n"))
        } else if verb.eq_ignore_ascii_case("AUTH") {
            Some("334 UmVhbG06\r\n".to_owned())
        } else {
            None
        }
    })
    .await
}

/// Sends once with the test password over `mechanism`, and checks what every such failure
/// shares: permanent, at AUTH, after one connection and one AUTH command, with a remedy
/// that names the mechanism and the settings to check.
async fn refused_login(mechanism: &'static str) {
    let server = challenging(mechanism).await;
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    let error = bounded(transport.send(&email())).await.unwrap_err();
    assert!(!error.is_transient(), "{mechanism}: {error:?}");
    // Only the settings fix it: a queue holds the mailbox's other mail rather than failing
    // each message in turn.
    assert!(error.is_settings(), "{mechanism}: {error:?}");
    assert!(
        !error.is_auth(),
        "{mechanism}: no credential was refused: {error:?}"
    );
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Auth,
                code: None,
                ..
            }
        ),
        "{mechanism}: {error:?}"
    );
    assert_eq!(
        server.seen.connections(),
        1,
        "{mechanism}: retried: {error}"
    );
    let auths = server
        .seen
        .lines()
        .iter()
        .filter(|l| l.to_ascii_uppercase().starts_with("AUTH"))
        .count();
    assert_eq!(auths, 1, "{mechanism}: logged in {auths} times");
    assert!(!error.to_string().contains(PASSWORD), "{error}");
    // The remedy says what was asked, not that no mechanism fits or that a token was refused.
    let remedy = error.remedy().unwrap_or_default();
    assert!(remedy.contains(&format!("AUTH {mechanism}")), "{remedy}");
    assert!(remedy.contains("`smtp_host`"), "{remedy}");
    assert!(remedy.contains("`auth_mode`"), "{remedy}");
    assert!(!remedy.contains("offers no"), "{remedy}");
    assert!(!remedy.contains("OAuth"), "{remedy}");
}

/// LOGIN answered with a prompt that is not for the user name or the password.
#[tokio::test]
async fn an_unrecognised_login_challenge_is_permanent() {
    refused_login("LOGIN").await;
}

/// PLAIN, sent with its credentials, answered with a challenge: lettre's words are the same
/// as for an XOAUTH2 token refused with an error challenge (which is transient: a fresh
/// token may pass), but there is no token here to replace.
#[tokio::test]
async fn a_challenge_to_a_plain_login_is_permanent_not_a_refused_token() {
    refused_login("PLAIN").await;
}
