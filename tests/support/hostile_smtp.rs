//! Hostile and broken SMTP servers on loopback, for the hardening tests: a STARTTLS
//! injector, a server that streams an endless reply, servers with bad certificates, an
//! echoing server, a login host that never answers. Each counts the connections it accepts.
#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// What a hostile server saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// TCP connections accepted.
    pub connections: AtomicUsize,
    /// Bytes the server managed to write before the client went away.
    pub bytes_written: AtomicU64,
    /// Command lines received (after TLS too), for assertions.
    pub lines: std::sync::Mutex<Vec<String>>,
}

impl Seen {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::SeqCst)
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// A running hostile server; stops when dropped.
pub struct Hostile {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    /// The PEM of the CA to trust (`tls_ca_pem`), where the server has one.
    pub ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Which certificate a TLS server presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cert {
    /// Signed by the CA in `ca_pem`, for `localhost` and `127.0.0.1`.
    Good,
    /// Signed by the CA, but for another host name.
    WrongName,
    /// Signed by the CA, valid for the name, expired in 2020.
    Expired,
    /// Self-signed for the right name (`ca_pem` is then another, unrelated CA).
    SelfSigned,
    /// Signed by the CA for the right name, but for client authentication only.
    ClientOnly,
}

/// A TLS acceptor presenting `cert`, and the PEM of the CA a client should trust.
pub fn tls_acceptor(cert: Cert) -> (TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hostile test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let names = match cert {
        Cert::WrongName => vec!["mail.other.example".to_owned()],
        _ => vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
    };
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(names).unwrap();
    if cert == Cert::Expired {
        leaf_params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    if cert == Cert::ClientOnly {
        leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    }
    let leaf = if cert == Cert::SelfSigned {
        leaf_params.self_signed(&leaf_key).unwrap()
    } else {
        leaf_params.signed_by(&leaf_key, &issuer).unwrap()
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    (TlsAcceptor::from(Arc::new(config)), ca_cert.pem())
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Conn = BufReader<Box<dyn Io>>;

async fn send(io: &mut Conn, text: &str) -> std::io::Result<()> {
    io.get_mut().write_all(text.as_bytes()).await?;
    io.get_mut().flush().await
}

async fn line(io: &mut Conn, seen: &Seen) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if io.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let line = line.trim_end().to_owned();
    seen.lines.lock().unwrap().push(line.clone());
    Ok(Some(line))
}

/// Accepts connections and runs `session` on each.
async fn serve<F, Fut>(session: F) -> (SocketAddr, Arc<Seen>, tokio::task::JoinHandle<()>)
where
    F: Fn(TcpStream, Arc<Seen>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let shared = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            shared.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(session(socket, Arc::clone(&shared)));
        }
    });
    (addr, seen, task)
}

/// The capabilities the injector slips in before TLS; a client must never show them.
pub const INJECTED_CAPABILITY: &str = "XINJECTED-CAPABILITY";

/// A STARTTLS server that answers STARTTLS with `220` and, in the same write, a complete
/// fake transcript (EHLO with AUTH, 235, 250, 250, 354, 250 queued) in plain text, then
/// speaks TLS (certificate signed by `ca_pem`) and refuses everything but EHLO over it.
pub async fn starttls_injector() -> Hostile {
    injector(Split::No).await
}

/// Like [`starttls_injector`], but its `220` to STARTTLS ends in a bare LF, and the fake
/// transcript follows in a later TCP segment: a client that reads on after the bare LF
/// would take it from the plaintext socket.
pub async fn starttls_injector_split() -> Hostile {
    injector(Split::BareLfThenLater).await
}

#[derive(Clone, Copy)]
enum Split {
    No,
    BareLfThenLater,
}

async fn injector(split: Split) -> Hostile {
    let (acceptor, ca_pem) = tls_acceptor(Cert::Good);
    let (addr, seen, task) = serve(move |socket, seen| {
        let acceptor = acceptor.clone();
        async move {
            let _ = injector_session(socket, &seen, &acceptor, split).await;
        }
    })
    .await;
    Hostile {
        addr,
        seen,
        ca_pem,
        task,
    }
}

async fn injector_session(
    socket: TcpStream,
    seen: &Seen,
    acceptor: &TlsAcceptor,
    split: Split,
) -> std::io::Result<()> {
    let mut io: Conn = BufReader::new(Box::new(socket));
    let mut encrypted = false;
    send(&mut io, "220 hostile ESMTP\r\n").await?;
    while let Some(command) = line(&mut io, seen).await? {
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match (verb.as_str(), encrypted) {
            ("EHLO", false) => send(&mut io, "250-hostile\r\n250 STARTTLS\r\n").await?,
            ("STARTTLS", false) => {
                let fake = format!(
                    "220 2.0.0 go ahead\r\n250-injected\r\n250 AUTH PLAIN LOGIN XOAUTH2 \
                     {INJECTED_CAPABILITY}\r\n235 2.7.0 ok\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n\
                     354 go\r\n250 2.0.0 queued as INJECTED\r\n221 bye\r\n"
                );
                match split {
                    // One write: the transcript arrives with the 220, before the handshake.
                    Split::No => send(&mut io, &fake).await?,
                    Split::BareLfThenLater => {
                        let rest = fake.trim_start_matches("220 2.0.0 go ahead\r\n");
                        send(&mut io, "220 2.0.0 go ahead\n").await?;
                        // Latency, not synchronisation: the rest should land in a later
                        // segment; the client must refuse the session either way.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        send(&mut io, &format!("x\r\n{rest}")).await?;
                    }
                }
                let tls = acceptor.accept(io.into_inner()).await?;
                io = BufReader::new(Box::new(tls));
                encrypted = true;
            }
            ("EHLO", true) => send(&mut io, "250-hostile over TLS\r\n250 SIZE 1000\r\n").await?,
            ("QUIT", _) => {
                send(&mut io, "221 bye\r\n").await?;
                return Ok(());
            }
            _ => send(&mut io, "554 5.7.1 refused\r\n").await?,
        }
    }
    Ok(())
}

/// A plaintext server whose greeting never ends: `220 ` and then up to `total` bytes
/// without CRLF, in 64 KiB writes; it counts what it managed to write, then closes.
pub async fn endless_greeting(total: u64) -> Hostile {
    let (addr, seen, task) = serve(move |mut socket, seen| async move {
        let chunk = vec![b'a'; 64 * 1024];
        if socket.write_all(b"220 ").await.is_err() {
            return;
        }
        let mut written = 0u64;
        while written < total {
            match socket.write(&chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    written += n as u64;
                    seen.bytes_written.fetch_add(n as u64, Ordering::SeqCst);
                }
            }
        }
    })
    .await;
    Hostile {
        addr,
        seen,
        ca_pem: String::new(),
        task,
    }
}

/// [`endless_greeting`] over implicit TLS (certificate signed by `ca_pem`); it counts the
/// plaintext bytes it managed to write.
pub async fn endless_greeting_over_tls(total: u64) -> Hostile {
    let (acceptor, ca_pem) = tls_acceptor(Cert::Good);
    let (addr, seen, task) = serve(move |socket, seen| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(socket).await else {
                return;
            };
            let chunk = vec![b'a'; 16 * 1024];
            if tls.write_all(b"220 ").await.is_err() {
                return;
            }
            let mut written = 0u64;
            while written < total {
                match tls.write(&chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        written += n as u64;
                        seen.bytes_written.fetch_add(n as u64, Ordering::SeqCst);
                    }
                }
                if tls.flush().await.is_err() {
                    break;
                }
            }
        }
    })
    .await;
    Hostile {
        addr,
        seen,
        ca_pem,
        task,
    }
}

/// A plaintext server offering `AUTH PLAIN XOAUTH2` that answers every AUTH with `reply`
/// (built from the AUTH line received) and every other command as a normal server would.
pub async fn auth_replier(reply: impl Fn(&str) -> String + Send + Sync + 'static) -> Hostile {
    replier(move |command, _auth| {
        command
            .to_ascii_uppercase()
            .starts_with("AUTH")
            .then(|| reply(command))
    })
    .await
}

/// A plaintext server offering `AUTH PLAIN XOAUTH2` that answers each command with
/// `reply(command, last AUTH line)` when that is `Some`, else as a server that accepts
/// everything would.
pub async fn replier(
    reply: impl Fn(&str, &str) -> Option<String> + Send + Sync + 'static,
) -> Hostile {
    let reply = Arc::new(reply);
    let (addr, seen, task) = serve(move |socket, seen| {
        let reply = Arc::clone(&reply);
        async move {
            let mut io: Conn = BufReader::new(Box::new(socket));
            let _ = async {
                send(&mut io, "220 echo ESMTP\r\n").await?;
                let mut auth = String::new();
                while let Some(command) = line(&mut io, &seen).await? {
                    let verb = command
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    if verb == "AUTH" {
                        auth.clone_from(&command);
                    }
                    if let Some(answer) = reply(&command, &auth) {
                        send(&mut io, &answer).await?;
                        continue;
                    }
                    let answer = match verb.as_str() {
                        "EHLO" => "250-echo\r\n250 AUTH PLAIN XOAUTH2\r\n".to_owned(),
                        "AUTH" => "235 2.7.0 ok\r\n".to_owned(),
                        "QUIT" => {
                            send(&mut io, "221 bye\r\n").await?;
                            return Ok(());
                        }
                        _ => "250 ok\r\n".to_owned(),
                    };
                    send(&mut io, &answer).await?;
                }
                Ok::<_, std::io::Error>(())
            }
            .await;
        }
    })
    .await;
    Hostile {
        addr,
        seen,
        ca_pem: String::new(),
        task,
    }
}

/// An implicit-TLS server presenting `cert`; it answers like a normal server that accepts
/// any AUTH, so only the certificate can make a client fail.
pub async fn implicit_tls_with(cert: Cert) -> Hostile {
    let (acceptor, ca_pem) = tls_acceptor(cert);
    let (addr, seen, task) = serve(move |socket, seen| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(socket).await else {
                return;
            };
            let mut io: Conn = BufReader::new(Box::new(tls));
            let _ = async {
                send(&mut io, "220 tls ESMTP\r\n").await?;
                while let Some(command) = line(&mut io, &seen).await? {
                    let verb = command
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let answer = match verb.as_str() {
                        "EHLO" => "250-tls\r\n250 AUTH PLAIN\r\n",
                        "AUTH" => "235 2.7.0 ok\r\n",
                        "QUIT" => return Ok(()),
                        _ => "250 ok\r\n",
                    };
                    send(&mut io, answer).await?;
                }
                Ok::<_, std::io::Error>(())
            }
            .await;
        }
    })
    .await;
    Hostile {
        addr,
        seen,
        ca_pem,
        task,
    }
}

/// A TCP server that accepts connections and never answers (a login host that hangs).
pub async fn silent() -> Hostile {
    let (addr, seen, task) = serve(|socket, _seen| async move {
        let _hold = socket;
        std::future::pending::<()>().await;
    })
    .await;
    Hostile {
        addr,
        seen,
        ca_pem: String::new(),
        task,
    }
}

/// Captures lettre's `tracing` events as well as this crate's: the binary's one global
/// subscriber ([`super::capture_logs`]) takes both. A per-thread subscriber would race with
/// other tests' threads over tracing's callsite interest and silently drop events.
pub fn capture_all_logs() -> (super::LogBuffer, super::LogGuard) {
    super::capture_logs()
}
