//! # mail-connector
//!
//! Send system email — notifications from a no-reply mailbox — from a Rust backend through
//! **Microsoft Graph** with OAuth 2.0 client credentials, or through **SMTP** with basic
//! authentication or XOAUTH2, chosen by one settings value the way a mail connector's admin
//! screen chooses its Authentication Mode.
//!
//! - [`ConnectorSettings`] holds the admin screen's fields, loads them from TOML, JSON or
//!   `MAIL_CONNECTOR_*` environment variables, validates them for the chosen mode and
//!   [builds](ConnectorSettings::build) a ready [`MailTransport`].
//! - [`Email`] is the message model, made by a validating builder that rules out header
//!   injection and invalid addresses; it takes any header a caller may set (`Message-ID`,
//!   `In-Reply-To`, `List-Unsubscribe`, …), or a message prepared elsewhere
//!   ([`Email::from_mime`], a `lettre::Message`), and arrives the same on every transport.
//! - [`MailTransport`] is the object-safe trait every transport implements — including your
//!   own; [`OutboxTransport`] writes `.eml` files and [`StubTransport`] records emails for tests.
//! - [`RecipientLimit`] splits emails with too many recipients, for every transport.
//! - [`Error`] is the one error type; ask it [`Error::remedy`] for what an admin should fix.
//! - Secrets are [`Secret`]s: they print (and serialize) as `[redacted]` everywhere.
//! - Every send runs in a `mail_connector.send` span that records its outcome, message id,
//!   attempts and duration; with the `metrics` feature it is counted too ([`metrics`](mod@metrics)).
//!
//! The module pages explain each transport and its setup: [`credentials`] walks through the
//! Azure app registration (which portal value goes into which setting), [`graph`] covers
//! sending through Microsoft Graph (large attachments, limits, retries, at-most-once), and
//! [`smtp`] covers SMTP (TLS modes, basic auth and XOAUTH2, Exchange Online's setup).
//!
//! ```
//! use mail_connector::{ConnectorSettings, Email, MailTransport};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let dir = std::env::temp_dir().join("mail-connector-doc-lib");
//! let settings = ConnectorSettings::from_toml_str(&format!(
//!     "user_name = \"no-reply@example.org\"\noutbox_dir = {:?}\n",
//!     dir.display().to_string(),
//! ))?;
//! let transport = settings.build()?;
//! let email = Email::builder()
//!     .to("Ann Example <ann@example.org>")
//!     .subject("Your export is ready")
//!     .text("Download it from the portal.")
//!     .build()?;
//! let report = transport.send(&email).await?;
//! assert_eq!(report.recipients().count(), 1);
//! # std::fs::remove_dir_all(dir).unwrap();
//! # Ok::<(), mail_connector::Error>(())
//! # }).unwrap();
//! ```
//!
//! ## Features
//!
//! - `graph` (default): the Microsoft Graph transport.
//! - `smtp` (default): the SMTP transport (lettre's SMTP client).
//! - `oauth` (implied by both): Entra ID [`credentials`], the token cache and the HTTPS client.
//! - `metrics`: counters and histograms through the `metrics` facade; the names are listed in
//!   [`metrics`](mod@metrics).
//! - `blocking`: `blocking::Transport`, the transports from synchronous code.
//! - `dkim`: DKIM signing for the SMTP and outbox transports (`dkim` module, settings
//!   `dkim_domain`, `dkim_selector`, `dkim_private_key_file`).
//! - `queue-sqlite`, `queue-postgres` (off by default): the durable `queue` module in an SQLite file
//!   or in PostgreSQL (sqlx, no macros needing a database at build time); with `queue_url`
//!   set, [`ConnectorSettings::build`] gives a transport that enqueues.
//! - `cli`: the `mailctl` command-line tool (`cargo install mail-connector --features cli`);
//!   it turns on `graph`, `smtp`, `dkim`, `queue-sqlite` and `queue-postgres`.
//!
//! Without any of them (`default-features = false`) the crate is its core — the message
//! model, [`MailTransport`], [`OutboxTransport`], [`StubTransport`], [`RecipientLimit`] and
//! the settings — with about half the dependencies (no reqwest, no lettre SMTP client, no
//! jsonwebtoken or aws-lc-rs). TLS is rustls everywhere; OpenSSL is never linked.
// The module links of the docs above, to docs.rs when a feature leaves the module out.
//!
#![cfg_attr(feature = "oauth", doc = "[`credentials`]: crate::credentials")]
#![cfg_attr(
    not(feature = "oauth"),
    doc = "[`credentials`]: https://docs.rs/mail-connector/latest/mail_connector/credentials/index.html"
)]
#![cfg_attr(feature = "graph", doc = "[`graph`]: crate::graph")]
#![cfg_attr(
    not(feature = "graph"),
    doc = "[`graph`]: https://docs.rs/mail-connector/latest/mail_connector/graph/index.html"
)]
#![cfg_attr(feature = "smtp", doc = "[`smtp`]: crate::smtp")]
#![cfg_attr(
    not(feature = "smtp"),
    doc = "[`smtp`]: https://docs.rs/mail-connector/latest/mail_connector/smtp/index.html"
)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "blocking")]
pub mod blocking;
mod check;
#[cfg(feature = "oauth")]
pub mod credentials;
#[cfg(feature = "dkim")]
pub mod dkim;
#[cfg(not(feature = "dkim"))]
mod dkim;
mod error;
mod expiry;
mod fields;
#[cfg(feature = "graph")]
pub mod graph;
#[cfg(feature = "oauth")]
mod http;
mod message;
pub mod metrics;
mod mime;
mod net;
mod observe;
mod offload;
mod outbox;
#[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
pub mod queue;
pub mod recipient_limit;
pub mod retry;
mod secret;
pub mod settings;
#[cfg(feature = "smtp")]
pub mod smtp;
mod stub;
mod transport;

/// The future an `#[async_trait]` method returns, for the impls that hand back an inner
/// value's future as it is (through `Arc` and `Box`) rather than box a second one.
pub(crate) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The attribute for implementing [`MailTransport`] (and [`TokenProvider`]) — re-exported so
/// your crate needs no `async-trait` dependency of its own: `#[mail_connector::async_trait]`.
///
#[cfg_attr(
    not(feature = "oauth"),
    doc = "[`TokenProvider`]: https://docs.rs/mail-connector/latest/mail_connector/trait.TokenProvider.html"
)]
pub use async_trait::async_trait;
pub use check::{CheckReport, CheckStatus, CheckStep, FailureKind};
#[cfg(feature = "oauth")]
pub use credentials::{AccessToken, Credentials, TokenProvider};
pub use error::{Advice, Delivery, Error, Refusal, Result, SettingsProblem, SmtpStage, Transience};
#[cfg(feature = "graph")]
pub use graph::GraphTransport;
pub use message::{
    Attachment, AttachmentContent, Email, EmailBuilder, Importance, Mailbox, Recipient,
    RecipientKind, ToMailbox,
};
pub use outbox::OutboxTransport;
pub use recipient_limit::RecipientLimit;
/// The HTTP client crate whose `Client` the builders accept (`http_client`), re-exported so
/// that your `reqwest` version cannot differ from ours.
#[cfg(feature = "oauth")]
pub use reqwest;
pub use retry::RetryPolicy;
pub use secret::Secret;
pub use settings::{
    AuthMode, Cloud, ConnectorSettings, ExpiryDate, OAuthCredential, SecretsIn, SmtpTls,
    TransportKind,
};
#[cfg(feature = "smtp")]
pub use smtp::SmtpTransport;
pub use stub::{StubOutcome, StubTransport};
/// The TOML crate whose `Value` [`ConnectorSettings::from_toml_value`] takes, re-exported so
/// that your `toml` version cannot differ from ours.
pub use toml;
pub use transport::{MailTransport, SendReport, SentMessage};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync + 'static>() {}
    is::<Error>();
    is::<Refusal>();
    is::<Email>();
    is::<ConnectorSettings>();
    is::<OutboxTransport>();
    is::<StubTransport>();
    is::<std::sync::Arc<dyn MailTransport>>();
    #[cfg(feature = "oauth")]
    {
        is::<Credentials>();
        is::<AccessToken>();
        is::<credentials::InMemoryTokenCache>();
        is::<std::sync::Arc<dyn TokenProvider>>();
        is::<std::sync::Arc<dyn credentials::TokenCacheStore>>();
    }
    is::<RetryPolicy>();
    #[cfg(feature = "blocking")]
    is::<blocking::Transport>();
    #[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
    {
        is::<queue::Queue>();
        is::<queue::Worker>();
        is::<queue::QueueTransport>();
        is::<queue::OpenWait>();
        is::<std::sync::Arc<dyn queue::QueueStore>>();
    }
    #[cfg(feature = "graph")]
    is::<GraphTransport>();
    #[cfg(feature = "smtp")]
    is::<SmtpTransport>();
}
