-- A mailbox the server throttled (429 with Retry-After) is paused until then: no worker
-- claims its messages before that time (milliseconds since the epoch).
CREATE TABLE mail_queue_mailboxes (
    mailbox       TEXT    PRIMARY KEY,
    paused_until  INTEGER NOT NULL
);
