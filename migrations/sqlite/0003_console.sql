-- The console and API (SQLite): administrators, their sessions, API tokens, and the delivery log
-- the console shows. Keep in step with ../postgres/0003_console.sql.
-- Timestamps are seconds since the Unix epoch; booleans are 0/1 (they travel through sqlx::Any).

-- domains is a space-separated list of the domains a domain-admin may manage (empty for admin).
CREATE TABLE admins (
    name                 TEXT PRIMARY KEY,
    password_hash        TEXT NOT NULL,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'domain-admin')),
    domains              TEXT NOT NULL DEFAULT '',
    must_change_password BIGINT NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

-- Only a hash of the session ID is kept: a copy of the database logs no one in.
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    admin      TEXT NOT NULL REFERENCES admins (name) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_admin ON console_sessions (admin);

-- id is the public half of a token (shown in lists); secret_hash the SHA-256 of the secret half.
-- domains: space-separated; empty means every domain its owner may manage.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    owner        TEXT NOT NULL REFERENCES admins (name) ON DELETE CASCADE,
    secret_hash  TEXT NOT NULL,
    access       TEXT NOT NULL CHECK (access IN ('read', 'write')),
    domains      TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT
);

-- What happened to each message: received, then one row per delivery attempt of a recipient.
-- Written by the engine in the same transactions as the queue, so it is as durable as the queue.
CREATE TABLE delivery_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    sender     TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    domain     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('received', 'delivered', 'deferred', 'failed')),
    reply      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX delivery_log_at ON delivery_log (at);
CREATE INDEX delivery_log_message ON delivery_log (message_id);

-- Which configuration revision each engine runs, so that the console can say when a change is
-- live (or why an engine refused it) without talking to the engine. seen_at is renewed while the
-- engine runs, so that one stopped for good stops counting.
CREATE TABLE engine_status (
    node        TEXT PRIMARY KEY,
    revision    BIGINT NOT NULL,
    applied_at  BIGINT NOT NULL,
    seen_at     BIGINT NOT NULL DEFAULT 0,
    refused     BIGINT,
    problems    TEXT NOT NULL DEFAULT ''
);
