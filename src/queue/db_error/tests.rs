//! Which database errors are transient, and the fixes the others name.

use super::*;

fn lost() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "connection reset by peer",
    ))
}

#[test]
fn errors_retrying_does_not_fix_name_their_fix() {
    for (code, fix) in [
        ("42P01", "open the queue once"),
        ("42501", "grant"),
        ("28P01", "password"),
        ("8", "writable"),
        ("1032", "writable"), // SQLITE_READONLY_DBMOVED: an extended code
        ("13", "disk space"),
        ("778", "file-size limit"), // SQLITE_IOERR_WRITE: a write the OS refused
        ("26", "not an SQLite database"),
    ] {
        let remedy = remedy_for_code(code).unwrap_or_default();
        assert!(remedy.contains(fix), "{code}: {remedy}");
    }
    // A code with no known fix, and SQLite's BUSY (transient, handled apart).
    assert_eq!(remedy_for_code("XX000"), None);
    assert_eq!(remedy_for_code("5"), None);
}

/// A database error with this code (and this message), as a driver reports it.
#[derive(Debug)]
struct Coded(&'static str, &'static str);

/// A database error with `code`.
fn coded(code: &'static str) -> sqlx::Error {
    sqlx::Error::Database(Box::new(Coded(code, "database error")))
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "database error {}: {}", self.0, self.1)
    }
}

impl std::error::Error for Coded {}

impl sqlx::error::DatabaseError for Coded {
    fn message(&self) -> &str {
        self.1
    }
    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.0.into())
    }
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}

/// Every busy or locked SQLite code is transient, its extended forms too — a worker
/// stops on a claim that fails for good, and gives up recording an outcome — and so are
/// PostgreSQL's; other codes are not.
#[test]
fn a_busy_database_is_transient_whatever_its_extended_code() {
    let transient = |code| db_error("claim a message", &coded(code)).is_transient();
    for code in [
        "5", "6", "261", "517", "773", "262", "518", "40001", "40P01", "57P01",
    ] {
        assert!(transient(code), "{code}");
    }
    for code in [
        "1", "8", "11", "13", "14", "26", "1032", "2067", "42P01", "23505",
    ] {
        assert!(!transient(code), "{code}");
    }
}

/// A restart, a failover and a pooler that cannot reach its server are outages, not
/// mistakes: a crash restart (57P02), every connection exception PgBouncer or the server
/// reports (class 08, PgBouncer's own failures as 08P01), and a read-only transaction
/// (25006) from a failover's address still on the demoted standby. A worker keeps claiming
/// after them; a waiting open waits.
#[test]
fn restarts_failovers_and_pooler_failures_are_transient() {
    for code in ["57P02", "08000", "08001", "08003", "08004", "08006"] {
        let error = db_error("claim a message", &coded(code));
        assert!(error.is_transient(), "{code}: {error}");
        let remedy = error.remedy().unwrap();
        assert!(
            remedy.contains("`queue_url`) is running"),
            "{code}: {remedy}"
        );
    }
    // PgBouncer's own outages of the server behind it.
    for said in [
        "server login has been failing, try again later (server_login_retry)",
        "pgbouncer cannot connect to server",
        "server conn crashed?",
        "query_wait_timeout",
        "no more connections allowed (max_client_conn)",
    ] {
        let error = db_error(
            "claim a message",
            &sqlx::Error::Database(Box::new(Coded("08P01", said))),
        );
        assert!(error.is_transient(), "{said}: {error}");
    }
    // A read-only server is waited out, saying where `queue_url` should point.
    let error = db_error("claim a message", &coded("25006"));
    assert!(error.is_transient(), "{error}");
    assert!(error.remedy().unwrap().contains("the primary"), "{error}");
}

/// PgBouncer turns a client away with `08P01` for a database or user it does not know too:
/// a mistake in `queue_url`, which waiting never fixes, saying what to check.
#[test]
fn a_pooler_refusing_an_unknown_name_is_a_wrong_queue_url() {
    for said in ["no such database: mail", "no such user: mailer"] {
        let error = db_error(
            "connect to the PostgreSQL queue",
            &sqlx::Error::Database(Box::new(Coded("08P01", said))),
        );
        assert!(!error.is_transient(), "{said}: {error}");
        assert!(error.remedy().unwrap().contains("[databases]"), "{error}");
    }
}

/// A session the server or a pooler ended under an `INSERT` or `COMMIT` (a connection
/// exception, the server shutting down) may have committed first: the enqueue is
/// uncertain, never "safe to enqueue again", which could store the email twice.
#[test]
fn an_enqueue_whose_session_ended_under_it_may_have_stored_the_email() {
    for code in ["08006", "08P01", "57P01", "57P02"] {
        let error = enqueue_error("enqueue the email", &coded(code));
        assert_eq!(error.delivery(), Delivery::Uncertain, "{code}: {error}");
        assert!(!error.is_transient(), "{code}: {error}");
    }
    // Refused before the statement could run: nothing was stored.
    let error = enqueue_error("enqueue the email", &coded("40001"));
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
}

/// A connection closed by the server, or one a pooler in front of a stopped server
/// closes during the handshake (a protocol error), is the database being unreachable
/// for now: a worker waits for it rather than stopping.
#[test]
fn a_connection_closed_at_once_is_transient() {
    for error in [
        lost(),
        sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into()),
        sqlx::Error::Protocol(
            "unexpected response from SSLRequest: 0x00 (sqlx_postgres::connection::tls:95)".into(),
        ),
        // A postmaster that cannot start a backend (out of processes or memory while a
        // fleet reconnects after a restart) answers with an ErrorResponse, `E`.
        sqlx::Error::Protocol("unexpected response from SSLRequest: 0x45".into()),
    ] {
        let error = db_error("claim a message", &error);
        assert!(error.is_transient(), "{error}");
        let remedy = error.remedy().unwrap();
        assert!(remedy.contains("`queue_url`) is running"), "{remedy}");
    }
}

/// A server that answers the connection request as no PostgreSQL does (an HTTP server's
/// `H`, an SMTP greeting's `2`), or asks for a sign-in the driver cannot do, is a wrong
/// `queue_url`: not transient, naming it and the fix.
#[test]
fn a_server_that_is_not_postgres_is_a_wrong_queue_url() {
    for message in [
        "unexpected response from SSLRequest: 0x48",
        "unexpected response from SSLRequest: 0x32 (sqlx_postgres::connection::tls:95)",
        "unexpected response from SSLRequest: 0x35", // an SMTP `554` greeting
        "unexpected response from SSLRequest: 0x2b", // POP3's `+OK`
        "unexpected response from SSLRequest: 0x2a", // IMAP's `* OK`
        "unexpected response from SSLRequest: 0x15", // a TLS alert
        "unexpected response from SSLRequest: 0x16", // a TLS handshake
        "unexpected response from SSLRequest: 0x4a", // MySQL's greeting: its length
        "unsupported authentication method: Gss",
    ] {
        let error = db_error("connect", &sqlx::Error::Protocol(message.into()));
        assert!(!error.is_transient(), "{error}");
        assert!(error.to_string().contains("`queue_url`"), "{error}");
        assert!(error.remedy().unwrap().contains("`queue_url`"), "{error}");
    }
}

/// The I/O error rustls's handshake fails with, as sqlx passes it on: `InvalidData`
/// around rustls's error, whose message is this.
#[derive(Debug)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refused {}

fn handshake_failed(message: &'static str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        Refused(message),
    ))
}

/// With `sslmode=verify-ca` or `verify-full`, a server certificate from an unknown CA or
/// for another host name is a setting to fix, naming `sslrootcert` and `sslmode`, not an
/// outage to wait out forever; and no enqueue was sent before it.
#[test]
fn a_refused_server_certificate_names_sslmode_and_sslrootcert() {
    for message in [
        "invalid peer certificate: UnknownIssuer",
        "invalid peer certificate: certificate not valid for name \"db.example.org\"; \
         certificate is only valid for DnsName(\"localhost\")",
    ] {
        let error = db_error("connect", &handshake_failed(message));
        assert!(!error.is_transient(), "{error}");
        assert!(error.to_string().contains("certificate"), "{error}");
        let remedy = error.remedy().unwrap();
        for setting in ["`queue_url`", "sslrootcert", "sslmode"] {
            assert!(remedy.contains(setting), "{setting}: {remedy}");
        }
        let error = enqueue_error("enqueue the email", &handshake_failed(message));
        assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    }
    // Other broken TLS data is the connection failing, as before.
    assert!(db_error("connect", &handshake_failed("received corrupt message")).is_transient());
}

#[test]
fn an_enqueue_whose_answer_was_lost_may_have_stored_the_email() {
    let error = enqueue_error("enqueue the email", &lost());
    assert_eq!(error.delivery(), Delivery::Uncertain);
    assert!(
        !error.is_transient(),
        "enqueueing again could store it twice"
    );
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("mailctl queue list"), "{remedy}");
    assert!(remedy.contains("idempotency_key"), "{remedy}");
}

#[test]
fn an_enqueue_refused_before_anything_was_sent_stays_transient() {
    for error in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed] {
        let error = enqueue_error("enqueue the email", &error);
        assert_eq!(error.delivery(), Delivery::NotSent);
        assert!(error.is_transient(), "{error}");
    }
}

#[test]
fn with_an_idempotency_key_enqueueing_again_is_safe() {
    let error = repeatable_if_keyed(true, enqueue_error("enqueue the email", &lost()));
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    assert!(error.remedy().unwrap().contains("same idempotency key"));
}

#[test]
fn a_failure_after_a_try_that_may_have_stored_the_email_is_uncertain() {
    let gone = Error::Io {
        action: "read the attachment",
        path: "report.csv".into(),
        setting: None,
        source: std::sync::Arc::new(std::io::Error::from(std::io::ErrorKind::NotFound)),
    };
    for error in [
        db_error("enqueue the email", &sqlx::Error::PoolTimedOut),
        gone,
        Error::invalid_message("subject", "too long"),
    ] {
        let error = may_be_queued(error);
        assert_eq!(error.delivery(), Delivery::Uncertain, "{error}");
        assert!(!error.is_transient());
        assert!(error.to_string().contains("an earlier try"), "{error}");
        assert!(error.remedy().unwrap().contains("mailctl queue list"));
    }
}

/// Errors trying again does not fix name what to fix also for the sign-in refusals, the
/// missing database, a full PostgreSQL disk and a missing SQLite folder.
#[test]
fn sign_in_database_and_disk_errors_name_their_fix() {
    for (operation, code, fix) in [
        ("connect to the PostgreSQL queue", "28000", "pg_hba.conf"),
        (
            "connect to the PostgreSQL queue",
            "3D000",
            "create the database",
        ),
        (
            "enqueue",
            "53100",
            "free disk space on the PostgreSQL server",
        ),
        ("open the SQLite queue", "14", "folder of the SQLite file"),
        ("open the SQLite queue", "11", "not an SQLite database"),
    ] {
        let error = db_error(operation, &coded(code));
        assert!(!error.is_transient(), "{code}: {error}");
        let remedy = error.remedy().unwrap_or_default();
        assert!(remedy.contains(fix), "{code}: {remedy}");
    }
}

/// A migration fails on a statement as any statement does: the statement's own error
/// decides whether it is transient and what to fix (a fast restart waits; a missing grant
/// names the grant), under the migration's message.
#[test]
fn a_failed_migration_is_classified_by_its_statements_error() {
    use sqlx::migrate::MigrateError;
    let refused = || coded("42501");
    for migration in [
        MigrateError::Execute(refused()),
        MigrateError::ExecuteMigration(refused(), 20_250_101),
    ] {
        let error = db_error(
            "migrate the queue",
            &sqlx::Error::Migrate(Box::new(migration)),
        );
        assert!(!error.is_transient(), "{error}");
        assert!(error.remedy().unwrap().contains("grant"), "{error}");
        assert!(error.to_string().contains("migration"), "{error}");
    }
    let restarted = sqlx::Error::Migrate(Box::new(MigrateError::Execute(coded("57P01"))));
    let error = db_error("migrate the queue", &restarted);
    assert!(error.is_transient(), "{error}");
    assert!(
        error.remedy().unwrap().contains("`queue_url`) is running"),
        "{error}"
    );
    // A migration that failed for no statement (one edited after it ran) has no code.
    let edited = sqlx::Error::Migrate(Box::new(MigrateError::VersionMismatch(1)));
    assert!(!db_error("migrate the queue", &edited).is_transient());
}

/// An error that already says the email may have been stored is passed on as it is, not
/// told twice that an earlier try may have stored it.
#[test]
fn an_uncertain_enqueue_stays_as_it_said() {
    let uncertain = enqueue_error("enqueue the email", &lost());
    let said = uncertain.to_string();
    let error = may_be_queued(uncertain);
    assert_eq!(error.delivery(), Delivery::Uncertain);
    assert_eq!(error.to_string(), said);
}
