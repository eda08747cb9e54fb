-- One row per job, keyed by its workflow ID.
CREATE TABLE lipsync_jobs (
    workflow_id   text PRIMARY KEY,
    reference_id  text NOT NULL,
    batch_id      text,
    attempt       int  NOT NULL DEFAULT 1,
    request_id    text,
    status        text NOT NULL CHECK (status IN ('pending', 'submitted', 'queued', 'processing', 'completed', 'failed', 'abandoned')),
    -- Media locations without their query strings (pre-signed URLs carry credentials there).
    video_source  text NOT NULL,
    audio_source  text NOT NULL,
    output_url    text,
    error_type    text,
    error_message text,
    http_status   int,
    status_checks int  NOT NULL DEFAULT 0,
    submitted_at  timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lipsync_jobs_reference_id ON lipsync_jobs (reference_id);
CREATE INDEX lipsync_jobs_batch_id ON lipsync_jobs (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX lipsync_jobs_status_updated ON lipsync_jobs (status, updated_at);

-- Every status transition, append-only. A retried write never duplicates one.
CREATE TABLE lipsync_job_events (
    id          bigserial PRIMARY KEY,
    workflow_id text NOT NULL REFERENCES lipsync_jobs (workflow_id) ON DELETE CASCADE,
    attempt     int  NOT NULL,
    status      text NOT NULL,
    request_id  text,
    message     text,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workflow_id, attempt, status)
);

-- One row per escalation to a human, written before anyone is notified.
CREATE TABLE escalations (
    id             bigserial PRIMARY KEY,
    escalation_key text NOT NULL UNIQUE,
    workflow_id    text NOT NULL REFERENCES lipsync_jobs (workflow_id) ON DELETE CASCADE,
    attempt        int  NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('failure', 'stuck')),
    reason         text NOT NULL,
    http_status    int,
    message        text NOT NULL,
    web_ui_url     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    notified_at    timestamptz,
    notify_error   text
);
CREATE INDEX escalations_workflow_id ON escalations (workflow_id);

---- create above / drop below ----

DROP TABLE escalations;
DROP TABLE lipsync_job_events;
DROP TABLE lipsync_jobs;
