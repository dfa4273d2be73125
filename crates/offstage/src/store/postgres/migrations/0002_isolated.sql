-- A launch can ask for process isolation on its own, so the record keeps it: whichever node
-- claims the task must know to run it in a worker process.
ALTER TABLE offstage_tasks ADD COLUMN isolated boolean NOT NULL DEFAULT false;
