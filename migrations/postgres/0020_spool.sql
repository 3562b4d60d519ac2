-- Message bodies stored apart from the envelope (postgres). Keep in step with
-- ../sqlite/0020_spool.sql. See store/src/spool.rs.
--
-- queue_messages.body_ref names a body too large to stay inline in queue_bodies: 'file:NAME'
-- is <data_dir>/spool/NAME, 'db:NAME' the rows of queue_body_chunks; NULL keeps it inline.
ALTER TABLE queue_messages ADD COLUMN body_ref TEXT;

-- A body in rows of 256 KiB, written and committed before the envelope that names it (so no
-- foreign key); created_at (epoch seconds) lets the sweep tell an orphan from a body whose
-- envelope is about to commit.
CREATE TABLE queue_body_chunks (
    body_ref   TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    data       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (body_ref, seq)
);

-- Spool files of removed messages, unlinked after the commit that removed them.
CREATE TABLE queue_body_trash (
    body_ref TEXT PRIMARY KEY
);

-- However a message goes (delivered, deleted, expired), its stored body goes with it.
CREATE FUNCTION queue_messages_body_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM queue_body_chunks WHERE body_ref = OLD.body_ref;
    IF OLD.body_ref LIKE 'file:%' THEN
        INSERT INTO queue_body_trash (body_ref) VALUES (OLD.body_ref) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER queue_messages_body_gone AFTER DELETE ON queue_messages
    FOR EACH ROW WHEN (OLD.body_ref IS NOT NULL) EXECUTE FUNCTION queue_messages_body_gone();
