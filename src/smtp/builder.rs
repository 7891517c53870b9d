//! [`SmtpTransportBuilder`]: the transport's settings, and [`build`](SmtpTransportBuilder::build),
//! which validates them (host, credentials without TLS, CA certificates, limits) and sets up
//! the TLS parameters.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::sync::Semaphore;

use super::auth::Auth;
use super::connect::{Connector, Tls};
use super::pool::Pool;
use super::{Inner, SendAsPolicy, SmtpTransport, TlsMode, default_retry_policy};
#[cfg(doc)]
use crate::credentials::Credentials;
use crate::credentials::{SMTP_SCOPE, TokenProvider};
use crate::error::{Error, Result, SettingsProblem};
use crate::message::Mailbox;
use crate::net::{default_smtp_port, plaintext_credentials_problem};
use crate::retry::RetryPolicy;
use crate::secret::Secret;
#[cfg(doc)]
use crate::transport::MailTransport;

/// Builds an [`SmtpTransport`]; start from [`SmtpTransport::starttls`],
/// [`SmtpTransport::implicit_tls`], [`SmtpTransport::builder_dangerous`] or
/// [`ConnectorSettings::smtp_builder`](crate::ConnectorSettings::smtp_builder). Problems are
/// collected and reported by
/// [`build`](Self::build).
#[must_use]
#[derive(Debug, Clone)]
pub struct SmtpTransportBuilder {
    host: String,
    port: Option<u16>,
    tls: TlsMode,
    auth: Auth,
    sender: Option<Mailbox>,
    send_as: SendAsPolicy,
    ca_file: Option<PathBuf>,
    ca_pem: Vec<Vec<u8>>,
    allow_plaintext_credentials: bool,
    max_concurrency: usize,
    send_deadline: Duration,
    connect_timeout: Duration,
    idle_timeout: Duration,
    retry: RetryPolicy,
    hello_name: Option<String>,
    scope: String,
    dkim: Option<crate::dkim::DkimSigner>,
    problems: Vec<SettingsProblem>,
}

impl SmtpTransportBuilder {
    pub(super) fn new(host: impl Into<String>, tls: TlsMode) -> Self {
        let host = host.into();
        // An IPv6 address may come in brackets, as a URL writes it: connect to the address.
        let host = match crate::net::ipv6_host(&host) {
            Some(address) => address.to_owned(),
            None => host,
        };
        Self {
            host,
            port: None,
            tls,
            auth: Auth::None,
            sender: None,
            send_as: SendAsPolicy::default(),
            ca_file: None,
            ca_pem: Vec::new(),
            allow_plaintext_credentials: false,
            max_concurrency: 3,
            send_deadline: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            retry: default_retry_policy(),
            hello_name: None,
            scope: SMTP_SCOPE.to_owned(),
            dkim: None,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(SettingsProblem {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// The port; default 465 for implicit TLS, 587 otherwise.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Log in with a user name and password (SMTP AUTH PLAIN or LOGIN, whichever the server
    /// offers). The user name is also the mailbox unless [`sender`](Self::sender) says
    /// otherwise.
    pub fn basic_auth(mut self, user: impl Into<String>, password: Secret) -> Self {
        let user = user.into();
        if self.sender.is_none() {
            self.sender = Mailbox::parse(&user).ok();
        }
        self.auth = Auth::Basic { user, password };
        self
    }

    /// Log in with XOAUTH2 as `user` (the mailbox), with tokens from `tokens` for
    /// [`scope`](Self::scope) — usually [`Credentials`], which caches them.
    pub fn xoauth2(
        mut self,
        user: impl Into<String>,
        tokens: impl TokenProvider + 'static,
    ) -> Self {
        let user = user.into();
        if self.sender.is_none() {
            self.sender = Mailbox::parse(&user).ok();
        }
        self.auth = Auth::Xoauth2 {
            user,
            provider: Arc::new(tokens),
            // Set at `build`, so that `scope` may come before or after this.
            scope: String::new(),
        };
        self
    }

    /// The scope of XOAUTH2 tokens (default [`SMTP_SCOPE`], Exchange Online's).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The mailbox mail is sent from (`MAIL FROM` and, by default, `From`).
    pub fn sender(mut self, mailbox: Mailbox) -> Self {
        self.sender = Some(mailbox);
        self
    }

    /// What to do with an email whose `from` is not the mailbox; see [`SendAsPolicy`].
    pub fn send_as(mut self, policy: SendAsPolicy) -> Self {
        self.send_as = policy;
        self
    }

    /// Trust the root certificates in this PEM file as well as the system's.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Trust these PEM-encoded root certificates as well as the system's.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem.push(pem.into());
        self
    }

    /// Allow sending a password or token without TLS to a host that is not loopback.
    /// Anyone on the network path can read them: use only on a network you trust.
    pub fn allow_plaintext_credentials_dangerous(mut self, allow: bool) -> Self {
        self.allow_plaintext_credentials = allow;
        self
    }

    /// The most connections open at once (default 3, Exchange Online's per-mailbox limit).
    /// Values of `u32::MAX` or more (`usize::MAX` included) mean no limit.
    pub fn max_concurrency(mut self, max: usize) -> Self {
        self.max_concurrency = max;
        self
    }

    /// The overall deadline of one send, retries included (default 60 s); it also bounds
    /// [`check`](MailTransport::check). Timeouts longer than a year (`Duration::MAX`
    /// included) are kept as a year: no limit in practice.
    pub fn send_deadline(mut self, timeout: Duration) -> Self {
        self.send_deadline = timeout;
        self
    }

    /// The deadline for each stage of opening a connection — TCP connect, greeting and
    /// EHLO, TLS, AUTH — never past the send timeout (default 15 s). A server that accepts
    /// the connection and then stays silent fails the stage, and the send is retried. It
    /// also bounds the wait for the first reply on a pooled connection, which may have died
    /// silently while idle: the send then goes on a new connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Close pooled connections idle for longer than this (default 60 s).
    ///
    /// A background task closes them soon after, politely (`QUIT`, waiting at most a second
    /// for the server's answer), without waiting for the next send: a service that sends a
    /// burst and then nothing does not hold its sessions open until the server times them
    /// out (Exchange Online allows 3 per mailbox, shared by every replica). The task is
    /// started on the runtime of the send that leaves a connection idle, runs only while
    /// connections are idle, and ends when the transport is dropped or
    /// [closed](super::SmtpTransport::close). It never touches a connection a send is using,
    /// and a connection being closed counts against
    /// [`max_concurrency`](Self::max_concurrency) until it is.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How transient failures (4xx replies, dropped connections) are retried (default
    /// [`default_retry_policy`]). The send timeout bounds the retries too.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Signs every message the transport builds with DKIM (feature `dkim`; see
    /// [`dkim`](crate::dkim)). Prepared messages are sent as they are.
    #[cfg(feature = "dkim")]
    pub fn dkim(mut self, signer: crate::dkim::DkimSigner) -> Self {
        self.dkim = Some(signer);
        self
    }

    /// The name sent in EHLO; default the machine's host name. It must be one word without
    /// spaces or control characters (a host name such as `mail.example.org`), else
    /// [`build`](Self::build) refuses it: a line break would add SMTP commands of its own.
    pub fn hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }

    /// Validates the configuration and builds the transport. No connection is opened.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] naming the settings key for: a missing host; credentials
    /// without TLS to a non-loopback host (unless allowed, see
    /// [`allow_plaintext_credentials_dangerous`](Self::allow_plaintext_credentials_dangerous));
    /// an unreadable CA file, or one (or a [`tls_ca_pem`](Self::tls_ca_pem)) that holds no PEM
    /// certificate; XOAUTH2 without a token provider; a connection limit
    /// of 0; an empty password; a [`hello_name`](Self::hello_name) that is empty or holds a
    /// space or control character; a user name (of [`basic_auth`](Self::basic_auth) or
    /// [`xoauth2`](Self::xoauth2)) with a control character (a line break, NUL, `\x01`).
    pub fn build(self) -> Result<SmtpTransport> {
        let mut this = self;
        let host = this.host.trim().to_owned();
        if host.is_empty() && this.problems.is_empty() {
            this.problem("smtp_host", "SMTP host (`smtp_host`) is required");
        }
        let has_credentials = !matches!(this.auth, Auth::None);
        if this.tls == TlsMode::None
            && has_credentials
            && let Some(message) =
                plaintext_credentials_problem(&host, this.allow_plaintext_credentials)
        {
            this.problem("smtp_allow_plaintext_credentials_dangerous", message);
        }
        if this.max_concurrency == 0 {
            this.problem(
                "max_concurrency",
                "the SMTP connection limit must be at least 1",
            );
        }
        if let Some(problem) = this.hello_name.as_deref().and_then(hello_name_problem) {
            this.problem("hello_name", problem);
        }
        let user = match &this.auth {
            Auth::None => None,
            Auth::Basic { user, .. } => Some(("basic_auth", user.clone())),
            Auth::Xoauth2 { user, .. } => Some(("xoauth2", user.clone())),
        };
        if let Some(problem) = user.and_then(|(setter, user)| user_name_problem(setter, &user)) {
            this.problem("user_name", problem);
        }
        let auth = match this.auth.clone() {
            Auth::None => Auth::None,
            Auth::Basic { user, password } => {
                if password.is_empty() {
                    this.problem("password", crate::fields::PASSWORD_REQUIRED);
                }
                Auth::Basic { user, password }
            }
            Auth::Xoauth2 { user, provider, .. } => Auth::Xoauth2 {
                user,
                provider,
                scope: this.scope.clone(),
            },
        };
        let mut ca_pem = this.ca_pem.clone();
        for pem in &ca_pem {
            if let Err(reason) = check_pem(pem) {
                this.problem(
                    "tls_ca_file",
                    format!("a trusted CA certificate (`tls_ca_pem`) {reason}"),
                );
            }
        }
        if let Some(path) = &this.ca_file {
            match std::fs::read(path) {
                Ok(pem) => match check_pem(&pem) {
                    Ok(()) => ca_pem.push(pem),
                    Err(reason) => this.problem(
                        "tls_ca_file",
                        format!(
                            "Trusted CA file (`tls_ca_file`) `{}` {reason}",
                            path.display()
                        ),
                    ),
                },
                Err(e) => this.problem(
                    "tls_ca_file",
                    format!(
                        "Trusted CA file (`tls_ca_file`) `{}` cannot be read: {e}",
                        path.display()
                    ),
                ),
            }
        }
        // Empty host: already a problem, and no name to verify the certificate against.
        let tls_parameters = if this.tls == TlsMode::None || host.is_empty() {
            None
        } else {
            let mut params = TlsParameters::builder(host.clone());
            for pem in &ca_pem {
                match Certificate::from_pem(pem) {
                    Ok(cert) => params = params.add_root_certificate(cert),
                    Err(e) => this.problem(
                        "tls_ca_file",
                        format!(
                            "Trusted CA file (`tls_ca_file`) holds no valid PEM certificate: {e}"
                        ),
                    ),
                }
            }
            match params.build() {
                Ok(params) => Some(params),
                Err(e) => {
                    this.problem("tls_ca_file", format!("cannot set up TLS: {e}"));
                    None
                }
            }
        };
        if !this.problems.is_empty() {
            return Err(Error::InvalidSettings {
                problems: this.problems,
            });
        }
        let port = this
            .port
            .unwrap_or(default_smtp_port(this.tls == TlsMode::Implicit));
        let hello = match &this.hello_name {
            Some(name) => ClientId::Domain(name.clone()),
            None => ClientId::default(),
        };
        let tls = match (this.tls, tls_parameters) {
            (TlsMode::Starttls, Some(params)) => Tls::Starttls(params),
            (TlsMode::Implicit, Some(params)) => Tls::Implicit(params),
            // Parameters are missing only with a problem recorded, returned above.
            _ => Tls::None,
        };
        // Values past these mean "no limit" in practice; beyond them the arithmetic on
        // instants (and tokio's semaphore) would overflow. `close` takes every permit at
        // once, which tokio counts in a u32: a larger limit would let it return with sends
        // still in flight.
        let max_concurrency = this
            .max_concurrency
            .min(Semaphore::MAX_PERMITS)
            .min(u32::MAX as usize);
        let connector = Connector {
            host,
            port,
            tls,
            auth,
            hello,
            connect_timeout: this.connect_timeout.min(MAX_TIMEOUT),
        };
        let permits = Arc::new(Semaphore::new(max_concurrency));
        let pool = Pool::new(
            this.idle_timeout.min(MAX_TIMEOUT),
            Arc::clone(&permits),
            connector.host.clone(),
            connector.port,
        );
        Ok(SmtpTransport {
            inner: Arc::new(Inner {
                connector,
                sender: this.sender,
                send_as: this.send_as,
                send_deadline: this.send_deadline.min(MAX_TIMEOUT),
                retry: this.retry,
                max_concurrency,
                permits,
                pool,
                opened: AtomicU64::new(0),
                dkim: this.dkim,
            }),
        })
    }
}

/// The longest timeout kept: longer ones (up to `Duration::MAX`) are treated as this, which
/// is no limit in practice and keeps `Instant` arithmetic from overflowing.
const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// What is wrong with `name` as the EHLO name, if anything. It goes on the command line as
/// it is: a line break would end the EHLO command and start another of the caller's choosing.
fn hello_name_problem(name: &str) -> Option<String> {
    let what = match name.chars().find(|&c| c.is_control() || c.is_whitespace()) {
        _ if name.is_empty() => "is empty".to_owned(),
        Some('\r' | '\n') => "contains a line break, which would add SMTP commands".to_owned(),
        Some(c) if c.is_control() => format!("contains the control character {c:?}"),
        Some(c) => format!("contains the space {c:?}"),
        None => return None,
    };
    Some(format!(
        "The EHLO name (`hello_name`, set with `SmtpTransportBuilder::hello_name`) {name:?} \
         {what}: give this machine's host name, such as `mail.example.org`, or do not set it \
         to use the machine's own"
    ))
}

/// What is wrong with `user` as the login of `setter` (`basic_auth` or `xoauth2`), if anything.
/// A control character corrupts the login: `\x01` ends XOAUTH2's `user=` field and lets the
/// rest pose as another, NUL does the same for PLAIN, a line break for LOGIN.
fn user_name_problem(setter: &str, user: &str) -> Option<String> {
    let c = user.chars().find(|c| c.is_control())?;
    let what = match c {
        '\r' | '\n' => "a line break".to_owned(),
        other => format!("the control character {other:?}"),
    };
    Some(format!(
        "User Name (`user_name`, given to `SmtpTransportBuilder::{setter}`) {user:?} contains \
         {what}, which would corrupt the SMTP login: give the mailbox address alone, such as \
         `no-reply@contoso.com`"
    ))
}

/// Whether `pem` holds at least one PEM certificate, and nothing unreadable.
fn check_pem(pem: &[u8]) -> std::result::Result<(), &'static str> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;

    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        if cert.is_err() {
            return Err("is not a readable PEM certificate bundle");
        }
        count += 1;
    }
    if count == 0 {
        return Err("holds no `BEGIN CERTIFICATE` block; it must be PEM");
    }
    Ok(())
}
