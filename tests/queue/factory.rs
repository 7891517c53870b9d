//! The settings factory with `queue_url`: what `build` gives the app enqueues, and
//! `queue_worker` delivers with the transport the other settings describe.

use mail_connector::queue::State;
use mail_connector::{ConnectorSettings, MailTransport};

use crate::helpers::{count, email};

#[tokio::test]
async fn build_enqueues_and_the_worker_delivers_with_the_settings_transport() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let settings = ConnectorSettings::from_toml_str(&format!(
        "user_name = \"no-reply@example.org\"\noutbox_dir = {:?}\nqueue_url = {:?}\n\
         queue_max_attempts = 3\nqueue_max_in_flight = 2\nqueue_rate_per_minute = 0\n",
        outbox.display().to_string(),
        format!("sqlite://{}", dir.path().join("q.db").display()),
    ))
    .unwrap();
    assert_eq!(settings.queue_limits().max_in_flight, 2);
    assert!(
        !format!("{settings:?}").contains("q.db"),
        "the URL may hold a password"
    );

    let transport = settings.build().unwrap();
    let report = transport
        .send(&email("ann@example.org", "queued"))
        .await
        .unwrap();
    let id = report.messages[0].id.clone().unwrap();
    assert!(!outbox.exists(), "enqueued, not yet delivered");
    let queue = settings.queue().await.unwrap();
    assert_eq!(count(&queue, State::Queued).await, 1);
    assert!(transport.check().await.unwrap().is_ok());

    let worker = settings.queue_worker().await.unwrap();
    assert_eq!(worker.run_once().await.unwrap().sent, 1);
    assert_eq!(crate::helpers::row(&queue, &id).await.state, State::Sent);
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 1);
}

#[test]
fn queue_defaults_follow_the_transport() {
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(mail_connector::AuthMode::OAuth);
    assert_eq!(settings.queue_limits().max_in_flight, 4);
    assert_eq!(settings.queue_limits().per_window, 30);
    settings.auth_mode = Some(mail_connector::AuthMode::Basic);
    assert_eq!(settings.queue_limits().max_in_flight, 3);
}

#[tokio::test]
async fn the_queue_url_password_never_shows() {
    const PASSWORD: &str = "pg-Secret-9f2e";
    let mut settings = ConnectorSettings::default();
    settings.user_name = Some("no-reply@example.org".into());
    settings.outbox_dir = Some(std::env::temp_dir().join("never-written"));
    // A role the cluster does not have: opening the queue fails at once.
    let url = crate::postgres::database().await;
    let url = url.replace("postgres@", &format!("nobody:{PASSWORD}@"));
    settings.queue_url = Some(url.into());
    let transport = settings.build().unwrap();
    let error = transport
        .send(&email("ann@example.org", "x"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("nobody"), "{error}");
    let texts = [
        format!("{settings:?}"),
        error.to_string(),
        format!("{error:?}"),
        error.remedy().unwrap_or_default(),
        settings.summary(),
    ];
    for text in texts {
        crate::support::assert_no_secrets(&text, &[PASSWORD]);
    }
}

/// A disabled connector queues nothing, whichever way the app enqueues: `settings.queue()`
/// refuses as the transport `build` gives does, and what was queued before stays queued.
#[tokio::test]
async fn a_disabled_connector_gives_no_queue_to_enqueue_into() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ConnectorSettings::from_toml_str(&format!(
        "user_name = \"no-reply@example.org\"\noutbox_dir = {:?}\nqueue_url = {:?}\n",
        dir.path().join("outbox").display().to_string(),
        format!("sqlite://{}", dir.path().join("q.db").display()),
    ))
    .unwrap();
    let queue = settings.queue().await.unwrap();
    let queued = email("ann@example.org", "before");
    let options = mail_connector::queue::EnqueueOptions::new();
    queue.enqueue(&queued, options).await.unwrap();

    settings.enabled = false;
    let refused = settings.queue().await.unwrap_err();
    assert!(
        matches!(refused, mail_connector::Error::Disabled),
        "{refused:?}"
    );
    assert!(refused.is_settings());
    let sent = settings
        .build()
        .unwrap()
        .send(&email("bob@example.org", "x"))
        .await;
    assert!(
        matches!(sent, Err(mail_connector::Error::Disabled)),
        "{sent:?}"
    );
    assert_eq!(count(&queue, State::Queued).await, 1);
}
