//! A worker (or application, or operator) whose clock is off by ten minutes, simulated at
//! the store's interface: a test cannot set this machine's clock.

use std::time::{Duration, SystemTime};

use mail_connector::queue::{
    Claim, ClaimRequest, Enqueued, Lease, NewMessage, Outcome, Queue, QueueStats, QueueStore, State,
};
use mail_connector::{Result, async_trait};

use crate::around::{Around, Hooks};

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
    skew: Skew,
}

impl Skewed {
    pub fn queue(inner: &Queue, skew: Skew) -> Queue {
        Around::queue(inner, Self { skew })
    }

    fn message(&self, mut message: NewMessage) -> NewMessage {
        message.created_at = self.skew.shift(message.created_at);
        message.due_at = self.skew.shift(message.due_at);
        message
    }
}

#[async_trait]
impl Hooks for Skewed {
    async fn insert(&self, inner: &dyn QueueStore, message: NewMessage) -> Result<Enqueued> {
        inner.insert(self.message(message)).await
    }

    async fn insert_batch(
        &self,
        inner: &dyn QueueStore,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Enqueued>> {
        let messages = messages.into_iter().map(|m| self.message(m)).collect();
        inner.insert_batch(messages).await
    }

    async fn claim(&self, inner: &dyn QueueStore, request: &ClaimRequest) -> Result<Claim> {
        let mut request = request.clone();
        request.now = self.skew.shift(request.now);
        Ok(match inner.claim(&request).await? {
            Claim::Message(mut message) => {
                message.retry_from = self.skew.unshift(message.retry_from);
                Claim::Message(message)
            }
            Claim::Idle { next } => Claim::Idle {
                next: next.map(|at| self.skew.unshift(at)),
            },
        })
    }

    async fn finish(
        &self,
        inner: &dyn QueueStore,
        lease: &Lease,
        mut outcome: Outcome,
        now: SystemTime,
    ) -> Result<bool> {
        match &mut outcome {
            Outcome::Retry { at, .. }
            | Outcome::Held { at, .. }
            | Outcome::Partial {
                not_sent: Some((_, Some(at))),
                ..
            } => *at = self.skew.shift(*at),
            _ => {}
        }
        inner.finish(lease, outcome, self.skew.shift(now)).await
    }

    async fn stats(&self, inner: &dyn QueueStore, now: SystemTime) -> Result<QueueStats> {
        inner.stats(self.skew.shift(now)).await
    }

    async fn transition(
        &self,
        inner: &dyn QueueStore,
        id: &str,
        from: &[State],
        to: State,
        now: SystemTime,
    ) -> Result<Option<State>> {
        inner.transition(id, from, to, self.skew.shift(now)).await
    }
}
