-- Rate limits (postgres). Keep in step with ../sqlite/0015_rate_limits.sql.
--
-- rate_limits: at most threshold events of measure (connections, messages, recipients,
-- auth-failures) per key (client-ip, client-network, user, sender-domain) in window_secs.
-- The engine counts in memory (server/src/policy/rate.rs).
CREATE TABLE rate_limits (
    id BIGINT PRIMARY KEY,
    rate_key TEXT NOT NULL,
    measure TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    window_secs BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

-- What protects a fresh install: password guessing from one address is refused for the rest of
-- the hour after 30 failures (the per-account delays of store/src/auth slow it before that), a
-- client opening connections in a loop is turned away, and a stolen password cannot send to
-- more than a thousand recipients an hour. Trusted networks are exempt (see the README).
INSERT INTO rate_limits (id, rate_key, measure, threshold, window_secs, description, created_at)
VALUES
    (1, 'client-ip', 'auth-failures', 30, 3600, 'password guessing from one address', 0),
    (2, 'client-ip', 'connections', 60, 60, 'connection floods from one address', 0),
    (3, 'user', 'recipients', 1000, 3600, 'a stolen password sending spam', 0);

-- rate_counters: the counters nearest their thresholds, as each engine (node) last published
-- them (every few seconds, its rows replaced whole): the console reads them here, as it never
-- calls into an engine.
CREATE TABLE rate_counters (
    node TEXT NOT NULL,
    limit_id BIGINT NOT NULL,
    subject TEXT NOT NULL,
    count BIGINT NOT NULL,
    threshold BIGINT NOT NULL,
    resets_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (node, limit_id, subject)
);
