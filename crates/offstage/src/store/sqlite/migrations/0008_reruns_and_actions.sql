-- Reruns and bulk actions.
--
-- `rerun_of` names the task a task reruns (launched again from it, with the same or edited
-- args); the index finds a task's reruns for its page.
ALTER TABLE offstage_tasks ADD COLUMN rerun_of BLOB;
CREATE INDEX offstage_tasks_by_rerun_of ON offstage_tasks (rerun_of, id) WHERE rerun_of IS NOT NULL;

-- An action: one bulk kill, purge or rerun over the tasks matching a filter, as an operator
-- asked for it. Kept after it ends, as the record of who did what. `node` is the node that
-- runs it: an action still `running` whose node is no longer registered (it died, or shut
-- down before the action ended) reads `failed`, interrupted. Times are microseconds since
-- the Unix epoch; ids are 16 UUID bytes.
CREATE TABLE offstage_actions (
    id          BLOB PRIMARY KEY NOT NULL,
    verb        TEXT NOT NULL,
    -- The filter as JSON: the list's filter without its page (`before`, `limit`).
    filter      TEXT NOT NULL,
    -- For reruns: at most this many launches per second (NULL: as fast as they go).
    per_s       REAL,
    actor       TEXT NOT NULL,
    node        BLOB NOT NULL,
    status      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    matched     INTEGER NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    error       TEXT
) WITHOUT ROWID;
