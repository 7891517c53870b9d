-- How long the lease a message was last claimed with lasts (milliseconds), so that an
-- operator's retry of an `uncertain` message can wait one lease after it ran out: its
-- worker, stalled past the lease, may still be sending it until then.
ALTER TABLE mail_queue ADD COLUMN lease_ms INTEGER;
