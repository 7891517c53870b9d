//! Opening the PostgreSQL queue: the first connection, which says at once why it failed, and
//! the migration of the schema `mail_queue`.

use std::time::Duration;

use sqlx::Connection;
use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::error::Result;
use crate::queue::db_error::{UNREACHABLE_REMEDY, db_error, queue_error, sqlstate};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock that serialises schema creation and migration across processes.
const MIGRATION_LOCK: i64 = 0x6d61_696c_7175_6575; // "mailqueu"

/// How long opening waits for the server to answer a connection: as long as sqlx's pool
/// waits for one by default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection with `options`, made once: refused, or turned away by a server that is
/// not PostgreSQL or a wrong password, it fails at once (sqlx's pool would try a refused
/// one again for its whole acquire timeout before saying so).
pub(super) async fn connect(options: &PgConnectOptions) -> Result<PgConnection> {
    const ACTION: &str = "connect to the PostgreSQL queue";
    // A host that drops packets would leave the connect to the system's TCP timeout
    // (minutes); a slow but healthy server answers well within this.
    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options))
        .await
        .map_err(|_| {
            queue_error(
                ACTION,
                format!(
                    "the server at `queue_url` did not answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ),
                true,
                Some(UNREACHABLE_REMEDY),
            )
        })?
        .map_err(|e| db_error(ACTION, &e))
}

/// Creates the schema `mail_queue` and migrates it, one process at a time. A failure is
/// classified as any statement's is ([`db_error`]): a connection killed mid-migration or a
/// read-only standby is waited out; only a refused privilege says to grant CREATE.
pub(super) async fn migrate(conn: &mut PgConnection) -> Result<()> {
    const ACTION: &str = "migrate the PostgreSQL queue";
    let failed = |e: sqlx::Error| match (sqlstate(&e).as_deref(), &e) {
        (Some("42501"), _) => queue_error(
            ACTION,
            e.to_string(),
            false,
            Some(
                "the database user in `queue_url` needs the CREATE privilege on its database \
                 to create the schema `mail_queue` the first time (`GRANT CREATE ON DATABASE \
                 … TO …`), and on that schema to check its migrations at every open (`GRANT \
                 CREATE ON SCHEMA mail_queue TO …`)",
            ),
        ),
        // Not a statement's failure: the schema's migration history is not this version's
        // (a newer replica migrated it during a rolling upgrade, or a migration was cut
        // off and left it dirty).
        (_, sqlx::Error::Migrate(migrate))
            if !matches!(
                **migrate,
                sqlx::migrate::MigrateError::Execute(_)
                    | sqlx::migrate::MigrateError::ExecuteMigration(..)
            ) =>
        {
            queue_error(
                ACTION,
                e.to_string(),
                false,
                Some(
                    "the schema `mail_queue` was migrated by another version of this connector: \
                     run every replica on the same version (a newer one first, during an \
                     upgrade), or point `queue_url` at this version's queue",
                ),
            )
        }
        _ => db_error(ACTION, &e),
    };
    conn.execute(sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK))
        .await
        .map_err(|e| db_error(ACTION, &e))?;
    let result = create_and_migrate(conn).await.map_err(failed);
    let unlocked = conn.execute("SELECT pg_advisory_unlock_all()").await;
    result?;
    unlocked.map_err(|e| db_error(ACTION, &e))?;
    Ok(())
}

async fn create_and_migrate(conn: &mut PgConnection) -> std::result::Result<(), sqlx::Error> {
    // Only when it is missing: PostgreSQL checks the CREATE privilege on the database even
    // for a schema that exists, which a user who may not create schemas lacks.
    let exists: bool = sqlx::query_scalar("SELECT to_regnamespace('mail_queue') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        conn.execute("CREATE SCHEMA IF NOT EXISTS mail_queue")
            .await?;
    }
    conn.execute("SET search_path TO mail_queue").await?;
    MIGRATOR
        .run_direct(conn)
        .await
        .map_err(|e| sqlx::Error::Migrate(Box::new(e)))
}
