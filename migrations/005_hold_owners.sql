-- Account holds get an owner. A hold is raised by a workflow (a batch that
-- met an account-wide failure, or a job that met one while polling) and
-- belongs to it: the owner's answer releases its own hold only, and a hold
-- whose owner has ended by any path (completed, terminated, timed out) is
-- released by the next submission that finds it. Several owners may hold
-- the same account at once; submissions wait while any hold stands.
ALTER TABLE account_holds ADD COLUMN account text NOT NULL DEFAULT 'default';
ALTER TABLE account_holds ADD COLUMN owner_workflow_id text;
UPDATE account_holds SET owner_workflow_id = COALESCE('batch-' || batch_id, 'unknown');
ALTER TABLE account_holds ALTER COLUMN owner_workflow_id SET NOT NULL;
ALTER TABLE account_holds DROP CONSTRAINT account_holds_pkey;
ALTER TABLE account_holds DROP COLUMN id;
ALTER TABLE account_holds ADD PRIMARY KEY (account, owner_workflow_id);

-- A job that was cancelled or terminated ends in a status of its own, so
-- that no row stays in flight after its workflow has ended.
ALTER TABLE lipsync_jobs DROP CONSTRAINT lipsync_jobs_status_check;
ALTER TABLE lipsync_jobs ADD CONSTRAINT lipsync_jobs_status_check
    CHECK (status IN ('pending', 'submitted', 'queued', 'processing', 'completed', 'failed', 'abandoned', 'not_submitted', 'cancelled'));

-- A job cancelled while it waited for a human's answer: its escalation is
-- closed as cancelled.
ALTER TABLE escalations DROP CONSTRAINT escalations_resolution_check;
ALTER TABLE escalations ADD CONSTRAINT escalations_resolution_check
    CHECK (resolution IN ('retry', 'abandon', 'expired', 'resume', 'abort', 'cancelled'));

---- create above / drop below ----

UPDATE escalations SET resolution = 'expired' WHERE resolution = 'cancelled';
ALTER TABLE escalations DROP CONSTRAINT escalations_resolution_check;
ALTER TABLE escalations ADD CONSTRAINT escalations_resolution_check
    CHECK (resolution IN ('retry', 'abandon', 'expired', 'resume', 'abort'));

UPDATE lipsync_jobs SET status = 'failed' WHERE status = 'cancelled';
ALTER TABLE lipsync_jobs DROP CONSTRAINT lipsync_jobs_status_check;
ALTER TABLE lipsync_jobs ADD CONSTRAINT lipsync_jobs_status_check
    CHECK (status IN ('pending', 'submitted', 'queued', 'processing', 'completed', 'failed', 'abandoned', 'not_submitted'));

DELETE FROM account_holds WHERE (account, owner_workflow_id) <>
    (SELECT account, owner_workflow_id FROM account_holds ORDER BY since, owner_workflow_id LIMIT 1);
ALTER TABLE account_holds DROP CONSTRAINT account_holds_pkey;
ALTER TABLE account_holds ADD COLUMN id int NOT NULL DEFAULT 1 CHECK (id = 1);
ALTER TABLE account_holds ADD PRIMARY KEY (id);
ALTER TABLE account_holds DROP COLUMN owner_workflow_id;
ALTER TABLE account_holds DROP COLUMN account;
