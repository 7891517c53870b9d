//! [`QueueTransport`]: a [`MailTransport`] whose `send` enqueues — what the settings factory
//! hands the application when `queue_url` is set, so its code does not change.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{EnqueueOptions, MessageId, Queue, rows};
use crate::check::{CheckReport, CheckStep};
use crate::error::{Delivery, Result};
use crate::message::Email;
use crate::secret::Secret;
use crate::transport::{MailTransport, SendReport, SentMessage};

/// Enqueues instead of sending: `send` stores the email and reports one message whose `id`
/// is the queue's message id; a [`Worker`](super::Worker) delivers it later. `check` checks
/// the queue's database and, when given, the transport the workers deliver with.
///
/// `send` stores each email under an idempotency key of its own (`send:` and a random UUID,
/// shown in `mailctl queue list`), so that it can try again when the connection to the
/// database broke before its answer: the email is stored once. Its error says
/// [`Delivery::Uncertain`] when every try failed and one may have stored the email.
///
/// ```
/// # #[cfg(feature = "queue-sqlite")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use mail_connector::queue::{Queue, QueueTransport};
/// use mail_connector::{Email, MailTransport};
///
/// # let dir = tempfile::tempdir()?;
/// # let url = format!("sqlite://{}", dir.path().join("q.db").display());
/// let transport = QueueTransport::new(Queue::open(&url).await?);
/// let email = Email::builder().to("ann@example.org").subject("Hi").build()?;
/// let report = transport.send(&email).await?;
/// println!("queued as {}", report.messages[0].id.as_deref().unwrap_or_default());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct QueueTransport {
    queue: OnceCell<Queue>,
    // The URL may hold the database password: a Secret never prints it.
    url: Option<Secret>,
    default_mailbox: Option<String>,
    delivery: Option<Arc<dyn MailTransport>>,
}

impl std::fmt::Debug for QueueTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueTransport")
            .field("queue", &self.queue.get())
            .field("url", &self.url)
            .field("default_mailbox", &self.default_mailbox)
            .finish_non_exhaustive()
    }
}

impl QueueTransport {
    /// Enqueues on an open queue.
    #[must_use]
    pub fn new(queue: Queue) -> Self {
        Self {
            queue: OnceCell::new_with(Some(queue)),
            url: None,
            default_mailbox: None,
            delivery: None,
        }
    }

    /// Enqueues on the queue at `url`, opened (and migrated) at the first `send` or `check`;
    /// for factories that cannot wait.
    #[must_use]
    pub fn lazy(url: impl Into<String>) -> Self {
        Self {
            queue: OnceCell::new(),
            url: Some(Secret::new(url.into())),
            default_mailbox: None,
            delivery: None,
        }
    }

    /// The mailbox whose limits apply to emails that name no `From` (see
    /// [`Queue::with_default_mailbox`]); for a lazily opened queue.
    #[must_use]
    pub fn with_default_mailbox(mut self, mailbox: impl Into<String>) -> Self {
        self.default_mailbox = Some(mailbox.into());
        self
    }

    /// The transport the workers deliver with, so that `check` covers it too.
    #[must_use]
    pub fn with_delivery_transport(mut self, transport: Arc<dyn MailTransport>) -> Self {
        self.delivery = Some(transport);
        self
    }

    /// The queue, opened on first use.
    ///
    /// # Errors
    ///
    /// As [`Queue::open`].
    pub async fn queue(&self) -> Result<&Queue> {
        self.queue
            .get_or_try_init(|| async {
                let url = self.url.as_ref().map(Secret::expose_secret).unwrap_or("");
                let queue = Queue::open(url).await?;
                Ok(match &self.default_mailbox {
                    Some(mailbox) => queue.with_default_mailbox(mailbox),
                    None => queue,
                })
            })
            .await
    }

    /// Enqueues with options (an idempotency key, a not-before time, a mailbox).
    ///
    /// # Errors
    ///
    /// As [`Queue::enqueue`].
    pub async fn enqueue(&self, email: &Email, options: EnqueueOptions) -> Result<SendReport> {
        let id = self.queue().await?.enqueue(email, options).await?;
        Ok(report(email, id))
    }
}

/// One message, `email` to its recipients, queued as `id`.
fn report(email: &Email, id: MessageId) -> SendReport {
    SendReport::single(SentMessage::new(
        email.recipients().collect(),
        Some(id.to_string()),
    ))
}

/// The waits between the tries of one `send` whose enqueue failed for a moment.
const ENQUEUE_WAITS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];

#[async_trait]
impl MailTransport for QueueTransport {
    /// Enqueues `email` under an idempotency key of its own (`send:` and a random UUID), and
    /// tries again twice, after 0.1 s and 0.4 s, when the database failed for a moment or the
    /// connection broke before its answer: the key makes that safe, as the email is stored
    /// once. When every try failed and one may have stored the email, the error's delivery is
    /// [`Uncertain`](crate::Delivery::Uncertain).
    async fn send(&self, email: &Email) -> Result<SendReport> {
        let queue = self.queue().await?;
        let options = EnqueueOptions::new().idempotency_key(format!("send:{}", Uuid::new_v4()));
        let mut waits = ENQUEUE_WAITS.into_iter();
        let mut maybe_stored = false;
        loop {
            let error = match queue.store_email(email, options.clone()).await {
                Ok(id) => return Ok(report(email, id)),
                Err(error) => error,
            };
            let uncertain = error.delivery() == Delivery::Uncertain;
            maybe_stored |= uncertain;
            match waits.next() {
                Some(wait) if uncertain || error.is_transient() => {
                    tracing::warn!(%error, "mail queue: could not enqueue; trying again");
                    tokio::time::sleep(wait).await;
                }
                _ if maybe_stored => return Err(rows::may_be_queued(error)),
                _ => return Err(error),
            }
        }
    }

    async fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        match self.queue().await {
            Ok(queue) => match queue.stats().await {
                Ok(stats) => report.push(CheckStep::ok(
                    "queue",
                    format!(
                        "the queue is reachable: {} queued, {} uncertain, {} failed",
                        stats.states.get(&super::State::Queued).unwrap_or(&0),
                        stats.states.get(&super::State::Uncertain).unwrap_or(&0),
                        stats.states.get(&super::State::Failed).unwrap_or(&0),
                    ),
                )),
                Err(error) => report.push(CheckStep::from_error("queue", &error)),
            },
            Err(error) => report.push(CheckStep::from_error("queue", &error)),
        }
        if let Some(delivery) = &self.delivery {
            for step in delivery.check().await?.steps {
                report.push(step);
            }
        }
        Ok(report)
    }
}
