-- A reference_id may run again after its job ended: a failed job re-run by
-- a later batch, a not_submitted job submitted later. Each run is a new
-- execution of the job's workflow, named by the workflow (execution_id).
-- The row belongs to one execution: a new one takes it over and resets it
-- for its own attempts (numbered from 1 again), while the events of the
-- earlier executions stay as they were, told apart by their execution_id
-- (so the same attempt and status may appear once per execution).
ALTER TABLE lipsync_jobs ADD COLUMN execution_id text;
ALTER TABLE lipsync_job_events ADD COLUMN execution_id text;
ALTER TABLE lipsync_job_events DROP CONSTRAINT lipsync_job_events_workflow_id_attempt_status_key;
CREATE UNIQUE INDEX lipsync_job_events_once
    ON lipsync_job_events (workflow_id, COALESCE(execution_id, ''), attempt, status);

---- create above / drop below ----

-- Going down is lossy: the old unique key allows one event per attempt and
-- status, so where a reference_id ran more than once only the earliest
-- execution's event of each (attempt, status) is kept; the row keeps the
-- latest execution's state. Back up lipsync_job_events first if the
-- history of re-runs matters.

DROP INDEX lipsync_job_events_once;
DELETE FROM lipsync_job_events e USING lipsync_job_events f
    WHERE e.workflow_id = f.workflow_id AND e.attempt = f.attempt AND e.status = f.status AND e.id > f.id;
ALTER TABLE lipsync_job_events ADD CONSTRAINT lipsync_job_events_workflow_id_attempt_status_key UNIQUE (workflow_id, attempt, status);
ALTER TABLE lipsync_job_events DROP COLUMN execution_id;
ALTER TABLE lipsync_jobs DROP COLUMN execution_id;
