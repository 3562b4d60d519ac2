-- DKIM keys (postgres). Keep in step with ../sqlite/0010_dkim.sql.
-- One row a key; `name` is its record name (<selector>._domainkey.<domain>), the row's identity
-- that the sealed private key is bound to. Timestamps are seconds since the Unix epoch.
CREATE TABLE dkim_keys (
    name           TEXT PRIMARY KEY,
    domain         TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
    selector       TEXT NOT NULL,
    algorithm      TEXT NOT NULL CHECK (algorithm IN ('ed25519', 'rsa')),
    bits           BIGINT NOT NULL,
    public_key     TEXT NOT NULL,
    -- PKCS#8, sealed (sealed:v1:…) with the store's secret key.
    private_key    TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retiring', 'retired')),
    created_at     BIGINT NOT NULL,
    activated_at   BIGINT,
    retiring_at    BIGINT,
    retire_after   BIGINT,
    retired_at     BIGINT,
    -- The last look at the record: published, missing, different or failed, and what was found.
    dns_checked_at BIGINT,
    dns_status     TEXT,
    dns_found      TEXT,
    UNIQUE (domain, selector)
);
CREATE INDEX dkim_keys_domain ON dkim_keys (domain);
