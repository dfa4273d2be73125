-- Shared state: named JSON documents that tasks and handlers read as a snapshot, or lock to
-- read the latest value and write it back. The lock is a row-level claim held across nodes:
-- `lock_token` is set while someone holds it, `lock_node` names the node it lives on so that
-- recovery frees it when that node dies. A document a lock created but nobody wrote yet has
-- version 0 and value 'null'. Times are microseconds since the Unix epoch; the token and the
-- node are 16 UUID bytes, like every id in this schema.
CREATE TABLE offstage_shared (
    name         TEXT PRIMARY KEY,
    value        TEXT NOT NULL,
    -- Bumped by every write, so readers can tell one value from the next.
    version      INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    lock_token   BLOB,
    lock_node    BLOB,
    -- Who holds it, for people reading the record (a task id, or a description).
    lock_holder  TEXT,
    locked_at    INTEGER
);
CREATE INDEX offstage_shared_by_lock_node ON offstage_shared (lock_node) WHERE lock_node IS NOT NULL;
