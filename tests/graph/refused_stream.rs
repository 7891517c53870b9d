//! An HTTP/2 server that refuses a request's stream (`REFUSED_STREAM`), or closes the
//! connection gracefully (`GOAWAY` with `NO_ERROR`) below the request's stream, did not process
//! it (RFC 9113, section 8.7): the request is not "delivery uncertain", and is sent again. Also
//! for a request whose body is watched, which reqwest cannot send again by itself: every
//! request through a caller's own client, whose connect timeout the transport cannot know.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
                    accept(request, respond).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Reads `request`'s body and answers 202, as Graph's `sendMail` does.
async fn accept(
    request: hyper::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
) {
    let mut body = request.into_body();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let accepted = hyper::Response::builder().status(202).body(()).unwrap();
    let _ = respond.send_response(accepted, true);
}

/// A plain-text HTTP/2 server (prior knowledge) that, on each of its first `closed`
/// connections, answers the first request's HEADERS with a graceful `GOAWAY` (`NO_ERROR`)
/// whose last stream is 0: it processed none. Written frame by frame, since h2's server
/// counts a stream it has read as processed. Later connections accept; counts the requests.
async fn going_away_server(closed: usize, seen: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let connections = AtomicUsize::new(0);
        while let Ok((socket, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            let going_away = connections.fetch_add(1, Ordering::SeqCst) < closed;
            tokio::spawn(async move {
                if going_away {
                    let _ = go_away_before(socket, &seen).await;
                    return;
                }
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((request, respond))) = connection.accept().await {
                    seen.fetch_add(1, Ordering::SeqCst);
                    accept(request, respond).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

/// One connection of [`going_away_server`]: its SETTINGS, then `GOAWAY(0, NO_ERROR)` at the
/// first HEADERS; then reads until the client closes, so that it sees nothing but the GOAWAY.
async fn go_away_before(
    mut socket: tokio::net::TcpStream,
    seen: &AtomicUsize,
) -> std::io::Result<()> {
    const SETTINGS: u8 = 0x4;
    const HEADERS: u8 = 0x1;
    const ACK: u8 = 0x1;
    let mut preface = [0; 24];
    socket.read_exact(&mut preface).await?;
    assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    socket
        .write_all(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0])
        .await?;
    loop {
        let mut head = [0; 9];
        socket.read_exact(&mut head).await?;
        let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0; length];
        socket.read_exact(&mut payload).await?;
        match head[3] {
            SETTINGS if head[4] & ACK == 0 => {
                socket
                    .write_all(&[0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0])
                    .await?;
            }
            HEADERS => {
                seen.fetch_add(1, Ordering::SeqCst);
                // GOAWAY: length 8, type 0x7, stream 0; last stream 0, error NO_ERROR (0).
                let go_away = [0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                socket.write_all(&go_away).await?;
                let mut rest = Vec::new();
                socket.read_to_end(&mut rest).await?;
                return Ok(());
            }
            _ => {}
        }
    }
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

/// A send to `base`, a server that turns away the first request and accepts the next: it goes,
/// on a second request.
async fn assert_sent_again(base: String, seen: &AtomicUsize) {
    transport_to(base, 2).send(&simple_email()).await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

/// A send with no retry to `base`, a server that turns every request away: not sent, and
/// worth trying again.
async fn assert_not_sent(base: String) {
    let error = transport_to(base, 0)
        .send(&simple_email())
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    assert!(error.to_string().contains("did not process"), "{error}");
    assert!(error.is_transient(), "{error}");
}

#[tokio::test]
async fn a_refused_stream_is_sent_again() {
    let seen = Arc::new(AtomicUsize::new(0));
    assert_sent_again(refusing_server(1, Arc::clone(&seen)).await, &seen).await;
}

#[tokio::test]
async fn a_refused_stream_with_no_retry_left_was_not_sent() {
    let seen = Arc::new(AtomicUsize::new(0));
    assert_not_sent(refusing_server(usize::MAX, seen).await).await;
}

#[tokio::test]
async fn a_graceful_goaway_before_the_stream_is_sent_again() {
    let seen = Arc::new(AtomicUsize::new(0));
    assert_sent_again(going_away_server(1, Arc::clone(&seen)).await, &seen).await;
}

#[tokio::test]
async fn a_graceful_goaway_with_no_retry_left_was_not_sent() {
    let seen = Arc::new(AtomicUsize::new(0));
    assert_not_sent(going_away_server(usize::MAX, Arc::clone(&seen)).await).await;
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}
