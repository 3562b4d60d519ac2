-- Sender identity and console session expiry (postgres). Keep in step with
-- ../sqlite/0008_send_as_and_session_idle.sql.
--
-- mailboxes.send_as: the addresses (or @domain wildcards), space-separated, an authenticated
-- mailbox may use in MAIL FROM and in the From:/Sender: headers beyond its own and its aliases.
ALTER TABLE mailboxes ADD COLUMN send_as TEXT NOT NULL DEFAULT '';

-- console_sessions.last_seen: when the session was last used (epoch seconds, refreshed at most
-- about once a minute), for the idle limit. Sessions from before this migration count as idle
-- since 1970: their holders sign in again once.
ALTER TABLE console_sessions ADD COLUMN last_seen BIGINT NOT NULL DEFAULT 0;
