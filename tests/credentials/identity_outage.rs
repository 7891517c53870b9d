//! An identity endpoint that answered before and then refuses connections is down for a
//! while (the host's identity service restarting), not missing: its error is transient and
//! says so, where a host that never had one gets the permanent "no managed identity here".
//! One that throttles keeps its `Retry-After` on the error; one that takes a request and never
//! answers is in trouble, not missing.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mail_connector::Credentials;
use tokio::net::TcpListener;

use crate::support::*;

const IMDS_PATH: &str = "/metadata/identity/oauth2/token";

/// An identity endpoint that serves one token over one connection, then closes its port.
async fn answers_once() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{IMDS_PATH}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        drop(listener);
        let body = serde_json::json!({
            "access_token": "mi-token-once",
            "expires_in": "86399",
            "expires_on": "1900000000",
            "resource": "https://graph.microsoft.com",
            "token_type": "Bearer",
        })
        .to_string();
        let service = service_fn(move |_: Request<Incoming>| {
            let body = body.clone();
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .unwrap(),
                )
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
    url
}

#[tokio::test]
async fn an_endpoint_that_answered_before_is_down_for_now_not_missing() {
    let credentials = Credentials::managed_identity_with_env(None, None)
        .managed_identity_endpoint(answers_once().await)
        .retry_policy(fast_retry(1))
        .build()
        .unwrap();
    credentials.access_token(GRAPH_SCOPE).await.unwrap();
    // Another scope: not cached, so the endpoint is asked again, and its port is closed.
    let error = credentials
        .access_token("https://outlook.office365.com/.default")
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("answered before"), "{remedy}");
    assert!(!remedy.contains("no managed identity"), "{remedy}");
}

/// The metadata service throttles (429, a limited rate per VM): the wait it asks for is on
/// the error once the retries give up, for a queue or a caller to honour.
#[tokio::test]
async fn a_throttled_identity_endpoints_retry_after_stays_on_the_error() {
    let server = httpmock::MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(httpmock::Method::GET).path(IMDS_PATH);
            then.status(429)
                .header("retry-after", "600")
                .json_body(serde_json::json!({"error": "too many requests"}));
        })
        .await;
    let credentials = Credentials::managed_identity_with_env(None, None)
        .managed_identity_endpoint(server.url(IMDS_PATH))
        .retry_policy(fast_retry(3))
        .build()
        .unwrap();
    let error = credentials.access_token(GRAPH_SCOPE).await.unwrap_err();
    assert_eq!(
        mock.calls_async().await,
        1,
        "ten minutes outlast the retries"
    );
    assert!(error.is_transient(), "{error}");
    assert_eq!(
        error.retry_after(),
        Some(std::time::Duration::from_secs(600)),
        "{error:?}"
    );
}

/// An identity endpoint that takes each request and closes the connection without an
/// answer (a timeout ends the same way): something listens there, so this is an identity
/// service in trouble, never "no managed identity on this host".
async fn hangs_up() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{IMDS_PATH}", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            // The request's head arrives before the connection is dropped.
            let mut head = [0u8; 1024];
            let _ = stream.read(&mut head).await;
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (url, requests)
}

#[tokio::test]
async fn an_endpoint_that_takes_the_request_but_never_answers_is_not_missing() {
    let (url, requests) = hangs_up().await;
    let error = Credentials::managed_identity_with_env(None, None)
        .managed_identity_endpoint(url)
        .retry_policy(fast_retry(1))
        .build()
        .unwrap()
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "retried once"
    );
    assert!(error.is_transient(), "{error:?}");
    let remedy = error.remedy().unwrap();
    assert!(!remedy.contains("no managed identity"), "{remedy}");
    assert!(remedy.contains("no complete answer"), "{remedy}");
}
