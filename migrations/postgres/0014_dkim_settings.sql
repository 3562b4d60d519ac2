-- Per-domain DKIM settings (postgres). Keep in step with ../sqlite/0014_dkim_settings.sql.
-- A domain without a row has the defaults: no automatic rotation, relayed mail not signed.
CREATE TABLE dkim_settings (
    domain       TEXT PRIMARY KEY REFERENCES domains (name) ON DELETE CASCADE,
    -- Generate the next key once the active one has signed this many days; NULL: never.
    rotate_days  BIGINT CHECK (rotate_days IS NULL OR rotate_days > 0),
    -- Sign mail relayed for others (neither authenticated nor from a trusted network) whose
    -- From: is this domain.
    sign_relayed BIGINT NOT NULL DEFAULT 0 CHECK (sign_relayed IN (0, 1)),
    updated_at   BIGINT NOT NULL
);
