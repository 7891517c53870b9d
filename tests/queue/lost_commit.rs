//! A claim whose `COMMIT` lost its answer (the connection broke as PostgreSQL committed):
//! the message was leased but no worker has it, and it was certainly never sent. It must go
//! back to `queued` — at once, or at the next claim when the database cannot be reached yet
//! — not sit in `sending` and turn `uncertain`, waiting for an operator.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use mail_connector::queue::sqlx::postgres::PgPoolOptions;
use mail_connector::queue::{
    Claim, ClaimRequest, EnqueueOptions, MailboxLimits, PostgresStore, Queue, State,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{email, row};

/// A simple-query `COMMIT`, as sqlx ends a transaction.
const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

/// A TCP proxy in front of PostgreSQL that can pass the next `COMMIT` on and then break the
/// connection before its answer comes back, and can stand for a database that is down.
#[derive(Debug, Default)]
struct Proxy {
    lose_next_commit: AtomicBool,
    /// Set with the lost answer when `down_after_commit` is: every connection is broken.
    down: AtomicBool,
    down_after_commit: AtomicBool,
}

impl Proxy {
    /// Starts the proxy in front of `url`'s server; returns it and the URL through it.
    async fn start(url: &str) -> (Arc<Self>, String) {
        let (prefix, rest) = url.rsplit_once(':').unwrap();
        let (port, database) = rest.split_once('/').unwrap();
        let upstream = format!("127.0.0.1:{port}");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxied = format!(
            "{prefix}:{}/{database}",
            listener.local_addr().unwrap().port()
        );
        let proxy = Arc::new(Self::default());
        let shared = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.down.load(Ordering::SeqCst) {
                    continue;
                }
                let server = TcpStream::connect(&upstream).await.unwrap();
                tokio::spawn(shared.clone().relay(client, server));
            }
        });
        (proxy, proxied)
    }

    async fn relay(self: Arc<Self>, client: TcpStream, server: TcpStream) {
        let (mut client_in, mut client_out) = client.into_split();
        let (mut server_in, mut server_out) = server.into_split();
        let cut = Arc::new(AtomicBool::new(false));
        let cutting = cut.clone();
        let answers = tokio::spawn(async move {
            let mut buf = vec![0; 64 * 1024];
            loop {
                let Ok(n @ 1..) = server_in.read(&mut buf).await else {
                    return;
                };
                // The client had every earlier answer before it sent `COMMIT`: what comes
                // now is the commit's, which is lost with the connection.
                if cutting.load(Ordering::SeqCst) || client_out.write_all(&buf[..n]).await.is_err()
                {
                    return;
                }
            }
        });
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = client_in.read(&mut buf).await {
            if self.down.load(Ordering::SeqCst) {
                break;
            }
            let chunk = &buf[..n];
            if chunk.windows(COMMIT.len()).any(|w| w == COMMIT)
                && self.lose_next_commit.swap(false, Ordering::SeqCst)
            {
                cut.store(true, Ordering::SeqCst);
                if self.down_after_commit.load(Ordering::SeqCst) {
                    self.down.store(true, Ordering::SeqCst);
                }
            }
            if server_out.write_all(chunk).await.is_err() {
                break;
            }
        }
        answers.abort();
    }
}

/// A queue on a fresh database through a proxy, and a queue on it directly (to look).
async fn through_proxy() -> (Arc<Proxy>, Queue, Queue) {
    let url = crate::postgres::database().await;
    let direct = Queue::open(&url).await.unwrap();
    let (proxy, proxied) = Proxy::start(&url).await;
    // A pool that gives up soon when the database is down, as the test's "down" lasts.
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect(&proxied)
        .await
        .unwrap();
    let store = PostgresStore::from_pool(pool).await.unwrap();
    (proxy, Queue::new(store), direct)
}

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
    proxy.lose_next_commit.store(true, Ordering::SeqCst);
    assert!(queue.store().claim(&request()).await.is_err());
    assert!(
        !proxy.lose_next_commit.load(Ordering::SeqCst),
        "a commit was cut"
    );
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
    proxy.down_after_commit.store(true, Ordering::SeqCst);
    proxy.lose_next_commit.store(true, Ordering::SeqCst);
    assert!(queue.store().claim(&request()).await.is_err());
    assert!(proxy.down.load(Ordering::SeqCst), "a commit was cut");
    // The claim committed; the database could not be reached to put it back.
    assert_eq!(row(&direct, id.as_str()).await.state, State::Sending);

    proxy.down_after_commit.store(false, Ordering::SeqCst);
    proxy.down.store(false, Ordering::SeqCst);
    let Claim::Message(claimed) = queue.store().claim(&request()).await.unwrap() else {
        panic!("the lost claim's message is queued again and claimed");
    };
    assert_eq!(
        (claimed.lease.id.as_str(), claimed.attempts),
        (id.as_str(), 1)
    );
}
