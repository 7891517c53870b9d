//! A small SMTP server on loopback for tests and benches: plaintext, STARTTLS or implicit
//! TLS (tokio-rustls, with a CA and certificate generated at start by rcgen), AUTH PLAIN,
//! LOGIN and XOAUTH2, and knobs for the failures a client must handle: 4xx replies before
//! accepting, refused recipients, connections closed after each message, custom AUTH
//! failures. It records everything it receives and counts simultaneous connections.
//!
//! No existing crate covered all of this: `mailin-embedded` is synchronous, has no implicit
//! TLS and no XOAUTH2.
#![allow(dead_code)] // each test binary uses a different part

use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// How the server encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTls {
    /// No TLS; AUTH offered in the clear.
    None,
    /// STARTTLS offered; AUTH offered only after it (like Exchange Online).
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

/// What the server does.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub tls: ServerTls,
    /// Advertised mechanisms, e.g. `["LOGIN", "XOAUTH2"]`; empty = no AUTH (a relay).
    pub mechanisms: Vec<&'static str>,
    /// Accepted user name and password pairs.
    pub users: Vec<(String, String)>,
    /// Accepted XOAUTH2 tokens (the user must be in `users` or `xoauth2_user`).
    pub tokens: Vec<String>,
    /// The user XOAUTH2 must name.
    pub xoauth2_user: String,
    /// The reply to a failed AUTH.
    pub auth_failure: String,
    /// How many MAIL FROM commands are answered with `transient_reply` before accepting.
    pub transient_mail_failures: usize,
    pub transient_reply: String,
    /// Recipients answered with `refused_reply`.
    pub refused: Vec<String>,
    /// The reply to a refused recipient; one starting with `421` also closes the connection.
    pub refused_reply: String,
    /// Close the connection right after accepting a message (as a server closing an idle
    /// connection would, unannounced).
    pub close_after_message: bool,
    /// Never answer after the message data (the client's deadline must fire).
    pub silent_after_data: bool,
    /// How many messages are answered with `transient_data_reply` after the final `.`
    /// (rejected, not kept) before accepting.
    pub transient_data_failures: usize,
    pub transient_data_reply: String,
    /// Append the AUTH lines received (command and responses, base64 as sent) to the reply
    /// to a failed AUTH, as a careless server might.
    pub echo_auth_on_failure: bool,
    /// Accept connections and never send the greeting (a wrong port, a firewall that holds
    /// the connection).
    pub no_greeting: bool,
    /// Greet this long after accepting a connection (a slow server, not a silent one).
    pub greeting_delay: Option<std::time::Duration>,
    /// Hold each reply to RCPT TO and to the end of the data this long (simulated work).
    pub hold_replies: Option<std::time::Duration>,
    /// Acknowledge what arrives at once (Linux `TCP_QUICKACK`, set again before every read)
    /// instead of delaying the ACK: a client that writes the message and the final `.`
    /// separately with Nagle's algorithm on (lettre's own sockets) then does not wait about
    /// 40 ms per message for it. For the bench; elsewhere a no-op.
    pub quick_ack: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            tls: ServerTls::Starttls,
            mechanisms: vec!["PLAIN", "LOGIN"],
            users: vec![("no-reply@example.org".into(), "correct horse".into())],
            tokens: Vec::new(),
            xoauth2_user: "no-reply@example.org".into(),
            auth_failure: "535 5.7.8 Authentication credentials invalid".into(),
            transient_mail_failures: 0,
            transient_reply: "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded".into(),
            refused: Vec::new(),
            refused_reply: "550 5.1.1 User unknown".into(),
            close_after_message: false,
            silent_after_data: false,
            transient_data_failures: 0,
            transient_data_reply: "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"
                .into(),
            echo_auth_on_failure: false,
            no_greeting: false,
            greeting_delay: None,
            hold_replies: None,
            quick_ack: false,
        }
    }
}

/// One message as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

/// One AUTH exchange as received.
#[derive(Debug, Clone)]
pub struct AuthRecord {
    pub mechanism: String,
    /// The decoded SASL response (PLAIN: `\0user\0pass`; LOGIN: `user\npass`; XOAUTH2: the
    /// full `user=…\x01auth=Bearer …\x01\x01`).
    pub decoded: String,
    pub accepted: bool,
}

#[derive(Default)]
pub struct State {
    pub messages: Mutex<Vec<Received>>,
    pub auths: Mutex<Vec<AuthRecord>>,
    pub mail_from_commands: AtomicUsize,
    pub connections: AtomicUsize,
    pub active: AtomicUsize,
    pub max_active: AtomicUsize,
    pub transient_left: AtomicUsize,
    pub transient_data_left: AtomicUsize,
    /// Messages whose data was received and then rejected with a reply.
    pub rejected_data: AtomicUsize,
    /// Sessions inside a mail transaction (from MAIL FROM to the end of the data, RSET,
    /// QUIT or the connection closing, as this server sees it), now and at most.
    pub in_transaction: AtomicUsize,
    pub max_in_transaction: AtomicUsize,
    received: tokio::sync::Notify,
}

/// A running server; stops when dropped (its task is aborted).
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    /// A PEM file with the CA that signed the server's certificate (for `tls_ca_file`).
    pub ca_file: tempfile::NamedTempFile,
    pub ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A socket that sends any pending ACK before each read ([`ServerOptions::quick_ack`]).
struct QuickAck(tokio::net::TcpStream);

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Not permanent in Linux: the kernel goes back to delaying once the server replies.
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

fn tls_setup() -> (TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mail-connector test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("leaf params");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
    (TlsAcceptor::from(Arc::new(config)), ca_cert.pem())
}

impl TestServer {
    /// Starts a server on `127.0.0.1:0`.
    pub async fn start(options: ServerOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (acceptor, ca_pem) = tls_setup();
        let mut ca_file = tempfile::NamedTempFile::new().expect("temp file");
        ca_file.write_all(ca_pem.as_bytes()).expect("write CA");
        let state = Arc::new(State {
            transient_left: AtomicUsize::new(options.transient_mail_failures),
            transient_data_left: AtomicUsize::new(options.transient_data_failures),
            ..State::default()
        });
        let options = Arc::new(options);
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        return;
                    };
                    // Replies go out line by line; without this Nagle's algorithm holds each
                    // multi-line reply for the client's delayed ACK.
                    let _ = socket.set_nodelay(true);
                    state.connections.fetch_add(1, Ordering::SeqCst);
                    let now = state.active.fetch_add(1, Ordering::SeqCst) + 1;
                    state.max_active.fetch_max(now, Ordering::SeqCst);
                    let (state, options, acceptor) =
                        (state.clone(), options.clone(), acceptor.clone());
                    tokio::spawn(async move {
                        let _ = session(socket, &options, &state, &acceptor).await;
                        state.active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        });
        Self {
            addr,
            state,
            ca_file,
            ca_pem,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn messages(&self) -> Vec<Received> {
        self.state.messages.lock().unwrap().clone()
    }

    pub fn auths(&self) -> Vec<AuthRecord> {
        self.state.auths.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn max_active(&self) -> usize {
        self.state.max_active.load(Ordering::SeqCst)
    }

    pub fn rejected_data(&self) -> usize {
        self.state.rejected_data.load(Ordering::SeqCst)
    }

    /// The most sessions that were inside a mail transaction at the same moment.
    pub fn max_in_transaction(&self) -> usize {
        self.state.max_in_transaction.load(Ordering::SeqCst)
    }

    pub fn mail_from_commands(&self) -> usize {
        self.state.mail_from_commands.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages were received.
    pub async fn wait_for_messages(&self, n: usize) {
        loop {
            let notified = self.state.received.notified();
            if self.state.messages.lock().unwrap().len() >= n {
                return;
            }
            notified.await;
        }
    }
}

async fn reply(io: &mut BufReader<Box<dyn Io>>, line: &str) -> std::io::Result<()> {
    io.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await?;
    io.get_mut().flush().await
}

async fn read_line(io: &mut BufReader<Box<dyn Io>>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if io.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn decode(b64: &str) -> String {
    BASE64
        .decode(b64.trim())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|_| format!("<invalid base64 {b64}>"))
}

/// Counts this session as inside a mail transaction while `active`; dropping it (the
/// session ends) ends the transaction.
struct Transaction<'a> {
    state: &'a State,
    active: bool,
}

impl Transaction<'_> {
    fn begin(&mut self) {
        if !self.active {
            self.active = true;
            let now = self.state.in_transaction.fetch_add(1, Ordering::SeqCst) + 1;
            self.state
                .max_in_transaction
                .fetch_max(now, Ordering::SeqCst);
        }
    }

    fn end(&mut self) {
        if self.active {
            self.active = false;
            self.state.in_transaction.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

async fn hold(options: &ServerOptions) {
    if let Some(delay) = options.hold_replies {
        tokio::time::sleep(delay).await;
    }
}

async fn session(
    socket: tokio::net::TcpStream,
    options: &ServerOptions,
    state: &State,
    acceptor: &TlsAcceptor,
) -> std::io::Result<()> {
    if options.no_greeting {
        // Hold the socket open, silent.
        std::future::pending::<()>().await;
    }
    let socket: Box<dyn Io> = match options.quick_ack {
        true => Box::new(QuickAck(socket)),
        false => Box::new(socket),
    };
    let mut encrypted = false;
    let stream: Box<dyn Io> = if options.tls == ServerTls::Implicit {
        encrypted = true;
        Box::new(acceptor.accept(socket).await?)
    } else {
        socket
    };
    let mut io = BufReader::new(stream);
    if let Some(delay) = options.greeting_delay {
        // The behaviour under test (a slow greeting), not a synchronisation.
        tokio::time::sleep(delay).await;
    }
    reply(&mut io, "220 localhost test ESMTP ready").await?;
    let mut authenticated = false;
    let mut mail_from: Option<String> = None;
    let mut rcpt_to = Vec::new();
    let mut transaction = Transaction {
        state,
        active: false,
    };
    while let Some(line) = read_line(&mut io).await? {
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_owned();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let mut lines = vec![
                    "localhost greets you".to_owned(),
                    "8BITMIME".into(),
                    "SMTPUTF8".into(),
                    "SIZE 157286400".into(),
                ];
                if options.tls == ServerTls::Starttls && !encrypted {
                    lines.push("STARTTLS".into());
                }
                let auth_offered = options.tls != ServerTls::Starttls || encrypted;
                if auth_offered && !options.mechanisms.is_empty() {
                    lines.push(format!("AUTH {}", options.mechanisms.join(" ")));
                }
                let last = lines.len() - 1;
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    reply(&mut io, &format!("250{sep}{l}")).await?;
                }
            }
            "STARTTLS" if options.tls == ServerTls::Starttls && !encrypted => {
                reply(&mut io, "220 2.0.0 SMTP server ready").await?;
                let raw = io.into_inner();
                let tls = acceptor.accept(raw).await?;
                io = BufReader::new(Box::new(tls));
                encrypted = true;
            }
            "AUTH" => {
                let mut sent = vec![line.clone()];
                let mut words = line.split_whitespace().skip(1);
                let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next().map(str::to_owned);
                if !options.mechanisms.iter().any(|m| *m == mechanism) {
                    reply(&mut io, "504 5.5.4 Unrecognized authentication type").await?;
                    continue;
                }
                let (decoded, accepted) = match mechanism.as_str() {
                    "PLAIN" => {
                        let response = match initial {
                            Some(r) => r,
                            None => {
                                reply(&mut io, "334 ").await?;
                                let r = read_line(&mut io).await?.unwrap_or_default();
                                sent.push(r.clone());
                                r
                            }
                        };
                        let decoded = decode(&response);
                        let mut parts = decoded.split('\0').skip(1);
                        let (user, pass) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                        let ok = options.users.iter().any(|(u, p)| u == user && p == pass);
                        (decoded, ok)
                    }
                    "LOGIN" => {
                        reply(&mut io, "334 VXNlcm5hbWU6").await?;
                        let user = read_line(&mut io).await?.unwrap_or_default();
                        sent.push(user.clone());
                        let user = decode(&user);
                        reply(&mut io, "334 UGFzc3dvcmQ6").await?;
                        let pass = read_line(&mut io).await?.unwrap_or_default();
                        sent.push(pass.clone());
                        let pass = decode(&pass);
                        let ok = options.users.iter().any(|(u, p)| *u == user && *p == pass);
                        (format!("{user}\n{pass}"), ok)
                    }
                    "XOAUTH2" => {
                        let response = match initial {
                            Some(r) => r,
                            None => {
                                reply(&mut io, "334 ").await?;
                                let r = read_line(&mut io).await?.unwrap_or_default();
                                sent.push(r.clone());
                                r
                            }
                        };
                        let decoded = decode(&response);
                        let ok = options.tokens.iter().any(|t| {
                            decoded
                                == format!(
                                    "user={}\x01auth=Bearer {t}\x01\x01",
                                    options.xoauth2_user
                                )
                        });
                        (decoded, ok)
                    }
                    _ => unreachable!(),
                };
                state.auths.lock().unwrap().push(AuthRecord {
                    mechanism,
                    decoded,
                    accepted,
                });
                if accepted {
                    authenticated = true;
                    reply(&mut io, "235 2.7.0 Authentication successful").await?;
                } else if options.echo_auth_on_failure {
                    let echoed =
                        format!("{} (received: {})", options.auth_failure, sent.join(" | "));
                    reply(&mut io, &echoed).await?;
                } else {
                    reply(&mut io, &options.auth_failure).await?;
                }
            }
            "MAIL" => {
                state.mail_from_commands.fetch_add(1, Ordering::SeqCst);
                if !options.mechanisms.is_empty() && !authenticated {
                    reply(&mut io, "530 5.7.57 Client not authenticated to send mail").await?;
                    continue;
                }
                let took = state
                    .transient_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if took {
                    reply(&mut io, &options.transient_reply).await?;
                    continue;
                }
                transaction.begin();
                mail_from = Some(angle(&line));
                rcpt_to.clear();
                reply(&mut io, "250 2.1.0 Sender OK").await?;
            }
            "RCPT" => {
                hold(options).await;
                let address = angle(&line);
                if options
                    .refused
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&address))
                {
                    reply(&mut io, &options.refused_reply).await?;
                    if options.refused_reply.starts_with("421") {
                        return Ok(());
                    }
                } else {
                    rcpt_to.push(address);
                    reply(&mut io, "250 2.1.5 Recipient OK").await?;
                }
            }
            "DATA" => {
                if mail_from.is_none() || rcpt_to.is_empty() {
                    reply(&mut io, "503 5.5.1 Bad sequence of commands").await?;
                    continue;
                }
                reply(&mut io, "354 Start mail input; end with <CRLF>.<CRLF>").await?;
                let mut data = Vec::new();
                loop {
                    let mut raw = Vec::new();
                    if io.read_until(b'\n', &mut raw).await? == 0 {
                        return Ok(());
                    }
                    if raw == b".\r\n" {
                        break;
                    }
                    if raw.starts_with(b"..") {
                        raw.remove(0);
                    }
                    data.extend_from_slice(&raw);
                }
                hold(options).await;
                let rejected = state
                    .transient_data_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if rejected {
                    state.rejected_data.fetch_add(1, Ordering::SeqCst);
                    transaction.end();
                    mail_from = None;
                    rcpt_to.clear();
                    reply(&mut io, &options.transient_data_reply).await?;
                    continue;
                }
                state.messages.lock().unwrap().push(Received {
                    mail_from: mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                });
                state.received.notify_waiters();
                if options.silent_after_data {
                    std::future::pending::<()>().await;
                }
                transaction.end();
                reply(&mut io, "250 2.0.0 OK queued").await?;
                if options.close_after_message {
                    return Ok(());
                }
            }
            "RSET" => {
                transaction.end();
                mail_from = None;
                rcpt_to.clear();
                reply(&mut io, "250 2.0.0 Resetting").await?;
            }
            "NOOP" => reply(&mut io, "250 2.0.0 OK").await?,
            "QUIT" => {
                transaction.end();
                reply(&mut io, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            _ => reply(&mut io, "500 5.5.2 Command not recognized").await?,
        }
    }
    Ok(())
}

/// The address between `<` and `>` in a MAIL/RCPT line.
fn angle(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_owned()
}
