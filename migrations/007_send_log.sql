-- The log of generation requests sent, per account: the account's rate
-- budget is a number of requests per rolling minute, and the vendor counts
-- them when they arrive. The submit task queue paces the activities, but
-- an activity can send later than it was dispatched (a history service
-- restarting under it, a settle wait, a slow database); each request
-- reserves its moment here first, so that no rolling minute holds more
-- sends than the budget, whatever happened between dispatch and send.
-- Rows older than the window are pruned by the next reservation.
CREATE TABLE api_sends (
    account text        NOT NULL,
    sent_at timestamptz NOT NULL
);
CREATE INDEX api_sends_account_sent_at ON api_sends (account, sent_at);

---- create above / drop below ----

DROP TABLE api_sends;
