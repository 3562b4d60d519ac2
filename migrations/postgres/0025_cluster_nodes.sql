-- Several engines on one store (issue 19). Keep in step with the other backend's file of the
-- same name. Timestamps are seconds since the Unix epoch; booleans are 0/1.
--
-- One row per engine (node). The node's lease covers every message whose queue_messages.node
-- names it: the heartbeat renews lease_until, one row for the whole queue it holds, instead of
-- a lease per message. Once lease_until has passed (the node is dead, or drained and gave its
-- lease up), other nodes claim its messages by rewriting queue_messages.node, in batches.
--
-- state: 'alive'; 'draining' (asked to drain: stop taking mail, finish what is running, give the
-- queue up); 'drained' (done; lease_until = 0). Dead is not stored: it is a lapsed lease.
-- smtp/console: the roles the node runs. dead_after: the node's own dead time, in seconds.
CREATE TABLE cluster_nodes (
    node        TEXT PRIMARY KEY,
    state       TEXT NOT NULL DEFAULT 'alive' CHECK (state IN ('alive', 'draining', 'drained')),
    smtp        BIGINT NOT NULL DEFAULT 1 CHECK (smtp IN (0, 1)),
    console     BIGINT NOT NULL DEFAULT 1 CHECK (console IN (0, 1)),
    started_at  BIGINT NOT NULL,
    seen_at     BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    dead_after  BIGINT NOT NULL,
    version     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX cluster_nodes_lease ON cluster_nodes (lease_until);
