-- Queue actions limited to some recipients (postgres). Keep in step with
-- ../sqlite/0007_scoped_queue_actions.sql.
--
-- A domain-admin acts only on the recipients in its domains. When a message also goes to
-- another domain, its hold is kept per recipient (queue_recipients.held) rather than on the
-- message (queue_messages.held, the whole message, as a global admin or the CLI holds it): a
-- recipient is tried only when neither holds it.
--
-- queue_events.recipients names the recipients (their idx, space-separated) an action applied
-- to; NULL for the whole message. The engine needs it to leave the others alone.
--
-- Unlike what 0002 says, administrators' queue actions are now also written to audit_log (who,
-- which message and recipients), under the revision in force: they still claim none, so that
-- no engine rebuilds its snapshot for them.
ALTER TABLE queue_recipients ADD COLUMN held BIGINT NOT NULL DEFAULT 0 CHECK (held IN (0, 1));
ALTER TABLE queue_events ADD COLUMN recipients TEXT;
