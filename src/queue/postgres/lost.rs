//! An enqueue whose answer was lost: the `INSERT` that commits by itself, or a batch's
//! `COMMIT`, was sent, and the connection broke before its answer came back. The message's
//! id was made here, so the row is looked up by it once the database answers, and the
//! enqueue reports it queued when it is found. Not found, the statement may yet be running
//! on the server, to commit after the look: only an email with an idempotency key (which a
//! late copy would share) is then reported not stored; any other, and one that cannot be
//! looked up, is [`Uncertain`](Delivery::Uncertain), its fix naming the id to look for.

use super::PostgresStore;
use crate::error::{Advice, Delivery, Error, Result};

/// The first part of an uncertain error's message: what the database said.
fn what_failed(error: &Error) -> String {
    match error {
        Error::Queue { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// An email with an idempotency key the lookup did not find: enqueueing it again is safe,
/// as a copy still being stored would share its key.
fn not_queued(action: &'static str, error: &Error) -> Error {
    Error::Queue {
        action,
        message: format!(
            "{}; the email was not found when looked up by its id once the database \
             answered again",
            what_failed(error)
        ),
        transient: true,
        delivery: Delivery::NotSent,
        advice: Advice::remedy(Some(
            "check that the queue database (`queue_url`) is running and reachable; \
             enqueueing the email again with its idempotency key is safe"
                .to_owned(),
        )),
    }
}

/// An email that could not be looked up (`why`): it may be queued as `id`.
pub(super) fn may_be_queued_as(error: Error, id: &str, why: &str) -> Error {
    let Error::Queue {
        action, message, ..
    } = error
    else {
        return error;
    };
    Error::Queue {
        action,
        message: format!("{message}; {why}"),
        transient: false,
        delivery: Delivery::Uncertain,
        advice: Advice::remedy(Some(format!(
            "the email may have been queued as the message `{id}`, and a worker would deliver \
             it: once the queue database (`queue_url`) answers again, look for that id \
             (`mailctl queue list`) before enqueueing it again; enqueueing with an idempotency \
             key (`EnqueueOptions::idempotency_key`) makes enqueueing again safe"
        ))),
    }
}

impl PostgresStore {
    /// After an enqueue's `error`: when it is [`Uncertain`](Delivery::Uncertain) (the
    /// answer was lost), the id of the message stored as `id` — or, for a message with the
    /// idempotency `key`, the first one stored with it — if there is one; an error that
    /// says it was not stored if there is none; `error`, naming `id`, when the database
    /// cannot be asked within the pool's acquire timeout. Any other error as it is.
    pub(super) async fn settle_lost(
        &self,
        action: &'static str,
        error: Error,
        id: &str,
        key: Option<&str>,
    ) -> Result<String> {
        if error.delivery() != Delivery::Uncertain {
            return Err(error);
        }
        // The message's own id first: a key's other message is returned only when this one
        // is not stored.
        let found: std::result::Result<Option<(String,)>, sqlx::Error> = sqlx::query_as(
            "SELECT id FROM mail_queue.messages WHERE id = $1 OR idempotency_key = $2 \
             ORDER BY id = $1 DESC LIMIT 1",
        )
        .bind(id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await;
        match found {
            Ok(Some((stored,))) => {
                tracing::info!(
                    id = %stored,
                    "mail queue: an enqueue lost its answer; the email is queued"
                );
                Ok(stored)
            }
            // Not found may still be stored: a statement cut off on its way may be running
            // on the server yet, to commit after this look. Enqueueing again is safe only
            // with an idempotency key.
            Ok(None) if key.is_some() => Err(not_queued(action, &error)),
            Ok(None) => Err(may_be_queued_as(
                error,
                id,
                "it was not found when looked up by its id, but the database may still have \
                 been storing it",
            )),
            Err(lookup) => {
                tracing::warn!(
                    error = %lookup,
                    id,
                    "mail queue: an enqueue lost its answer and could not be looked up"
                );
                let why = format!("looking it up by its id failed too ({lookup})");
                Err(may_be_queued_as(error, id, &why))
            }
        }
    }
}
