-- Postern configuration store, version 1 (SQLite). Keep in step with ../postgres/0001_config.sql.
-- Timestamps are seconds since the Unix epoch; booleans are 0/1 (they travel through sqlx::Any).

-- One row: bumped by every configuration change, read by other processes to notice one.
CREATE TABLE config_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO config_revision (id, revision) VALUES (1, 1);

CREATE TABLE domains (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('local', 'relay')),
    created_at BIGINT NOT NULL
);

CREATE TABLE mailboxes (
    address       TEXT PRIMARY KEY,
    domain        TEXT NOT NULL REFERENCES domains (name),
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    enabled       BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    quota_bytes   BIGINT CHECK (quota_bytes IS NULL OR quota_bytes > 0),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX mailboxes_domain ON mailboxes (domain);

CREATE TABLE aliases (
    source     TEXT PRIMARY KEY,
    domain     TEXT NOT NULL REFERENCES domains (name),
    created_at BIGINT NOT NULL
);
CREATE INDEX aliases_domain ON aliases (domain);

CREATE TABLE alias_destinations (
    source      TEXT NOT NULL REFERENCES aliases (source) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    destination TEXT NOT NULL,
    PRIMARY KEY (source, position),
    UNIQUE (source, destination)
);
CREATE INDEX alias_destinations_destination ON alias_destinations (destination);

CREATE TABLE transports (
    pattern       TEXT PRIMARY KEY,
    transport     TEXT NOT NULL,
    tls           TEXT NOT NULL CHECK (tls IN ('none', 'may', 'encrypt', 'verify')),
    auth_username TEXT,
    auth_password TEXT,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE trusted_networks (
    cidr        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
-- Postfix's mynetworks_style = host: only this machine relays without AUTH.
INSERT INTO trusted_networks (cidr, description, created_at) VALUES
    ('127.0.0.1/32', 'this host (IPv4)', 0),
    ('::1/128', 'this host (IPv6)', 0);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    revision    BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object      TEXT NOT NULL,
    before_json TEXT,
    after_json  TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
