//! The queue stores at most `MAX_STORED_BYTES` (150 MiB) per email, counted alike for an
//! email built here and for a prepared message (`Email::from_mime`, `mailctl send --eml`,
//! which accepts up to 160 MiB): one over it is refused at enqueue, not stored to fail later.

use mail_connector::Error;
use mail_connector::queue::{EnqueueOptions, MAX_STORED_BYTES, State};

use crate::helpers::{Backend, count, open};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_message_over_the_limit_is_refused_at_enqueue() {
    let (queue, _guard) = open(Backend::Sqlite).await;
    let limit = usize::try_from(MAX_STORED_BYTES).unwrap();
    let mut raw = b"From: a@example.org\r\nTo: ann@example.org\r\nSubject: big\r\n\r\n".to_vec();
    raw.resize(limit + 1, b'x');
    let email = mail_connector::Email::from_mime(raw).unwrap();
    let error = queue
        .enqueue(&email, EnqueueOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidMessage { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("prepared message") && text.contains("150 MiB"),
        "{text}"
    );
    assert_eq!(count(&queue, State::Queued).await, 0);
}
