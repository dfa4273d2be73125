-- Stats: what each node counted of each task type in each minute (see `offstage::Stats`).
-- Rows are only ever added, one per (minute, node, task type) per flush, and merged when read;
-- the flush deletes those older than the retention. `minute` is whole minutes since the Unix
-- epoch; `wait` is the wait histogram as `bucket:count,...`; `queued` is the queue depth the
-- node sampled at the end of the minute (NULL: it took no sample).
CREATE TABLE offstage_stats (
    minute     INTEGER NOT NULL,
    node       BLOB NOT NULL,
    name       TEXT NOT NULL,
    started    INTEGER NOT NULL,
    completed  INTEGER NOT NULL,
    failed     INTEGER NOT NULL,
    killed     INTEGER NOT NULL,
    missing    INTEGER NOT NULL,
    retried    INTEGER NOT NULL,
    wait       TEXT NOT NULL,
    queued     INTEGER
);
CREATE INDEX offstage_stats_by_minute ON offstage_stats (minute);
