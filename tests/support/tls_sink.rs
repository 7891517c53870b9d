//! An HTTPS server on 127.0.0.1 that answers at once, as Entra ID's token endpoint
//! (`POST …/oauth2/v2.0/token`) and as Graph (`202 Accepted` for anything else) on the same
//! address: with no server work to wait for, the client's own cost is what a benchmark
//! measures. It counts the TCP connections it accepted (every one a TLS connection), those
//! that chose HTTP/2, and the requests it answered, token requests apart.
//!
//! Like graph.microsoft.com and login.microsoftonline.com it offers HTTP/2 and HTTP/1.1 by
//! ALPN ([`start`]); [`start_http1`] offers HTTP/1.1 only, as a proxy or an older gateway
//! in between might.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The access token the sink hands out.
pub const TOKEN: &str = "sink-token";

/// What the sink saw.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// TCP (and so TLS) connections accepted, token endpoint included.
    pub connections: AtomicUsize,
    /// Those of them on which the client chose HTTP/2.
    pub http2_connections: AtomicUsize,
    /// Token requests answered.
    pub token_requests: AtomicUsize,
    /// Other (Graph) requests answered.
    pub graph_requests: AtomicUsize,
}

/// The running sink.
#[derive(Debug)]
pub struct TlsSink {
    /// `https://127.0.0.1:{port}`: the authority host and the Graph endpoint.
    pub base: String,
    /// The self-signed certificate's PEM, to trust through `tls_ca_file`.
    pub certificate_pem: String,
    pub stats: Arc<SinkStats>,
}

impl TlsSink {
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Connections accepted so far on which the client chose HTTP/2.
    #[allow(dead_code)]
    pub fn http2_connections(&self) -> usize {
        self.stats.http2_connections.load(Ordering::SeqCst)
    }
}

/// The protocols the sink offers by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// `h2` and `http/1.1`, as Graph and the login host do.
    Http2AndHttp1,
    /// `http/1.1` only.
    Http1Only,
}

/// Starts the sink offering HTTP/2 and HTTP/1.1, on the current Tokio runtime.
#[allow(dead_code)] // Not every test binary that includes this file starts both kinds.
pub async fn start() -> TlsSink {
    start_with(Protocols::Http2AndHttp1).await
}

/// Starts the sink offering HTTP/1.1 only, on the current Tokio runtime.
#[allow(dead_code)]
pub async fn start_http1() -> TlsSink {
    start_with(Protocols::Http1Only).await
}

/// Starts the sink on an ephemeral port, on the current Tokio runtime.
pub async fn start_with(protocols: Protocols) -> TlsSink {
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key_pair).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = match protocols {
        Protocols::Http2AndHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Protocols::Http1Only => vec![b"http/1.1".to_vec()],
    };
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let stats = Arc::new(SinkStats::default());
    let shared = Arc::clone(&stats);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            // As a real server's: without it, Nagle's algorithm holds a small answer back
            // until the client's delayed ACK (≈ 40 ms on loopback), now and then, which made
            // the bench's short measurements fast or slow by a third at random.
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let stats = Arc::clone(&shared);
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                if http2 {
                    stats.http2_connections.fetch_add(1, Ordering::SeqCst);
                }
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let stats = Arc::clone(&stats);
                    async move { Ok::<_, Infallible>(answer(request, &stats).await) }
                });
                if http2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            });
        }
    });
    TlsSink {
        base,
        certificate_pem: cert.pem(),
        stats,
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    stats: &SinkStats,
) -> Response<Full<Bytes>> {
    let is_token = request.uri().path().ends_with("/oauth2/v2.0/token");
    // Read the whole request, as a server must before answering on a kept-alive connection.
    let _ = request.into_body().collect().await;
    let response = Response::builder().header("request-id", "sink");
    if is_token {
        stats.token_requests.fetch_add(1, Ordering::SeqCst);
        response
            .status(200)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(
                r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{TOKEN}"}}"#
            ))))
            .unwrap()
    } else {
        stats.graph_requests.fetch_add(1, Ordering::SeqCst);
        response.status(202).body(Full::new(Bytes::new())).unwrap()
    }
}
