//! Helpers shared by the SMTP tests: settings and builders for the loopback server.

use std::time::Duration;

use mail_connector::smtp::SmtpTransportBuilder;
use mail_connector::{
    ConnectorSettings, Email, Error, Recipient, Refusal, RetryPolicy, Secret, SmtpStage,
    SmtpTransport,
};

use crate::support::smtp_server::TestServer;

pub(crate) const USER: &str = "no-reply@example.org";
pub(crate) const PASSWORD: &str = "correct horse";

pub(crate) fn settings_toml(server: &TestServer, extra: &str) -> ConnectorSettings {
    ConnectorSettings::from_toml_str(&format!(
        "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls_ca_file = {:?}\nuser_name = \"{USER}\"\n{extra}",
        server.port(),
        server.ca_file.path().display().to_string(),
    ))
    .unwrap()
}

/// XOAUTH2 settings for `server`, the test app's client secret fetching tokens from the login
/// host at `authority_host`, with `extra` lines added.
pub(crate) fn xoauth2_settings(
    server: &TestServer,
    authority_host: &str,
    extra: &str,
) -> ConnectorSettings {
    settings_toml(
        server,
        &format!(
            "auth_mode = \"oauth\"\ntransport = \"smtp\"\noauth_client_id = \"{}\"\n\
             client_secret = \"{}\"\ntenant_id = \"{}\"\nauthority_host = \"{authority_host}\"\n\
             {extra}",
            crate::support::CLIENT_ID,
            crate::support::SECRET,
            crate::support::TENANT,
        ),
    )
}

pub(crate) fn basic_settings(server: &TestServer) -> ConnectorSettings {
    settings_toml(
        server,
        &format!("auth_mode = \"basic\"\npassword = \"{PASSWORD}\"\n"),
    )
}

pub(crate) fn starttls(server: &TestServer) -> SmtpTransportBuilder {
    SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
}

/// STARTTLS with the test user's password and quick retries.
pub(crate) fn logged_in(server: &TestServer) -> SmtpTransportBuilder {
    starttls(server)
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(fast_retry())
}

/// An email to each of `to`.
pub(crate) fn email_to(to: &[&str]) -> Email {
    to.iter()
        .fold(Email::builder(), |b, to| b.to(*to))
        .subject("Hello")
        .text("Hello there")
        .build()
        .unwrap()
}

/// The groups of an [`Error::PartialDelivery`], by address.
pub(crate) struct Partial<'a> {
    pub delivered_messages: usize,
    pub delivered: Vec<String>,
    pub not_sent: Vec<String>,
    pub refused_permanently: Vec<String>,
    pub uncertain: Vec<String>,
    /// Each recipient refused at `RCPT TO`, in order, with the server's reply.
    pub refusals: &'a [Refusal],
    pub source: &'a Error,
}

/// `error` as a partial delivery; any other error fails the test. Every refused recipient
/// is not sent, and those refused permanently are exactly the permanent refusals.
pub(crate) fn partial(error: &Error) -> Partial<'_> {
    let addresses = |recipients: &mut dyn Iterator<Item = &Recipient>| {
        recipients
            .map(|r| r.mailbox.address().to_owned())
            .collect::<Vec<_>>()
    };
    let Error::PartialDelivery {
        delivered,
        not_sent,
        refused_permanently,
        uncertain,
        refusals,
        source,
        ..
    } = error
    else {
        panic!("not a partial delivery: {error:?}")
    };
    let permanent: Vec<&Recipient> = refusals
        .iter()
        .filter(|r| r.is_permanent())
        .map(|r| &r.recipient)
        .collect();
    assert_eq!(
        permanent,
        refused_permanently.iter().collect::<Vec<_>>(),
        "{error:?}"
    );
    assert!(
        refusals.iter().all(|r| not_sent.contains(&r.recipient)),
        "{error:?}"
    );
    Partial {
        delivered_messages: delivered.messages.len(),
        delivered: addresses(&mut delivered.recipients()),
        not_sent: addresses(&mut not_sent.iter()),
        refused_permanently: addresses(&mut refused_permanently.iter()),
        uncertain: addresses(&mut uncertain.iter()),
        refusals,
        source,
    }
}

pub(crate) fn simple_email(to: &str) -> Email {
    Email::builder()
        .to(to)
        .subject("Hello")
        .text("Hello there")
        .build()
        .unwrap()
}

pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..mail_connector::smtp::default_retry_policy()
    }
}

/// An email whose body text must never show up in a log.
pub(crate) fn email() -> Email {
    Email::builder()
        .to("ann@example.org")
        .subject("Hello")
        .text("Body text 7d1e0c: never in a log")
        .build()
        .unwrap()
}

/// A generous bound that only catches a hang.
pub(crate) async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("must not hang")
}

/// The SMTP stage an error is blamed on; `None` for an error that is not [`Error::Smtp`].
pub(crate) fn stage_of(error: &Error) -> Option<SmtpStage> {
    match error {
        Error::Smtp { stage, .. } => Some(*stage),
        _ => None,
    }
}
