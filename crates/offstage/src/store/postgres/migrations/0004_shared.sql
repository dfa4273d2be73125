-- Shared state: named JSON documents that tasks and handlers read as a snapshot, or lock to
-- read the latest value and write it back. The lock is a row-level claim held across nodes:
-- `lock_token` is set while someone holds it, `lock_node` names the node it lives on so that
-- recovery frees it when that node dies. A document a lock created but nobody wrote yet has
-- version 0 and value 'null'.
CREATE TABLE offstage_shared (
    name         text PRIMARY KEY,
    value        text NOT NULL,
    -- Bumped by every write, so readers can tell one value from the next.
    version      bigint NOT NULL,
    updated_at   timestamptz NOT NULL,
    lock_token   uuid,
    lock_node    uuid,
    -- Who holds it, for people reading the record (a task id, or a description).
    lock_holder  text,
    locked_at    timestamptz
);
CREATE INDEX offstage_shared_by_lock_node ON offstage_shared (lock_node) WHERE lock_node IS NOT NULL;
