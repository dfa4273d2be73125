-- Operations across the fleet: paused task types, what each node serves and runs, and when a
-- kill was asked for (so a reader can tell a kill that is overdue).
-- Times are microseconds since the Unix epoch, as in every other table.

-- A task type in this table is paused on every node: the claim statements pass over its
-- queued tasks, so none of them starts after the pause commits. Launches still go in.
CREATE TABLE offstage_paused (
    name       TEXT PRIMARY KEY NOT NULL,
    paused_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- What a node reported on its latest heartbeat, as JSON text: the task types it serves
-- in-process, its slots and running tasks, its connected workers and isolated processes.
-- NULL until its first report.
ALTER TABLE offstage_nodes ADD COLUMN report TEXT;

-- When a kill was asked for a running task (set with kill_grace_ms, cleared with it).
ALTER TABLE offstage_tasks ADD COLUMN kill_asked_at INTEGER;
