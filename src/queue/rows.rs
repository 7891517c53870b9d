//! What the SQL stores share besides their SQL and errors (`db_error`): stored times, and
//! the rows they read back.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::store::{MailboxStats, MessageSummary, OldestDue, QueueStats, State};
use crate::error::Result;

pub(crate) use super::db_error::{
    ErrorOf, db_error, enqueue_error, may_be_queued, queue_error, repeatable_if_keyed,
};

/// Milliseconds since the Unix epoch, as stored (by SQLite; PostgreSQL stores times).
#[cfg(feature = "queue-sqlite")]
pub(crate) fn millis(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The stored milliseconds as a time.
pub(crate) fn from_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// A time as RFC 3339 in UTC, e.g. `2026-11-29T02:30:00.123Z`.
#[must_use]
pub fn rfc3339(time: SystemTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from(time)
        .format(&format)
        .unwrap_or_else(|_| format!("{time:?}"))
}

/// A row of the messages table, shared by the SQL stores.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SummaryRow {
    pub id: String,
    pub state: String,
    pub mailbox: String,
    pub recipients: String,
    pub subject: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub remedy: Option<String>,
    pub report: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub due_at: i64,
    pub updated_at: i64,
    pub parent_id: Option<String>,
}

/// The columns of [`SummaryRow`], for `SELECT`.
pub(crate) const SUMMARY_COLUMNS: &str = "id, state, mailbox, recipients, subject, attempts, \
    last_error, remedy, report, idempotency_key, created_at, due_at, updated_at, parent_id";

impl SummaryRow {
    pub(crate) fn into_summary(self) -> Result<MessageSummary> {
        Ok(MessageSummary {
            state: self.state.parse()?,
            id: self.id,
            mailbox: self.mailbox,
            recipients: self.recipients,
            subject: self.subject,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            last_error: self.last_error,
            remedy: self.remedy,
            report: self.report,
            idempotency_key: self.idempotency_key,
            created_at: from_millis(self.created_at),
            due_at: from_millis(self.due_at),
            updated_at: from_millis(self.updated_at),
            parent_id: self.parent_id,
        })
    }
}

/// Builds [`QueueStats`] from `(mailbox, state, count)` rows.
/// The stats from the counts per mailbox and state (ordered by mailbox), the oldest due
/// message, and the mailboxes paused now with the end of their pause (in stored
/// milliseconds).
pub(crate) fn stats_from_counts(
    counts: Vec<(String, String, i64)>,
    oldest_due: Option<(String, i64)>,
    paused: &[(String, i64)],
) -> Result<QueueStats> {
    let mut stats = QueueStats {
        states: State::ALL.into_iter().map(|s| (s, 0)).collect(),
        ..QueueStats::default()
    };
    for (mailbox, state, count) in counts {
        let state: State = state.parse()?;
        let count = u64::try_from(count).unwrap_or(0);
        *stats.states.entry(state).or_default() += count;
        match stats.mailboxes.last_mut() {
            Some(last) if last.mailbox == mailbox => {
                last.states.insert(state, count);
            }
            _ => stats.mailboxes.push(MailboxStats {
                paused_until: paused
                    .iter()
                    .find(|(paused, _)| *paused == mailbox)
                    .map(|&(_, until)| from_millis(until)),
                mailbox,
                states: BTreeMap::from([(state, count)]),
            }),
        }
    }
    stats.oldest_due = oldest_due.map(|(id, due)| OldestDue {
        id,
        due_at: from_millis(due),
    });
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-29T02:30:00.123Z, in stored milliseconds.
    const AT_MS: i64 = 1_795_919_400_123;

    #[cfg(feature = "queue-sqlite")]
    #[test]
    fn times_before_and_after_1970_are_read_back_as_they_were_stored() {
        // A host whose clock was reset to the epoch dates its messages before 1970.
        let before = SystemTime::UNIX_EPOCH - Duration::from_millis(1_500);
        assert_eq!(millis(before), -1_500);
        assert_eq!(from_millis(-1_500), before);
        assert_eq!(rfc3339(before), "1969-12-31T23:59:58.500Z");
        for ms in [-86_400_123, 0, 1, AT_MS] {
            assert_eq!(millis(from_millis(ms)), ms);
        }
        assert_eq!(rfc3339(from_millis(AT_MS)), "2026-11-29T02:30:00.123Z");
    }

    #[test]
    fn stats_count_each_mailbox_s_states_and_show_only_its_own_pause() {
        let counts = vec![
            ("a@example.org".into(), "queued".into(), 2),
            ("a@example.org".into(), "failed".into(), 1),
            ("b@example.org".into(), "queued".into(), 3),
        ];
        let paused = [("b@example.org".to_owned(), AT_MS)];
        let stats = stats_from_counts(counts, Some(("m-1".into(), AT_MS)), &paused).unwrap();
        let totals: Vec<_> = stats.states.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        assert_eq!(
            totals,
            [
                ("queued", 5),
                ("sending", 0),
                ("sent", 0),
                ("failed", 1),
                ("uncertain", 0),
                ("cancelled", 0)
            ]
        );
        // `mailctl queue status --json` prints this.
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(
            json["mailboxes"],
            serde_json::json!([
                {
                    "mailbox": "a@example.org",
                    "states": {"queued": 2, "failed": 1},
                    "paused_until": null
                },
                {
                    "mailbox": "b@example.org",
                    "states": {"queued": 3},
                    "paused_until": "2026-11-29T02:30:00.123Z"
                }
            ])
        );
        assert_eq!(
            json["oldest_due"],
            serde_json::json!({"id": "m-1", "due_at": "2026-11-29T02:30:00.123Z"})
        );
    }
}
