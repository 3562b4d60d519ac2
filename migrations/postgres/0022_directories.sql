-- Per-domain LDAP / Active Directory settings (postgres). Keep in step with ../sqlite/0022_directories.sql.
-- A domain with a row takes the mailboxes it does not hold itself from the directory: RCPT looks
-- the address up, AUTH binds as the user's entry.
CREATE TABLE directories (
    domain         TEXT PRIMARY KEY REFERENCES domains (name) ON DELETE CASCADE,
    url            TEXT NOT NULL,
    starttls       BIGINT NOT NULL DEFAULT 0 CHECK (starttls IN (0, 1)),
    ca_pem         TEXT,
    bind_dn        TEXT NOT NULL,
    -- Sealed with the store's secret key (sealed:v1:...), bound to the domain; NULL: none.
    bind_password  TEXT,
    base_dn        TEXT NOT NULL,
    user_filter    TEXT NOT NULL,
    -- Address attributes, space-separated, in order of preference.
    attributes     TEXT NOT NULL,
    timeout_ms     BIGINT NOT NULL CHECK (timeout_ms > 0),
    cache_ttl_secs BIGINT NOT NULL CHECK (cache_ttl_secs >= 0),
    updated_at     BIGINT NOT NULL
);
