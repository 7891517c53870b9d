//! A loopback TCP proxy in front of PostgreSQL that loses the answer to one statement: it
//! passes the statement on and breaks the connection before its answer comes back (or
//! breaks it before the statement reaches the server), and can stand for a database that is
//! down. For the queue's statements whose answer may be lost: a claim's `COMMIT`, an
//! enqueue's `INSERT` that commits by itself, a batch's `COMMIT`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_connector::queue::sqlx::postgres::PgPoolOptions;
use mail_connector::queue::{PostgresStore, Queue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A simple-query `COMMIT`, as sqlx ends a transaction.
pub const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

/// The enqueue's `INSERT`, as its text goes in the Parse message of its first use on a
/// connection (later uses name the prepared statement: lose the first).
pub const INSERT: &[u8] = b"INSERT INTO mail_queue.messages";

#[derive(Debug, Default)]
pub struct Proxy {
    /// The statement whose answer the proxy loses next, once.
    lose_next: Mutex<Option<&'static [u8]>>,
    /// Whether the statement to lose was prepared (its text went by).
    seen: AtomicBool,
    /// Whether the statement, rather than its answer, is lost (it never reaches the server).
    before_the_server: AtomicBool,
    /// Set with the lost answer when `down_after_cut` is: every connection is broken.
    pub down: AtomicBool,
    pub down_after_cut: AtomicBool,
}

impl Proxy {
    /// Starts the proxy in front of `url`'s server; returns it and the URL through it.
    pub async fn start(url: &str) -> (Arc<Self>, String) {
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

    /// Loses the answer to the next `statement` (the server acts on it).
    pub fn lose_answer_to(&self, statement: &'static [u8]) {
        self.before_the_server.store(false, Ordering::SeqCst);
        self.seen.store(false, Ordering::SeqCst);
        *self.lose_next.lock().unwrap() = Some(statement);
    }

    /// Loses the next `statement` itself: the connection breaks before the server has it.
    pub fn lose(&self, statement: &'static [u8]) {
        self.before_the_server.store(true, Ordering::SeqCst);
        self.seen.store(false, Ordering::SeqCst);
        *self.lose_next.lock().unwrap() = Some(statement);
    }

    /// Whether the statement given to [`lose_answer_to`](Self::lose_answer_to) or
    /// [`lose`](Self::lose) came and was cut.
    pub fn cut(&self) -> bool {
        self.lose_next.lock().unwrap().is_none()
    }

    /// Whether `chunk` runs the statement to lose: then it is lost, once. A simple query
    /// (`Q`) holds its text; an extended one is prepared first (a `Parse` with its text,
    /// answered), then run by a `Bind` that names it: the next `Bind` after the text.
    fn take(&self, chunk: &[u8]) -> bool {
        let mut next = self.lose_next.lock().unwrap();
        let Some(statement) = *next else {
            return false;
        };
        let holds = chunk.windows(statement.len()).any(|w| w == statement);
        let seen = holds || self.seen.load(Ordering::SeqCst);
        let runs = match chunk.first() {
            Some(b'Q') => holds,
            Some(b'B') => seen,
            _ => false,
        };
        self.seen.store(seen && !runs, Ordering::SeqCst);
        if runs {
            *next = None;
        }
        runs
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
                // The client had every earlier answer before it sent the statement: what
                // comes now is the statement's, which is lost with the connection.
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
            if self.take(chunk) {
                cut.store(true, Ordering::SeqCst);
                if self.down_after_cut.load(Ordering::SeqCst) {
                    self.down.store(true, Ordering::SeqCst);
                }
                if self.before_the_server.load(Ordering::SeqCst) {
                    break;
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
pub async fn through_proxy() -> (Arc<Proxy>, Queue, Queue) {
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
