//! Bringing an SQLite queue file's schema up to date when it is opened: the embedded
//! migrations, applied under SQLite's write lock so that processes opening one file at once
//! apply each migration once.

use sqlx::SqlitePool;

use super::store::{db_error, queue_error};
use crate::error::Result;

type MigrateFuture<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = std::result::Result<(), sqlx::migrate::MigrateError>>
            + Send
            + 'a,
    >,
>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Applies the embedded migrations that `pool`'s file lacks, under SQLite's write lock: the
/// migrator itself takes none on SQLite, so replicas opening a new file at once (or after an
/// upgrade that adds a migration) would each apply the same migration, and all but one fail
/// with `table mail_queue already exists`. A file opened read-only (`?mode=ro`) takes no
/// lock; it opens when it has every migration already.
pub(super) async fn migrate(pool: &SqlitePool) -> Result<()> {
    const ACTION: &str = "migrate the SQLite queue";
    let tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => Some(tx),
        Err(e) if code_of(&e).is_some_and(|code| code & 0xff == READONLY) => None,
        Err(e) => return Err(db_error(ACTION, &e)),
    };
    // Boxed as `Send` here: sqlx's migrator future is otherwise not provably `Send` for
    // every lifetime, which callers' `async_trait` futures require. `run_direct` takes the
    // transaction's connection (`run` would want an `Acquire` for every lifetime).
    match tx {
        Some(mut tx) => {
            let migrate: MigrateFuture<'_> = Box::pin(MIGRATOR.run_direct(&mut *tx));
            migrate.await.map_err(|e| migrate_error(ACTION, e))?;
            tx.commit().await.map_err(|e| db_error(ACTION, &e))?;
        }
        None => {
            let migrate: MigrateFuture<'_> = Box::pin(MIGRATOR.run(pool));
            migrate.await.map_err(|e| migrate_error(ACTION, e))?;
        }
    }
    Ok(())
}

/// SQLite's primary result code for a write to a database opened read-only.
const READONLY: u32 = 8;

/// The SQLite result code of a database error.
fn code_of(error: &sqlx::Error) -> Option<u32> {
    match error {
        sqlx::Error::Database(db) => db.code()?.parse().ok(),
        _ => None,
    }
}

/// A failed migration's error: the database's own (busy, read-only, disk full) with its
/// fix; otherwise the file's schema is not this version's queue.
fn migrate_error(action: &'static str, error: sqlx::migrate::MigrateError) -> crate::Error {
    use sqlx::migrate::MigrateError;
    match error {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _)
            if code_of(&e).is_some_and(|code| code & 0xff != 1) =>
        {
            db_error(action, &e)
        }
        other => queue_error(
            action,
            other.to_string(),
            false,
            Some(
                "the file in `queue_url` is not this connector's mail queue, or was written by \
                 a newer version: point `queue_url` at the queue's file",
            ),
        ),
    }
}
