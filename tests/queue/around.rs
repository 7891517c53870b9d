//! A test store around a real one: [`Around`] passes each call to the real store through its
//! [`Hooks`], which pass it on unchanged unless a test's hooks change that call.

use std::sync::Arc;
use std::time::SystemTime;

use mail_connector::queue::{
    Claim, ClaimRequest, Enqueued, Lease, MessageSummary, NewMessage, Outcome, Queue, QueueStats,
    QueueStore, State,
};
use mail_connector::{Result, async_trait};

/// What a test store changes; each call it leaves alone goes to `inner` as it is.
#[async_trait]
pub trait Hooks: std::fmt::Debug + Send + Sync + 'static {
    async fn insert(&self, inner: &dyn QueueStore, message: NewMessage) -> Result<Enqueued> {
        inner.insert(message).await
    }
    async fn insert_batch(
        &self,
        inner: &dyn QueueStore,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Enqueued>> {
        inner.insert_batch(messages).await
    }
    async fn claim(&self, inner: &dyn QueueStore, request: &ClaimRequest) -> Result<Claim> {
        inner.claim(request).await
    }
    async fn extend(
        &self,
        inner: &dyn QueueStore,
        lease: &Lease,
        until: SystemTime,
    ) -> Result<bool> {
        inner.extend(lease, until).await
    }
    async fn finish(
        &self,
        inner: &dyn QueueStore,
        lease: &Lease,
        outcome: Outcome,
        now: SystemTime,
    ) -> Result<bool> {
        inner.finish(lease, outcome, now).await
    }
    async fn stats(&self, inner: &dyn QueueStore, now: SystemTime) -> Result<QueueStats> {
        inner.stats(now).await
    }
    async fn transition(
        &self,
        inner: &dyn QueueStore,
        id: &str,
        from: &[State],
        to: State,
        now: SystemTime,
    ) -> Result<Option<State>> {
        inner.transition(id, from, to, now).await
    }
}

/// The real store `inner`, seen through `hooks`.
#[derive(Debug)]
pub struct Around<H> {
    inner: Arc<dyn QueueStore>,
    hooks: H,
}

impl<H: Hooks> Around<H> {
    /// A queue on `queue`'s store, seen through `hooks`.
    pub fn queue(queue: &Queue, hooks: H) -> Queue {
        Queue::new(Self {
            inner: queue.store().clone(),
            hooks,
        })
    }
}

#[async_trait]
impl<H: Hooks> QueueStore for Around<H> {
    async fn insert(&self, message: NewMessage) -> Result<Enqueued> {
        self.hooks.insert(&*self.inner, message).await
    }
    async fn insert_batch(&self, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
        self.hooks.insert_batch(&*self.inner, messages).await
    }
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim> {
        self.hooks.claim(&*self.inner, request).await
    }
    async fn extend(&self, lease: &Lease, until: SystemTime) -> Result<bool> {
        self.hooks.extend(&*self.inner, lease, until).await
    }
    async fn pause(&self, mailbox: &str, until: SystemTime) -> Result<()> {
        self.inner.pause(mailbox, until).await
    }
    async fn finish(&self, lease: &Lease, outcome: Outcome, now: SystemTime) -> Result<bool> {
        self.hooks.finish(&*self.inner, lease, outcome, now).await
    }
    async fn stats(&self, now: SystemTime) -> Result<QueueStats> {
        self.hooks.stats(&*self.inner, now).await
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
        self.hooks.transition(&*self.inner, id, from, to, now).await
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
