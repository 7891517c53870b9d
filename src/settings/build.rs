//! The one factory: settings → a ready transport.

use std::sync::Arc;

use async_trait::async_trait;

use super::{ConnectorSettings, TransportKind, non_blank};
use crate::error::{Error, Result};
use crate::message::Email;
use crate::outbox::OutboxTransport;
use crate::transport::{CheckReport, MailTransport, RecipientLimit, SendReport};

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
        if !self.enabled {
            return Ok(Arc::new(DisabledTransport));
        }
        self.validate()?;
        let transport: Arc<dyn MailTransport> = if let Some(dir) = &self.outbox_dir {
            let mut outbox = OutboxTransport::new(dir);
            if non_blank(self.user_name.as_deref()).is_some() {
                outbox = outbox.with_sender(self.sender()?);
            }
            Arc::new(outbox)
        } else {
            match self.transport_kind() {
                #[cfg(feature = "graph")]
                TransportKind::Graph => {
                    Arc::new(crate::graph::GraphTransport::from_settings(self)?)
                }
                #[cfg(not(feature = "graph"))]
                TransportKind::Graph => {
                    return Err(Error::NotAvailable {
                        transport: "graph",
                        reason: "this build of mail-connector has no `graph` feature; enable it in Cargo.toml",
                    });
                }
                #[cfg(feature = "smtp")]
                TransportKind::Smtp => Arc::new(crate::smtp::SmtpTransport::from_settings(self)?),
                #[cfg(not(feature = "smtp"))]
                TransportKind::Smtp => {
                    return Err(Error::NotAvailable {
                        transport: "smtp",
                        reason: "this build of mail-connector has no `smtp` feature; enable it in Cargo.toml",
                    });
                }
            }
        };
        Ok(self.limited(transport))
    }

    /// Wraps `transport` in [`RecipientLimit`] when `recipient_limit` is not 0.
    fn limited(&self, transport: Arc<dyn MailTransport>) -> Arc<dyn MailTransport> {
        match self.recipient_limit {
            0 => transport,
            limit => Arc::new(RecipientLimit::new(transport, limit as usize)),
        }
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
