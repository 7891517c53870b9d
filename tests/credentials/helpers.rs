//! Helpers shared by the credentials tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use mail_connector::{AccessToken, Credentials, TokenProvider};

pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// Hands out `t0`, `t1`, … each valid for `left` from now and obtained `age` ago, and
/// counts its fetches.
#[derive(Debug)]
pub(crate) struct NumberedSource {
    fetches: AtomicUsize,
    left: Duration,
    age: Duration,
}

impl NumberedSource {
    pub(crate) fn new(left: Duration, age: Duration) -> Arc<Self> {
        Arc::new(Self {
            fetches: AtomicUsize::new(0),
            left,
            age,
        })
    }

    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl TokenProvider for NumberedSource {
    async fn token(&self, _scope: &str) -> mail_connector::Result<AccessToken> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst);
        let now = SystemTime::now();
        Ok(AccessToken::new(format!("t{n}"), now + self.left).with_issued_at(now - self.age))
    }
}

pub(crate) fn from_source(
    source: Arc<dyn TokenProvider>,
) -> mail_connector::credentials::CredentialsBuilder {
    Credentials::token_provider(source)
}

/// A token response that is valid for `expires_in` seconds but due for refresh at once
/// (`refresh_in: 0`), so the next call tries to refresh it.
pub(crate) fn due_token_body(access_token: &str, expires_in: u64) -> serde_json::Value {
    serde_json::json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_in": 0,
        "access_token": access_token,
    })
}
