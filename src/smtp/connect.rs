//! Opening one SMTP connection over lettre's `AsyncSmtpConnection`: TCP, TLS (implicit, or
//! STARTTLS), EHLO and then AUTH, each stage within its own deadline; and the open
//! connection itself, closed with a QUIT that waits for no slow server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::Rset;
use lettre::transport::smtp::extension::ClientId;
use tokio::time::Instant;

use super::TlsMode;
use super::auth::Auth;
use super::auth::token_timeout;
use super::remedy::{client_error, from_lettre, from_lettre_redacted};
use super::stream::{GuardedStream, ImplicitTls};
use super::tls_mode::{
    IMPLICIT_TLS_PORT, NO_STARTTLS, NO_TLS_MODE, PLAIN_SMTP_PORT, answered_without_tls, spoke_tls,
};
use crate::credentials::{AccessToken, TokenProvider};
use crate::error::{Advice, Delivery, Error, Result, SmtpStage};
use crate::secret::Secret;

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

/// An open, authenticated connection.
pub(super) struct Connection {
    pub(super) conn: AsyncSmtpConnection,
    /// The XOAUTH2 token this session logged in with.
    pub(super) token: Option<Secret>,
    /// What this session sent that is secret, to redact from the server's replies.
    pub(super) secrets: Vec<Secret>,
    pub(super) last_used: Instant,
    pub(super) broken: bool,
}

/// Runs a lettre future with tracing switched off.
///
/// With its `tracing` feature — which any crate in the build can enable, since Cargo unifies
/// features — lettre logs every line it writes at DEBUG, `AUTH PLAIN <base64 of the
/// password>`, XOAUTH2 tokens and whole messages included. A scoped no-op dispatcher
/// overrides the thread's and the global subscriber while lettre's code runs, so none of it
/// reaches any subscriber; this crate's own events are emitted outside these futures.
pub(super) fn quiet<F: Future>(future: F) -> tracing::instrument::WithDispatch<F> {
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

/// The TLS question ([`Connector::connect_plain_or_implicit`] asks it of a server that sent
/// no greeting) is asked once per send: a retry meets the same server, and each question
/// costs a connection and up to the connect timeout of the send's deadline.
#[derive(Debug, Default)]
pub(super) struct TlsProbe(AtomicBool);

impl TlsProbe {
    /// Whether the question may be asked now: `true` the first time only.
    fn take(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
    }

    /// Whether the question was asked already.
    fn asked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The longest wait for a TLS answer when asking whether a silent port speaks implicit TLS.
const TLS_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest wait for the server's answer to QUIT; then the connection is just dropped.
pub(super) const QUIT_TIMEOUT: Duration = Duration::from_secs(1);

/// Says goodbye (QUIT) and closes, without waiting more than [`QUIT_TIMEOUT`] for a server
/// that does not answer; dropping the connection closes the socket anyway.
pub(super) async fn abort_quickly(conn: &mut AsyncSmtpConnection) {
    let _ = tokio::time::timeout(QUIT_TIMEOUT, quiet(conn.abort())).await;
}

impl Connector {
    /// The server as messages name it: `host:port`, an IPv6 address in brackets.
    pub(super) fn server(&self) -> String {
        crate::net::host_port(&self.host, self.port)
    }

    /// Runs one stage of opening a connection (`what`) with its own deadline: the connect
    /// timeout, and never past `deadline`. A server that accepts the TCP connection and then
    /// says nothing (a wrong port, a TLS port spoken to in plaintext, a firewall holding the
    /// connection) would otherwise be waited for forever.
    pub(super) async fn stage<T>(
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
                let server = self.server();
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
            // Where the tokens come from says what to check, not the SMTP remedy table.
            Err(_elapsed) => Err(Error::Smtp {
                stage: SmtpStage::Auth,
                code: None,
                enhanced_code: None,
                message: token_timeout(provider, start.elapsed(), deadline),
                mechanism: Some("XOAUTH2".to_owned()),
                transient: true,
                delivery: Delivery::NotSent,
                advice: Advice::remedy(Some(crate::credentials::timeout_remedy(provider))),
            }),
        }
    }

    /// TCP, greeting, EHLO and TLS (implicit, or STARTTLS and EHLO again).
    async fn connect(&self, deadline: Deadline, probe: &TlsProbe) -> Result<AsyncSmtpConnection> {
        let mut conn = self.connect_plain_or_implicit(deadline, probe).await?;
        if let Tls::Starttls(params) = &self.tls {
            self.starttls(&mut conn, params, deadline).await?;
        }
        Ok(conn)
    }

    /// TCP, greeting and EHLO, with TLS first for implicit TLS. A server that sends no
    /// greeting is asked, once per `probe`, whether it speaks implicit TLS instead.
    pub(super) async fn connect_plain_or_implicit(
        &self,
        deadline: Deadline,
        probe: &TlsProbe,
    ) -> Result<AsyncSmtpConnection> {
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
                                format!("cannot connect to {}: {e}", self.server()),
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
                    stream.map_err(|e| {
                        if answered_without_tls(&e) {
                            self.plain_smtp_port()
                        } else {
                            from_lettre(SmtpStage::Tls, None, &e, Delivery::NotSent)
                        }
                    })
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
        // Without a greeting the port is asked whether it speaks implicit TLS: leave that
        // question time of its own when the deadline would end the wait for the greeting
        // before the connect timeout does, or a wrong port would be reported as a server
        // that did not answer.
        let now = Instant::now();
        let greet_by = match self.tls {
            Tls::Implicit(_) => deadline,
            _ if probe.asked() || deadline.at >= now + self.connect_timeout => deadline,
            _ => {
                let left = deadline.at.saturating_duration_since(now);
                let question = (left / 2).min(self.connect_timeout.min(TLS_PROBE_TIMEOUT));
                Deadline {
                    at: deadline.at - question,
                    ..deadline
                }
            }
        };
        let greeted = self
            .stage(greet_by, SmtpStage::Connect, "(greeting and EHLO)", greet)
            .await;
        match greeted {
            // No greeting: silence, or the connection closed without a reply. An SMTP server
            // greets at once; a server on an implicit-TLS port waits for a TLS hello instead.
            Err(error @ Error::Smtp { code: None, .. })
                if error.is_transient() && !matches!(self.tls, Tls::Implicit(_)) =>
            {
                if probe.take() && self.speaks_implicit_tls(deadline).await {
                    Err(self.implicit_tls_port())
                } else {
                    Err(error)
                }
            }
            other => other,
        }
    }

    /// Implicit TLS against a port whose server answered the TLS hello in plain text: it
    /// speaks SMTP first (and STARTTLS). Permanent: every attempt would meet the same answer.
    fn plain_smtp_port(&self) -> Error {
        client_error(
            SmtpStage::Tls,
            format!(
                "{} {PLAIN_SMTP_PORT} was expected (implicit TLS, `smtp_tls = \"implicit\"`): \
                 the server speaks SMTP in plain text first and offers TLS by STARTTLS",
                self.server()
            ),
            false,
            Delivery::NotSent,
        )
    }

    /// STARTTLS or no TLS against a port that expects TLS from the first byte. Permanent.
    fn implicit_tls_port(&self) -> Error {
        client_error(
            SmtpStage::Tls,
            format!(
                "{} {IMPLICIT_TLS_PORT} (TLS from the first byte): it sent no SMTP greeting \
                 to a plain connection but answered a TLS handshake, so {} cannot work there",
                self.server(),
                match self.tls {
                    Tls::None => NO_TLS_MODE,
                    _ => "STARTTLS (`smtp_tls = \"starttls\"`)",
                }
            ),
            false,
            Delivery::NotSent,
        )
    }

    /// Whether the server answers a TLS handshake on a new connection: asked after it sent no
    /// greeting to a plain one. Any TLS answer counts, a refused certificate included (with
    /// no TLS settings the public roots are used); nothing is sent over the connection.
    async fn speaks_implicit_tls(&self, deadline: Deadline) -> bool {
        let params = match &self.tls {
            Tls::Starttls(params) | Tls::Implicit(params) => params.clone(),
            Tls::None => match TlsParameters::new(self.host.clone()) {
                Ok(params) => params,
                Err(_) => return false,
            },
        };
        let limit = deadline
            .at
            .min(Instant::now() + self.connect_timeout.min(TLS_PROBE_TIMEOUT));
        let probe = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await;
            let Ok(tcp) = tcp else { return false };
            let handshake = ImplicitTls::handshake(Box::new(GuardedStream::new(tcp)), params);
            spoke_tls(&quiet(handshake).await)
        };
        tokio::time::timeout_at(limit, probe).await.unwrap_or(false)
    }

    pub(super) async fn starttls(
        &self,
        conn: &mut AsyncSmtpConnection,
        params: &TlsParameters,
        deadline: Deadline,
    ) -> Result<()> {
        if !conn.can_starttls() {
            abort_quickly(conn).await;
            // Permanent: the same server says the same again. Never a silent downgrade.
            return Err(client_error(
                SmtpStage::Tls,
                format!(
                    "{} {NO_STARTTLS}, which Use SSL (`use_ssl`, or `smtp_tls = \"starttls\"`) \
                     requires: no credentials or mail were sent",
                    self.server()
                ),
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

    /// Opens a connection ready to send; each stage gives up at `deadline` at the latest.
    pub(super) async fn open(&self, deadline: Deadline, probe: &TlsProbe) -> Result<Connection> {
        let mut conn = self.connect(deadline, probe).await?;
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

/// Whether `error`, on a pooled connection that the server turned out to have closed, was
/// the server's farewell to the idle connection rather than an answer to this send: no reply
/// or a 421 at any command before the data, or a temporary refusal of `MAIL FROM` (Exchange
/// Online answers an idle connection `451 4.7.0 Timeout waiting for client input` and
/// closes it). Nothing was accepted; a new connection may carry the send.
pub(super) fn closed_while_idle(error: &Error) -> bool {
    ends_session(error)
        || matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Mail,
                code: Some(400..=499),
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
    pub(super) fn error(
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
    pub(super) fn note(&mut self, error: &Error) {
        if ends_session(error) {
            self.broken = true;
        }
    }

    /// Ends an unfinished transaction so the connection can be reused.
    pub(super) async fn reset(&mut self) {
        if !self.broken && quiet(self.conn.command(Rset)).await.is_err() {
            self.broken = true;
        }
    }
}
