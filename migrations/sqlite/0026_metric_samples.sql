-- The engines' counters over time (sqlite). Keep in step with ../postgres/0026_metric_samples.sql.

-- metric_samples: what each engine (node) counted in one minute, as the increase of its
-- Prometheus counters since its previous sample (deltas, so that a restart, which starts the
-- counters again from 0, loses nothing and counts nothing twice). The dashboard's chart sums
-- the nodes' rows per hour; the hourly upkeep trims them with the delivery log.
CREATE TABLE metric_samples (
    node       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    received   BIGINT NOT NULL,
    delivered  BIGINT NOT NULL,
    deferred   BIGINT NOT NULL,
    bounced    BIGINT NOT NULL,
    rejected   BIGINT NOT NULL,
    tempfailed BIGINT NOT NULL,
    discarded  BIGINT NOT NULL,
    PRIMARY KEY (node, at)
);
CREATE INDEX metric_samples_at ON metric_samples (at);
