-- Inbound mail-authentication policy (sqlite). Keep in step with ../postgres/0013_mail_auth_policy.sql.
-- One row for the global policy (scope '*') and one per domain that overrides it; an override
-- goes with its domain.
CREATE TABLE mail_auth_policies (
    scope            TEXT PRIMARY KEY,
    dmarc_reject     TEXT NOT NULL CHECK (dmarc_reject IN ('reject', 'quarantine', 'record')),
    dmarc_quarantine TEXT NOT NULL CHECK (dmarc_quarantine IN ('hold', 'tag', 'record')),
    spf_fail         TEXT NOT NULL CHECK (spf_fail IN ('reject', 'tag', 'record')),
    temperror        TEXT NOT NULL CHECK (temperror IN ('defer', 'accept')),
    updated_at       BIGINT NOT NULL
);
-- What the inbound checks found (spf=… dkim=… arc=… dmarc=…), for the log, the console and the
-- API; NULL for mail that was not checked.
ALTER TABLE queue_messages ADD COLUMN auth_results TEXT;
