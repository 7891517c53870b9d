//! [`OpenWait`]: opening the queue while its database cannot be reached yet — a fleet
//! restarting together with PostgreSQL, a failover — instead of failing at the first try.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// Hears of each wait: the transient error the try failed with, and the wait before the next.
type OnWait = Arc<dyn Fn(&Error, Duration) + Send + Sync>;

/// How to wait for a queue database that cannot be reached yet: for
/// [`Queue::open_waiting`](super::Queue::open_waiting),
/// [`ConnectorSettings::queue_waiting`](crate::ConnectorSettings::queue_waiting) and
/// [`ConnectorSettings::queue_worker_waiting`](crate::ConnectorSettings::queue_worker_waiting),
/// which `mailctl worker` uses.
///
/// Only a transient error is waited out ([`Error::is_transient`]): the server refusing or
/// closing connections (also mid-migration), a timeout, PostgreSQL starting up (`57P03`),
/// shutting down (`57P01`) or restarting after a crash (`57P02`), too many connections, a
/// pooler such as PgBouncer that cannot reach the server (class `08`; PgBouncer's `08P01`
/// only when it says so), a failover's address still on a read-only standby (`25006`,
/// whose fix says to point `queue_url` at the primary). A mistake in the
/// settings fails at once, however long the wait: a `queue_url` whose server is not
/// PostgreSQL (an HTTP or SMTP port; but see docs/queue.md for `sslmode=disable`), a wrong
/// password (`28P01`), a database that does not exist (`3D000`, or PgBouncer's `08P01`
/// "no such database"), a user without the CREATE privileges opening needs (`42501`), a
/// server certificate that
/// `sslmode=verify-ca`/`verify-full` refuses, an unknown scheme, a disabled connector.
///
/// Each wait is logged as a `tracing` warning (target `mail_connector::queue::open_wait`)
/// with the error and its fix, never the URL; [`on_wait`](Self::on_wait) reports it to a
/// function of yours instead.
///
/// ```no_run
/// # async fn start(settings: mail_connector::ConnectorSettings) -> mail_connector::Result<()> {
/// use std::time::Duration;
/// use mail_connector::queue::OpenWait;
///
/// // At start-up, give PostgreSQL up to two minutes to come up, then fail.
/// let worker = settings
///     .queue_worker_waiting(&OpenWait::up_to(Duration::from_secs(120)))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct OpenWait {
    policy: RetryPolicy,
    on_wait: Option<OnWait>,
}

impl fmt::Debug for OpenWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenWait")
            .field("policy", &self.policy)
            .field(
                "on_wait",
                &self.on_wait.as_ref().map(|_| "Fn(&Error, Duration)"),
            )
            .finish()
    }
}

impl OpenWait {
    /// Tries until the queue opens: 1 s before the second try, doubling up to 30 s, each
    /// wait jittered (between half and all of it) so that a fleet's replicas restarted
    /// together do not all knock at once. `mailctl worker` waits so.
    pub fn forever() -> Self {
        Self::with_policy(RetryPolicy {
            max_retries: u32::MAX,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            deadline: None,
        })
    }

    /// As [`forever`](Self::forever), but gives up — returning the last transient error —
    /// when the next try would start later than `limit` after the first.
    pub fn up_to(limit: Duration) -> Self {
        let mut wait = Self::forever();
        wait.policy.deadline = Some(crate::retry::capped(limit));
        wait
    }

    /// Waits as `policy` says between tries (its `max_retries` and `deadline` end the
    /// waiting); a server's `Retry-After` plays no part.
    pub fn with_policy(policy: RetryPolicy) -> Self {
        Self {
            policy,
            on_wait: None,
        }
    }

    /// Reports each wait to `report` — the transient error the try failed with (its
    /// [`remedy`](Error::remedy) says what to check) and how long until the next try —
    /// instead of the `tracing` warning. It runs on the task that opens: keep it short.
    pub fn on_wait(mut self, report: impl Fn(&Error, Duration) + Send + Sync + 'static) -> Self {
        self.on_wait = Some(Arc::new(report));
        self
    }

    /// The policy the waits follow.
    #[must_use]
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Runs `open` until it succeeds, fails other than transiently, or the policy ends the
    /// waiting, reporting each wait. For an open of your own, such as
    /// [`PostgresStore::from_pool`](super::PostgresStore::from_pool) on your pool.
    ///
    /// # Errors
    ///
    /// The first error that is not transient, at once; the last transient one when the
    /// policy gives up.
    pub async fn open_with<T, F, Fut>(&self, mut open: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let mut retry = 0;
        loop {
            let error = match open().await {
                Ok(opened) => return Ok(opened),
                Err(error) if error.is_transient() => error,
                Err(error) => return Err(error),
            };
            let Some(wait) = self.policy.next_delay(retry, started.elapsed(), None) else {
                return Err(error);
            };
            self.report(&error, wait);
            tokio::time::sleep(wait).await;
            retry = retry.saturating_add(1);
        }
    }

    fn report(&self, error: &Error, wait: Duration) {
        match &self.on_wait {
            Some(report) => report(error, wait),
            // The error never holds the URL (nor so its password): see `db_error`.
            None => tracing::warn!(
                %error,
                remedy = %error.remedy().unwrap_or_default(),
                "mail queue: the queue database cannot be opened yet; trying again in {:.1} s",
                wait.as_secs_f64()
            ),
        }
    }
}
