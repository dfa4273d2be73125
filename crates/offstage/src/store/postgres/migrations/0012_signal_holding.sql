-- The tasks that hold a place under their type's concurrency limit: running, and not waiting
-- for a signal. Limited claims and the end of a signal wait count them (`signals::holding`) on
-- every freed slot; with this index the count reads only the holders (at most the limit), not
-- every running task of the type, so thousands of tasks waiting for approval cost nothing.
CREATE INDEX offstage_tasks_holding ON offstage_tasks (name)
    WHERE status = 'running' AND waiting_for IS NULL;
