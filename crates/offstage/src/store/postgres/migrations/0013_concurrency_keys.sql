-- Concurrency keys (fairness between tenants). A task of a type with a per-key limit carries
-- the key it was launched with, resolved once at launch and never changed.
ALTER TABLE offstage_tasks ADD COLUMN concurrency_key text;

-- Each key's oldest due task, for the claim of a keyed type: partial, so it holds only the
-- queued tasks that have a key, and a claim reads one key's head, not the backlog.
CREATE INDEX offstage_tasks_key_queue ON offstage_tasks
    (name, concurrency_key, priority DESC, id)
    WHERE status = 'queued' AND concurrency_key IS NOT NULL;

-- The queued tasks launched (or queued again) to run later: what the claimer reads to know
-- when to wake (`Store::next_run_at`). Partial, so a backlog of tasks due at once (100,000 of
-- one tenant) is not in it, and a claimer held back by a limit does not scan that backlog on
-- every round; launches of tasks due at once do not write it.
CREATE INDEX offstage_tasks_later ON offstage_tasks (run_at)
    WHERE status = 'queued' AND run_at > launched_at;

-- The keys with work, per task type, as differences: each statement that changes how many of
-- a key's tasks are queued, or hold a place (running, not waiting for a signal), appends one
-- row per key it changed (the triggers below), in its own transaction. Only inserts, so
-- nodes never wait for each other on a counter, and never deadlock over two keys; each
-- node's housekeeping folds the rows back into one per key (`keys::fold`).
CREATE TABLE offstage_concurrency_key_counts (
    name             text NOT NULL,
    concurrency_key  text NOT NULL,
    queued           bigint NOT NULL,
    running          bigint NOT NULL
);
CREATE INDEX offstage_concurrency_key_counts_by_key
    ON offstage_concurrency_key_counts (name, concurrency_key);

-- When each key was last served by a claim: a number that only grows per task type (the
-- claim's time in microseconds since the Unix epoch, or one more than the last turn given, if
-- that is later), so a claim serves the least recently served keys first. Written by claims
-- only, under the claiming type's advisory lock.
CREATE TABLE offstage_concurrency_turns (
    name             text NOT NULL,
    concurrency_key  text NOT NULL,
    served           bigint NOT NULL,
    PRIMARY KEY (name, concurrency_key)
);
CREATE INDEX offstage_concurrency_turns_by_served ON offstage_concurrency_turns (name, served);

CREATE FUNCTION offstage_key_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offstage_concurrency_key_counts (name, concurrency_key, queued, running)
    SELECT name, concurrency_key,
           count(*) FILTER (WHERE status = 'queued'),
           count(*) FILTER (WHERE status = 'running' AND waiting_for IS NULL)
    FROM new_rows
    WHERE concurrency_key IS NOT NULL AND status IN ('queued', 'running')
    GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE FUNCTION offstage_key_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offstage_concurrency_key_counts (name, concurrency_key, queued, running)
    SELECT n.name, n.concurrency_key,
           sum((n.status = 'queued')::int - (o.status = 'queued')::int),
           sum((n.status = 'running' AND n.waiting_for IS NULL)::int
               - (o.status = 'running' AND o.waiting_for IS NULL)::int)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.concurrency_key IS NOT NULL
    GROUP BY 1, 2
    HAVING sum((n.status = 'queued')::int - (o.status = 'queued')::int) <> 0
        OR sum((n.status = 'running' AND n.waiting_for IS NULL)::int
               - (o.status = 'running' AND o.waiting_for IS NULL)::int) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION offstage_key_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offstage_concurrency_key_counts (name, concurrency_key, queued, running)
    SELECT name, concurrency_key,
           -count(*) FILTER (WHERE status = 'queued'),
           -count(*) FILTER (WHERE status = 'running' AND waiting_for IS NULL)
    FROM old_rows
    WHERE concurrency_key IS NOT NULL AND status IN ('queued', 'running')
    GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE TRIGGER offstage_key_counts_insert AFTER INSERT ON offstage_tasks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION offstage_key_counts_inserted();
CREATE TRIGGER offstage_key_counts_update AFTER UPDATE ON offstage_tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION offstage_key_counts_updated();
CREATE TRIGGER offstage_key_counts_delete AFTER DELETE ON offstage_tasks
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION offstage_key_counts_deleted();
