//! An HTTP/2 server that refuses a request's stream (`REFUSED_STREAM`) did not process it
//! (RFC 9113, section 8.7): the request is not "delivery uncertain", and is sent again. Also
//! for a request whose body is watched, which reqwest cannot send again by itself: every
//! request through a caller's own client, whose connect timeout the transport cannot know.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mail_connector::{Credentials, Delivery, GraphTransport, MailTransport, Mailbox};

use super::helpers::*;
use crate::support::*;

/// A plain-text HTTP/2 server (prior knowledge) that refuses the stream of the first
/// `refused` requests and accepts the others; counts the requests it sees.
async fn refusing_server(refused: usize, seen: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = connection.accept().await {
                    if seen.fetch_add(1, Ordering::SeqCst) < refused {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    let mut body = request.into_body();
                    while let Some(Ok(chunk)) = body.data().await {
                        let _ = body.flow_control().release_capacity(chunk.len());
                    }
                    let accepted = hyper::Response::builder().status(202).body(()).unwrap();
                    let _ = respond.send_response(accepted, true);
                }
            });
        }
    });
    format!("http://{addr}")
}

/// A transport on the caller's own HTTP/2 client, allowed `retries` retries.
fn transport_to(base: String, retries: u32) -> GraphTransport {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    GraphTransport::builder(
        Mailbox::parse("no-reply@contoso.com").unwrap(),
        Credentials::from_token_provider(FakeTokens::new(&["token"])),
    )
    .graph_endpoint(base)
    .retry_policy(fast_retry(retries))
    .http_client(client)
    .build()
    .unwrap()
}

#[tokio::test]
async fn a_refused_stream_is_sent_again() {
    let seen = Arc::new(AtomicUsize::new(0));
    let base = refusing_server(1, Arc::clone(&seen)).await;
    transport_to(base, 2).send(&simple_email()).await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_stream_with_no_retry_left_was_not_sent() {
    let seen = Arc::new(AtomicUsize::new(0));
    let base = refusing_server(usize::MAX, Arc::clone(&seen)).await;
    let error = transport_to(base, 0)
        .send(&simple_email())
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    assert!(error.to_string().contains("did not process"), "{error}");
    assert!(error.is_transient(), "{error}");
}
