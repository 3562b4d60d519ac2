-- Delivery notices the queue must remember across restarts (postgres). Keep in step with
-- ../sqlite/0004_delivery_notices.sql.
--
-- delay_warned_at: when the sender was sent the one delay warning (RFC 3464 "Action: delayed")
-- this recipient gets; NULL until then. Set before the warning is queued, so that a restart
-- never sends a second one.
ALTER TABLE queue_recipients ADD COLUMN delay_warned_at BIGINT;
