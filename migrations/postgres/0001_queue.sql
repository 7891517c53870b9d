-- The durable mail queue, in its own schema `mail_queue` (this migration runs with
-- search_path = mail_queue, so that its migration history never mixes with the host
-- application's). Times are milliseconds since the Unix epoch (UTC).
CREATE TABLE messages (
    id               TEXT    PRIMARY KEY,
    idempotency_key  TEXT    UNIQUE,
    mailbox          TEXT    NOT NULL,
    recipients       TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'uncertain', 'cancelled')),
    body             BYTEA,
    body_bytes       BIGINT  NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    due_at           BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    retry_from       BIGINT  NOT NULL,
    lease_token      TEXT,
    lease_owner      TEXT,
    lease_until      BIGINT,
    last_error       TEXT,
    remedy           TEXT,
    report           TEXT,
    parent_id        TEXT
);
CREATE INDEX messages_due ON messages (state, mailbox, due_at);
CREATE INDEX messages_lease ON messages (state, lease_until);

-- One row per delivery attempt started, for the per-mailbox rate limit.
CREATE TABLE attempts (
    mailbox     TEXT   NOT NULL,
    started_at  BIGINT NOT NULL
);
CREATE INDEX attempts_mailbox ON attempts (mailbox, started_at);

-- One row per sender mailbox: the claim transaction locks it, so that admission under the
-- mailbox's limits is decided by one worker at a time across the whole fleet.
CREATE TABLE mailboxes (
    mailbox TEXT PRIMARY KEY
);
