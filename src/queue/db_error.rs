//! The queue's errors from the database: which are transient (the database down, busy or
//! restarting), which are the admin's to fix (a wrong `queue_url`), and what to fix.

use crate::error::{Advice, Delivery, Error};

pub(crate) fn queue_error(
    action: &'static str,
    message: impl Into<String>,
    transient: bool,
    remedy: Option<&str>,
) -> Error {
    Error::Queue {
        action,
        message: message.into(),
        transient,
        delivery: Delivery::NotSent,
        advice: Advice::remedy(remedy.map(str::to_owned)),
    }
}

/// How a store makes the error of a failed statement: [`db_error`] or [`enqueue_error`].
pub(crate) type ErrorOf = fn(&'static str, &sqlx::Error) -> Error;

/// Whether `error` may have come after the database acted on the statement: the connection
/// broke, or its answer could not be read. An `INSERT` that commits by itself, or a
/// `COMMIT`, may then have taken effect. (An error the database answered with, a pool
/// timeout or a closed pool all came before anything was stored.)
pub(crate) fn answer_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => !certificate_refused(error),
        // The session ended under the statement, as the server or a pooler in front of it
        // says: a connection exception (class 08, PgBouncer's "server conn crashed?") or
        // the server shutting down (57P01, 57P02). It may have committed first.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code == "57P01" || code == "57P02"),
        _ => false,
    }
}

/// The remedy of an enqueue that may have stored the email.
pub(crate) const MAY_BE_QUEUED_REMEDY: &str = "the email may have been queued, and a worker \
     would deliver it: look for it (`mailctl queue list`) before enqueueing it again; \
     enqueueing with an idempotency key (`EnqueueOptions::idempotency_key`) makes enqueueing \
     again safe";

/// A failed enqueue's error, from the `INSERT` that commits by itself or the `COMMIT` of a
/// batch: [`Delivery::Uncertain`], and not transient, when the answer was lost after the
/// statement was sent (enqueueing again could store the email twice); else as
/// [`db_error`].
pub(crate) fn enqueue_error(action: &'static str, error: &sqlx::Error) -> Error {
    if !answer_lost(error) {
        return db_error(action, error);
    }
    Error::Queue {
        action,
        message: format!(
            "{error}; the database may have stored the email before the connection failed"
        ),
        transient: false,
        delivery: Delivery::Uncertain,
        advice: Advice::remedy(Some(MAY_BE_QUEUED_REMEDY.to_owned())),
    }
}

/// A database error as an [`Error::Queue`]: transient when the database was unreachable,
/// busy or the transaction lost a race; with the remedy its code calls for.
pub(crate) fn db_error(action: &'static str, error: &sqlx::Error) -> Error {
    // A migration's statement fails as any statement does (the connection killed by a fast
    // restart, a failover's read-only standby): its own error decides, under the
    // migration's message.
    if let Some(statement) = migration_statement(error) {
        return match db_error(action, statement) {
            Error::Queue {
                action,
                transient,
                delivery,
                advice,
                ..
            } => Error::Queue {
                action,
                message: error.to_string(),
                transient,
                delivery,
                advice,
            },
            other => other,
        };
    }
    let code = sqlstate(error);
    // A connection the server (or a pooler or load balancer in front of it) closed at once,
    // as one that is down or restarting does, comes as a protocol error when it closed
    // during the handshake (`unexpected response from SSLRequest: 0x00`): as transient as a
    // refused one, and so is a garbled answer mid-session. But a server that answers the
    // handshake as no PostgreSQL does is a wrong `queue_url`: waiting never fixes it (a
    // worker stops on a claim that fails for good; a waiting open gives up at once).
    if let sqlx::Error::Protocol(message) = error
        && let Some((mistake, remedy)) = not_postgres(message)
    {
        return queue_error(action, mistake, false, Some(remedy));
    }
    if certificate_refused(error) {
        return queue_error(
            action,
            format!("the PostgreSQL server's TLS certificate was refused: {error}"),
            false,
            Some(CERTIFICATE_REMEDY),
        );
    }
    let transient = match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed => true,
        // `08P01` is a protocol violation, and how PgBouncer turns a client away: for an
        // outage of the server behind it (transient), or for a name in `queue_url` it does
        // not know (a mistake, which waiting never fixes).
        sqlx::Error::Database(db) if code.as_deref() == Some("08P01") => {
            pooler_outage(db.message())
        }
        sqlx::Error::Database(_) => code.as_deref().is_some_and(busy),
        _ => false,
    };
    let remedy = match (transient, code.as_deref()) {
        (true, Some("25006")) => Some(READ_ONLY_REMEDY),
        (true, _) => Some(UNREACHABLE_REMEDY),
        (false, code) => code.and_then(remedy_for_code),
    };
    queue_error(action, error.to_string(), transient, remedy)
}

/// The error of the statement a migration failed on, when it failed on one.
fn migration_statement(error: &sqlx::Error) -> Option<&sqlx::Error> {
    match error {
        sqlx::Error::Migrate(migrate) => match &**migrate {
            sqlx::migrate::MigrateError::Execute(statement)
            | sqlx::migrate::MigrateError::ExecuteMigration(statement, _) => Some(statement),
            _ => None,
        },
        _ => None,
    }
}

/// The database's code for `error` (PostgreSQL's SQLSTATE, SQLite's result code), also when
/// a migration's statement failed with it.
pub(crate) fn sqlstate(error: &sqlx::Error) -> Option<std::borrow::Cow<'_, str>> {
    match migration_statement(error).unwrap_or(error) {
        sqlx::Error::Database(db) => db.code(),
        _ => None,
    }
}

/// The remedy of a database that could not be reached: down, restarting, or too busy.
pub(crate) const UNREACHABLE_REMEDY: &str = "check that the queue database (`queue_url`) is \
     running and reachable; the operation can be retried";

/// The remedy of a server that takes no writes: a standby, a replica, or a database whose
/// transactions are read-only by default. A failover's address moves to the new primary
/// by itself; a replica's never does.
const READ_ONLY_REMEDY: &str = "the server in `queue_url` takes no writes (a standby or read \
     replica, or `default_transaction_read_only` set): point `queue_url` at the primary, or at \
     the address that follows it through a failover; the operation can be retried once it does";

/// Whether PgBouncer's `08P01` `message` says the server behind it cannot be reached for
/// now (crashed, down, its logins failing, the pool full or shutting down), rather than
/// that the client asked for a database or user it does not know.
fn pooler_outage(message: &str) -> bool {
    const OUTAGES: [&str; 8] = [
        "server conn crashed",
        "login has been failing",
        "cannot connect to server",
        "query_wait_timeout",
        "client_login_timeout",
        "max_client_conn",
        "no more connections allowed",
        "shutting down",
    ];
    let message = message.to_ascii_lowercase();
    OUTAGES.iter().any(|outage| message.contains(outage))
}

/// The remedy of a server certificate that `sslmode=verify-ca` or `verify-full` refused.
const CERTIFICATE_REMEDY: &str = "give `queue_url` the CA that signed the PostgreSQL server's \
     certificate (`sslrootcert=/path/to/ca.pem`), and with `sslmode=verify-full` the host name \
     the certificate was made for; or lower `sslmode` to `require` to encrypt without checking \
     the certificate";

/// Whether `error` is the TLS handshake refusing the server's certificate (an unknown CA, a
/// host name it was not made for, expired): rustls says so through an `InvalidData` I/O
/// error whose message starts "invalid peer certificate". Trying again never fixes it, and
/// it comes before any statement is sent.
fn certificate_refused(error: &sqlx::Error) -> bool {
    let sqlx::Error::Io(io) = error else {
        return false;
    };
    io.kind() == std::io::ErrorKind::InvalidData
        && io
            .get_ref()
            .is_some_and(|inner| inner.to_string().starts_with("invalid peer certificate"))
}

/// The remedy of a `queue_url` whose host and port answer, but not as PostgreSQL does.
const NOT_POSTGRES_REMEDY: &str = "point `queue_url` at the PostgreSQL server's host and port \
     (5432 unless the server was set up otherwise; an HTTP, SMTP or other server there will \
     never answer as PostgreSQL), or at a pooler in front of it";

/// What the server said, and the fix, when the driver's protocol `message` shows it is not
/// PostgreSQL or asks for a sign-in the driver cannot do: a mistake in `queue_url` or on the
/// server, which trying again never fixes. `None` for a connection closed at once (the
/// server, or a pooler in front of a stopped one, turning clients away: transient) and for
/// the rest.
fn not_postgres(message: &str) -> Option<(String, &'static str)> {
    // PostgreSQL answers the driver's first message (an SSLRequest) with one byte, `S` or
    // `N`; a connection closed before answering reads as 0x00, and a postmaster that
    // cannot start a backend for it (out of processes or memory in a restart storm)
    // answers with an ErrorResponse, `E`: both transient, as libpq takes them. Any other
    // byte is another server's (an HTTP server's `H`, an SMTP greeting's `2`, MySQL's
    // packet length, a TLS alert), which waiting never turns into PostgreSQL.
    if let Some(answer) = message.strip_prefix("unexpected response from SSLRequest: ") {
        // The byte, as `0x48`; debug builds of sqlx add where it failed.
        let byte = answer.split_whitespace().next().unwrap_or_default();
        let other_server = u8::from_str_radix(byte.trim_start_matches("0x"), 16)
            .is_ok_and(|b| !matches!(b, 0x00 | b'E'));
        return other_server.then(|| {
            (
                format!(
                    "the server at `queue_url` is not PostgreSQL: it answered the connection \
                     request with {byte}, not as PostgreSQL does"
                ),
                NOT_POSTGRES_REMEDY,
            )
        });
    }
    message
        .starts_with("unsupported authentication method")
        .then(|| {
            (
                format!(
                    "the PostgreSQL server at `queue_url` asks for a sign-in this connector \
                     cannot do ({message})"
                ),
                "allow password sign-in (SCRAM-SHA-256 or MD5) for the user in `queue_url` \
                 in the server's pg_hba.conf",
            )
        })
}

/// Whether a database error's code says the database was busy for a moment. SQLite: BUSY
/// (5) and LOCKED (6) with every extended code of theirs (the low byte is the primary
/// code: `BUSY_SNAPSHOT` 517, `BUSY_RECOVERY` 261 while another process recovers the
/// write-ahead log after a crash, `BUSY_TIMEOUT` 773, `LOCKED_SHAREDCACHE` 262).
/// PostgreSQL: serialization failure, deadlock, too many connections, shutting down or
/// restarting after a crash, starting up; a connection exception (class 08: PgBouncer
/// reports its own failures to reach the server so, as `08P01`); and a read-only
/// transaction (`25006`), as a failover's address still pointing at the demoted standby
/// gives until it moves.
fn busy(code: &str) -> bool {
    if code.len() == 5 {
        return matches!(
            code,
            "40001"
                | "40P01"
                | "53300"
                | "57P01"
                | "57P02"
                | "57P03"
                | "08000"
                | "08001"
                | "08003"
                | "08004"
                | "08006"
                | "08P01"
                | "25006"
        );
    }
    code.parse::<u32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6))
}

/// What to fix for a database error that trying again does not fix, by its code: SQLite's
/// result code (its low byte is the primary code) or PostgreSQL's five-character SQLSTATE.
fn remedy_for_code(code: &str) -> Option<&'static str> {
    if code.len() == 5 {
        return match code {
            "42P01" | "3F000" => Some(
                "create the queue's schema first: open the queue once (`Queue::open` or \
                 `PostgresStore::open`, as `mailctl` does) before enqueueing in a transaction",
            ),
            "42501" => Some(
                "grant the queue's database user the rights on the schema `mail_queue` (or let \
                 it create the schema)",
            ),
            "28P01" => Some("check the user name and password in `queue_url`"),
            "28000" => Some(
                "the server does not let this user sign in to this database from this host \
                 (its pg_hba.conf): check the user name and database in `queue_url`, or ask \
                 the database's admin to allow them",
            ),
            "3D000" => Some("create the database `queue_url` names, or correct its name"),
            "08P01" => Some(
                "the server or a pooler in front of it (PgBouncer) refused the connection's \
                 request: check the database and user names in `queue_url` against the \
                 pooler's configuration (PgBouncer's `[databases]`) and its log",
            ),
            "53100" => Some("free disk space on the PostgreSQL server"),
            _ => None,
        };
    }
    match code.parse::<u32>().ok()? & 0xff {
        8 => Some(
            "make the SQLite file in `queue_url` and its folder writable by this process \
             (its user, not root's, and not a read-only mount), and drop `?mode=ro` from \
             `queue_url` for a process that enqueues or delivers",
        ),
        10 => Some(
            "the disk under the SQLite file in `queue_url` failed a write: check that it has \
             free space, that no quota or file-size limit (`ulimit -f`, systemd's \
             `LimitFSIZE`) stops this process, and that the disk is healthy",
        ),
        13 => Some(
            "free disk space where the SQLite file in `queue_url` is (or lift the quota \
             that stops this process), or point `queue_url` at a disk with room",
        ),
        14 => Some(
            "check that the folder of the SQLite file in `queue_url` exists and this process \
             may write there; with `?mode=ro` the file must exist already",
        ),
        11 | 26 => Some(
            "the file in `queue_url` is damaged or not an SQLite database: point `queue_url` \
             at another file, or restore it from a backup",
        ),
        _ => None,
    }
}

/// An enqueue's `error`, `keyed` when every email had an idempotency key: one that may have
/// stored the email is transient then, as enqueueing again with the same key stores it once.
pub(crate) fn repeatable_if_keyed(keyed: bool, error: Error) -> Error {
    if !keyed {
        return error;
    }
    match error {
        Error::Queue {
            action,
            message,
            delivery: Delivery::Uncertain,
            ..
        } => Error::Queue {
            action,
            message,
            transient: true,
            delivery: Delivery::NotSent,
            advice: Advice::remedy(Some(
                "check that the queue database (`queue_url`) is running and reachable, then \
                 enqueue again with the same idempotency key: the email is stored once"
                    .to_owned(),
            )),
        },
        other => other,
    }
}

/// `error` after an earlier try of the same enqueue may have stored the email:
/// [`Delivery::Uncertain`], not transient, saying where to look.
pub(crate) fn may_be_queued(error: Error) -> Error {
    let (action, message) = match error {
        uncertain if uncertain.delivery() == Delivery::Uncertain => return uncertain,
        // A downstream store's own error keeps its variant.
        transport @ Error::Transport { .. } => return transport.with_uncertain_delivery(),
        Error::Queue {
            action, message, ..
        } => (action, message),
        // Anything else the later try failed with (an attachment's file gone, say) says
        // nothing of the earlier one: the email may still be queued.
        other => ("enqueue the email", other.to_string()),
    };
    Error::Queue {
        action,
        message: format!("{message} (an earlier try may have stored the email)"),
        transient: false,
        delivery: Delivery::Uncertain,
        advice: Advice::remedy(Some(MAY_BE_QUEUED_REMEDY.to_owned())),
    }
}

#[cfg(test)]
mod tests;
