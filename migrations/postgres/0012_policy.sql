-- Access rules (postgres). Keep in step with ../sqlite/0012_policy.sql.
--
-- policy_rules: ordered rules (position 1 first), each evaluated at one stage of the SMTP
-- dialog (connect, helo, mail, rcpt, data). Matchers are stored as written (a CIDR, or text:
-- exact, @domain, .suffix or /regex/); NULL matches anything. authenticated is 1, 0 or NULL.
-- action is the action as written: OK, REJECT 550 5.7.1 text, DEFER ..., DISCARD, HOLD,
-- REDIRECT address, BCC address.
CREATE TABLE policy_rules (
    id BIGINT PRIMARY KEY,
    position BIGINT NOT NULL,
    stage TEXT NOT NULL,
    client TEXT,
    rdns TEXT,
    helo TEXT,
    sender TEXT,
    recipient TEXT,
    authenticated BIGINT,
    action TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
