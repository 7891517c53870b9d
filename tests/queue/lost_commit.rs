//! A claim whose `COMMIT` lost its answer (the connection broke as PostgreSQL committed):
//! the message was leased but no worker has it, and it was certainly never sent. It must go
//! back to `queued` — at once, or at the next claim when the database cannot be reached yet
//! — not sit in `sending` and turn `uncertain`, waiting for an operator.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use mail_connector::queue::{Claim, ClaimRequest, EnqueueOptions, MailboxLimits, State};

use crate::helpers::{email, row};
use crate::proxy::{COMMIT, through_proxy};

fn request() -> ClaimRequest {
    ClaimRequest::new(
        "test",
        SystemTime::now(),
        Duration::from_secs(60),
        MailboxLimits::graph(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_commit_lost_its_answer_is_queued_again() {
    let (proxy, queue, direct) = through_proxy().await;
    let id = queue
        .enqueue(&email("x@example.org", "lost"), EnqueueOptions::new())
        .await
        .unwrap();
    proxy.lose_answer_to(COMMIT);
    assert!(queue.store().claim(&request()).await.is_err());
    assert!(proxy.cut(), "a commit was cut");
    let message = row(&direct, id.as_str()).await;
    assert_eq!((message.state, message.attempts), (State::Queued, 0));
    let Claim::Message(claimed) = queue.store().claim(&request()).await.unwrap() else {
        panic!("due now, and under the rate");
    };
    assert_eq!(
        (claimed.lease.id.as_str(), claimed.attempts),
        (id.as_str(), 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_claim_is_put_back_once_the_database_answers_again() {
    let (proxy, queue, direct) = through_proxy().await;
    let id = queue
        .enqueue(&email("x@example.org", "lost"), EnqueueOptions::new())
        .await
        .unwrap();
    proxy.down_after_cut.store(true, Ordering::SeqCst);
    proxy.lose_answer_to(COMMIT);
    assert!(queue.store().claim(&request()).await.is_err());
    assert!(proxy.down.load(Ordering::SeqCst), "a commit was cut");
    // The claim committed; the database could not be reached to put it back.
    assert_eq!(row(&direct, id.as_str()).await.state, State::Sending);

    proxy.down_after_cut.store(false, Ordering::SeqCst);
    proxy.down.store(false, Ordering::SeqCst);
    let Claim::Message(claimed) = queue.store().claim(&request()).await.unwrap() else {
        panic!("the lost claim's message is queued again and claimed");
    };
    assert_eq!(
        (claimed.lease.id.as_str(), claimed.attempts),
        (id.as_str(), 1)
    );
}
