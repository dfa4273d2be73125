-- Offstage schema version 1.
-- Times are microseconds since the Unix epoch, UTC. JSON columns hold JSON text. Ids (task
-- and node) are the 16 bytes of their UUIDv7, which sort in time order.

CREATE TABLE offstage_tasks (
    id            BLOB PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    args          TEXT NOT NULL,
    status        TEXT NOT NULL,
    state         TEXT NOT NULL DEFAULT '{}',
    return_value  TEXT,
    error         TEXT,
    launched_at   INTEGER NOT NULL,
    run_at        INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    attempt       INTEGER NOT NULL DEFAULT 0,
    priority      INTEGER NOT NULL DEFAULT 0,
    task_key      TEXT,
    owner         TEXT,
    timeout_ms    INTEGER,
    node          BLOB,
    -- Set when somebody asked to kill the task while it ran: the grace period in ms (-1 for
    -- the runtime's default). The node running it picks the request up on its heartbeat.
    kill_grace_ms INTEGER
) WITHOUT ROWID;

-- The queue: claimed in priority order, then launch (id) order. Covers the claim's filters, so
-- a claim reads only the index entries it takes (plus delayed ones ahead of them).
CREATE INDEX offstage_tasks_queue ON offstage_tasks (priority DESC, id, run_at, name)
    WHERE status = 'queued';
-- Kill requests waiting for their node's heartbeat (rare, so this index stays tiny). Recovery
-- finds running tasks through offstage_tasks_by_status.
CREATE INDEX offstage_tasks_kill_requests ON offstage_tasks (node) WHERE kill_grace_ms IS NOT NULL;
-- Listing, newest first, by each filter.
CREATE INDEX offstage_tasks_by_status ON offstage_tasks (status, id);
CREATE INDEX offstage_tasks_by_name ON offstage_tasks (name, id);
CREATE INDEX offstage_tasks_by_owner ON offstage_tasks (owner, id) WHERE owner IS NOT NULL;
CREATE INDEX offstage_tasks_by_key ON offstage_tasks (task_key, id) WHERE task_key IS NOT NULL;
-- Purge scans the table instead of keeping an index on finished_at: it is rare and deletes
-- most of what it reads, while an index would cost every task a write.

CREATE TABLE offstage_logs (
    task_id  BLOB NOT NULL,
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    level    TEXT NOT NULL,
    message  TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

CREATE TABLE offstage_nodes (
    id            BLOB PRIMARY KEY NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL
) WITHOUT ROWID;
