//! Hostile and faulty HTTP servers on loopback, for the hardening tests: one that streams an
//! endless body, one that throttles once and records arrivals, one with a self-signed TLS
//! certificate, and one that accepts connections and never answers.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The most an endless body sends before it ends anyway (so that a client that reads it all
/// finishes, and the test fails instead of hanging).
pub const ENDLESS_LIMIT: u64 = 128 * 1024 * 1024;

/// A response body of `ENDLESS_LIMIT` bytes in 64 KiB chunks, counting each chunk handed to
/// the connection; hyper only asks for the next one once the previous one was written, so
/// the count stops growing soon after the client stops reading.
struct Endless {
    sent: Arc<AtomicU64>,
    chunk: Bytes,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let sent = self
            .sent
            .fetch_add(self.chunk.len() as u64, Ordering::SeqCst);
        if sent >= ENDLESS_LIMIT {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }
}

/// Serves every request with `status` and an endless JSON-looking body (no
/// `Content-Length`); returns the base URL and the count of body bytes handed out.
pub async fn endless_body(status: u16) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let service = service_fn(move |_: Request<Incoming>| {
                    let body = Endless {
                        sent: Arc::clone(&counter),
                        chunk: Bytes::from(vec![b' '; 64 * 1024]),
                    };
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(body)
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (base, sent)
}

/// What the throttling server saw.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// When each request arrived.
    pub at: Mutex<Vec<Instant>>,
    /// When the 429 was answered.
    pub throttled_at: Mutex<Option<Instant>>,
}

/// Answers the first request with 429 and `Retry-After: {seconds}`, every other with 202,
/// recording arrival times.
pub async fn throttle_once(seconds: u64) -> (String, Arc<Arrivals>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let arrivals = Arc::new(Arrivals::default());
    let shared = Arc::clone(&arrivals);
    let first = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let arrivals = Arc::clone(&shared);
            let first = Arc::clone(&first);
            tokio::spawn(async move {
                let service = service_fn(move |_: Request<Incoming>| {
                    let now = Instant::now();
                    arrivals.at.lock().unwrap().push(now);
                    let response = if first.fetch_add(1, Ordering::SeqCst) == 0 {
                        *arrivals.throttled_at.lock().unwrap() = Some(Instant::now());
                        Response::builder()
                            .status(429)
                            .header("retry-after", seconds.to_string())
                            .body(Full::new(Bytes::from_static(
                                br#"{"error":{"code":"ApplicationThrottled","message":"slow down"}}"#,
                            )))
                    } else {
                        Response::builder()
                            .status(202)
                            .header("request-id", "ok")
                            .body(Full::new(Bytes::new()))
                    };
                    async move { Ok::<_, Infallible>(response.unwrap()) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (base, arrivals)
}

/// An HTTPS server on 127.0.0.1 whose certificate is self-signed (so no client trusts it);
/// returns its base URL and the number of TLS handshakes clients attempted.
pub async fn self_signed_tls() -> (String, Arc<AtomicUsize>) {
    let (base, handshakes, _) = tls_server(&["127.0.0.1"], false).await;
    (base, handshakes)
}

/// An HTTPS server on 127.0.0.1 with a self-signed certificate for `names`, already expired
/// when `expired`; returns its base URL, the number of TLS handshakes clients attempted and
/// the certificate's PEM (to trust it through `tls_ca_file`).
pub async fn tls_server(names: &[&str], expired: bool) -> (String, Arc<AtomicUsize>, String) {
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let key_pair = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.self_signed(&key_pair).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let config = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&handshakes);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // The client refuses the certificate; nothing is ever served.
                let _ = acceptor.accept(stream).await;
            });
        }
    });
    (base, handshakes, cert.pem())
}

/// Accepts connections and never answers (a login host that hangs); returns its base URL
/// and the number of connections accepted.
pub async fn silent() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            open.push(stream);
        }
    });
    (base, accepted)
}
