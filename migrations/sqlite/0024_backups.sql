-- Scheduled backups (sqlite). Keep in step with ../postgres/0024_backups.sql.

-- One row: where backups go (empty: off), every how many seconds (0: off), how many files to
-- keep, whether they include the spool and the Maildirs; and what the last one did, for the
-- dashboard (bookkeeping, written without a revision).
CREATE TABLE backup_settings (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    directory        TEXT NOT NULL,
    interval_seconds BIGINT NOT NULL,
    retention        BIGINT NOT NULL,
    with_spool       BIGINT NOT NULL,
    with_maildirs    BIGINT NOT NULL,
    last_at          BIGINT,
    last_file        TEXT,
    last_size        BIGINT,
    last_error       TEXT
);
INSERT INTO backup_settings (id, directory, interval_seconds, retention, with_spool, with_maildirs)
    VALUES (1, '', 0, 7, 1, 0);
