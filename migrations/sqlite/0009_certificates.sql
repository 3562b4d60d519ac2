-- TLS certificates, ACME accounts and orders, MTA-STS policies (sqlite). Keep in step with
-- ../postgres/0009_certificates.sql.

-- Certificates the listeners serve, chosen by SNI. names: the leaf's DNS names, space-separated.
-- key_pem is sealed (store/src/secrets.rs) for its row: it opens nowhere else.
CREATE TABLE certificates (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    names          TEXT NOT NULL,
    issuer         TEXT NOT NULL,
    not_before     BIGINT NOT NULL,
    not_after      BIGINT NOT NULL,
    source         TEXT NOT NULL CHECK (source IN ('acme', 'upload')),
    acme_directory TEXT,
    chain_pem      TEXT NOT NULL,
    key_pem        TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- One ACME account per directory URL; credentials is instant-acme's JSON, sealed.
CREATE TABLE acme_accounts (
    directory   TEXT PRIMARY KEY,
    contact     TEXT,
    credentials TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Requests for a certificate and their progress. certificate_id and replaces are not foreign
-- keys: the order's history stays when its certificate is removed.
CREATE TABLE acme_orders (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    names           TEXT NOT NULL,
    challenge       TEXT NOT NULL CHECK (challenge IN ('http-01', 'tls-alpn-01')),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'validating', 'issued', 'failed')),
    error           TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    certificate_id  BIGINT,
    replaces        BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX acme_orders_due ON acme_orders (state, next_attempt_at);

-- MTA-STS policies hosted for a domain (RFC 8461). mx: the MX patterns, space-separated (empty:
-- the host name). policy_id changes whenever the policy does (the _mta-sts TXT record's id).
-- report_to: the TLS-RPT rua (RFC 8460), empty for mailto:postmaster@<domain>.
CREATE TABLE mta_sts_policies (
    domain     TEXT PRIMARY KEY REFERENCES domains (name) ON DELETE CASCADE,
    mode       TEXT NOT NULL CHECK (mode IN ('testing', 'enforce', 'none')),
    max_age    BIGINT NOT NULL CHECK (max_age > 0),
    mx         TEXT NOT NULL DEFAULT '',
    policy_id  TEXT NOT NULL,
    report_to  TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL
);
