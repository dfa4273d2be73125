-- A schedule's launch options (JSON in `options`) gave their timeout as `timeout`, in
-- milliseconds; they give it as `timeout_s`, in seconds, like a launch and a task record.
UPDATE offstage_schedules
SET options = json_remove(
    CASE WHEN json_type(options, '$.timeout') IN ('integer', 'real')
         THEN json_set(options, '$.timeout_s', json_extract(options, '$.timeout') / 1000.0)
         ELSE options
    END,
    '$.timeout')
WHERE json_type(options, '$.timeout') IS NOT NULL;
