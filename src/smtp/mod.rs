//! [`SmtpTransport`]: SMTP submission over lettre — basic auth (LOGIN/PLAIN), XOAUTH2 or
//! an anonymous relay — with our own connection pool.
//!
//! lettre speaks the protocol (EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA, dot-stuffing) and
//! builds the MIME message; this module decides how connections are secured, authenticated,
//! shared, retried and how failures are explained.
//!
//! # TLS modes and "Use SSL"
//!
//! The TLS mode is chosen by the constructor, as in lettre: [`SmtpTransport::starttls`]
//! (**required** STARTTLS: a server that does not offer it is an error, never a silent
//! downgrade), [`SmtpTransport::implicit_tls`] (TLS from the first byte) and
//! [`SmtpTransport::builder_dangerous`] (no encryption). The admin screen's Use SSL box is
//! mapped to a mode in one place,
//! [`ConnectorSettings::smtp_tls_mode`](crate::ConnectorSettings::smtp_tls_mode):
//!
//! | `use_ssl` | port | mode |
//! |---|---|---|
//! | `true` (default) | 465 | [`SmtpTls::Implicit`](crate::SmtpTls::Implicit): TLS from the first byte |
//! | `true` (default) | any other (default 587) | [`SmtpTls::Starttls`](crate::SmtpTls::Starttls), required |
//! | `false` | any | [`SmtpTls::None`](crate::SmtpTls::None): no encryption |
//!
//! `smtp_tls` overrides the mapping. Certificates are always verified, against the system
//! roots plus the PEM file in `tls_ca_file`. Without TLS, credentials (a password or a token)
//! are refused for any host other than loopback unless
//! `smtp_allow_plaintext_credentials_dangerous = true` — the name is the warning.
//! [`check`](MailTransport::check) warns about a session without TLS by the same rule: to
//! any host but loopback (`127.0.0.0/8`, `::1`, `localhost`), where a relay on this machine
//! listens.
//!
//! Exchange Online documents only STARTTLS on port 587 (or 25) for client submission; its
//! port 465 is not a supported endpoint, so keep the defaults; [`check`](MailTransport::check)
//! warns about an `*.office365.com` host on port 465.
//!
//! # Authentication
//!
//! - `basic`: the mechanisms the server offers, PLAIN or LOGIN (Exchange Online offers only
//!   LOGIN and XOAUTH2).
//! - `oauth` with `transport = "smtp"`: SASL XOAUTH2
//!   (`user=<user_name>\x01auth=Bearer <token>\x01\x01`) with a token from a
//!   [`TokenProvider`] — usually [`Credentials`], which caches it — for the scope
//!   [`SMTP_SCOPE`] (or [`scope`](SmtpTransportBuilder::scope)). A token is asked for each new
//!   connection and each reuse of a pooled one; a pooled connection whose token is no longer the provider's current one is
//!   closed and replaced, because SMTP cannot re-authenticate a session. When the server
//!   answers 535, the token is invalidated and the login retried once with a fresh one —
//!   except for `5.7.139` (SMTP AUTH disabled) and `5.7.30`, which no token can fix.
//!   lettre sends the XOAUTH2 response on the `AUTH` line itself (`AUTH XOAUTH2 <base64>`), the
//!   form Microsoft's documentation gives and common clients use. It is longer than the 512
//!   octets RFC 4954 allows for an initial response; a server that enforces that limit
//!   answers `500 5.5.6`, which is reported as an AUTH failure.
//! - `none`: no AUTH, for an anonymous relay.
//!
//! # Pooling, limits and retries
//!
//! Connections are kept after a send and reused. At most
//! [`max_concurrency`](SmtpTransportBuilder::max_concurrency) (default 3, Exchange Online's
//! limit per mailbox) are open at once, enforced by a semaphore; further sends wait their
//! turn. A pooled connection the server has closed (silently, or with a parting `421` or a
//! `451` to `MAIL FROM`, as Exchange Online says to an idle one) is replaced transparently,
//! without counting a failed attempt. Connections idle longer than
//! [`idle_timeout`](SmtpTransportBuilder::idle_timeout) (default 60 s) are closed with
//! `QUIT` in the background, without waiting for a send. Each send has
//! an overall deadline ([`send_deadline`](SmtpTransportBuilder::send_deadline), default 60 s).
//! 4xx replies and dropped connections are retried with exponential backoff inside that
//! deadline; 5xx replies are not. A 4xx reply to the end of the message data (Exchange's
//! `432 4.3.2`) is the server refusing the message, so it is retried too. But when the data
//! has been written and no reply comes (a timeout, a dropped connection), nothing is
//! retried: the failure is reported as [`Delivery::Uncertain`](crate::Delivery).
//!
//! A send whose caller gives up — its future dropped, e.g. by `tokio::time::timeout` —
//! keeps its connection and its place under the limit until the server is done with it:
//! the command in progress gets its reply, a transaction not yet at the data is ended with
//! `RSET` (nothing is sent), one whose data is being written is finished. So the server
//! never works on more transactions at once than the limit allows, however many callers
//! give up.
//!
//! Recipients the server refuses (`RCPT TO`) do not stop the others: the message goes to the
//! accepted ones and the send fails with [`Error::PartialDelivery`], whose `not_sent` lists
//! exactly the refused recipients, `refused_permanently` those refused with a 5xx (but
//! `552`, "too many recipients", which RFC 5321 §4.5.3.1.10 makes temporary there), and
//! `refusals` each one's reply ([`Refusal`](crate::Refusal): code, enhanced code, and the
//! text, redacted as below). When the server then refuses the data (or the data is cut off
//! before its end), nobody gets the message, and the error is still a partial delivery that
//! keeps those refusals: nothing `delivered`, everyone in `not_sent`, the data's error as its
//! `source`; when the data goes unanswered, the accepted recipients are `uncertain`. A reply
//! at `RCPT TO` that concerns the session rather than the recipient (`530` or `5.7.57`,
//! authentication required) fails the send at once, with its own remedy. When
//! every recipient is refused nothing is sent (`RSET`): the refusal of a single recipient is
//! the error itself, an [`Error::Smtp`] at the RCPT stage; the refusal of several is an
//! [`Error::PartialDelivery`] with nothing `delivered`, so that a 5xx for one does not fail
//! the others. Either is retried within the send when every refusal was a 4xx (the error is
//! then [transient](Error::is_transient)), and not when any was a 5xx. A `421` is not a
//! refusal: the server is closing the session, so the attempt stops there and is retried on
//! a new connection.
//!
//! # Logging and secrets
//!
//! This module's own `tracing` events (target `mail_connector`) never carry a password, a
//! token or message content. lettre has a `tracing` feature of its own that logs every
//! line it writes at DEBUG — `AUTH PLAIN <base64 of user and password>`, the XOAUTH2 token,
//! whole messages — and any crate in a build can enable it, since Cargo unifies features.
//! So every lettre call here runs under a scoped no-op dispatcher
//! ([`tracing::Dispatch::none`]): whatever lettre logs reaches no subscriber, the thread's
//! or the global one. (tracing's own `log-always` feature, which also copies events to the
//! `log` crate, is outside this crate's reach: do not enable it together with lettre's
//! `tracing`.)
//!
//! Server replies that reach an error or a log are redacted first: every known secret of
//! the connection (the password, the token, the PLAIN and XOAUTH2 blobs, raw or in base64
//! at any alignment) is replaced, also when the server splits its echo over several lines.
//!
//! # Trust after STARTTLS
//!
//! After the server agrees to STARTTLS, anything it sends before the TLS handshake fails the
//! connection (RFC 3207): such bytes can only be an attacker's injection or a broken server,
//! and would otherwise be read as if they had come over TLS. After the handshake the client
//! says EHLO again and trusts only the capabilities it gets over TLS. A reply longer than
//! 256 KiB without an end fails the connection instead of being buffered. Both, like a
//! refused certificate, are permanent errors: they are not retried.
//!
//! # Errors and their remedies
//!
//! Failures are [`Error::Smtp`] with the stage, reply code, enhanced status code and server
//! text; [`Error::remedy`] names the fix:
//!
//! | reply | meaning | remedy |
//! |---|---|---|
//! | `535 5.7.139` | SMTP AUTH disabled for the tenant or mailbox | `Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false`, or use OAuth |
//! | `550 5.7.30` | basic auth retired | `auth_mode = "oauth"` |
//! | `535 5.7.3` with XOAUTH2 | token not accepted | the step the token's claims show missing (below) |
//! | `535 5.7.8` | wrong user name or password | fix `user_name` / `password` |
//! | `554 5.2.252` | SendAsDenied | send from `user_name` or `Add-RecipientPermission … SendAs` |
//! | `550 5.7.60` at `MAIL FROM` | the login may not send as the envelope sender ([`sender`](SmtpTransportBuilder::sender), else the login itself) | leave `sender` unset or `Add-RecipientPermission … SendAs`; when the sender is the login, make User Name the mailbox's primary SMTP address |
//! | `550 5.7.60` after the data | the login may not send as the From header | send from `user_name`, or `Add-RecipientPermission … SendAs` |
//! | `432 4.3.2` | too many concurrent connections | transient: retried |
//! | `334` to XOAUTH2 (an error challenge) | token refused | transient: retried with a fresh token |
//! | `334` to PLAIN, or a LOGIN prompt for neither user name nor password | a login this connector cannot answer | check `smtp_host`, `smtp_port` and `auth_mode`; permanent: not retried |
//!
//! # Exchange Online setup
//!
//! SMTP AUTH is off for tenants created after January 2020 and under security defaults:
//! enable it per mailbox with `Set-CASMailbox -Identity <mailbox>
//! -SmtpClientAuthenticationDisabled $false`. Microsoft is retiring basic authentication
//! for SMTP client submission: disabled by default for existing tenants from the end of
//! December 2026, unavailable for new tenants, final removal announced for 2027 — after
//! which the server answers `550 5.7.30`. Prefer OAuth: the app needs `SMTP.SendAsApp`
//! (Office 365 Exchange Online, application permission, admin consent), a service principal
//! registered with `New-ServicePrincipal`, and `Add-MailboxPermission` on the mailbox; the
//! token scope is `https://outlook.office365.com/.default`.
//!
//! When Exchange refuses an app-only token, the remedy reads the token's claims (unverified,
//! for the wording only) to name the missing step: a token for another resource (its `aud`
//! is not Exchange Online's) → `oauth_scope`; no `SMTP.SendAsApp` in its `roles` → the
//! permission and admin consent (or Exchange's RBAC for Applications); the role present →
//! `New-ServicePrincipal` with the token's own app and service principal IDs,
//! `Add-MailboxPermission` and SMTP AUTH for the mailbox. A delegated token, or one that is
//! not a readable JWT, gets every step.
//!
//! ```no_run
//! use mail_connector::{Email, MailTransport, Secret, SmtpTransport};
//!
//! # async fn run() -> mail_connector::Result<()> {
//! let transport = SmtpTransport::starttls("smtp.office365.com")
//!     .basic_auth("no-reply@contoso.com", Secret::new("app-password"))
//!     .build()?;
//! let email = Email::builder().to("ann@example.org").subject("Hi").text("Hello").build()?;
//! transport.send(&email).await?;
//! # Ok(()) }
//! ```

mod auth;
mod builder;
mod check;
mod connect;
mod envelope;
mod pool;
mod reaper;
mod redact;
pub(crate) mod remedy;
mod send;
mod stream;
mod tls_mode;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use crate::check::CheckReport;
#[cfg(doc)]
use crate::credentials::{Credentials, SMTP_SCOPE, TokenProvider};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::message::{Email, Mailbox};
use crate::retry::RetryPolicy;
use crate::transport::{MailTransport, SendReport};

pub use builder::SmtpTransportBuilder;
use connect::Connector;
use pool::Pool;

/// Whether an email's own `from` may differ from the transport's mailbox.
///
/// The envelope sender (`MAIL FROM`) is always the mailbox (`user_name`), the account that
/// authenticates. This policy decides the `From` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SendAsPolicy {
    /// Use the email's `from` as the `From` header when set. Exchange Online accepts it
    /// only with Send As permission on that address, else `554 5.2.252`.
    AllowOtherFrom,
    /// Refuse, before connecting, an email whose `from` is not the mailbox (the default, as
    /// for Graph and the settings' `allow_send_as = false`).
    #[default]
    MailboxOnly,
}

/// The retry policy of an [`SmtpTransport`] unless [`retry_policy`](SmtpTransportBuilder::retry_policy)
/// sets another: 3 retries of transient failures (4xx replies, dropped connections), the first
/// after about 250 ms, doubling up to 8 s, with jitter, all within the send timeout.
#[must_use]
pub fn default_retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(8),
        multiplier: 2.0,
        deadline: None,
    }
}

/// How the connection is secured; chosen by the [`SmtpTransport`] constructor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    Starttls,
    Implicit,
    None,
}

/// Sends email by SMTP submission with a pool of reused connections.
///
/// Cheap to clone: clones share the pool. Make one per mailbox and share it. See the
/// [module documentation](self) for TLS, authentication, pooling and retries.
#[derive(Clone)]
pub struct SmtpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    sender: Option<Mailbox>,
    send_as: SendAsPolicy,
    send_deadline: Duration,
    retry: RetryPolicy,
    max_concurrency: usize,
    permits: Arc<Semaphore>,
    pool: Pool,
    opened: AtomicU64,
    /// Signs the messages it builds (feature `dkim`).
    dkim: Option<crate::dkim::DkimSigner>,
}

impl fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("SmtpTransport")
            .field("host", &inner.connector.host)
            .field("port", &inner.connector.port)
            .field("tls", &inner.connector.tls.mode())
            .field("auth", &inner.connector.auth)
            .field("sender", &inner.sender)
            .field("max_concurrency", &inner.max_concurrency)
            .field("send_deadline", &inner.send_deadline)
            .finish_non_exhaustive()
    }
}

impl SmtpTransport {
    /// A builder for `host` with STARTTLS required, port 587 — Exchange Online's submission
    /// endpoint (`smtp.office365.com`) and the usual choice. For this and the other
    /// builders, `host` is a name or an IP address; an IPv6 address may be given bare or in
    /// brackets (`[2001:db8::25]`).
    pub fn starttls(host: impl Into<String>) -> SmtpTransportBuilder {
        SmtpTransportBuilder::new(host, TlsMode::Starttls)
    }

    /// A builder for `host` with implicit TLS ("SMTPS"), port 465.
    pub fn implicit_tls(host: impl Into<String>) -> SmtpTransportBuilder {
        SmtpTransportBuilder::new(host, TlsMode::Implicit)
    }

    /// A builder for `host` **without encryption**, port 587. Credentials are refused for a
    /// host other than loopback unless
    /// [`allow_plaintext_credentials_dangerous`](SmtpTransportBuilder::allow_plaintext_credentials_dangerous)
    /// is set.
    pub fn builder_dangerous(host: impl Into<String>) -> SmtpTransportBuilder {
        SmtpTransportBuilder::new(host, TlsMode::None)
    }

    /// How many connections this transport has opened so far (reused ones count once).
    #[must_use]
    pub fn connections_opened(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    /// The most connections this transport keeps open at once.
    #[must_use]
    pub fn max_concurrency(&self) -> usize {
        self.inner.max_concurrency
    }

    /// Closes the transport, for a service that shuts down: waits for the sends in flight to
    /// end (each within its own deadline), then says goodbye (`QUIT`) to each idle
    /// connection. Any send or check after that (from any clone: they share the connections)
    /// fails at once, as not sent and transient, so that a queue keeps the message for
    /// after the restart. Closing again does nothing more.
    ///
    /// ```no_run
    /// # async fn shut_down(transport: mail_connector::SmtpTransport) {
    /// // On SIGTERM, after the service stopped taking new work:
    /// transport.close().await;
    /// # }
    /// ```
    pub async fn close(&self) {
        let inner = &self.inner;
        let all = u32::try_from(inner.max_concurrency).unwrap_or(u32::MAX);
        // Every permit: each send in flight releases its own when it ends. Sends that come
        // after wait behind this, and are refused when the limit closes.
        let held = inner.permits.acquire_many(all).await;
        // The reaper first: it ends rather than retry a permit it can no longer get.
        inner.pool.close();
        inner.permits.close();
        while let Some(conn) = inner.pool.pop() {
            conn.abort().await;
        }
        drop(held);
    }
}

#[async_trait]
impl MailTransport for SmtpTransport {
    async fn send(&self, email: &Email) -> Result<SendReport> {
        let span = tracing::info_span!(
            "mail_connector.send",
            transport = "smtp",
            host = %self.inner.connector.host,
            port = self.inner.connector.port,
            recipients = email.recipient_count(),
            attachments = email.attachments().len(),
            outcome = tracing::field::Empty,
            message_id = tracing::field::Empty,
            attempts = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let send = std::pin::pin!(async {
            let result = self.send_inner(email).await;
            match &result {
                Ok(_) => tracing::info!("message submitted"),
                Err(error) => tracing::warn!(error = %error, "send failed"),
            }
            result
        });
        let mailbox = self.inner.sender.as_ref().map(Mailbox::address);
        crate::observe::observe_send(span, "smtp", mailbox, tokio::time::Instant::now(), send).await
    }

    /// Bounded by the send timeout: a step that gets no answer fails with its remedy. The
    /// check's connection counts against [`max_concurrency`](SmtpTransportBuilder::max_concurrency)
    /// like a send's: it waits for a permit and closes an idle pooled connection first.
    async fn check(&self) -> Result<CheckReport> {
        self.check_inner().await
    }
}
