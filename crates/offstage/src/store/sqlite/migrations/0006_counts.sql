-- Task counts by type and status, kept by the writer in the transaction of every write that
-- launches, moves or deletes a task (see `counts.rs`), so reading them costs a row per type
-- and status however many tasks there are. Filled here from the tasks already stored.
CREATE TABLE offstage_task_counts (
    name    TEXT NOT NULL,
    status  TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (name, status)
) WITHOUT ROWID;
INSERT INTO offstage_task_counts (name, status, n)
    SELECT name, status, count(*) FROM offstage_tasks GROUP BY name, status;

-- Periodic work shared by every node on the database (retention): whichever node moves
-- `next_at` forward first takes the turn. Microseconds since the Unix epoch.
CREATE TABLE offstage_maintenance (
    job      TEXT PRIMARY KEY NOT NULL,
    next_at  INTEGER NOT NULL
) WITHOUT ROWID;
