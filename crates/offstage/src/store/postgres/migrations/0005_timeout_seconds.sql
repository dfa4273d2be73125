-- A schedule's launch options (JSON in `options`) gave their timeout as `timeout`, in
-- milliseconds; they give it as `timeout_s`, in seconds, like a launch and a task record.
UPDATE offstage_schedules
SET options = (
    CASE WHEN jsonb_typeof(options::jsonb -> 'timeout') = 'number'
         THEN (options::jsonb - 'timeout')
              || jsonb_build_object('timeout_s', (options::jsonb ->> 'timeout')::double precision / 1000)
         ELSE options::jsonb - 'timeout'
    END)::text
WHERE options::jsonb ? 'timeout';
