//! A small SMTP server on loopback for tests and benches: plaintext, STARTTLS or implicit
//! TLS (tokio-rustls, with a CA and certificate generated at start by rcgen), AUTH PLAIN,
//! LOGIN and XOAUTH2, and knobs for the failures a client must handle: 4xx replies before
//! accepting, refused recipients, connections closed after each message, custom AUTH
//! failures. It records everything it receives and counts simultaneous connections.
//!
//! No existing crate covered all of this: `mailin-embedded` is synchronous, has no implicit
//! TLS and no XOAUTH2.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

// The SMTP session itself; a path from this file's folder, wherever it is included from.
#[path = "smtp_session.rs"]
mod smtp_session;
use smtp_session::session;

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
    /// Recipients refused with a reply of their own, each only for its first `times`
    /// RCPT TO (then accepted): a mix of permanent and temporary refusals.
    pub rcpt_replies: Vec<RcptReply>,
    /// Close the connection right after accepting a message (as a server closing an idle
    /// connection would, unannounced).
    pub close_after_message: bool,
    /// Send this reply unasked right after accepting a message, then close (as Exchange
    /// Online does to a connection left idle: `451 4.7.0 Timeout waiting for client input`).
    /// The client reads it as the answer to its next command.
    pub farewell_after_message: Option<String>,
    /// Send this reply unasked after each accepted message and keep the session open (a
    /// server or proxy that does not close after its farewell): the client's next command
    /// reads it, and each reply after is one behind.
    pub unsolicited_after_message: Option<String>,
    /// After accepting a message, read on but never answer again on that connection (one a
    /// NAT or firewall forgot while it was idle, with no reset).
    pub silent_after_message: bool,
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
    /// Leave SMTPUTF8 out of the EHLO reply (a server that takes ASCII addresses only).
    pub no_smtputf8: bool,
    /// Leave 8BITMIME out of the EHLO reply (a server that takes 7-bit data only).
    pub no_8bitmime: bool,
    /// Cut the data of the first `times` messages off after `after` bytes: the connection
    /// closed (a reset), or left open and never read again (a server that stalls).
    pub cut_data: Option<DataCut>,
    /// RCPT TO naming this address is answered only after taking a permit from the
    /// semaphore: the test holds that send inside its transaction for as long as it likes.
    pub gated_recipient: Option<(String, Arc<tokio::sync::Semaphore>)>,
    /// The reply to each end of the data waits for a permit from this semaphore (and uses
    /// it up): the test says when the server answers.
    pub gated_data_end: Option<Arc<tokio::sync::Semaphore>>,
    /// The verdict on each AUTH (after the credentials are read and recorded) waits for a
    /// permit from this semaphore (and uses it up): a server that delays its answer to a
    /// login, as one does to slow down password guessing.
    pub gated_auth_verdict: Option<Arc<tokio::sync::Semaphore>>,
    /// The reply to each QUIT (counted in [`TestServer::quits`] when it arrives) waits for a
    /// permit from this semaphore (and uses it up): the client is held inside its goodbye.
    pub gated_quit: Option<Arc<tokio::sync::Semaphore>>,
}

/// How [`ServerOptions::cut_data`] cuts a message's data off.
#[derive(Debug, Clone, Copy)]
pub struct DataCut {
    pub after: usize,
    pub times: usize,
    /// Stop reading and stay silent, rather than close the connection.
    pub stall: bool,
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
            rcpt_replies: Vec::new(),
            close_after_message: false,
            farewell_after_message: None,
            unsolicited_after_message: None,
            silent_after_message: false,
            silent_after_data: false,
            transient_data_failures: 0,
            transient_data_reply: "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"
                .into(),
            echo_auth_on_failure: false,
            no_greeting: false,
            greeting_delay: None,
            hold_replies: None,
            quick_ack: false,
            no_smtputf8: false,
            no_8bitmime: false,
            cut_data: None,
            gated_recipient: None,
            gated_data_end: None,
            gated_auth_verdict: None,
            gated_quit: None,
        }
    }
}

impl ServerOptions {
    /// A server that refuses gone@example.org for good (`550 5.1.1`) and busy@example.org
    /// for now (`450 4.2.1`) at every RCPT TO, and takes anyone else: a partial delivery
    /// whose refused groups fare apart.
    pub fn gone_and_busy() -> Self {
        Self {
            rcpt_replies: vec![
                RcptReply::always("gone@example.org", "550 5.1.1 User unknown"),
                RcptReply::always("busy@example.org", "450 4.2.1 Mailbox busy"),
            ],
            ..Self::default()
        }
    }
}

/// A recipient refused with its own reply at its first `times` RCPT TO.
#[derive(Debug, Clone)]
pub struct RcptReply {
    pub address: String,
    pub reply: String,
    pub times: usize,
}

impl RcptReply {
    /// Refused with `reply` at every RCPT TO.
    pub fn always(address: &str, reply: &str) -> Self {
        Self {
            address: address.to_owned(),
            reply: reply.to_owned(),
            times: usize::MAX,
        }
    }

    /// Refused with `reply` at the first RCPT TO only.
    pub fn once(address: &str, reply: &str) -> Self {
        Self {
            times: 1,
            ..Self::always(address, reply)
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
    /// How many RCPT TO named each address (lower-cased): counted, not listed, so that a
    /// long run (the SMTP bench) does not make each RCPT TO slower than the last.
    pub rcpt_commands: Mutex<HashMap<String, usize>>,
    pub connections: AtomicUsize,
    pub active: AtomicUsize,
    pub max_active: AtomicUsize,
    pub transient_left: AtomicUsize,
    pub transient_data_left: AtomicUsize,
    /// Messages whose data was received and then rejected with a reply.
    pub rejected_data: AtomicUsize,
    /// Messages whose data is still to be cut off (see [`ServerOptions::cut_data`]).
    pub cuts_left: AtomicUsize,
    /// Messages whose data arrived whole (its final dot read), before any reply to it.
    pub data_ends: AtomicUsize,
    /// Lines read and left unanswered by a session gone silent (`silent_after_message`).
    pub ignored_lines: AtomicUsize,
    /// QUIT commands received (and answered, unless [`ServerOptions::gated_quit`] holds the
    /// reply).
    pub quits: AtomicUsize,
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
        Self::start_on("127.0.0.1:0", options).await
    }

    /// Starts a server on `address` (e.g. `[::1]:0` for IPv6 loopback).
    pub async fn start_on(address: &str, options: ServerOptions) -> Self {
        let listener = TcpListener::bind(address).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (acceptor, ca_pem) = tls_setup();
        let mut ca_file = tempfile::NamedTempFile::new().expect("temp file");
        ca_file.write_all(ca_pem.as_bytes()).expect("write CA");
        let state = Arc::new(State {
            transient_left: AtomicUsize::new(options.transient_mail_failures),
            transient_data_left: AtomicUsize::new(options.transient_data_failures),
            cuts_left: AtomicUsize::new(options.cut_data.map_or(0, |cut| cut.times)),
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
                        state.received.notify_waiters();
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

    /// Answers the next `times` MAIL FROM commands, on any connection, with the options'
    /// `transient_reply` (the connection stays open).
    #[allow(dead_code)]
    pub fn refuse_next_mail_from(&self, times: usize) {
        self.state.transient_left.store(times, Ordering::SeqCst);
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

    /// How many RCPT TO commands named `address`.
    pub fn rcpt_commands(&self, address: &str) -> usize {
        let commands = self.state.rcpt_commands.lock().unwrap();
        commands
            .get(&address.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Waits until the data of at least `n` messages arrived whole (before the server answers
    /// it, and before any hold).
    pub async fn wait_for_data_ends(&self, n: usize) {
        loop {
            let notified = self.state.received.notified();
            if self.state.data_ends.load(Ordering::SeqCst) >= n {
                return;
            }
            notified.await;
        }
    }

    /// Connections open now (accepted and not yet closed, as this server sees it).
    pub fn active(&self) -> usize {
        self.state.active.load(Ordering::SeqCst)
    }

    pub fn quits(&self) -> usize {
        self.state.quits.load(Ordering::SeqCst)
    }

    /// Waits until `done` holds for this server, re-checking after each event it notifies
    /// (a message's data, a RCPT TO, a QUIT, a connection closed). Bound it with a deadline.
    pub async fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            let notified = self.state.received.notified();
            if done(self) {
                return;
            }
            notified.await;
        }
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
