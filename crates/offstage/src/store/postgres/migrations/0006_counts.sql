-- Task counts by type and status. Every statement that launches, moves or deletes tasks adds
-- its change here in the same statement (a data-modifying WITH, see `counts.rs`), as rows of
-- differences: inserts only, so nodes writing at once never wait for each other on a counter
-- row. Reading sums the rows; each node's housekeeping folds them into one row per type and
-- status, so there are never many. Filled here from the tasks already stored.
CREATE TABLE offstage_task_counts (
    name    text NOT NULL,
    status  text NOT NULL,
    n       bigint NOT NULL
);
INSERT INTO offstage_task_counts (name, status, n)
    SELECT name, status, count(*) FROM offstage_tasks GROUP BY name, status;

-- Periodic work shared by every node on the database (retention): whichever node moves
-- `next_at` forward first takes the turn.
CREATE TABLE offstage_maintenance (
    job      text PRIMARY KEY,
    next_at  timestamptz NOT NULL
);
