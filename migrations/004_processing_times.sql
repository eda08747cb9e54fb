-- The learned poll schedule reads the processing times (the vendor's
-- finished_at - started_at) of the most recently completed jobs.
CREATE INDEX lipsync_jobs_completed_finished_at
    ON lipsync_jobs (finished_at DESC)
    WHERE status = 'completed' AND started_at IS NOT NULL AND finished_at IS NOT NULL;

---- create above / drop below ----

DROP INDEX lipsync_jobs_completed_finished_at;
