//! A row's remedy is its current state's: an operator's retry of a failed message, and the
//! outcomes after it, do not leave the earlier failure's fix on a row that no longer failed
//! that way — an admin reading `mailctl queue list --json` would act on the wrong fix.

use std::time::{Duration, SystemTime};

use mail_connector::queue::{
    Claim, ClaimRequest, EnqueueOptions, MailboxLimits, Queue, State, Worker,
};
use mail_connector::{Error, RetryPolicy, Transience};

use crate::helpers::{
    Backend, Scripted, email, on_both_stores, open_with_url, row, server_clock_passes, transient,
};

on_both_stores!(
    a_retried_message_does_not_keep_the_fix_of_its_earlier_failure,
    a_retried_message_whose_worker_died_says_to_verify_not_the_earlier_fix,
);

/// The mailbox may not send: permanent, with its fix.
fn refused() -> Error {
    Error::transport("test", "the mailbox may not send", Transience::Permanent)
        .with_remedy("grant the app the Mail.Send permission")
}

/// A worker delivering through `transport`, one attempt at a time, retrying at once.
async fn run(queue: &Queue, transport: Scripted) {
    Worker::new(queue, transport)
        .with_retry(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            multiplier: 1.0,
            deadline: None,
        })
        .with_concurrency(1)
        .run_once()
        .await
        .unwrap();
}

/// A failed message carries its fix; once an operator retried it, neither the queued row,
/// nor a transient failure, nor a delivery left uncertain shows that fix any more — the
/// uncertain one says to verify before any resend.
async fn a_retried_message_does_not_keep_the_fix_of_its_earlier_failure(backend: Backend) {
    let (queue, _guard, _url) = open_with_url(backend).await;
    let id = queue
        .enqueue(&email("ann@example.org", "fixed"), EnqueueOptions::new())
        .await
        .unwrap();
    run(&queue, Scripted::new(vec![Err(refused())])).await;
    let failed = row(&queue, id.as_str()).await;
    assert_eq!(failed.state, State::Failed);
    assert!(failed.remedy.unwrap().contains("Mail.Send"));

    // The admin grants the permission and retries it.
    queue.retry(id.as_str()).await.unwrap();
    let queued = row(&queue, id.as_str()).await;
    assert_eq!((queued.state, queued.remedy), (State::Queued, None));

    // This time the server fails for a moment, then times out after the request.
    let timed_out = Error::transport("test", "no answer after the request", Transience::Transient)
        .with_uncertain_delivery();
    run(
        &queue,
        Scripted::new(vec![Err(transient()), Err(timed_out)]),
    )
    .await;
    let uncertain = row(&queue, id.as_str()).await;
    assert_eq!(uncertain.state, State::Uncertain, "{uncertain:?}");
    let remedy = uncertain.remedy.unwrap_or_default();
    assert!(!remedy.contains("Mail.Send"), "{remedy}");
    assert!(remedy.contains("verify"), "{remedy}");
}

/// After an operator's retry, a worker that dies mid-send leaves the message uncertain with
/// the advice to verify, not the fix of the failure before the retry.
async fn a_retried_message_whose_worker_died_says_to_verify_not_the_earlier_fix(backend: Backend) {
    let (queue, _guard, url) = open_with_url(backend).await;
    let id = queue
        .enqueue(&email("ann@example.org", "died"), EnqueueOptions::new())
        .await
        .unwrap();
    run(&queue, Scripted::new(vec![Err(refused())])).await;
    queue.retry(id.as_str()).await.unwrap();

    let store = queue.store();
    let now = SystemTime::now();
    let limits = MailboxLimits::unlimited();
    let lease = Duration::from_secs(1);
    let Claim::Message(_) = store
        .claim(&ClaimRequest::new("dies", now, lease, limits))
        .await
        .unwrap()
    else {
        panic!("due now");
    };
    // Its lease runs out: the next claim finds it uncertain.
    server_clock_passes(url.as_deref(), Duration::from_secs(2)).await;
    let later = now + Duration::from_secs(2);
    store
        .claim(&ClaimRequest::new("next", later, lease, limits))
        .await
        .unwrap();
    let uncertain = row(&queue, id.as_str()).await;
    assert_eq!(uncertain.state, State::Uncertain, "{uncertain:?}");
    let remedy = uncertain.remedy.unwrap_or_default();
    assert!(!remedy.contains("Mail.Send"), "{remedy}");
    assert!(remedy.contains("verify"), "{remedy}");
}
