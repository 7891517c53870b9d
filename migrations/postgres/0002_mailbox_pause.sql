-- A mailbox the server throttled (429 with Retry-After) is paused until then: no worker
-- claims its messages before that time (server clock, milliseconds since the epoch).
ALTER TABLE mailboxes ADD COLUMN paused_until BIGINT;
