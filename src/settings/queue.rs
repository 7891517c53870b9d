//! Settings → the durable queue: the one place the `queue_*` keys become a
//! [`Queue`](crate::queue::Queue), a [`Worker`](crate::queue::Worker) and the enqueueing
//! transport. The queue never reads the settings.

use std::sync::Arc;
use std::time::Duration;

use super::build::TransportBuilder;
use super::{ConnectorSettings, TransportKind, non_blank};
use crate::error::{Error, Result};
use crate::queue::{MailboxLimits, OpenWait, Queue, QueueTransport, Worker};
use crate::transport::MailTransport;

/// Attempts per message when `queue_max_attempts` is unset.
const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// Days sent bodies are kept when `queue_retention_days` is unset.
const DEFAULT_RETENTION_DAYS: u32 = 7;

impl ConnectorSettings {
    /// The queue URL, when `queue_url` is set and not blank.
    pub(crate) fn queue_url(&self) -> Option<&str> {
        non_blank(self.queue_url.as_ref().map(crate::Secret::expose_secret))
    }

    /// The queue URL, or the error naming `queue_url` when it is not set.
    fn required_queue_url(&self) -> Result<&str> {
        self.queue_url().ok_or_else(|| {
            Error::settings(
                "queue_url",
                "the queue (`queue_url`) is not set: set it to `sqlite://PATH` or `postgres://…`",
            )
        })
    }

    /// The per-mailbox limits: `queue_max_in_flight` (default 4 for Graph, 3 for SMTP) and
    /// `queue_rate_per_minute` (default 30).
    #[must_use]
    pub fn queue_limits(&self) -> MailboxLimits {
        let defaults = match self.transport_kind() {
            TransportKind::Graph => MailboxLimits::graph(),
            TransportKind::Smtp => MailboxLimits::smtp(),
        };
        MailboxLimits::new(
            self.queue_max_in_flight.unwrap_or(defaults.max_in_flight),
            self.queue_rate_per_minute.unwrap_or(defaults.per_window),
        )
    }

    /// Opens the queue `queue_url` names, with `user_name` as the default sender mailbox, to
    /// enqueue into it ([`Queue::enqueue`], or with PostgreSQL `Queue::enqueue_in` inside a
    /// transaction of your own).
    ///
    /// A disabled connector (`enabled = false`) sends nothing, so it queues nothing either:
    /// like the enqueueing transport [`build`](ConnectorSettings::build) gives and `mailctl
    /// send`, this refuses, rather than store mail that would go out unasked once the
    /// connector is enabled again. What was queued before stays queued (no
    /// [worker](ConnectorSettings::queue_worker) runs while disabled). To look at or manage
    /// the queue meanwhile — list, cancel, purge, as `mailctl queue` does — open it with
    /// [`Queue::open`] and the same URL.
    ///
    /// # Errors
    ///
    /// [`Error::Disabled`] when the connector is disabled; [`Error::InvalidSettings`] naming
    /// `queue_url` when it is not set; as [`Queue::open`] otherwise.
    pub async fn queue(&self) -> Result<Queue> {
        if !self.enabled {
            return Err(Error::Disabled);
        }
        let queue = Queue::open(self.required_queue_url()?).await?;
        Ok(match non_blank(self.user_name.as_deref()) {
            Some(mailbox) => queue.with_default_mailbox(mailbox),
            None => queue,
        })
    }

    /// [`queue`](Self::queue), waiting while the queue's database cannot be reached yet, as
    /// `wait` says (see [`OpenWait`]); a mistake in the settings fails at once.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::queue`]; for a database that stays unreachable, the last
    /// transient error when `wait` gives up.
    pub async fn queue_waiting(&self, wait: &OpenWait) -> Result<Queue> {
        wait.open_with(|| self.queue()).await
    }

    /// The worker that delivers the queue's messages with the transport the other settings
    /// describe, under `queue_max_in_flight`, `queue_rate_per_minute`, `queue_max_attempts`
    /// and `queue_retention_days`.
    ///
    /// # Errors
    ///
    /// [`Error::Disabled`] when the connector is disabled (`enabled = false`): a worker would
    /// take each queued message and fail it, so none is made and the queue is left as it is
    /// until the connector is enabled again. Otherwise as [`ConnectorSettings::queue`] and
    /// [`ConnectorSettings::build`].
    pub async fn queue_worker(&self) -> Result<Worker> {
        self.builder().queue_worker().await
    }

    /// [`queue_worker`](Self::queue_worker), waiting while the queue's database cannot be
    /// reached yet, as `wait` says: for a service that starts its worker with the
    /// database, or before it. `mailctl worker` opens its queue so, with
    /// [`OpenWait::forever`]. The delivery transport is built first: a mistake in the
    /// settings fails at once, before any wait.
    ///
    /// ```no_run
    /// # async fn start(settings: mail_connector::ConnectorSettings) -> mail_connector::Result<()> {
    /// use mail_connector::queue::OpenWait;
    ///
    /// let worker = settings.queue_worker_waiting(&OpenWait::forever()).await?;
    /// // (`tokio::signal` needs tokio's `signal` feature in your Cargo.toml.)
    /// let stop = async { let _ = tokio::signal::ctrl_c().await; };
    /// worker.run(stop).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`queue_worker`](Self::queue_worker); for a database that stays unreachable, the
    /// last transient error when `wait` gives up.
    pub async fn queue_worker_waiting(&self, wait: &OpenWait) -> Result<Worker> {
        self.builder().queue_worker_waiting(wait).await
    }
}

impl TransportBuilder<'_> {
    /// Wraps the delivery transport in the enqueueing one when `queue_url` is set.
    pub(super) fn enqueueing(
        settings: &ConnectorSettings,
        delivery: Arc<dyn MailTransport>,
    ) -> Arc<dyn MailTransport> {
        let Some(url) = settings.queue_url() else {
            return delivery;
        };
        let mut transport = QueueTransport::lazy(url).with_delivery_transport(delivery);
        if let Some(mailbox) = non_blank(settings.user_name.as_deref()) {
            transport = transport.with_default_mailbox(mailbox);
        }
        Arc::new(transport)
    }

    /// The worker for these settings, delivering with the transport they describe (and the
    /// token provider or HTTP client given to this builder).
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::queue_worker`].
    pub async fn queue_worker(self) -> Result<Worker> {
        self.worker(None).await
    }

    /// The worker for these settings, its queue opened waiting as `wait` says.
    ///
    /// # Errors
    ///
    /// As [`ConnectorSettings::queue_worker_waiting`].
    pub async fn queue_worker_waiting(self, wait: &OpenWait) -> Result<Worker> {
        self.worker(Some(wait)).await
    }

    async fn worker(self, wait: Option<&OpenWait>) -> Result<Worker> {
        let settings = self.settings();
        if !settings.enabled {
            return Err(Error::Disabled);
        }
        // Before the queue is opened, so that a mistake in the settings is not found only
        // once the database is back; but a missing `queue_url` is said first.
        settings.required_queue_url()?;
        let delivery = self.build_delivery()?;
        let queue = match wait {
            Some(wait) => settings.queue_waiting(wait).await?,
            None => settings.queue().await?,
        };
        let retention = settings
            .queue_retention_days
            .unwrap_or(DEFAULT_RETENTION_DAYS);
        let limits = settings.queue_limits();
        let attempts = settings.queue_max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        Ok(Worker::with_transport(&queue, delivery)
            .with_limits(limits)
            .with_max_attempts(attempts)
            .with_retention(Some(Duration::from_secs(
                u64::from(retention) * 24 * 60 * 60,
            ))))
    }
}
