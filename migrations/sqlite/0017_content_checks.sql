-- Header and body checks, and policy services (sqlite). Keep in step with
-- ../postgres/0017_content_checks.sql.
--
-- content_checks: ordered regex rules (position 1 first) on the message once it is whole
-- (Postfix's header_checks and body_checks). part is 'header' (each header field unfolded, as
-- "Name: value") or 'body' (lines of the decoded text parts). pattern is the regex as written;
-- action as written: REJECT [5xx 5.x.x] [text], DISCARD, HOLD, WARN [text], IGNORE,
-- REPLACE Name: value.
CREATE TABLE content_checks (
    id BIGINT PRIMARY KEY,
    position BIGINT NOT NULL,
    part TEXT NOT NULL CHECK (part IN ('header', 'body')),
    pattern TEXT NOT NULL,
    action TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
-- policy_services: external policy servers (Postfix's SMTPD_POLICY_README protocol), asked in
-- name order at their stage. address is inet:host:port or unix:/path; on_failure is what a
-- service that hangs, dies or answers garbage means: 'dunno' (fail open) or 'defer' (fail
-- closed, 451 4.3.5). enabled is 1 or 0.
CREATE TABLE policy_services (
    name TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('rcpt', 'data')),
    timeout_ms BIGINT NOT NULL,
    on_failure TEXT NOT NULL CHECK (on_failure IN ('dunno', 'defer')),
    enabled BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
