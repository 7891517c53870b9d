//! [`Worker`]: takes due messages with a lease, delivers them through a transport within the
//! mailbox limits, records the outcome, and shuts down gracefully.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;

use super::Queue;
use super::delivery::{self, Delivered, Delivery, Held, HeldLease, held};
use super::limits::MailboxLimits;
use super::store::{Claim, ClaimRequest, ClaimedMessage, Outcome};
use crate::error::Result;
use crate::retry::RetryPolicy;

/// A worker's lease unless [`Worker::with_lease`] says otherwise.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(5 * 60);
use crate::transport::MailTransport;

/// What a worker did, counted per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Delivered.
    pub sent: u64,
    /// Queued again after a transient failure, or held for an admin (see the
    /// [module page](super)).
    pub retried: u64,
    /// Failed permanently.
    pub failed: u64,
    /// Parked as uncertain.
    pub uncertain: u64,
    /// Split by a partial delivery: delivered to some recipients only, or to none while
    /// their fates differ (some refused permanently, others refused for now or never tried
    /// under a recipient limit). Every recipient refused the same way, with nothing
    /// delivered, counts as `retried` or `failed` instead.
    pub partial: u64,
    /// Of `retried` and `partial`, those held for an admin: the failure is the admin's to
    /// fix for the whole sender mailbox (see the [module page](super)); their error in
    /// [`Queue::list`](super::Queue::list) says what to fix.
    pub held: u64,
}

impl WorkerReport {
    fn count(&mut self, outcome: &Outcome, held: bool) {
        self.held += u64::from(held);
        match outcome {
            Outcome::Sent { .. } => self.sent += 1,
            Outcome::Retry { .. } | Outcome::Held { .. } => self.retried += 1,
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Uncertain { .. } => self.uncertain += 1,
            Outcome::Partial { .. } => self.partial += 1,
        }
    }
}

/// How much later than [`Delivered::due`] a retry may still fall due, for
/// [`run_once`](Worker::run_once)'s wait: a store on another clock (PostgreSQL: the
/// server's) rounds it to the millisecond, and two clocks tick at slightly different rates.
const CLOCK_SLACK: Duration = Duration::from_secs(1);

/// Delivers queued messages through a transport. Run one or more per process, in as many
/// processes as the store allows (see the [module page](super)).
///
/// ```
/// # #[cfg(feature = "queue-sqlite")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use mail_connector::queue::{MailboxLimits, Queue, Worker};
/// use mail_connector::StubTransport;
///
/// # let dir = tempfile::tempdir()?;
/// # let url = format!("sqlite://{}", dir.path().join("q.db").display());
/// let queue = Queue::open(&url).await?;
/// let worker = Worker::new(&queue, StubTransport::new())
///     .with_limits(MailboxLimits::smtp())
///     .with_max_attempts(5)
///     .with_grace_period(Duration::from_secs(10));
/// // Until Ctrl-C: take no new work then, and let deliveries in flight finish.
/// # let shutdown = async {};
/// # #[cfg(any())]
/// let shutdown = async { tokio::signal::ctrl_c().await.ok(); };
/// worker.run(shutdown).await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
#[must_use]
pub struct Worker {
    queue: Queue,
    transport: Arc<dyn MailTransport>,
    name: String,
    limits: MailboxLimits,
    retry: RetryPolicy,
    lease: Duration,
    poll: Duration,
    concurrency: usize,
    grace: Duration,
    retention: Option<Duration>,
    once_wait: Duration,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("retry", &self.retry)
            .field("lease", &self.lease)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker for `queue` delivering through `transport`, with Graph's limits, 10
    /// attempts within a day, a 5-minute lease, and a 7-day retention of sent bodies.
    pub fn new(queue: &Queue, transport: impl MailTransport + 'static) -> Self {
        Self::with_transport(queue, Arc::new(transport))
    }

    /// As [`Worker::new`], with a shared transport.
    pub fn with_transport(queue: &Queue, transport: Arc<dyn MailTransport>) -> Self {
        Self {
            queue: queue.clone(),
            transport,
            name: format!(
                "{}:{}:{}",
                hostname(),
                std::process::id(),
                &uuid::Uuid::new_v4().to_string()[..8]
            ),
            limits: MailboxLimits::graph(),
            retry: RetryPolicy {
                max_retries: 9,
                initial_backoff: Duration::from_secs(30),
                max_backoff: Duration::from_secs(60 * 60),
                multiplier: 2.0,
                deadline: Some(Duration::from_secs(24 * 60 * 60)),
            },
            lease: DEFAULT_LEASE,
            poll: Duration::from_secs(1),
            concurrency: 16,
            grace: Duration::from_secs(30),
            retention: Some(Duration::from_secs(7 * 24 * 60 * 60)),
            once_wait: Duration::from_secs(15 * 60),
        }
    }

    /// The per-mailbox limits (give every worker the same).
    pub fn with_limits(mut self, limits: MailboxLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Attempts per message before it fails (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.retry.max_retries = attempts.max(1) - 1;
        self
    }

    /// The backoff between attempts, and the age limit (`deadline`, counted from when the
    /// message fell due: its enqueue, its [not-before](super::EnqueueOptions::not_before)
    /// time, or an operator's retry); its `max_retries` is the attempts limit less one.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long a lease lasts; it is extended every third of it while a send runs. A worker
    /// that dies leaves its messages `sending` this long, then `uncertain`, holding their
    /// mailbox's places for one more lease. Keep it longer than the transport's send
    /// deadline, and the same for every worker of the queue.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How often an idle worker looks for work another process enqueued.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }

    /// Deliveries this worker runs at once (the mailbox limits still apply).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// How long deliveries in flight may take to finish after shutdown is asked for.
    pub fn with_grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long the bodies of sent messages are kept (`None`: forever).
    pub fn with_retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// How long after it started [`run_once`](Self::run_once) still waits for a retry its
    /// own failures scheduled (default 15 minutes); a retry due later stays queued.
    pub fn with_once_wait(mut self, wait: Duration) -> Self {
        self.once_wait = wait;
        self
    }

    /// The name kept with each lease (default: host, process id and a random suffix).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Delivers until `shutdown` completes, then takes no new work and waits up to the grace
    /// period for deliveries in flight; one still running then is stopped and marked
    /// `uncertain`.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`](crate::Error::Queue) when the database fails permanently (a
    /// transient failure is logged and retried at the next poll).
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<WorkerReport> {
        self.drive(shutdown, false).await
    }

    /// Delivers everything due now, waiting for the retries its own failures schedule (up
    /// to [15 minutes](Self::with_once_wait) after it started, and a second more: a store on
    /// a clock of its own, as PostgreSQL's, may store a retry a little later than the worker
    /// computed it) and for deliveries in flight anywhere, then returns.
    ///
    /// # Errors
    ///
    /// As [`Worker::run`].
    pub async fn run_once(&self) -> Result<WorkerReport> {
        self.drive(std::future::pending(), true).await
    }

    async fn drive(
        &self,
        shutdown: impl Future<Output = ()> + Send,
        once: bool,
    ) -> Result<WorkerReport> {
        let started = SystemTime::now();
        let mut horizon = started;
        let mut report = WorkerReport::default();
        let leases: Held = Arc::default();
        let mut tasks: JoinSet<Option<Delivered>> = JoinSet::new();
        let mut last_purge: Option<SystemTime> = None;
        tokio::pin!(shutdown);
        let wake = self.queue.wake().clone();
        let store = self.queue.store().clone();
        loop {
            self.purge_if_due(&mut last_purge).await;
            let mut next: Option<SystemTime> = None;
            while tasks.len() < self.concurrency {
                let now = SystemTime::now();
                let request = ClaimRequest::new(&self.name, now, self.lease, self.limits);
                match store.claim(&request).await {
                    Ok(Claim::Message(message)) => {
                        held(&leases).insert(
                            message.lease.token.clone(),
                            HeldLease {
                                lease: message.lease.clone(),
                                decided: None,
                            },
                        );
                        tasks.spawn(self.deliver(*message, leases.clone()));
                    }
                    Ok(Claim::Idle { next: at }) => {
                        next = at;
                        break;
                    }
                    Err(error) if error.is_transient() => {
                        tracing::warn!(%error, "mail queue: claim failed; trying again");
                        break;
                    }
                    Err(error) => {
                        self.stop(&mut tasks, &leases, &mut report).await;
                        return Err(error);
                    }
                }
            }
            if once && tasks.is_empty() {
                match store.pending(horizon).await {
                    Ok((0, 0)) => break,
                    Ok(_) => {}
                    Err(error) if error.is_transient() => {
                        tracing::warn!(%error, "mail queue: count failed; trying again");
                    }
                    Err(error) => return Err(error),
                }
            }
            let now = SystemTime::now();
            let wait = next
                .map_or(self.poll, |at| at.duration_since(now).unwrap_or_default())
                .min(self.poll);
            let room = tasks.len() < self.concurrency;
            let notified = wake.notified();
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(Some(Delivered { outcome, due, held })) = done {
                        if let Some(at) = due.filter(|at| *at <= started + self.once_wait) {
                            horizon = horizon.max(at + CLOCK_SLACK);
                        }
                        report.count(&outcome, held);
                    }
                }
                () = tokio::time::sleep(wait), if room => {}
                () = notified, if room => {}
                () = &mut shutdown => break,
            }
        }
        self.stop(&mut tasks, &leases, &mut report).await;
        Ok(report)
    }

    /// Waits up to the grace period for deliveries in flight; after stopping any still
    /// running, records the outcome each had decided, or `uncertain` for one still sending.
    async fn stop(
        &self,
        tasks: &mut JoinSet<Option<Delivered>>,
        leases: &Held,
        report: &mut WorkerReport,
    ) {
        let drain = async {
            while let Some(done) = tasks.join_next().await {
                if let Ok(Some(Delivered { outcome, held, .. })) = done {
                    report.count(&outcome, held);
                }
            }
        };
        if tokio::time::timeout(self.grace, drain).await.is_ok() {
            return;
        }
        tasks.abort_all();
        // Those that ended between the grace period and the abort recorded their outcome.
        while let Some(done) = tasks.join_next().await {
            if let Ok(Some(Delivered { outcome, held, .. })) = done {
                report.count(&outcome, held);
            }
        }
        let cut: Vec<HeldLease> = held(leases).drain().map(|(_, held)| held).collect();
        for HeldLease { lease, decided } in cut {
            // A delivery whose outcome was decided but not yet recorded (the store was
            // failing) keeps that outcome; only one cut off while sending is uncertain.
            let (outcome, at) = decided.unwrap_or_else(|| {
                let uncertain = Outcome::Uncertain {
                    error: "the worker shut down while sending, after its grace period: the \
                            message may have been delivered"
                        .to_owned(),
                };
                (uncertain, SystemTime::now())
            });
            // A held partial delivery counts as partial only: its hold is not known here.
            let held = matches!(outcome, Outcome::Held { .. });
            report.count(&outcome, held);
            if let Err(error) = self.queue.store().finish(&lease, outcome, at).await {
                tracing::warn!(%error, id = %lease.id, "mail queue: could not record a cut-off delivery; its lease will run out");
            }
        }
    }

    async fn purge_if_due(&self, last: &mut Option<SystemTime>) {
        let Some(retention) = self.retention else {
            return;
        };
        let now = SystemTime::now();
        if last
            .is_some_and(|t| now.duration_since(t).unwrap_or_default() < Duration::from_secs(600))
        {
            return;
        }
        *last = Some(now);
        let before = now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
        match self.queue.store().purge_sent_bodies(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                purged = n,
                "mail queue: dropped the bodies of sent messages past retention"
            ),
            Err(error) => tracing::warn!(%error, "mail queue: retention purge failed"),
        }
    }

    /// One delivery, as a task (see [`delivery::deliver`]).
    fn deliver(
        &self,
        message: ClaimedMessage,
        held: Held,
    ) -> impl Future<Output = Option<Delivered>> + Send + 'static {
        delivery::deliver(
            Delivery {
                store: self.queue.store().clone(),
                transport: self.transport.clone(),
                retry: self.retry.clone(),
                lease: self.lease,
            },
            message,
            held,
        )
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned())
}
