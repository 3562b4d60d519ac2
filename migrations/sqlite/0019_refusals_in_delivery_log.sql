-- Refusals in the delivery log (sqlite). Keep in step with ../postgres/0019_refusals_in_delivery_log.sql.
--
-- The SMTP sessions' refusals (access rules, rate limits, DNS blocklists, greylisting, header
-- and body checks, policy services, milters) and the messages they accepted and dropped join
-- the delivery log: status rejected (a 5xx), tempfailed (a 4xx) or discarded; stage is where
-- in the session (connect, helo, mail, rcpt, data, auth), client the client's address, reason
-- what decided (which rule, list, service or milter). message_id is '' for them: nothing was
-- queued. SQLite cannot change a CHECK constraint in place, so the table is rebuilt with its
-- rows, IDs and indexes.
CREATE TABLE delivery_log_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    sender     TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    domain     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('received', 'delivered', 'deferred', 'failed',
                                               'rejected', 'tempfailed', 'discarded')),
    reply      TEXT NOT NULL DEFAULT '',
    stage      TEXT NOT NULL DEFAULT '',
    client     TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT ''
);
INSERT INTO delivery_log_new (id, at, message_id, sender, recipient, domain, status, reply)
    SELECT id, at, message_id, sender, recipient, domain, status, reply FROM delivery_log;
DROP TABLE delivery_log;
ALTER TABLE delivery_log_new RENAME TO delivery_log;
CREATE INDEX delivery_log_at ON delivery_log (at);
CREATE INDEX delivery_log_message ON delivery_log (message_id);
