//! A gate in front of the mock Graph: every request is passed on to the mock server and its
//! answer passed back, except that a request on a held route is announced when it has
//! arrived and passed on only once the test releases it. So a test knows that a request is
//! in flight, and for as long as it needs. httpmock's own `delay` cannot do this: it is slept
//! before `respond_with` runs, so a signal sent from there comes at the end of the wait, just
//! before the answer, not at its start.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::{Semaphore, mpsc};

/// The requests of one route (a method and a path), each held until the test releases it.
pub(crate) struct Held {
    method: &'static str,
    path: String,
    arrival: mpsc::UnboundedSender<()>,
    arrivals: tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>,
    releases: Semaphore,
}

impl Held {
    /// Holds the requests `method path`.
    pub(crate) fn new(method: &'static str, path: impl Into<String>) -> Arc<Self> {
        let (arrival, arrivals) = mpsc::unbounded_channel();
        Arc::new(Self {
            method,
            path: path.into(),
            arrival,
            arrivals: tokio::sync::Mutex::new(arrivals),
            releases: Semaphore::new(0),
        })
    }

    /// Waits, up to 20 seconds, until the next request of the route has arrived whole (it
    /// is then held).
    pub(crate) async fn arrived(&self) {
        let mut arrivals = self.arrivals.lock().await;
        tokio::time::timeout(Duration::from_secs(20), arrivals.recv())
            .await
            .unwrap_or_else(|_| panic!("no {} {} arrived", self.method, self.path))
            .unwrap();
    }

    /// Lets one held request of the route (or the next to arrive) through to the mock server.
    pub(crate) fn release(&self) {
        self.releases.add_permits(1);
    }
}

/// Starts a gate in front of `upstream` (the mock server's base URL) holding the requests
/// of `held`; returns the gate's base URL.
pub(crate) async fn start(upstream: String, held: Vec<Arc<Held>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let upstream = Arc::new(upstream);
    let held = Arc::new(held);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (client, upstream, held) =
                (client.clone(), Arc::clone(&upstream), Arc::clone(&held));
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let (client, upstream, held) =
                        (client.clone(), Arc::clone(&upstream), Arc::clone(&held));
                    async move { Ok::<_, Infallible>(pass_on(&client, &upstream, &held, request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    base
}

/// Reads `request` whole, holds it if its route is held, then passes it on to `upstream` and
/// its answer back.
async fn pass_on(
    client: &reqwest::Client,
    upstream: &str,
    held: &[Arc<Held>],
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    if let Some(hold) = held
        .iter()
        .find(|hold| parts.method.as_str() == hold.method && parts.uri.path() == hold.path)
    {
        let _ = hold.arrival.send(());
        hold.releases.acquire().await.unwrap().forget();
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let mut headers = parts.headers;
    for framing in [HOST, CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION] {
        headers.remove(framing);
    }
    let answer = client
        .request(parts.method, format!("{upstream}{target}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .expect("the mock server answers");
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if ![CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION].contains(name) {
            response = response.header(name, value);
        }
    }
    let body = answer.bytes().await.unwrap();
    response.body(Full::new(body)).unwrap()
}
