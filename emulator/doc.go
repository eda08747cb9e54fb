// Package emulator is a faithful, in-memory emulator of the Chamelaion
// lip-sync API (see shared/chamelaion-api.md): every endpoint under /api with
// its validation, its exact documented error strings, both auth schemes, the
// 60-per-minute rate limit of the generation endpoints (429 with
// Retry-After), a token quota (412 "token limit reached"), and the job
// lifecycle queued → processing → completed (with output_url) or failed
// (with error_message), timed from each job's creation by the emulator's
// clock. Run it in-process with httptest.NewServer(e.Handler()), or as the
// standalone binary: go run ./cmd/emulator --help.
//
// # Job durations and timestamps
//
// By default every job is queued for Config.QueuedFor (--queued-for, 2s)
// and processes for Config.ProcessingFor (--processing-for, 5s). A
// DurationModel (Config.Durations; flag --durations) instead draws each
// job's queue and processing times from two seeded log-normal
// distributions, median·exp(sigma·Z), capped at Max for queue+processing
// (the queue time gives way first) and then multiplied by Scale, so that a
// benchmark can replay a realistic workload on scaled time:
//
//	--durations queue-median=75s,queue-sigma=1.3,processing-median=45s,processing-sigma=0.3,max=30m,scale=0.05,seed=1
//
// The n-th job of each account (n from 0) gets DurationModel.Draw(n),
// whatever the other accounts do, and a scenario's queued_for and
// processing_for still win for its reference_id (as given: Scale applies
// to drawn times only).
//
// The API writes created_at, started_at and finished_at in whole seconds,
// as the vendor does. Config.TimestampPrecision (--timestamp-precision)
// below one second, such as 1ms, truncates them to that precision and
// writes the fraction (RFC 3339 with fractional seconds), which scaled-time
// measurements need.
//
// # Injecting failures
//
// Random faults: Config.Faults (flags --fault-rate, --fault-statuses,
// --slow-rate, --slow-delay, --fault-seed) answers a seeded share of API
// requests with 429/500/503/504 or delays them.
//
// Deterministic faults, per job: install a Scenario for the job's
// reference_id, in Go with SetScenario or over HTTP with
// PUT /_emulator/scenarios (one object or an array; --scenarios FILE preloads
// them). Examples:
//
//	{"reference_id":"ep-1","submit_faults":[503,503]}
//	    the first two submissions fail with 503 (a non-JSON body), the third succeeds
//	{"reference_id":"ep-2","submit_faults":[{"status":429,"headers":{"X-Ratelimit-Wait":"5"}}]}
//	    one 429 whose wait is advised by the second vendor's header
//	{"reference_id":"ep-3","outcome":"failed","error_message":"video URL is not accessible"}
//	    the job is accepted, then fails
//	{"reference_id":"ep-4","queued_for":"15m"}
//	    the job stays queued for 15 minutes
//	{"reference_id":"ep-5","lose_responses":1}
//	    the submission is accepted (the job exists) but its answer never
//	    arrives: the connection is closed ("lose_mode":"hang" instead
//	    answers nothing until the client gives up)
//	{"reference_id":"ep-6","status_faults":[500,{"status":0,"delay":"10s"}]}
//	    the first status read fails with 500, the second is 10 s slow
//	{"reference_id":"ep-7","reject_submits":400}
//	    every submission is refused with 400, however often it is retried
//
// A fault is a bare status or {"status", "body", "content_type", "headers",
// "delay"}; without a body it carries the documented body of its status.
//
// # Inspection
//
// GET /_emulator/stats reports what the emulator received: jobs created per
// reference_id (more than one is a duplicate submission), requests per
// endpoint and status (0 = an answer withheld), the same per account name
// ("requests_by_account"; "" for requests without a valid token), lost
// answers and 429s.
//
// GET /_emulator/jobs (Emulator.Jobs) lists every job in creation order
// with its account name, its exact created_at, started_at and finished_at
// (RFC 3339 with nanoseconds, whether or not anybody read the job yet), its
// outcome, status_reads (the GET /v1/lipsync/requests/{id} reads of it
// answered 200, by id or reference_id; faulted reads do not count) and
// first_terminal_read_at (when a read first showed it completed or failed):
// what a polling strategy costs, and how soon it notices completion. The
// jobs, with these counters, survive a restart with --state-file.
//
// GET /_emulator/requests?reference_id=ID (Emulator.Requests) lists the
// requests naming a reference_id (all requests without the parameter), in
// arrival order: when each arrived on the emulator's clock, its endpoint,
// the answered status and any Retry-After. It is how a test checks that a
// retry came exactly when the server advised. The log keeps the last
// 100,000 requests.
//
// PUT /_emulator/keys {"revoked": true} (Emulator.RevokeKeys) revokes every
// token, as a key rotated on the vendor's dashboard: every authenticated
// request is answered 401 "invalid token" until {"revoked": false}.
//
// GET /_emulator/jobs/{id} shows one job; PUT /_emulator/quota
// {"token_quota": N} changes the token quota (a plan upgrade); POST /_emulator/reset forgets
// everything; DELETE /_emulator/scenarios removes the scenarios.
package emulator
