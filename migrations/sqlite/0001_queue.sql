-- The durable mail queue. Times are milliseconds since the Unix epoch (UTC).
CREATE TABLE mail_queue (
    id               TEXT    PRIMARY KEY,
    idempotency_key  TEXT    UNIQUE,
    mailbox          TEXT    NOT NULL,
    recipients       TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'uncertain', 'cancelled')),
    body             BLOB,
    body_bytes       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    due_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    retry_from       INTEGER NOT NULL,
    lease_token      TEXT,
    lease_owner      TEXT,
    lease_until      INTEGER,
    last_error       TEXT,
    remedy           TEXT,
    report           TEXT,
    parent_id        TEXT
);
CREATE INDEX mail_queue_due ON mail_queue (state, mailbox, due_at);
CREATE INDEX mail_queue_lease ON mail_queue (state, lease_until);

-- One row per delivery attempt started, for the per-mailbox rate limit.
CREATE TABLE mail_queue_attempts (
    mailbox     TEXT    NOT NULL,
    started_at  INTEGER NOT NULL
);
CREATE INDEX mail_queue_attempts_mailbox ON mail_queue_attempts (mailbox, started_at);
