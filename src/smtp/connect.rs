//! One SMTP connection over lettre's `AsyncSmtpConnection`: opening (TCP, TLS, EHLO, AUTH),
//! one mail transaction, and the pool of idle connections.
//!
//! Why our own pool rather than lettre's `AsyncSmtpTransport` pool: lettre's pool
//! authenticates every connection with one fixed `Credentials` value, so an XOAUTH2 token
//! that expires would keep being used; its size does not cap concurrent connections; and its
//! `send` stops at the first refused `RCPT TO`. Here each connection remembers the token it
//! logged in with and is replaced when the provider's token changes, a semaphore in
//! [`SmtpTransport`](super::SmtpTransport) caps connections, and MAIL/RCPT/DATA are issued
//! with lettre's command types so refused recipients can be reported one by one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::time::Instant;

use super::TlsMode;
use super::remedy::{client_error, from_lettre, from_lettre_redacted, with_advice};
use super::stream::{GuardedStream, ImplicitTls};
use crate::check::{CheckReport, CheckStep};
use crate::credentials::{AccessToken, TokenProvider};
use crate::error::{Advice, Delivery, Error, Result, SmtpStage};
use crate::message::{Email, Mailbox, Recipient};
use crate::secret::Secret;
use crate::transport::{SendReport, SentMessage};

/// How the connection logs in.
pub(super) enum Auth {
    None,
    Basic {
        user: String,
        password: Secret,
    },
    Xoauth2 {
        user: String,
        provider: std::sync::Arc<dyn TokenProvider>,
        /// The scope of the tokens, e.g. Exchange Online's.
        scope: String,
    },
}

// By hand: the provider's own Debug is not ours to trust with its cached token.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { user, password } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", password)
                .finish(),
            Self::Xoauth2 { user, .. } => f
                .debug_struct("Xoauth2")
                .field("user", user)
                .field("provider", &format_args!("[token provider]"))
                .finish(),
        }
    }
}

/// The TLS mode with the parameters it needs, so that a TLS mode without them cannot exist.
pub(super) enum Tls {
    None,
    Starttls(TlsParameters),
    Implicit(TlsParameters),
}

impl Tls {
    pub(super) fn mode(&self) -> TlsMode {
        match self {
            Self::None => TlsMode::None,
            Self::Starttls(_) => TlsMode::Starttls,
            Self::Implicit(_) => TlsMode::Implicit,
        }
    }
}

/// Everything needed to open an authenticated connection.
pub(super) struct Connector {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) tls: Tls,
    pub(super) auth: Auth,
    pub(super) hello: ClientId,
    pub(super) connect_timeout: Duration,
}

/// How far an attempt got: decides whether a timeout leaves delivery uncertain, and for
/// whom.
#[derive(Debug, Clone)]
pub(super) struct Progress {
    pub(super) stage: SmtpStage,
    /// The server answered 354 to DATA and we started writing the message.
    pub(super) data_written: bool,
    /// The recipients the server accepted at `RCPT TO` (set when DATA starts).
    pub(super) accepted: Vec<Recipient>,
    /// The recipients the server refused at `RCPT TO` (set when DATA starts): certainly
    /// not sent, whatever happens to the data.
    pub(super) refused: Vec<Recipient>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            stage: SmtpStage::Connect,
            data_written: false,
            accepted: Vec::new(),
            refused: Vec::new(),
        }
    }
}

impl Progress {
    /// An error whose delivery is uncertain, made exact: when some recipients were refused
    /// at `RCPT TO`, a [`Error::PartialDelivery`] that lists them as not sent and the
    /// accepted ones as uncertain. Other errors are returned as they are.
    pub(super) fn exact(self, error: Error) -> Error {
        if error.delivery() != Delivery::Uncertain || self.refused.is_empty() {
            return error;
        }
        Error::PartialDelivery {
            delivered: SendReport::default(),
            uncertain: self.accepted,
            not_sent: self.refused,
            source: Box::new(error),
        }
    }
}

/// The envelope: the mailbox as `MAIL FROM`, every recipient (Bcc included) as `RCPT TO`.
pub(super) struct Envelope {
    from: Address,
    recipients: Vec<(Recipient, Address)>,
    non_ascii: bool,
}

fn address(mailbox: &Mailbox, field: &str) -> Result<Address> {
    mailbox.address().parse().map_err(|e| {
        Error::invalid_message(
            field,
            format!("`{}` is not a valid address ({e})", mailbox.address()),
        )
    })
}

impl Envelope {
    pub(super) fn new(mailbox: &Mailbox, email: &Email) -> Result<Self> {
        let from = address(mailbox, "from")?;
        let recipients = email
            .recipients()
            .map(|r| address(&r.mailbox, "to").map(|a| (r, a)))
            .collect::<Result<Vec<_>>>()?;
        if recipients.is_empty() {
            return Err(Error::invalid_message("to", "the email has no recipients"));
        }
        let non_ascii = !AsRef::<str>::as_ref(&from).is_ascii()
            || recipients
                .iter()
                .any(|(_, a)| !AsRef::<str>::as_ref(a).is_ascii());
        Ok(Self {
            from,
            recipients,
            non_ascii,
        })
    }

    /// The send's result: a report, or [`Error::PartialDelivery`] when recipients were refused.
    pub(super) fn report(&self, outcome: Accepted, id: Option<String>) -> Result<SendReport> {
        let delivered = if outcome.accepted.is_empty() {
            SendReport::default()
        } else {
            SendReport::single(SentMessage::new(outcome.accepted, id))
        };
        let mut refused = outcome.refused.into_iter();
        let Some((first, source)) = refused.next() else {
            return Ok(delivered);
        };
        let mut not_sent = vec![first];
        not_sent.extend(refused.map(|(recipient, _)| recipient));
        Err(Error::PartialDelivery {
            delivered,
            uncertain: Vec::new(),
            not_sent,
            source: Box::new(source),
        })
    }
}

/// What the server did with the recipients of one transaction.
pub(super) struct Accepted {
    accepted: Vec<Recipient>,
    refused: Vec<(Recipient, Error)>,
}

/// An open, authenticated connection.
pub(super) struct Connection {
    conn: AsyncSmtpConnection,
    /// The XOAUTH2 token this session logged in with.
    token: Option<Secret>,
    /// What this session sent that is secret, to redact from the server's replies.
    secrets: Vec<Secret>,
    last_used: Instant,
    broken: bool,
}

/// Runs a lettre future with tracing switched off.
///
/// With its `tracing` feature — which any crate in the build can enable, since Cargo unifies
/// features — lettre logs every line it writes at DEBUG, `AUTH PLAIN <base64 of the
/// password>`, XOAUTH2 tokens and whole messages included. A scoped no-op dispatcher
/// overrides the thread's and the global subscriber while lettre's code runs, so none of it
/// reaches any subscriber; this crate's own events are emitted outside these futures.
fn quiet<F: Future>(future: F) -> tracing::instrument::WithDispatch<F> {
    use tracing::instrument::WithSubscriber as _;
    future.with_subscriber(tracing::Dispatch::none())
}

/// When the whole operation (a send or a check) must end, for stages to give up at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    pub(super) at: Instant,
    /// The whole operation's time limit.
    pub(super) total: Duration,
    /// `send` or `check`.
    pub(super) of: &'static str,
}

impl Deadline {
    /// `total` from now; `total` is at most a year (see the builder), so this cannot
    /// overflow.
    pub(super) fn after(total: Duration, of: &'static str) -> Self {
        Self {
            at: Instant::now() + total,
            total,
            of,
        }
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "the {}'s deadline of {:?} (`send_deadline`) was reached",
            self.of, self.total
        )
    }
}

/// The message for a token provider that did not answer in time.
pub(super) fn token_timeout(waited: Duration, deadline: Deadline) -> String {
    format!(
        "no access token within {waited:.1?}: the login host (the token provider) did not \
         answer before {}; the SMTP server was not at fault",
        deadline.describe()
    )
}

/// The longest wait for the server's answer to QUIT; then the connection is just dropped.
const QUIT_TIMEOUT: Duration = Duration::from_secs(1);

/// Says goodbye (QUIT) and closes, without waiting more than [`QUIT_TIMEOUT`] for a server
/// that does not answer; dropping the connection closes the socket anyway.
async fn abort_quickly(conn: &mut AsyncSmtpConnection) {
    let _ = tokio::time::timeout(QUIT_TIMEOUT, quiet(conn.abort())).await;
}

impl Connector {
    /// Runs one stage of opening a connection (`what`) with its own deadline: the connect
    /// timeout, and never past `deadline`. A server that accepts the TCP connection and then
    /// says nothing (a wrong port, a TLS port spoken to in plaintext, a firewall holding the
    /// connection) would otherwise be waited for forever.
    async fn stage<T>(
        &self,
        deadline: Deadline,
        stage: SmtpStage,
        what: &str,
        future: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let start = Instant::now();
        let by_connect_timeout = start + self.connect_timeout;
        let limit = deadline.at.min(by_connect_timeout);
        match tokio::time::timeout_at(limit, future).await {
            Ok(result) => result,
            Err(_elapsed) => {
                let server = format!("{}:{}", self.host, self.port);
                let message = if deadline.at <= start {
                    format!(
                        "no time left to wait for {server} {what}: {}",
                        deadline.describe()
                    )
                } else if limit == by_connect_timeout {
                    format!(
                        "no answer from {server} {what} within {:.1?} (the connect timeout)",
                        start.elapsed()
                    )
                } else {
                    format!(
                        "no answer from {server} {what} within {:.1?}: {}",
                        start.elapsed(),
                        deadline.describe()
                    )
                };
                Err(client_error(stage, message, true, Delivery::NotSent))
            }
        }
    }

    /// An XOAUTH2 token from the provider, within `deadline`: a provider that does not
    /// answer (a login host that accepts connections and hangs) is the login host's fault,
    /// and said so, not the SMTP server's.
    pub(super) async fn token(
        &self,
        provider: &dyn TokenProvider,
        scope: &str,
        deadline: Deadline,
    ) -> Result<AccessToken> {
        let start = Instant::now();
        match tokio::time::timeout_at(deadline.at, provider.token(scope)).await {
            Ok(token) => token,
            Err(_elapsed) => Err(with_advice(Error::Smtp {
                stage: SmtpStage::Auth,
                code: None,
                enhanced_code: None,
                message: token_timeout(start.elapsed(), deadline),
                mechanism: Some("XOAUTH2".to_owned()),
                transient: true,
                delivery: Delivery::NotSent,
                advice: Advice::default(),
            })),
        }
    }

    /// TCP, greeting, EHLO and TLS (implicit, or STARTTLS and EHLO again).
    async fn connect(&self, deadline: Deadline) -> Result<AsyncSmtpConnection> {
        let mut conn = self.connect_plain_or_implicit(deadline).await?;
        if let Tls::Starttls(params) = &self.tls {
            self.starttls(&mut conn, params, deadline).await?;
        }
        Ok(conn)
    }

    /// TCP, greeting and EHLO, with TLS first for implicit TLS.
    async fn connect_plain_or_implicit(&self, deadline: Deadline) -> Result<AsyncSmtpConnection> {
        let connect_error = |e| from_lettre(SmtpStage::Connect, None, &e, Delivery::NotSent);
        // Our own socket, for TCP_NODELAY: lettre writes the message and the final `.` in
        // two writes, which Nagle's algorithm would hold for the server's delayed ACK (about
        // 40 ms per message). TLS, implicit or by STARTTLS, runs over this socket.
        let tcp = self
            .stage(
                deadline,
                SmtpStage::Connect,
                "to the TCP connection",
                async {
                    tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                        .await
                        .map_err(|e| {
                            client_error(
                                SmtpStage::Connect,
                                format!("cannot connect to {}:{}: {e}", self.host, self.port),
                                true,
                                Delivery::NotSent,
                            )
                        })
                },
            )
            .await?;
        let _ = tcp.set_nodelay(true);
        // Guarded: no plaintext after the reply to STARTTLS, no reply without end.
        let stream = Box::new(GuardedStream::new(tcp));
        let stream: Box<dyn AsyncTokioStream> = match &self.tls {
            Tls::Implicit(params) => {
                let handshake = async {
                    let stream = ImplicitTls::handshake(stream, params.clone()).await;
                    stream.map_err(|e| from_lettre(SmtpStage::Tls, None, &e, Delivery::NotSent))
                };
                let tls = self
                    .stage(
                        deadline,
                        SmtpStage::Tls,
                        "to the TLS handshake",
                        quiet(handshake),
                    )
                    .await?;
                Box::new(tls)
            }
            _ => stream,
        };
        let greet = async {
            quiet(AsyncSmtpConnection::connect_with_transport(
                stream,
                &self.hello,
            ))
            .await
            .map_err(connect_error)
        };
        self.stage(deadline, SmtpStage::Connect, "(greeting and EHLO)", greet)
            .await
    }

    async fn starttls(
        &self,
        conn: &mut AsyncSmtpConnection,
        params: &TlsParameters,
        deadline: Deadline,
    ) -> Result<()> {
        if !conn.can_starttls() {
            abort_quickly(conn).await;
            return Err(client_error(
                SmtpStage::Tls,
                "the server does not offer STARTTLS, which Use SSL (`use_ssl`) requires",
                false,
                Delivery::NotSent,
            ));
        }
        let upgrade = async {
            quiet(conn.starttls(params.clone(), &self.hello))
                .await
                .map_err(|e| from_lettre(SmtpStage::Tls, None, &e, Delivery::NotSent))
        };
        self.stage(
            deadline,
            SmtpStage::Tls,
            "to STARTTLS, the TLS handshake and EHLO",
            upgrade,
        )
        .await
    }

    /// Logs in, each exchange within the stage deadline; returns the XOAUTH2 token used,
    /// if any.
    async fn authenticate(
        &self,
        conn: &mut AsyncSmtpConnection,
        deadline: Deadline,
    ) -> Result<Option<Secret>> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Basic { user, password } => {
                let offered = conn
                    .server_info()
                    .get_auth_mechanism(&[Mechanism::Plain, Mechanism::Login]);
                let Some(mechanism) = offered else {
                    return Err(no_mechanism(conn, "PLAIN or LOGIN"));
                };
                let credentials =
                    Credentials::new(user.clone(), password.expose_secret().to_owned());
                let login = async {
                    quiet(conn.auth(&[mechanism], &credentials))
                        .await
                        .map(drop)
                        .map_err(|e| {
                            // A server may echo what we sent: the PLAIN response or the LOGIN
                            // password.
                            let plain = format!("\0{user}\0{}", password.expose_secret());
                            from_lettre_redacted(
                                SmtpStage::Auth,
                                Some(&mechanism.to_string()),
                                &e,
                                Delivery::NotSent,
                                &[password.expose_secret().as_bytes(), plain.as_bytes()],
                            )
                        })
                };
                self.stage(deadline, SmtpStage::Auth, "to AUTH", login)
                    .await?;
                Ok(None)
            }
            Auth::Xoauth2 {
                user,
                provider,
                scope,
            } => {
                if !conn
                    .server_info()
                    .supports_auth_mechanism(Mechanism::Xoauth2)
                {
                    return Err(no_mechanism(conn, "XOAUTH2"));
                }
                let access = self.token(provider.as_ref(), scope, deadline).await?;
                let token = Secret::new(access.expose_secret());
                let login = xoauth2(conn, user, &token, None);
                match self
                    .stage(deadline, SmtpStage::Auth, "to AUTH", login)
                    .await
                {
                    Ok(()) => Ok(Some(token)),
                    // Not when SMTP AUTH is disabled (5.7.139) or basic auth retired (5.7.30):
                    // a fresh token cannot fix those.
                    Err(Error::Smtp {
                        code: Some(535),
                        enhanced_code,
                        ..
                    }) if !matches!(enhanced_code.as_deref(), Some("5.7.139" | "5.7.30")) => {
                        // The token may have been revoked or expired early: a fresh one, once.
                        tracing::debug!("XOAUTH2 token refused (535); retrying with a fresh one");
                        provider.invalidate(&access);
                        let refused = token;
                        let access = self.token(provider.as_ref(), scope, deadline).await?;
                        let token = Secret::new(access.expose_secret());
                        let login = xoauth2(conn, user, &token, Some(&refused));
                        self.stage(deadline, SmtpStage::Auth, "to AUTH", login)
                            .await?;
                        Ok(Some(token))
                    }
                    Err(error) => Err(error),
                }
            }
        }
    }

    /// Everything secret a session logged in with `token` sends (the password or token,
    /// and the SASL blobs carrying it): none of it may come back in an error.
    fn secrets(&self, token: Option<&Secret>) -> Vec<Secret> {
        match (&self.auth, token) {
            (Auth::Basic { user, password }, _) => vec![
                password.clone(),
                Secret::new(format!("\0{user}\0{}", password.expose_secret())),
            ],
            (Auth::Xoauth2 { user, .. }, Some(token)) => {
                vec![token.clone(), Secret::new(xoauth2_blob(user, token))]
            }
            _ => Vec::new(),
        }
    }

    /// Opens a connection ready to send; each stage gives up at `deadline` at the latest.
    pub(super) async fn open(&self, deadline: Deadline) -> Result<Connection> {
        let mut conn = self.connect(deadline).await?;
        match self.authenticate(&mut conn, deadline).await {
            Ok(token) => Ok(Connection {
                conn,
                secrets: self.secrets(token.as_ref()),
                token,
                last_used: Instant::now(),
                broken: false,
            }),
            Err(error) => {
                abort_quickly(&mut conn).await;
                Err(error)
            }
        }
    }

    /// Connect, TLS, EHLO, AUTH and QUIT, each reported as a step; no mail is sent. A step
    /// that gets no answer fails at `deadline` at the latest.
    pub(super) async fn check(&self, deadline: Deadline) -> CheckReport {
        let mut report = CheckReport::default();
        if let Some(warning) = endpoint_warning(&self.host, self.port) {
            report.push(warning);
        }
        let mut conn = match self.connect_plain_or_implicit(deadline).await {
            Ok(conn) => conn,
            Err(error) => {
                let name = match &error {
                    Error::Smtp {
                        stage: SmtpStage::Tls,
                        ..
                    } => "tls",
                    _ => "connect",
                };
                report.push(CheckStep::from_error(name, &error));
                return report;
            }
        };
        report.push(CheckStep::ok(
            "connect",
            format!("connected to {}:{}", self.host, self.port),
        ));
        match &self.tls {
            Tls::Implicit(_) => report.push(CheckStep::ok(
                "tls",
                "implicit TLS; the server certificate was verified",
            )),
            Tls::Starttls(params) => match self.starttls(&mut conn, params, deadline).await {
                Ok(()) => report.push(CheckStep::ok(
                    "tls",
                    "STARTTLS; the server certificate was verified",
                )),
                Err(error) => {
                    report.push(CheckStep::from_error("tls", &error));
                    return report;
                }
            },
            Tls::None => report.push(CheckStep::warning(
                "tls",
                "no TLS: mail and credentials cross the network unencrypted",
                "set Use SSL (`use_ssl = true`) unless the server is on this machine",
            )),
        }
        report.push(CheckStep::ok(
            "ehlo",
            format!("server capabilities: {}", conn.server_info()),
        ));
        let secrets = match self.authenticate(&mut conn, deadline).await {
            Ok(token) => {
                report.push(CheckStep::ok(
                    "auth",
                    match &self.auth {
                        Auth::None => "no authentication (anonymous relay)".to_owned(),
                        Auth::Basic { user, .. } => format!("logged in as {user} (basic)"),
                        Auth::Xoauth2 { user, .. } => format!("logged in as {user} (XOAUTH2)"),
                    },
                ));
                self.secrets(token.as_ref())
            }
            Err(error) => {
                report.push(CheckStep::from_error("auth", &error));
                abort_quickly(&mut conn).await;
                return report;
            }
        };
        match tokio::time::timeout(QUIT_TIMEOUT, quiet(conn.quit())).await {
            Ok(Ok(_)) => report.push(CheckStep::ok("quit", "session closed; no mail was sent")),
            Ok(Err(e)) => report.push(CheckStep::warning(
                "quit",
                format!("QUIT failed: {}", {
                    let secrets: Vec<&[u8]> = secrets
                        .iter()
                        .map(|s| s.expose_secret().as_bytes())
                        .collect();
                    from_lettre_redacted(SmtpStage::Connect, None, &e, Delivery::NotSent, &secrets)
                }),
                "none needed for sending; the server closed the session early",
            )),
            Err(_elapsed) => report.push(CheckStep::warning(
                "quit",
                format!("no answer to QUIT within {QUIT_TIMEOUT:?}; the connection was dropped"),
                "none needed for sending",
            )),
        }
        report
    }
}

/// A warning for an endpoint known not to work: Exchange Online supports client
/// submission only with STARTTLS on port 587 (or 25); its port 465 is not an SMTP AUTH
/// endpoint.
fn endpoint_warning(host: &str, port: u16) -> Option<CheckStep> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (host.ends_with("office365.com") && port == 465).then(|| {
        CheckStep::warning(
            "endpoint",
            format!(
                "{host}:465 is not a client submission endpoint of Exchange Online, which \
                 supports SMTP AUTH only with STARTTLS on port 587 (or 25)"
            ),
            "set `smtp_port = 587` with Use SSL on (`use_ssl = true`, STARTTLS)",
        )
    })
}

fn no_mechanism(conn: &AsyncSmtpConnection, wanted: &str) -> Error {
    client_error(
        SmtpStage::Auth,
        format!(
            "the server offers no {wanted} authentication (it says: {})",
            conn.server_info()
        ),
        false,
        Delivery::NotSent,
    )
}

/// Logs in with XOAUTH2; `refused` is a token this session already sent (and the server
/// refused), which must not come back in an error either.
async fn xoauth2(
    conn: &mut AsyncSmtpConnection,
    user: &str,
    token: &Secret,
    refused: Option<&Secret>,
) -> Result<()> {
    // lettre's Mechanism::Xoauth2 formats `user=…\x01auth=Bearer …\x01\x01` and base64s it.
    let credentials = Credentials::new(user.to_owned(), token.expose_secret().to_owned());
    quiet(conn.auth(&[Mechanism::Xoauth2], &credentials))
        .await
        .map(drop)
        .map_err(|e| {
            // A server may echo the AUTH line, and with it the token.
            let blobs: Vec<String> = std::iter::once(token)
                .chain(refused)
                .map(|t| xoauth2_blob(user, t))
                .collect();
            let mut secrets: Vec<&[u8]> = blobs.iter().map(|b| b.as_bytes()).collect();
            secrets.push(token.expose_secret().as_bytes());
            secrets.extend(refused.map(|t| t.expose_secret().as_bytes()));
            from_lettre_redacted(
                SmtpStage::Auth,
                Some("XOAUTH2"),
                &e,
                Delivery::NotSent,
                &secrets,
            )
        })
}

/// The error of an attempt whose caller stopped waiting before the data: nobody reads it.
pub(super) fn gave_up(stage: SmtpStage) -> Error {
    client_error(
        stage,
        "the caller stopped waiting; the transaction was abandoned before the data",
        false,
        Delivery::NotSent,
    )
}

/// The XOAUTH2 initial response before base64, as lettre sends it.
fn xoauth2_blob(user: &str, token: &Secret) -> String {
    format!(
        "user={user}\x01auth=Bearer {}\x01\x01",
        token.expose_secret()
    )
}

/// Whether an error ends the SMTP session: no reply at all (the connection failed or was
/// closed) or `421` (the server is closing it).
pub(super) fn ends_session(error: &Error) -> bool {
    matches!(
        error,
        Error::Smtp {
            code: None | Some(421),
            ..
        }
    )
}

impl Connection {
    pub(super) fn is_broken(&self) -> bool {
        self.broken || self.conn.has_broken()
    }

    /// Says goodbye (QUIT, waiting at most [`QUIT_TIMEOUT`]) and closes; a broken
    /// connection is just dropped.
    pub(super) async fn abort(mut self) {
        if !self.is_broken() {
            abort_quickly(&mut self.conn).await;
        }
    }

    /// A lettre error at `stage` as [`Error::Smtp`], with this session's secrets redacted
    /// from the server's text.
    fn error(
        &self,
        stage: SmtpStage,
        error: &lettre::transport::smtp::Error,
        delivery: Delivery,
    ) -> Error {
        let secrets: Vec<&[u8]> = self
            .secrets
            .iter()
            .map(|s| s.expose_secret().as_bytes())
            .collect();
        from_lettre_redacted(stage, None, error, delivery, &secrets)
    }

    /// Marks the connection unusable after an error that ends the session.
    fn note(&mut self, error: &Error) {
        if ends_session(error) {
            self.broken = true;
        }
    }

    /// Ends an unfinished transaction so the connection can be reused.
    async fn reset(&mut self) {
        if !self.broken && quiet(self.conn.command(Rset)).await.is_err() {
            self.broken = true;
        }
    }

    /// One mail transaction: MAIL FROM, RCPT TO for each recipient, DATA.
    ///
    /// When `cancelled` is set (the caller is gone) before the data, the transaction is
    /// ended with `RSET` at the next step instead of going on.
    pub(super) async fn transfer(
        &mut self,
        envelope: &Envelope,
        bytes: &[u8],
        progress: &mut Progress,
        cancelled: &AtomicBool,
    ) -> Result<Accepted> {
        let gone = || cancelled.load(Ordering::Relaxed);
        progress.stage = SmtpStage::Mail;
        if gone() {
            return Err(gave_up(SmtpStage::Mail));
        }
        let mut parameters = Vec::new();
        let info = self.conn.server_info();
        if envelope.non_ascii {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err(Error::invalid_message(
                    "to",
                    "an address is not ASCII and the server does not support SMTPUTF8",
                ));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !bytes.is_ascii() && info.supports_feature(Extension::EightBitMime) {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let mail = Mail::new(Some(envelope.from.clone()), parameters);
        if let Err(e) = quiet(self.conn.command(mail)).await {
            let error = self.error(SmtpStage::Mail, &e, Delivery::NotSent);
            self.note(&error);
            self.reset().await;
            return Err(error);
        }

        progress.stage = SmtpStage::Rcpt;
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for (recipient, address) in &envelope.recipients {
            if gone() {
                self.reset().await;
                return Err(gave_up(SmtpStage::Rcpt));
            }
            match quiet(self.conn.command(Rcpt::new(address.clone(), vec![]))).await {
                Ok(_) => accepted.push(recipient.clone()),
                // 421: the server is closing the session, not refusing this recipient.
                Err(e) if e.status().is_some() && e.status().map(u16::from) != Some(421) => {
                    let mut error = self.error(SmtpStage::Rcpt, &e, Delivery::NotSent);
                    if let Error::Smtp { message, .. } = &mut error {
                        *message = format!("recipient <{address}> refused: {message}");
                    }
                    tracing::warn!(error = %error, "recipient refused");
                    refused.push((recipient.clone(), error));
                }
                Err(e) => {
                    let error = self.error(SmtpStage::Rcpt, &e, Delivery::NotSent);
                    self.note(&error);
                    return Err(error);
                }
            }
        }
        if accepted.is_empty() {
            // Every recipient refused: nothing to send, and nothing partial to report. The
            // reply itself is the error; a permanent one if any, so that a mix of 4xx and
            // 5xx is not retried, and only when all are temporary is the send retried.
            self.reset().await;
            let index = refused
                .iter()
                .position(|(_, e)| !e.is_transient())
                .unwrap_or(0);
            return Err(refused.swap_remove(index).1);
        }

        if gone() {
            self.reset().await;
            return Err(gave_up(SmtpStage::Data));
        }
        progress.stage = SmtpStage::Data;
        progress.accepted.clone_from(&accepted);
        progress.refused = refused.iter().map(|(r, _)| r.clone()).collect();
        if let Err(e) = quiet(self.conn.command(Data)).await {
            let error = self.error(SmtpStage::Data, &e, Delivery::NotSent);
            self.note(&error);
            self.reset().await;
            return Err(error);
        }
        progress.data_written = true;
        if let Err(e) = quiet(self.conn.message(bytes)).await {
            // A reply is the server's verdict: not accepted. No reply: it may have been.
            let delivery = if e.status().is_some() {
                Delivery::NotSent
            } else {
                Delivery::Uncertain
            };
            let error = self.error(SmtpStage::Data, &e, delivery);
            self.note(&error);
            return Err(error);
        }
        Ok(Accepted { accepted, refused })
    }
}

/// Idle connections, most recently used last.
pub(super) struct Pool {
    idle: Mutex<Vec<Connection>>,
    idle_timeout: Duration,
}

impl Pool {
    pub(super) fn new(idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            idle_timeout,
        }
    }

    /// The most recently used idle connection that is still fresh and, for XOAUTH2, logged in
    /// with the provider's current token; stale ones are closed.
    pub(super) async fn take(
        &self,
        connector: &Connector,
        deadline: Deadline,
    ) -> Result<Option<Connection>> {
        loop {
            let Some(conn) = self.pop() else {
                return Ok(None);
            };
            if conn.last_used.elapsed() > self.idle_timeout {
                conn.abort().await;
                continue;
            }
            if let Auth::Xoauth2 {
                provider, scope, ..
            } = &connector.auth
            {
                let current = connector.token(provider.as_ref(), scope, deadline).await?;
                let same = conn
                    .token
                    .as_ref()
                    .is_some_and(|t| t.expose_secret() == current.expose_secret());
                if !same {
                    tracing::debug!("token changed; replacing a pooled SMTP connection");
                    conn.abort().await;
                    continue;
                }
            }
            return Ok(Some(conn));
        }
    }

    /// Removes the most recently used idle connection, if any, whatever its state.
    pub(super) fn pop(&self) -> Option<Connection> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// Returns a connection for reuse; broken ones are dropped.
    pub(super) fn put(&self, mut conn: Connection) {
        if conn.is_broken() {
            return;
        }
        conn.last_used = Instant::now();
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CheckStatus;

    #[test]
    fn exchange_online_on_port_465_is_warned_about() {
        let step = endpoint_warning("smtp.office365.com", 465).unwrap();
        assert_eq!(step.status, CheckStatus::Warning);
        assert!(step.remedy.as_deref().unwrap().contains("587"));
        assert!(endpoint_warning("SMTP.Office365.com.", 465).is_some());
        assert!(endpoint_warning("smtp.office365.com", 587).is_none());
        assert!(endpoint_warning("mail.example.org", 465).is_none());
    }
}
