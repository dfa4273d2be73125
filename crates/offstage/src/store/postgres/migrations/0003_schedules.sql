-- Schedules: a task type launched on every tick of a cron expression. A tick is launched by
-- whichever node reaches it first: it moves `last_tick_at` forward only if it was earlier, and
-- inserts the task in the same transaction, so each tick launches exactly once across nodes.
CREATE TABLE offstage_schedules (
    name          text PRIMARY KEY,
    task_name     text NOT NULL,
    cron          text NOT NULL,
    args          text NOT NULL,
    -- Launch options (priority, timeout, key …) as JSON, applied to every launch.
    options       text NOT NULL DEFAULT '{}',
    paused        boolean NOT NULL DEFAULT false,
    -- The latest tick launched, and the task it launched.
    last_tick_at  timestamptz,
    last_task_id  uuid,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
