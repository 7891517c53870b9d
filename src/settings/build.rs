//! The one factory: settings → credentials and transport builders → a ready transport.
//! Nothing below the settings imports them; this file maps the admin screen onto the
//! builders that stand alone.

use std::sync::Arc;

use async_trait::async_trait;

#[cfg(feature = "smtp")]
use super::AuthMode;
use super::{ConnectorSettings, TransportKind, non_blank};
use crate::check::CheckReport;
#[cfg(feature = "oauth")]
use crate::credentials::TokenProvider;
use crate::error::{Error, Result};
#[cfg(feature = "graph")]
use crate::graph::{GraphTransport, GraphTransportBuilder};
use crate::message::Email;
use crate::outbox::OutboxTransport;
use crate::recipient_limit::RecipientLimit;
#[cfg(feature = "smtp")]
use crate::smtp::{SendAsPolicy, SmtpTransport, SmtpTransportBuilder};
use crate::transport::{MailTransport, SendReport};

impl ConnectorSettings {
    /// Validates the settings and returns the transport they describe: the outbox when
    /// `outbox_dir` is set, otherwise Graph or SMTP, wrapped in [`RecipientLimit`] when
    /// `recipient_limit` is not 0. A disabled connector builds a transport whose `send` fails
    /// with [`Error::Disabled`].
    ///
    /// ```
    /// use mail_connector::{ConnectorSettings, Email, MailTransport};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = std::env::temp_dir().join("mail-connector-doc-build");
    /// let mut settings = ConnectorSettings::default();
    /// settings.outbox_dir = Some(dir.clone());
    /// settings.user_name = Some("no-reply@example.org".into());
    /// let transport = settings.build()?;
    /// let email = Email::builder().to("ann@example.org").subject("Hi").build()?;
    /// transport.send(&email).await?;
    /// # std::fs::remove_dir_all(dir).unwrap();
    /// # Ok::<(), mail_connector::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] listing every missing or contradictory field;
    /// [`Error::NotAvailable`] for a transport whose crate feature (`graph`, `smtp`) is off.
    pub fn build(&self) -> Result<Arc<dyn MailTransport>> {
        self.builder().build()
    }

    /// A builder for the transport these settings describe, for what a host application
    /// brings of its own: a [`TokenProvider`] (a managed or workload identity, a vault) that
    /// signs in instead of the settings' client secret or certificate, or an HTTP client (a
    /// proxy, a shared connection pool).
    ///
    /// ```
    /// # #[cfg(feature = "graph")] {
    /// use std::time::{Duration, SystemTime};
    /// use mail_connector::{AccessToken, ConnectorSettings, Result, TokenProvider, async_trait};
    ///
    /// #[derive(Debug)]
    /// struct WorkloadIdentity;
    ///
    /// #[async_trait]
    /// impl TokenProvider for WorkloadIdentity {
    ///     async fn token(&self, _scope: &str) -> Result<AccessToken> {
    ///         Ok(AccessToken::new("from-the-platform", SystemTime::now() + Duration::from_secs(3600)))
    ///     }
    /// }
    ///
    /// // No client id, tenant or secret in the settings: the provider signs in.
    /// let settings = ConnectorSettings::from_toml_str(r#"
    ///     auth_mode = "oauth"
    ///     user_name = "no-reply@contoso.com"
    /// "#)?;
    /// let transport = settings.builder().token_provider(WorkloadIdentity).build()?;
    /// # }
    /// # Ok::<(), mail_connector::Error>(())
    /// ```
    ///
    #[cfg_attr(
        not(feature = "oauth"),
        doc = "[`TokenProvider`]: https://docs.rs/mail-connector/latest/mail_connector/trait.TokenProvider.html"
    )]
    pub fn builder(&self) -> TransportBuilder<'_> {
        TransportBuilder {
            settings: self,
            #[cfg(feature = "oauth")]
            tokens: None,
            #[cfg(feature = "oauth")]
            http_client: None,
        }
    }

    /// A Graph transport builder for these settings: `user_name`, the app registration,
    /// `cloud` or `graph_endpoint` and `oauth_scope`, `tls_ca_file`, `save_to_sent_items` and
    /// `allow_send_as`. Set limits and timeouts on it, then build. The transport it builds
    /// sends directly: `recipient_limit` and `queue_url` are applied by
    /// [`build`](Self::build) alone.
    ///
    /// Graph and the token endpoint share one HTTP client (one connection pool), unless
    /// [`connect_timeout`](GraphTransportBuilder::connect_timeout) or
    /// [`tls_ca_file`](GraphTransportBuilder::tls_ca_file) is set on the builder: then Graph
    /// has a client of its own.
    ///
    /// # Errors
    ///
    /// [`Error::Disabled`] when the connector is disabled and [`Error::InvalidSettings`]
    /// naming `outbox_dir` when it is set: such settings send nothing, so no transport that
    /// sends is made from them. [`Error::InvalidSettings`] listing every missing or
    /// contradictory field; errors of [`ConnectorSettings::credentials`].
    #[cfg(feature = "graph")]
    pub fn graph_builder(&self) -> Result<GraphTransportBuilder> {
        self.builder().graph_builder()
    }

    /// An SMTP transport builder for these settings: host, port and TLS mode (through
    /// [`smtp_tls_mode`](Self::smtp_tls_mode)), `tls_ca_file`,
    /// `smtp_allow_plaintext_credentials_dangerous`, `allow_send_as`, and the login the
    /// Authentication Mode describes (`basic`: `user_name` and `password`; `oauth`: XOAUTH2
    /// with the app's tokens for [`smtp_scope`](Self::smtp_scope)). The transport it builds
    /// sends directly: `recipient_limit` and `queue_url` are applied by
    /// [`build`](Self::build) alone.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::graph_builder`]: [`Error::Disabled`] when the connector is
    /// disabled, [`Error::InvalidSettings`] naming `outbox_dir` when it is set, or listing
    /// every missing or contradictory field; errors of [`ConnectorSettings::credentials`].
    #[cfg(feature = "smtp")]
    pub fn smtp_builder(&self) -> Result<SmtpTransportBuilder> {
        self.builder().smtp_builder()
    }

    /// Wraps `transport` in [`RecipientLimit`] when `recipient_limit` is not 0.
    fn limited(&self, transport: Arc<dyn MailTransport>) -> Arc<dyn MailTransport> {
        match self.recipient_limit {
            0 => transport,
            limit => Arc::new(RecipientLimit::new(
                transport,
                usize::try_from(limit).unwrap_or(usize::MAX),
            )),
        }
    }
}

/// Builds the transport that [`ConnectorSettings`] describe, with a caller's own token
/// provider or HTTP client; made by [`ConnectorSettings::builder`].
#[must_use]
pub struct TransportBuilder<'a> {
    settings: &'a ConnectorSettings,
    #[cfg(feature = "oauth")]
    tokens: Option<Arc<dyn TokenProvider>>,
    #[cfg(feature = "oauth")]
    http_client: Option<reqwest::Client>,
}

impl std::fmt::Debug for TransportBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A provider's own Debug may show its tokens: only say whether there is one.
        f.debug_struct("TransportBuilder")
            .field("settings", self.settings)
            .field("own_token_provider", &self.own_tokens())
            .finish_non_exhaustive()
    }
}

impl TransportBuilder<'_> {
    /// Whether the caller brought its own token provider.
    fn own_tokens(&self) -> bool {
        #[cfg(feature = "oauth")]
        return self.tokens.is_some();
        #[cfg(not(feature = "oauth"))]
        return false;
    }

    /// Sign in with `tokens` (OAuth) instead of the settings' app registration: `tenant_id`,
    /// `oauth_client_id`, `client_secret` and the certificate files are then not required.
    #[cfg(feature = "oauth")]
    pub fn token_provider(mut self, tokens: impl TokenProvider + 'static) -> Self {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// Use this HTTP client for Graph and the token endpoint (a proxy, custom TLS, a shared
    /// connection pool). Build it with `reqwest::redirect::Policy::none()`: a followed
    /// redirect would carry the credentials elsewhere.
    #[cfg(feature = "oauth")]
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Validates the settings and returns the transport they describe: the outbox when
    /// `outbox_dir` is set, otherwise Graph or SMTP, wrapped in [`RecipientLimit`] when
    /// `recipient_limit` is not 0. A disabled connector builds a transport whose `send` fails
    /// with [`Error::Disabled`].
    ///
    /// With `queue_url` set, the transport enqueues instead (`queue_worker`, with a queue
    /// feature, gives the worker that delivers).
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::build`].
    pub fn build(self) -> Result<Arc<dyn MailTransport>> {
        let delivery = self.build_delivery()?;
        #[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
        if self.settings.enabled {
            return Ok(Self::enqueueing(self.settings, delivery));
        }
        Ok(delivery)
    }

    /// The settings this builder reads.
    #[cfg_attr(
        not(any(feature = "queue-sqlite", feature = "queue-postgres")),
        allow(dead_code)
    )]
    pub(super) fn settings(&self) -> &ConnectorSettings {
        self.settings
    }

    /// The transport that delivers, never the enqueueing one.
    pub(super) fn build_delivery(&self) -> Result<Arc<dyn MailTransport>> {
        let settings = self.settings;
        if !settings.enabled {
            return Ok(Arc::new(DisabledTransport));
        }
        settings.validate_for(self.own_tokens())?;
        let transport: Arc<dyn MailTransport> = if let Some(dir) = &settings.outbox_dir {
            let mut outbox = OutboxTransport::new(dir).named_by_setting();
            if non_blank(settings.user_name.as_deref()).is_some() {
                outbox = outbox.with_sender(settings.sender()?);
            }
            #[cfg(feature = "dkim")]
            if let Some(signer) = settings.dkim_signer()? {
                outbox = outbox.with_dkim(signer);
            }
            Arc::new(outbox)
        } else {
            match settings.transport_kind() {
                #[cfg(feature = "graph")]
                // Validated once, above.
                TransportKind::Graph => Arc::new(self.graph_builder_validated()?.build()?),
                #[cfg(not(feature = "graph"))]
                TransportKind::Graph => {
                    return Err(Error::NotAvailable {
                        transport: "graph",
                        reason: "this build of mail-connector has no `graph` feature; enable it in Cargo.toml",
                    });
                }
                #[cfg(feature = "smtp")]
                TransportKind::Smtp => Arc::new(self.smtp_builder_validated()?.build()?),
                #[cfg(not(feature = "smtp"))]
                TransportKind::Smtp => {
                    return Err(Error::NotAvailable {
                        transport: "smtp",
                        reason: "this build of mail-connector has no `smtp` feature; enable it in Cargo.toml",
                    });
                }
            }
        };
        Ok(settings.limited(transport))
    }

    /// Settings that send nothing — disabled, or writing `.eml` files to `outbox_dir` — make
    /// no transport that sends: `build` gives the disabled transport or the outbox for them,
    /// and a transport builder (`kind`: `a Graph`, `an SMTP`) is refused rather than made.
    #[cfg(any(feature = "graph", feature = "smtp"))]
    fn refuse_unless_sending(&self, kind: &str) -> Result<()> {
        if !self.settings.enabled {
            return Err(Error::Disabled);
        }
        if self.settings.outbox_dir.is_some() {
            return Err(Error::settings(
                "outbox_dir",
                format!(
                    "Outbox folder (`outbox_dir`) is set: these settings write messages as \
                     `.eml` files and send nothing, so they make no {kind} transport; build \
                     with `build()` to write to the outbox, or remove `outbox_dir` to send"
                ),
            ));
        }
        Ok(())
    }

    /// The tokens to sign in with: the caller's, or the app registration's in the settings.
    /// `http` is the client for the token endpoint, else the caller's or one of its own.
    #[cfg(any(feature = "graph", feature = "smtp"))]
    fn tokens(&self, http: Option<&reqwest::Client>) -> Result<Arc<dyn TokenProvider>> {
        if let Some(tokens) = &self.tokens {
            return Ok(Arc::clone(tokens));
        }
        let mut builder = self.settings.credentials_builder()?;
        if let Some(client) = http.or(self.http_client.as_ref()) {
            builder = builder.http_client(client.clone());
        }
        Ok(Arc::new(builder.build()?))
    }

    /// As [`ConnectorSettings::graph_builder`], with this builder's token provider and HTTP
    /// client.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::graph_builder`].
    #[cfg(feature = "graph")]
    pub fn graph_builder(&self) -> Result<GraphTransportBuilder> {
        self.refuse_unless_sending("a Graph")?;
        self.settings.validate_for(self.own_tokens())?;
        self.graph_builder_validated()
    }

    /// [`graph_builder`](Self::graph_builder) for settings already validated.
    #[cfg(feature = "graph")]
    fn graph_builder_validated(&self) -> Result<GraphTransportBuilder> {
        let settings = self.settings;
        // One client, so one connection pool, for Graph and the token endpoint: the caller's
        // or one made here, as each would make its own (the same options: `tls_ca_file`).
        let options = crate::http::HttpOptions {
            tls_ca_file: settings.tls_ca_file.clone(),
            ..crate::http::HttpOptions::default()
        };
        let (http, made_here) = match &self.http_client {
            Some(client) => (client.clone(), false),
            None => (crate::http::http_client(&options)?, true),
        };
        let builder = GraphTransport::builder_shared(settings.sender()?, self.tokens(Some(&http))?)
            .graph_endpoint(settings.graph_endpoint())
            .scope(settings.graph_scope())
            .save_to_sent_items(settings.save_to_sent_items)
            .allow_send_as(settings.allow_send_as);
        Ok(match made_here {
            true => builder.http_client_made_here(http, &options),
            false => builder.http_client(http),
        })
    }

    /// As [`ConnectorSettings::smtp_builder`], with this builder's token provider.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::smtp_builder`].
    #[cfg(feature = "smtp")]
    pub fn smtp_builder(&self) -> Result<SmtpTransportBuilder> {
        self.refuse_unless_sending("an SMTP")?;
        self.settings.validate_for(self.own_tokens())?;
        self.smtp_builder_validated()
    }

    /// [`smtp_builder`](Self::smtp_builder) for settings already validated.
    #[cfg(feature = "smtp")]
    fn smtp_builder_validated(&self) -> Result<SmtpTransportBuilder> {
        let settings = self.settings;
        let host = settings.smtp_host().unwrap_or_default();
        let mut builder = match settings.smtp_tls_mode() {
            super::SmtpTls::Implicit => SmtpTransport::implicit_tls(host),
            super::SmtpTls::Starttls => SmtpTransport::starttls(host),
            super::SmtpTls::None => SmtpTransport::builder_dangerous(host),
        }
        .port(settings.smtp_port())
        .allow_plaintext_credentials_dangerous(settings.smtp_allow_plaintext_credentials_dangerous)
        .send_as(if settings.allow_send_as {
            SendAsPolicy::AllowOtherFrom
        } else {
            SendAsPolicy::MailboxOnly
        });
        if let Some(path) = &settings.tls_ca_file {
            builder = builder.tls_ca_file(path);
        }
        #[cfg(feature = "dkim")]
        if let Some(signer) = settings.dkim_signer()? {
            builder = builder.dkim(signer);
        }
        if non_blank(settings.user_name.as_deref()).is_some() {
            let sender = settings.sender()?;
            // The login is the mailbox's address: a display name in User Name (`No Reply
            // <no-reply@contoso.com>`) is for `From` alone.
            let user = sender.address().to_owned();
            builder = builder.sender(sender);
            builder = match settings.auth_mode {
                Some(AuthMode::Basic) => {
                    builder.basic_auth(user, settings.password.clone().unwrap_or_default())
                }
                Some(AuthMode::OAuth) => builder
                    .xoauth2(user, self.tokens(None)?)
                    .scope(settings.smtp_scope()),
                Some(AuthMode::None) | None => builder,
            };
        }
        Ok(builder)
    }
}

/// What a disabled connector builds: it sends nothing and says why.
#[derive(Debug)]
struct DisabledTransport;

#[async_trait]
impl MailTransport for DisabledTransport {
    async fn send(&self, _email: &Email) -> Result<SendReport> {
        tracing::warn!("mail connector is disabled; email not sent");
        Err(Error::Disabled)
    }

    async fn check(&self) -> Result<CheckReport> {
        Err(Error::Disabled)
    }
}
