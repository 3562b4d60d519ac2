-- Milters (postgres). Keep in step with ../sqlite/0018_milters.sql.
--
-- milters: mail filters called during SMTP sessions, in order (position 1 first). address is
-- inet:host:port or unix:/path; default_action (accept, tempfail, reject) applies when the
-- milter is down, too slow or breaks the protocol; listeners is smtp, submission or
-- smtp,submission; timeouts are in milliseconds; enabled is 1 or 0.
CREATE TABLE milters (
    id BIGINT PRIMARY KEY,
    position BIGINT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL,
    default_action TEXT NOT NULL,
    connect_timeout_ms BIGINT NOT NULL,
    command_timeout_ms BIGINT NOT NULL,
    eom_timeout_ms BIGINT NOT NULL,
    listeners TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
