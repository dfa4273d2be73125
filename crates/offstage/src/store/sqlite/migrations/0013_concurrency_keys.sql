-- Concurrency keys (fairness between tenants). A task of a type with a per-key limit carries
-- the key it was launched with, resolved once at launch and never changed.
ALTER TABLE offstage_tasks ADD COLUMN concurrency_key TEXT;

-- Each key's oldest due task, for the claim of a keyed type: partial, so it holds only the
-- queued tasks that have a key, and a claim reads one key's head, not the backlog.
CREATE INDEX offstage_tasks_key_queue ON offstage_tasks
    (name, concurrency_key, priority DESC, id, run_at)
    WHERE status = 'queued' AND concurrency_key IS NOT NULL;

-- The queued tasks launched (or queued again) to run later: what the claimer reads to know
-- when to wake (`Store::next_run_at`). Partial, so a backlog of tasks due at once (100,000 of
-- one tenant) is not in it, and a claimer held back by a limit does not scan that backlog on
-- every round; launches of tasks due at once do not write it.
CREATE INDEX offstage_tasks_later ON offstage_tasks (run_at)
    WHERE status = 'queued' AND run_at > launched_at;

-- The keys with work, per task type: how many of a key's tasks are queued, and how many hold
-- a place (running, not waiting for a signal). Kept exact by the triggers below, in the
-- transaction of every write that changes them, so a claim reads one row per key with work
-- whatever the backlog. A key with nothing queued or running has no row.
CREATE TABLE offstage_concurrency_key_counts (
    name             TEXT NOT NULL,
    concurrency_key  TEXT NOT NULL,
    queued           INTEGER NOT NULL,
    running          INTEGER NOT NULL,
    PRIMARY KEY (name, concurrency_key)
) WITHOUT ROWID;

-- When each key was last served by a claim: a number that only grows per task type (the
-- claim's time in microseconds since the Unix epoch, or one more than the last turn given, if
-- that is later), so a claim serves the least recently served keys first. Written by claims
-- only.
CREATE TABLE offstage_concurrency_turns (
    name             TEXT NOT NULL,
    concurrency_key  TEXT NOT NULL,
    served           INTEGER NOT NULL,
    PRIMARY KEY (name, concurrency_key)
) WITHOUT ROWID;
CREATE INDEX offstage_concurrency_turns_by_served ON offstage_concurrency_turns (name, served);

CREATE TRIGGER offstage_key_counts_insert AFTER INSERT ON offstage_tasks
WHEN NEW.concurrency_key IS NOT NULL AND NEW.status IN ('queued', 'running')
BEGIN
    INSERT INTO offstage_concurrency_key_counts (name, concurrency_key, queued, running)
    VALUES (NEW.name, NEW.concurrency_key, NEW.status = 'queued',
            NEW.status = 'running' AND NEW.waiting_for IS NULL)
    ON CONFLICT (name, concurrency_key) DO UPDATE
        SET queued = queued + excluded.queued, running = running + excluded.running;
END;

CREATE TRIGGER offstage_key_counts_update AFTER UPDATE OF status, waiting_for ON offstage_tasks
WHEN NEW.concurrency_key IS NOT NULL
    AND ((OLD.status = 'queued') <> (NEW.status = 'queued')
         OR (OLD.status = 'running' AND OLD.waiting_for IS NULL)
            <> (NEW.status = 'running' AND NEW.waiting_for IS NULL))
BEGIN
    INSERT INTO offstage_concurrency_key_counts (name, concurrency_key, queued, running)
    VALUES (NEW.name, NEW.concurrency_key,
            (NEW.status = 'queued') - (OLD.status = 'queued'),
            (NEW.status = 'running' AND NEW.waiting_for IS NULL)
                - (OLD.status = 'running' AND OLD.waiting_for IS NULL))
    ON CONFLICT (name, concurrency_key) DO UPDATE
        SET queued = queued + excluded.queued, running = running + excluded.running;
    DELETE FROM offstage_concurrency_key_counts
    WHERE name = NEW.name AND concurrency_key = NEW.concurrency_key
        AND queued = 0 AND running = 0;
END;

CREATE TRIGGER offstage_key_counts_delete AFTER DELETE ON offstage_tasks
WHEN OLD.concurrency_key IS NOT NULL AND OLD.status IN ('queued', 'running')
BEGIN
    UPDATE offstage_concurrency_key_counts
    SET queued = queued - (OLD.status = 'queued'),
        running = running - (OLD.status = 'running' AND OLD.waiting_for IS NULL)
    WHERE name = OLD.name AND concurrency_key = OLD.concurrency_key;
    DELETE FROM offstage_concurrency_key_counts
    WHERE name = OLD.name AND concurrency_key = OLD.concurrency_key
        AND queued = 0 AND running = 0;
END;
