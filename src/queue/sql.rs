//! SQL the two stores share, written once: recording an outcome and an operator's state
//! change. Macros rather than functions, because a function generic over sqlx's database
//! traits would need a bound for every type it binds; the expansion is checked for each store.
//! `$tx` is a transaction; `$table` the messages table's name.

/// Which messages count against their mailbox's in-flight limit, as a condition on the
/// columns of the messages table (named `table.`, or `""` when unambiguous), with `now` and
/// `lease` (milliseconds) the placeholders the query binds them to: those being sent, and those whose lease ran out while they were
/// being sent less than a lease ago (`uncertain`, the lease token kept). Their worker may
/// be stalled with the send still running — it records the outcome over `uncertain` if it
/// comes back — so their place is not handed to the mailbox's next message at once.
pub(crate) fn in_flight(table: &str, now: &str, lease: &str) -> String {
    format!(
        "({table}state = 'sending' OR ({table}state = 'uncertain' AND \
         {table}lease_token IS NOT NULL AND {table}lease_until > {now} - {lease}))"
    )
}

/// Records `$outcome` for `$lease` at `$now` (the worker's `SystemTime`); evaluates to
/// `Result<bool, sqlx::Error>`, `false` when the lease is no longer held. `$stored` turns a
/// time on the worker's clock into the stored milliseconds (the store's clock): `$now` and
/// the outcome's retry times go through it, and nothing else is written from the worker.
macro_rules! finish_outcome {
    ($tx:ident, $table:literal, $lease:expr, $outcome:expr, $now:expr, $stored:expr) => {async {
        use $crate::queue::store::Outcome;
        let lease: &$crate::queue::store::Lease = $lease;
        let stored = $stored;
        let now: i64 = stored($now);
        // What earlier attempts delivered (a partial delivery): kept with what this one did;
        // and the message's due time before this outcome moves it, for the rows split off.
        let prior: Option<(Option<String>, i64)> = sqlx::query_as(concat!(
            "SELECT report, due_at FROM ", $table, " WHERE id = $1 AND lease_token = $2"
        ))
        .bind(&lease.id)
        .bind(&lease.token)
        .fetch_optional(&mut *$tx)
        .await?;
        let merged = |report: String| {
            $crate::queue::outcome::merge_reports(prior.clone().and_then(|(r, _)| r), report)
        };
        // A message whose lease ran out while it was being sent is `uncertain` with the lease
        // token kept: the worker that still held it knows better and may record the outcome.
        let done = match $outcome {
            Outcome::Sent { report } => sqlx::query(concat!(
                "UPDATE ", $table, " SET state = 'sent', report = $3, last_error = NULL, ",
                "remedy = NULL, lease_token = NULL, lease_until = NULL, updated_at = $4 ",
                "WHERE id = $1 AND lease_token = $2 AND state IN ('sending', 'uncertain')"
            ))
            .bind(&lease.id)
            .bind(&lease.token)
            .bind(merged(report))
            .bind(now)
            .execute(&mut *$tx)
            .await?,
            // Held for an admin: queued again as a retry is, the claim's attempt taken back.
            // A queued row has no remedy of its own: its error says what it waits for.
            ref outcome @ (Outcome::Retry { ref at, ref error } | Outcome::Held { ref at, ref error }) => {
                let taken_back: i64 = i64::from(matches!(outcome, Outcome::Held { .. }));
                sqlx::query(concat!(
                    "UPDATE ", $table, " SET state = 'queued', due_at = $3, last_error = $4, ",
                    "remedy = NULL, attempts = CASE WHEN attempts > $6 THEN attempts - $6 ELSE 0 END, ",
                    "lease_token = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $5 ",
                    "WHERE id = $1 AND lease_token = $2 AND state IN ('sending', 'uncertain')"
                ))
                .bind(&lease.id)
                .bind(&lease.token)
                .bind(stored(*at))
                .bind(error)
                .bind(now)
                .bind(taken_back)
                .execute(&mut *$tx)
                .await?
            }
            Outcome::Failed { error, remedy } => sqlx::query(concat!(
                "UPDATE ", $table, " SET state = 'failed', last_error = $3, remedy = $4, ",
                "lease_token = NULL, lease_until = NULL, updated_at = $5 ",
                "WHERE id = $1 AND lease_token = $2 AND state IN ('sending', 'uncertain')"
            ))
            .bind(&lease.id)
            .bind(&lease.token)
            .bind(error)
            .bind(remedy)
            .bind(now)
            .execute(&mut *$tx)
            .await?,
            // Whatever fix an earlier failure named no longer applies: verify first.
            Outcome::Uncertain { error } => sqlx::query(concat!(
                "UPDATE ", $table, " SET state = 'uncertain', last_error = $3, remedy = $5, ",
                "lease_token = NULL, lease_until = NULL, updated_at = $4 ",
                "WHERE id = $1 AND lease_token = $2 AND state IN ('sending', 'uncertain')"
            ))
            .bind(&lease.id)
            .bind(&lease.token)
            .bind(error)
            .bind(now)
            .bind($crate::error::UNCERTAIN_REMEDY)
            .execute(&mut *$tx)
            .await?,
            Outcome::Partial { report, error, remedy, not_sent, uncertain, refused } => {
                let rows = $crate::queue::outcome::partial_rows(
                    error, remedy, not_sent, uncertain, refused,
                );
                // The message first: only when this lease still holds it (its row now
                // locked until commit) are the groups split off from it, so that no split
                // is left behind by an outcome that was not recorded.
                let splits = rows.splits;
                let len = rows.rest.as_ref().map(|r| r.body.len() as i64);
                let (body, recipients) = match rows.rest {
                    Some(rest) => (Some(rest.body), Some(rest.recipients)),
                    None => (None, None),
                };
                let updated = sqlx::query(concat!(
                    "UPDATE ", $table, " SET state = $3, report = $4, last_error = $5, remedy = $6, ",
                    "body = COALESCE($7, body), body_bytes = COALESCE($8, body_bytes), ",
                    "recipients = COALESCE($9, recipients), due_at = COALESCE($10, due_at), ",
                    "lease_token = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $11 ",
                    "WHERE id = $1 AND lease_token = $2 AND state IN ('sending', 'uncertain')"
                ))
                .bind(&lease.id)
                .bind(&lease.token)
                .bind(rows.state.as_str())
                .bind(merged(report))
                .bind(rows.error)
                .bind(rows.remedy)
                .bind(body)
                .bind(len)
                .bind(recipients)
                .bind(rows.due.map(&stored))
                .bind(now)
                .execute(&mut *$tx)
                .await?;
                // The lease held (the UPDATE matched), so `prior` read the row.
                let due_at = prior.as_ref().map(|&(_, due)| due);
                if updated.rows_affected() == 1 {
                    for split in splits {
                        let len = split.rest.body.len() as i64;
                        sqlx::query(concat!(
                            "INSERT INTO ", $table, " (id, mailbox, recipients, subject, state, body, ",
                            "body_bytes, attempts, due_at, created_at, updated_at, retry_from, ",
                            "last_error, remedy, parent_id) SELECT $1, mailbox, $2, subject, $3, $4, ",
                            "$5, attempts, $10, created_at, $6, retry_from, $7, $8, id FROM ",
                            $table, " WHERE id = $9"
                        ))
                        .bind(uuid::Uuid::new_v4().to_string())
                        .bind(split.rest.recipients)
                        .bind(split.state.as_str())
                        .bind(split.rest.body)
                        .bind(len)
                        .bind(now)
                        .bind(split.error)
                        .bind(split.remedy)
                        .bind(&lease.id)
                        .bind(due_at)
                        .execute(&mut *$tx)
                        .await?;
                    }
                }
                updated
            }
        };
        Ok::<bool, sqlx::Error>(done.rows_affected() == 1)
    }.await};
}

/// What an operator's state change found: the state the message was in (`None` for an
/// unknown id), and, when a retry was refused because the message's worker may still be
/// sending it, how long (ms) until it no longer may.
pub(crate) type Transitioned = (Option<String>, Option<i64>);

/// An operator's retry of message `id`, refused because the worker whose lease on it ran
/// out may still be sending it for `wait_ms` more.
pub(crate) fn still_in_flight(id: &str, wait_ms: i64) -> crate::Error {
    let seconds = wait_ms.max(0).saturating_add(999) / 1000;
    let wait = if seconds > 120 {
        format!("{} minutes", (seconds + 59) / 60)
    } else {
        format!("{seconds} s")
    };
    super::rows::queue_error(
        "retry the message",
        format!(
            "message `{id}` is uncertain and the worker whose lease on it ran out may still \
             be sending it: a retry now could deliver it twice"
        ),
        false,
        Some(&format!(
            "wait {wait} (one lease after its lease ran out) and retry then, unless its \
             worker has recorded the outcome meanwhile; check first that it did not arrive"
        )),
    )
}

/// Moves message `$id` from one of `$from` to `$to` at `$now` (ms); evaluates to
/// `Result<Transitioned, sqlx::Error>`. A retry (`$to` queued) of an `uncertain` message
/// whose lease ran out less than a lease ago (its token kept) is refused, the row left
/// alone: the worker that held it may be stalled with the send still running, and records
/// its real outcome over `uncertain` when it ends — which clearing the token would lose.
/// The lease is the one the message was claimed with (5 minutes for rows claimed before
/// that was stored).
macro_rules! transition_state {
    ($tx:ident, $table:literal, $id:expr, $from:expr, $to:expr, $now:expr) => {
        async {
            let id: &str = $id;
            let from: &[$crate::queue::store::State] = $from;
            let to: $crate::queue::store::State = $to;
            let now: i64 = $now;
            let current: Option<(String, Option<i64>)> = sqlx::query_as(concat!(
                "SELECT state, CASE WHEN state = 'uncertain' AND lease_token IS NOT NULL ",
                "THEN lease_until + COALESCE(lease_ms, $2) END FROM ",
                $table,
                " WHERE id = $1"
            ))
            .bind(id)
            .bind(
                i64::try_from($crate::queue::worker::DEFAULT_LEASE.as_millis()).unwrap_or(i64::MAX),
            )
            .fetch_optional(&mut *$tx)
            .await?;
            let fresh = to == $crate::queue::store::State::Queued;
            let running = current
                .as_ref()
                .and_then(|&(_, until)| until)
                .filter(|&until| fresh && until > now);
            if let Some(until) = running {
                return Ok::<$crate::queue::sql::Transitioned, sqlx::Error>((
                    current.map(|(s, _)| s),
                    Some(until - now),
                ));
            }
            if let Some((state, _)) = &current {
                if from.iter().any(|s| s.as_str() == state) {
                    // An operator's retry starts a fresh round of attempts, due now, the
                    // fix of the failure before it applied (its error stays, as history).
                    sqlx::query(concat!(
                        "UPDATE ",
                        $table,
                        " SET state = $2, updated_at = $3, lease_token = NULL, ",
                        "lease_owner = NULL, lease_until = NULL, ",
                        "due_at = CASE WHEN $4 THEN $3 ELSE due_at END, ",
                        "attempts = CASE WHEN $4 THEN 0 ELSE attempts END, ",
                        "remedy = CASE WHEN $4 THEN NULL ELSE remedy END, ",
                        "retry_from = CASE WHEN $4 THEN $3 ELSE retry_from END WHERE id = $1"
                    ))
                    .bind(id)
                    .bind(to.as_str())
                    .bind(now)
                    .bind(fresh)
                    .execute(&mut *$tx)
                    .await?;
                }
            }
            Ok::<$crate::queue::sql::Transitioned, sqlx::Error>((current.map(|(s, _)| s), None))
        }
        .await
    };
}

pub(crate) use {finish_outcome, transition_state};
