-- Refusals in the delivery log (postgres). Keep in step with ../sqlite/0019_refusals_in_delivery_log.sql.
--
-- The SMTP sessions' refusals (access rules, rate limits, DNS blocklists, greylisting, header
-- and body checks, policy services, milters) and the messages they accepted and dropped join
-- the delivery log: status rejected (a 5xx), tempfailed (a 4xx) or discarded; stage is where
-- in the session (connect, helo, mail, rcpt, data, auth), client the client's address, reason
-- what decided (which rule, list, service or milter). message_id is '' for them: nothing was
-- queued.
ALTER TABLE delivery_log DROP CONSTRAINT delivery_log_status_check;
ALTER TABLE delivery_log ADD CONSTRAINT delivery_log_status_check CHECK (status IN ('received',
    'delivered', 'deferred', 'failed', 'rejected', 'tempfailed', 'discarded'));
ALTER TABLE delivery_log ADD COLUMN stage TEXT NOT NULL DEFAULT '';
ALTER TABLE delivery_log ADD COLUMN client TEXT NOT NULL DEFAULT '';
ALTER TABLE delivery_log ADD COLUMN reason TEXT NOT NULL DEFAULT '';
