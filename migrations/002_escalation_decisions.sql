-- A human's answer to an escalation: retry (resubmit) or abandon.
ALTER TABLE escalations
    ADD COLUMN resolved_at     timestamptz,
    ADD COLUMN resolution      text CHECK (resolution IN ('retry', 'abandon', 'expired')),
    ADD COLUMN resolved_by     text,
    ADD COLUMN resolution_note text;

---- create above / drop below ----

ALTER TABLE escalations
    DROP COLUMN resolution_note,
    DROP COLUMN resolved_by,
    DROP COLUMN resolution,
    DROP COLUMN resolved_at;
