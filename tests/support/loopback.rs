//! A small Graph-shaped HTTP server on loopback that measures what httpmock cannot: how many
//! requests are in flight at once. Every request waits `latency` (simulated server work);
//! request bodies are read and counted but not kept. It answers like Graph's send paths:
//! `…/messages` → 201 with a draft id, `…/createUploadSession` → 201 with an upload URL on
//! this server, `…/attachments` → 201, `PUT` → 201 for the range that completes the file
//! and 200 with `nextExpectedRanges` for the others, anything else → 202.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// What the server saw.
#[derive(Debug, Default)]
pub struct Stats {
    in_flight: AtomicUsize,
    /// The most requests handled at the same moment.
    pub max_in_flight: AtomicUsize,
    /// Requests answered.
    pub requests: AtomicUsize,
    /// Request body bytes received.
    pub body_bytes: AtomicU64,
}

/// Starts the server; returns its base URL and its stats.
pub async fn start(latency: Duration) -> (String, Arc<Stats>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stats = Arc::new(Stats::default());
    let shared = Arc::clone(&stats);
    let upload_base = base.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let stats = Arc::clone(&shared);
            let base_for_upload = upload_base.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let stats = Arc::clone(&stats);
                    let base = base_for_upload.clone();
                    async move {
                        let path = request.uri().path().to_owned();
                        // The range a `PUT` ends at, and the file's size.
                        let put = (request.method() == hyper::Method::PUT)
                            .then(|| upload_range(request.headers()));
                        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
                        let mut body = request.into_body();
                        while let Some(Ok(frame)) = body.frame().await {
                            if let Some(data) = frame.data_ref() {
                                stats
                                    .body_bytes
                                    .fetch_add(data.len() as u64, Ordering::SeqCst);
                            }
                        }
                        tokio::time::sleep(latency).await;
                        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
                        stats.requests.fetch_add(1, Ordering::SeqCst);
                        let (status, body) = if path.ends_with("/messages") {
                            (201, r#"{"id":"draft-1"}"#.to_owned())
                        } else if path.ends_with("/createUploadSession") {
                            (201, format!(r#"{{"uploadUrl":"{base}/upload/session"}}"#))
                        } else if path.ends_with("/attachments") {
                            (201, r#"{"id":"attachment-1"}"#.to_owned())
                        } else if let Some((end, total)) = put {
                            match end + 1 == total {
                                true => (201, String::new()),
                                false => {
                                    (200, format!(r#"{{"nextExpectedRanges":["{}"]}}"#, end + 1))
                                }
                            }
                        } else {
                            (202, String::new())
                        };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("request-id", "loopback")
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
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
    (base, stats)
}

/// The last byte and the total of a `PUT`'s `Content-Range: bytes {start}-{end}/{total}`.
fn upload_range(headers: &hyper::HeaderMap) -> (u64, u64) {
    headers
        .get("content-range")
        .and_then(|value| value.to_str().ok())
        .and_then(|range| {
            let (span, total) = range.strip_prefix("bytes ")?.split_once('/')?;
            Some((span.split_once('-')?.1.parse().ok()?, total.parse().ok()?))
        })
        .expect("an upload PUT carries a Content-Range")
}
