-- The durable mail queue (PostgreSQL). Keep in step with ../sqlite/0002_queue.sql.
-- Timestamps are seconds since the Unix epoch; booleans are 0/1 (they travel through sqlx::Any).
--
-- Queue writes never touch config_revision or audit_log: they are not configuration, and the
-- engine must not rebuild its snapshot for every message. Instead, actions taken by another
-- process (CLI, console: retry, hold, release, delete, bounce) append a row to queue_events; the
-- engine tails it by id (a cheap indexed read of what is newer than the last id it saw), and on
-- Postgres the same transaction sends NOTIFY postern_queue so it need not wait for its poll.
-- Deliveries the engine records itself write no event: it already knows.

-- One row per message. node is the hostname of the machine that accepted it: machines sharing a
-- Postgres store each deliver their own mail.
CREATE TABLE queue_messages (
    id          TEXT COLLATE "C" PRIMARY KEY,
    node        TEXT NOT NULL,
    sender      TEXT NOT NULL,
    envid       TEXT,
    ret         TEXT CHECK (ret IS NULL OR ret IN ('full', 'hdrs')),
    smtputf8    BIGINT NOT NULL CHECK (smtputf8 IN (0, 1)),
    eight_bit   BIGINT NOT NULL CHECK (eight_bit IN (0, 1)),
    size        BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    client      TEXT NOT NULL,
    auth_user   TEXT,
    held        BIGINT NOT NULL DEFAULT 0 CHECK (held IN (0, 1)),
    updated_at  BIGINT NOT NULL
);
CREATE INDEX queue_messages_node ON queue_messages (node, held);
CREATE INDEX queue_messages_sender ON queue_messages (sender, id);
CREATE INDEX queue_messages_received_at ON queue_messages (received_at, id);

-- Ids compare bytewise (COLLATE "C") so that keyset pagination follows their time order.

-- Bodies apart, so that listing and loading envelopes never reads them; written in the same
-- transaction as the envelope.
CREATE TABLE queue_bodies (
    message_id TEXT PRIMARY KEY REFERENCES queue_messages (id) ON DELETE CASCADE,
    body       BYTEA NOT NULL
);

-- domain is the lower-cased domain of address, for the console's filter and per-domain queues.
CREATE TABLE queue_recipients (
    message_id      TEXT NOT NULL REFERENCES queue_messages (id) ON DELETE CASCADE,
    idx             BIGINT NOT NULL,
    address         TEXT NOT NULL,
    domain          TEXT NOT NULL,
    orcpt           TEXT,
    notify          BIGINT NOT NULL DEFAULT 0,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'deferred', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (message_id, idx)
);
CREATE INDEX queue_recipients_status ON queue_recipients (status, next_attempt_at);
CREATE INDEX queue_recipients_address ON queue_recipients (address);
CREATE INDEX queue_recipients_domain ON queue_recipients (domain);

-- Administrator actions, for the engine to tail. message_id is not a foreign key: the event of a
-- delete outlives its message.
CREATE TABLE queue_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('retry', 'hold', 'release', 'delete', 'bounce'))
);
