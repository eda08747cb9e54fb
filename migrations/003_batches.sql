-- Batches. An account-wide failure (a revoked key, an exhausted quota) is
-- escalated once per batch, not once per job: such an escalation names the
-- batch's workflow, which has no row in lipsync_jobs. A batch that is
-- aborted records its jobs that were never submitted as 'not_submitted'.
ALTER TABLE escalations DROP CONSTRAINT escalations_workflow_id_fkey;
ALTER TABLE escalations ADD COLUMN batch_id text;
ALTER TABLE escalations DROP CONSTRAINT escalations_kind_check;
ALTER TABLE escalations ADD CONSTRAINT escalations_kind_check CHECK (kind IN ('failure', 'stuck', 'account'));
ALTER TABLE escalations DROP CONSTRAINT escalations_resolution_check;
ALTER TABLE escalations ADD CONSTRAINT escalations_resolution_check CHECK (resolution IN ('retry', 'abandon', 'expired', 'resume', 'abort'));
CREATE INDEX escalations_batch_id ON escalations (batch_id) WHERE batch_id IS NOT NULL;

ALTER TABLE lipsync_jobs DROP CONSTRAINT lipsync_jobs_status_check;
ALTER TABLE lipsync_jobs ADD CONSTRAINT lipsync_jobs_status_check
    CHECK (status IN ('pending', 'submitted', 'queued', 'processing', 'completed', 'failed', 'abandoned', 'not_submitted'));

-- While an account-wide failure waits for a human, no worker submits: the
-- submission activity reads this one-row table before every generation
-- call, so the API sees no further request until the answer.
CREATE TABLE account_holds (
    id            int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    reason        text NOT NULL,
    http_status   int,
    message       text NOT NULL,
    batch_id      text,
    escalation_id bigint,
    since         timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE account_holds;

DELETE FROM lipsync_jobs WHERE status = 'not_submitted';
ALTER TABLE lipsync_jobs DROP CONSTRAINT lipsync_jobs_status_check;
ALTER TABLE lipsync_jobs ADD CONSTRAINT lipsync_jobs_status_check
    CHECK (status IN ('pending', 'submitted', 'queued', 'processing', 'completed', 'failed', 'abandoned'));

DELETE FROM escalations WHERE kind = 'account';
DROP INDEX escalations_batch_id;
ALTER TABLE escalations DROP CONSTRAINT escalations_resolution_check;
ALTER TABLE escalations ADD CONSTRAINT escalations_resolution_check CHECK (resolution IN ('retry', 'abandon', 'expired'));
ALTER TABLE escalations DROP CONSTRAINT escalations_kind_check;
ALTER TABLE escalations ADD CONSTRAINT escalations_kind_check CHECK (kind IN ('failure', 'stuck'));
ALTER TABLE escalations DROP COLUMN batch_id;
ALTER TABLE escalations ADD CONSTRAINT escalations_workflow_id_fkey
    FOREIGN KEY (workflow_id) REFERENCES lipsync_jobs (workflow_id) ON DELETE CASCADE;
