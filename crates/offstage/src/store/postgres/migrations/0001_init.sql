-- Offstage schema version 1 on PostgreSQL. JSON columns hold the JSON text exactly as Offstage
-- wrote it (PostgreSQL never looks inside, so `text` rather than `jsonb`, which would reorder and
-- renormalise it). Times are timestamptz, which keeps the microseconds Offstage uses.

CREATE TABLE offstage_tasks (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    args          text NOT NULL,
    status        text NOT NULL,
    state         text NOT NULL DEFAULT '{}',
    return_value  text,
    error         text,
    launched_at   timestamptz NOT NULL,
    run_at        timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz,
    attempt       integer NOT NULL DEFAULT 0,
    priority      integer NOT NULL DEFAULT 0,
    task_key      text,
    owner         text,
    timeout_ms    bigint,
    node          uuid,
    -- Set when somebody asked to kill the task while it ran: the grace period in ms (-1 for the
    -- runtime's default). The node running it is told at once by a notice, and finds the request
    -- here on its next heartbeat should the notice be lost.
    kill_grace_ms bigint
);

-- The queue, in claim order. Partial, so it holds only what waits and stays small under load.
CREATE INDEX offstage_tasks_queue ON offstage_tasks (priority DESC, id) WHERE status = 'queued';
-- Running tasks by node: recovery of a dead node's tasks.
CREATE INDEX offstage_tasks_running ON offstage_tasks (node) WHERE status = 'running';
CREATE INDEX offstage_tasks_kill_requests ON offstage_tasks (node) WHERE kill_grace_ms IS NOT NULL;
-- Listing, newest first, by each filter.
CREATE INDEX offstage_tasks_by_status ON offstage_tasks (status, id);
CREATE INDEX offstage_tasks_by_name ON offstage_tasks (name, id);
CREATE INDEX offstage_tasks_by_owner ON offstage_tasks (owner, id) WHERE owner IS NOT NULL;
CREATE INDEX offstage_tasks_by_key ON offstage_tasks (task_key, id) WHERE task_key IS NOT NULL;

CREATE TABLE offstage_logs (
    task_id  uuid NOT NULL,
    seq      bigint NOT NULL,
    at       timestamptz NOT NULL,
    level    text NOT NULL,
    message  text NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE offstage_nodes (
    id            uuid PRIMARY KEY,
    host          text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL
);

-- Notices too large for a NOTIFY payload (8,000 bytes): the payload names the row instead.
-- Rows older than a minute are deleted by recovery, which every node runs each heartbeat.
CREATE TABLE offstage_notices (
    id       bigserial PRIMARY KEY,
    sent_at  timestamptz NOT NULL DEFAULT now(),
    payload  text NOT NULL
);
