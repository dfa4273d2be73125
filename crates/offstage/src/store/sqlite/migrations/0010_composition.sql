-- Tasks that compose: child tasks, checkpoints and signals.
--
-- `parent` names the task that launched this one from its context (a child); `detached` says
-- the child is left running when its parent ends (it is still killed with its parent). The
-- index finds a task's children, live ones first for the cascade of a kill.
ALTER TABLE offstage_tasks ADD COLUMN parent BLOB;
ALTER TABLE offstage_tasks ADD COLUMN detached INTEGER NOT NULL DEFAULT 0;
CREATE INDEX offstage_tasks_by_parent ON offstage_tasks (parent, id) WHERE parent IS NOT NULL;

-- The last checkpoint the task saved (JSON text) and when: handed back to it when it runs
-- again (a retry, a node that died, a rerun from its checkpoint).
ALTER TABLE offstage_tasks ADD COLUMN checkpoint TEXT;
ALTER TABLE offstage_tasks ADD COLUMN checkpoint_at INTEGER;

-- Set while a running task waits for a signal: its name, and when the wait times out (NULL:
-- never). A waiting task holds no concurrency slot: limited claims do not count it.
ALTER TABLE offstage_tasks ADD COLUMN waiting_for TEXT;
ALTER TABLE offstage_tasks ADD COLUMN waiting_until INTEGER;

-- Signals: named messages with a JSON payload, sent to a task and kept until it receives them,
-- oldest first per name. `received_attempt` is the attempt that received one; it is `settled`
-- once that attempt saved a checkpoint after receiving it. A signal received by an earlier
-- attempt and not settled is received again by the next one (the first never got past it).
-- Times are microseconds since the Unix epoch; deleted with their task.
CREATE TABLE offstage_signals (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id          BLOB NOT NULL,
    name             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    sent_at          INTEGER NOT NULL,
    sent_by          TEXT,
    received_attempt INTEGER,
    received_at      INTEGER,
    settled          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX offstage_signals_by_task ON offstage_signals (task_id, name, seq);
