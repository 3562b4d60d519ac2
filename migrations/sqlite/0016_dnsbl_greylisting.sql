-- DNS blocklists and built-in greylisting (sqlite). Keep in step with ../postgres/0016_dnsbl_greylisting.sql.

-- The configured lists: a DNSBL (kind 'ip') or an RHSBL (kind 'domain') under its zone, with
-- the weight a listing adds to the score and which answers count ('' for any, see
-- model/dnsbl.rs).
CREATE TABLE dnsbl_lists (
    zone        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('ip', 'domain')),
    weight      BIGINT NOT NULL,
    codes       TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
-- Client networks and sender domains that are never checked.
CREATE TABLE dnsbl_whitelist (
    entry      TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
-- One row: the score at which a client is refused.
CREATE TABLE dnsbl_settings (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    threshold BIGINT NOT NULL
);
INSERT INTO dnsbl_settings (id, threshold) VALUES (1, 1);

-- One row: greylisting's delays in seconds (postgrey's defaults).
CREATE TABLE greylist_settings (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    delay        BIGINT NOT NULL,
    retry_window BIGINT NOT NULL,
    expire       BIGINT NOT NULL
);
INSERT INTO greylist_settings (id, delay, retry_window, expire) VALUES (1, 300, 172800, 3024000);
-- The recipient domains that are greylisted; a row goes with its domain.
CREATE TABLE greylist_domains (
    domain     TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
-- The triplets seen, written by the engines (not configuration: no revision), shared by every
-- engine on one database; pruned once past the retry window (never passed) or expiry.
CREATE TABLE greylist_triplets (
    client     TEXT NOT NULL,
    sender     TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    passed_at  BIGINT,
    PRIMARY KEY (client, sender, recipient)
);
CREATE INDEX greylist_triplets_last_seen ON greylist_triplets (last_seen);
