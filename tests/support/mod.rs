//! Shared test helpers.
#![allow(dead_code)]

pub mod smtp_server;

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use mail_connector::{Result, Secret, SmtpTokenProvider};

/// A token provider that hands out tokens from a queue (the last one repeats) and records
/// invalidations, like a credentials cache would.
#[derive(Debug, Default)]
pub struct FakeTokens {
    queue: Mutex<VecDeque<String>>,
    current: Mutex<Option<String>>,
    pub fetches: Mutex<usize>,
    pub invalidated: Mutex<Vec<String>>,
}

impl FakeTokens {
    pub fn new(tokens: &[&str]) -> Self {
        Self {
            queue: Mutex::new(tokens.iter().map(|t| (*t).to_owned()).collect()),
            ..Self::default()
        }
    }

    /// Replaces the cached token, as a refresh ahead of expiry would.
    pub fn rotate(&self, token: &str) {
        *self.current.lock().unwrap() = Some(token.to_owned());
    }

    pub fn invalidated(&self) -> Vec<String> {
        self.invalidated.lock().unwrap().clone()
    }
}

#[async_trait]
impl SmtpTokenProvider for FakeTokens {
    async fn smtp_token(&self) -> Result<Secret> {
        *self.fetches.lock().unwrap() += 1;
        let mut current = self.current.lock().unwrap();
        if current.is_none() {
            let mut queue = self.queue.lock().unwrap();
            let next = if queue.len() > 1 {
                queue.pop_front()
            } else {
                queue.front().cloned()
            };
            *current = next;
        }
        Ok(Secret::new(current.clone().unwrap_or_default()))
    }

    fn invalidate_smtp_token(&self, token: &Secret) {
        self.invalidated
            .lock()
            .unwrap()
            .push(token.expose_secret().to_owned());
        let mut current = self.current.lock().unwrap();
        if current.as_deref() == Some(token.expose_secret()) {
            *current = None;
        }
    }
}
