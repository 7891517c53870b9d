//! Unit tests of the guarded stream and the implicit-TLS stream over it.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A guarded client socket and the server's end of it.
async fn pair() -> (GuardedStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    (GuardedStream::new(client.unwrap()), accepted.unwrap().0)
}

fn kind(error: &io::Error) -> Option<Violation> {
    violation(error)
}

#[tokio::test]
async fn a_starttls_reply_in_pieces_is_delivered_whole_and_alone() {
    let (mut client, mut server) = pair().await;
    client.write_all(b"STARTTLS\r\n").await.unwrap();
    server.write_all(b"220-first\r\n220 ").await.unwrap();
    let read = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let n = client.read(&mut buf).await.unwrap();
        buf[..n].to_vec()
    });
    server.write_all(b"go ahead\r\n").await.unwrap();
    assert_eq!(read.await.unwrap(), b"220-first\r\n220 go ahead\r\n");
}

#[tokio::test]
async fn bytes_after_the_starttls_reply_fail_the_read() {
    let (mut client, mut server) = pair().await;
    client.write_all(b"starttls\r\n").await.unwrap();
    server
        .write_all(b"220 go ahead\r\n250 AUTH PLAIN\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let error = client.read(&mut buf).await.unwrap_err();
    assert_eq!(kind(&error), Some(Violation::StarttlsInjection));
}

#[tokio::test]
async fn a_bare_lf_in_the_starttls_reply_fails_the_read() {
    let (mut client, mut server) = pair().await;
    client.write_all(b"STARTTLS\r\n").await.unwrap();
    server.write_all(b"220 go ahead\n").await.unwrap();
    let mut buf = [0u8; 64];
    let error = client.read(&mut buf).await.unwrap_err();
    assert_eq!(kind(&error), Some(Violation::StarttlsInjection));
}

#[tokio::test]
async fn reading_again_before_the_handshake_fails() {
    let (mut client, mut server) = pair().await;
    client.write_all(b"STARTTLS\r\n").await.unwrap();
    server.write_all(b"220 go ahead\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = client.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"220 go ahead\r\n");
    // Whatever the server sends later, a read before the client hello is refused.
    server.write_all(b"250 injected later\r\n").await.unwrap();
    let error = client.read(&mut buf).await.unwrap_err();
    assert_eq!(kind(&error), Some(Violation::StarttlsInjection));
}

/// A server that closes in the middle of its reply to STARTTLS: the reader gets what
/// came, then the end of the stream (lettre reports the cut reply), instead of the guard
/// asking an empty socket again and again in one poll, which no deadline could stop.
#[test]
fn a_server_that_closes_during_the_starttls_reply_ends_the_read() {
    let (done, outcome) = std::sync::mpsc::channel();
    // A thread of its own: a read that spins inside its poll would hold any runtime.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let read = runtime.block_on(async {
            let (mut client, mut server) = pair().await;
            client.write_all(b"STARTTLS\r\n").await.unwrap();
            // Read by the server, else closing would reset the connection.
            let mut command = [0u8; 10];
            server.read_exact(&mut command).await.unwrap();
            server.write_all(b"220 go").await.unwrap();
            drop(server);
            let mut read = Vec::new();
            client.read_to_end(&mut read).await.map(|_| read)
        });
        let _ = done.send(read.map_err(|e| e.to_string()));
    });
    let read = outcome
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the read must end when the server closes");
    assert_eq!(read.unwrap(), b"220 go");
}

#[tokio::test]
async fn other_replies_pass_through_and_the_count_restarts_at_each_write() {
    let (mut client, mut server) = pair().await;
    let mut buf = vec![0u8; MAX_REPLY_BYTES];
    let half = vec![b'a'; MAX_REPLY_BYTES / 2 + 1];
    // Two halves, with a write of the client between them: fine.
    server.write_all(&half).await.unwrap();
    client.read_exact(&mut buf[..half.len()]).await.unwrap();
    client.write_all(b"NOOP\r\n").await.unwrap();
    server.write_all(&half).await.unwrap();
    client.read_exact(&mut buf[..half.len()]).await.unwrap();
    // Without a write between them: refused.
    server.write_all(&half).await.unwrap();
    let error = client.read_exact(&mut buf).await.unwrap_err();
    assert_eq!(kind(&error), Some(Violation::ReplyTooLong));
}

/// A TLS server for `localhost` with a certificate signed by its own CA, and the PEM of
/// that CA for the client to trust.
fn tls_server() -> (tokio_rustls::TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    (std::sync::Arc::new(config).into(), ca_cert.pem())
}

/// What the TLS layer took while the socket was full goes out on flush. lettre flushes
/// after each write and then waits for the reply: the end of the data left in the TLS
/// buffer would never reach the server, and the send would hang until its deadline.
#[tokio::test]
async fn a_flush_over_implicit_tls_sends_what_a_full_socket_held_back() {
    use lettre::transport::smtp::client::{Certificate, TlsParameters};

    let (acceptor, ca_pem) = tls_server();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small send buffer, so that the socket fills after a few records.
    socket.set_send_buffer_size(4096).unwrap();
    let client = socket.connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    let params = TlsParameters::builder("localhost".to_owned())
        .add_root_certificate(Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let (client, server) = tokio::join!(
        ImplicitTls::handshake(Box::new(GuardedStream::new(client.unwrap())), params),
        acceptor.accept(accepted.unwrap().0)
    );
    let (mut client, mut server) = (client.unwrap(), server.unwrap());

    // The server reads nothing yet: write until a write cannot go on. The TLS layer then
    // holds records the socket had no room for.
    let chunk = [b'x'; 16 * 1024];
    let mut taken = 0;
    while let Some(written) =
        std::future::poll_fn(|cx| match Pin::new(&mut client).poll_write(cx, &chunk) {
            Poll::Pending => Poll::Ready(None),
            Poll::Ready(written) => Poll::Ready(Some(written)),
        })
        .await
    {
        taken += written.unwrap();
        assert!(taken < 256 * 1024 * 1024, "the socket never filled");
    }

    // The flush, while the server reads every byte the client took.
    let read = async {
        let mut received = vec![0u8; taken];
        server.read_exact(&mut received).await.map(|_| received)
    };
    // Only a bound on a hang: the bytes are all there, or never come.
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), read);
    let (flushed, read) = tokio::join!(client.flush(), read);
    flushed.unwrap();
    let received = read
        .expect("bytes the client took never reached the server: the flush left them behind")
        .unwrap();
    assert!(received.iter().all(|&b| b == b'x'));
}
