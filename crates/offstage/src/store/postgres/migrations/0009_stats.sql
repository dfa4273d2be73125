-- Stats: what each node counted of each task type in each minute (see `offstage::Stats`).
-- Rows are only ever added, one per (minute, node, task type) per flush, and merged when read;
-- the flush deletes those older than the retention. `minute` is whole minutes since the Unix
-- epoch; `wait` is the wait histogram as `bucket:count,...`; `queued` is the queue depth the
-- node sampled at the end of the minute (NULL: it took no sample).
CREATE TABLE offstage_stats (
    minute     bigint NOT NULL,
    node       uuid NOT NULL,
    name       text NOT NULL,
    started    bigint NOT NULL,
    completed  bigint NOT NULL,
    failed     bigint NOT NULL,
    killed     bigint NOT NULL,
    missing    bigint NOT NULL,
    retried    bigint NOT NULL,
    wait       text NOT NULL,
    queued     bigint
);
CREATE INDEX offstage_stats_by_minute ON offstage_stats (minute);
