//! A worker (or application, or operator) whose clock is off by ten minutes, simulated at
//! the store's interface: a test cannot set this machine's clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mail_connector::queue::{
    Claim, ClaimRequest, Enqueued, Lease, MessageSummary, NewMessage, Outcome, Queue, QueueStats,
    QueueStore, State,
};
use mail_connector::{Result, async_trait};

const TEN_MINUTES: Duration = Duration::from_secs(600);

/// Which way the worker's clock is off, by ten minutes.
#[derive(Debug, Clone, Copy)]
pub enum Skew {
    Ahead,
    Behind,
}

impl Skew {
    /// What the worker's clock reads when this machine's reads `time`.
    fn shift(self, time: SystemTime) -> SystemTime {
        match self {
            Skew::Ahead => time + TEN_MINUTES,
            Skew::Behind => time - TEN_MINUTES,
        }
    }

    /// What this machine's clock reads when the worker's reads `time`.
    fn unshift(self, time: SystemTime) -> SystemTime {
        match self {
            Skew::Ahead => time - TEN_MINUTES,
            Skew::Behind => time + TEN_MINUTES,
        }
    }

    /// The worker's now.
    pub fn now(self) -> SystemTime {
        self.shift(SystemTime::now())
    }
}

/// A store as seen by a worker whose clock is off by `skew`: every time the trait defines
/// by the worker's own `now` (a claim's and a finish's `now`, an outcome's retry time, an
/// enqueued message's times, an operator's `now`, the stats' `now`) is shifted on the way
/// in, and the times a claim answers are shifted back. `extend`, `pause`, `purge*` and
/// `pending` pass through: the store measures those from its own reading of the machine's
/// clock, which on a skewed machine is skewed alike, so what it stores does not depend on
/// the skew.
#[derive(Debug)]
pub struct Skewed {
    inner: Arc<dyn QueueStore>,
    skew: Skew,
}

impl Skewed {
    pub fn queue(inner: &Queue, skew: Skew) -> Queue {
        Queue::new(Self {
            inner: inner.store().clone(),
            skew,
        })
    }

    fn message(&self, mut message: NewMessage) -> NewMessage {
        message.created_at = self.skew.shift(message.created_at);
        message.due_at = self.skew.shift(message.due_at);
        message
    }
}

#[async_trait]
impl QueueStore for Skewed {
    async fn insert(&self, message: NewMessage) -> Result<Enqueued> {
        self.inner.insert(self.message(message)).await
    }

    async fn insert_batch(&self, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
        let messages = messages.into_iter().map(|m| self.message(m)).collect();
        self.inner.insert_batch(messages).await
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Claim> {
        let mut request = request.clone();
        request.now = self.skew.shift(request.now);
        Ok(match self.inner.claim(&request).await? {
            Claim::Message(mut message) => {
                message.retry_from = self.skew.unshift(message.retry_from);
                Claim::Message(message)
            }
            Claim::Idle { next } => Claim::Idle {
                next: next.map(|at| self.skew.unshift(at)),
            },
        })
    }

    async fn extend(&self, lease: &Lease, until: SystemTime) -> Result<bool> {
        self.inner.extend(lease, until).await
    }

    async fn pause(&self, mailbox: &str, until: SystemTime) -> Result<()> {
        self.inner.pause(mailbox, until).await
    }

    async fn finish(&self, lease: &Lease, mut outcome: Outcome, now: SystemTime) -> Result<bool> {
        match &mut outcome {
            Outcome::Retry { at, .. }
            | Outcome::Partial {
                not_sent: Some((_, Some(at))),
                ..
            } => *at = self.skew.shift(*at),
            _ => {}
        }
        self.inner
            .finish(lease, outcome, self.skew.shift(now))
            .await
    }

    async fn stats(&self, now: SystemTime) -> Result<QueueStats> {
        self.inner.stats(self.skew.shift(now)).await
    }

    async fn list(&self, state: Option<State>, limit: u32) -> Result<Vec<MessageSummary>> {
        self.inner.list(state, limit).await
    }

    async fn transition(
        &self,
        id: &str,
        from: &[State],
        to: State,
        now: SystemTime,
    ) -> Result<Option<State>> {
        self.inner
            .transition(id, from, to, self.skew.shift(now))
            .await
    }

    async fn purge(&self, state: State, before: SystemTime) -> Result<u64> {
        self.inner.purge(state, before).await
    }

    async fn purge_sent_bodies(&self, before: SystemTime) -> Result<u64> {
        self.inner.purge_sent_bodies(before).await
    }

    async fn pending(&self, by: SystemTime) -> Result<(u64, u64)> {
        self.inner.pending(by).await
    }
}
