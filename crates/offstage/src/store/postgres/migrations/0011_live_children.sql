-- The live children: what the sweep for children whose parent ended reads
-- (`Store::children_to_stop`) every heartbeat interval. Partial, so it holds only children
-- that are queued or running: its reads and upkeep follow the live children, never the
-- history or a large queue of tasks that have no parent.
CREATE INDEX offstage_tasks_live_children ON offstage_tasks (parent, id)
    WHERE parent IS NOT NULL AND status IN ('queued', 'running');
