-- Schedules: a task type launched on every tick of a cron expression. A tick is launched by
-- whichever node reaches it first: it moves `last_tick_at` forward only if it was earlier, and
-- inserts the task in the same transaction, so each tick launches exactly once across nodes.
-- Times are microseconds since the Unix epoch, as in every other table.
CREATE TABLE offstage_schedules (
    name          TEXT PRIMARY KEY,
    task_name     TEXT NOT NULL,
    cron          TEXT NOT NULL,
    args          TEXT NOT NULL,
    -- Launch options (priority, timeout, key …) as JSON, applied to every launch.
    options       TEXT NOT NULL DEFAULT '{}',
    paused        INTEGER NOT NULL DEFAULT 0,
    -- The latest tick launched, and the task it launched.
    last_tick_at  INTEGER,
    last_task_id  BLOB,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
