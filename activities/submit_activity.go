package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/config"
	"github.com/chamelaion-lipsync/worker/store"
)

// RecordJobInput is the job as first recorded in PostgreSQL.
type RecordJobInput struct {
	WorkflowID  string
	ReferenceID string
	BatchID     string
	// Video and Audio are the media sources; they are stored with their
	// query strings removed, since pre-signed URLs carry credentials there.
	Video string
	Audio string
	// ExecutionID names the execution of the job's workflow, and Attempt
	// the attempt it starts: a reference_id run again after its job ended
	// takes its row over (see store.RecordJob). "" records as before
	// executions were named.
	ExecutionID string `json:",omitempty"`
	Attempt     int    `json:",omitempty"`
}

// RecordJob writes the job's row in state pending for the attempt it
// starts: a row for a new job; for a new attempt, or a new execution of a
// reference_id whose job ended, the row reset for it (the earlier
// attempts' events and escalations stay readable). Recording the same
// attempt again is a no-op, so retries and continued runs are harmless.
func (a *Activities) RecordJob(ctx context.Context, in RecordJobInput) error {
	err := a.Store.RecordJob(ctx, store.NewJob{
		WorkflowID:  in.WorkflowID,
		ReferenceID: in.ReferenceID,
		BatchID:     in.BatchID,
		VideoSource: config.RedactURL(in.Video),
		AudioSource: config.RedactURL(in.Audio),
		ExecutionID: in.ExecutionID,
		Attempt:     in.Attempt,
	})
	if err != nil {
		return storeError("record job", err)
	}
	return nil
}

// SubmitInput is one submission of a job to the API.
type SubmitInput struct {
	WorkflowID string
	// ExecutionID names the execution of the job's workflow ("" before
	// executions were named): its writes never touch another execution's
	// row, and it never adopts the requests of earlier executions.
	ExecutionID string `json:",omitempty"`
	ReferenceID string
	// Attempt counts the job's attempts: 1, then one more for every
	// answered escalation the job goes on from (and for every new
	// execution of its reference_id).
	Attempt int
	// Video and Audio are http(s) URLs the vendor downloads, or file://
	// references to files the worker uploads. Both must be of one kind.
	Video                         string
	Audio                         string
	DisableActiveSpeakerDetection bool
	// KnownRequestIDs are the requests of earlier submissions of this job;
	// they are never adopted.
	KnownRequestIDs []string
	// LookFirst says an earlier submission of the job may have reached the
	// vendor (its answer was lost, or it ended before it could tell): look
	// for its request before sending, once it can no longer be landing
	// (SubmitSettle after EarlierEndedAt, the workflow's time of that
	// submission's end).
	LookFirst      bool      `json:",omitempty"`
	EarlierEndedAt time.Time `json:",omitempty"`
	// LookOnly: look for the request an earlier submission may have
	// created (as LookFirst), and adopt it if found, but never send one:
	// without it the result's RequestID is "". A batch that aborts asks
	// this of a job whose earlier submission may have reached the vendor.
	LookOnly bool `json:",omitempty"`
	// RetryBudget bounds the time the submission is retried, counted from
	// its first attempt's start (0 = the activity's ScheduleToClose does).
	RetryBudget time.Duration `json:",omitempty"`
	// RecordLater: when the submission cannot be recorded in PostgreSQL,
	// return it unrecorded (SubmitResult.Unrecorded) for the workflow to
	// record with RecordProgress, rather than retrying within the API's
	// retry budget.
	RecordLater bool `json:",omitempty"`
}

// SubmitResult says which vendor request now carries the job.
type SubmitResult struct {
	RequestID string
	// Adopted is true when an earlier, unanswered activity attempt had in
	// fact created the request, and it was adopted instead of creating a
	// second one.
	Adopted     bool
	SubmittedAt time.Time
	// Unrecorded is true when the row could not be written (with
	// RecordLater): the workflow records the submission itself.
	Unrecorded bool `json:",omitempty"`
}

// Submit creates the job at the vendor, idempotently. A request that an
// earlier attempt sent may have created a job although its answer never
// arrived: then the attempt looks for a request with the job's
// reference_id and adopts it rather than paying for the job twice. It
// looks only when that can be so (see LandingOf), and waits for the
// earlier request to land only for the part of SubmitSettle that has not
// passed since that request was given up on; after a 429 it sends at once,
// when the server advised.
func (a *Activities) Submit(ctx context.Context, in SubmitInput) (SubmitResult, error) {
	if in.ReferenceID == "" || in.WorkflowID == "" {
		return SubmitResult{}, temporal.NewNonRetryableApplicationError("submit: reference_id and workflow_id are required", TypeInvalidInput, nil)
	}
	log := activity.GetLogger(ctx)
	attempt := activity.GetInfo(ctx).Attempt
	p, known := progressOf(ctx)
	now := time.Now()
	if known && !p.PacedSince.IsZero() {
		// The previous attempt sent nothing for want of a slot in the
		// rolling minute: the worker's own pacing, like the queue's,
		// spends none of the retry budget.
		p.Paced += now.Sub(p.PacedSince)
		p.PacedSince = time.Time{}
	}
	switch {
	case known:
		p.unanswered()
	case attempt > 1:
		// The previous attempt left nothing (a first attempt that died
		// with its request perhaps in flight, or one that ran on an older
		// worker): assume the worst. It died no later than one
		// StartToClose before this attempt began, so the retry budget
		// counts from then at the latest.
		p = attemptProgress{FirstAttemptAt: now.Add(-activity.GetInfo(ctx).StartToCloseTimeout), Look: true, LookAfter: now.Add(a.SubmitSettle)}
		p.unanswered()
	default:
		p = attemptProgress{FirstAttemptAt: now}
		switch {
		case in.LookFirst || in.LookOnly:
			p.Look, p.LookAfter = true, in.EarlierEndedAt.Add(a.SubmitSettle)
		case in.ExecutionID != "":
			a.priorRuns(ctx, in, &p)
		}
	}
	fail := func(err error) (SubmitResult, error) {
		p.note(err)
		if !retryable(err) {
			// A permanent failure keeps its own type: it is not retried,
			// so no budget turns it into RetriesExhausted.
			leave(ctx, p)
			return SubmitResult{}, withProgress(err, p)
		}
		if spent := budgetSpent("submit", p, in.RetryBudget, advisedWait(err), time.Now()); spent != nil {
			p.Next = "retries exhausted: " + p.LastType
			leave(ctx, p)
			return SubmitResult{}, spent
		}
		leave(ctx, p)
		return SubmitResult{}, withProgress(err, p)
	}
	if known || attempt > 1 {
		if spent := budgetSpent("submit", p, in.RetryBudget, 0, now); spent != nil {
			return SubmitResult{}, spent
		}
	}

	var res SubmitResult
	switch {
	case p.RequestID != "":
		res = SubmitResult{RequestID: p.RequestID, SubmittedAt: p.AnsweredAt}
		log.Info("recording the request an earlier attempt created", "RequestId", p.RequestID)
	case p.Look:
		if err := a.settle(ctx, p.LookAfter); err != nil {
			return SubmitResult{}, err
		}
		if in.ExecutionID != "" {
			// Requests recorded by earlier attempts and executions of the
			// job are theirs, never this submission's.
			earlier, err := a.Store.EarlierRequestIDs(ctx, in.WorkflowID, in.ExecutionID, in.Attempt)
			if err != nil {
				p.Next = fmt.Sprintf("attempt %d could not read the job's earlier requests; the next attempt looks again", attempt)
				return fail(storeError("read earlier requests", err))
			}
			in.KnownRequestIDs = append(slices.Clip(in.KnownRequestIDs), earlier...)
		}
		existing, err := a.findEarlierSubmission(ctx, in)
		if err != nil {
			p.Next = fmt.Sprintf("attempt %d could not look for the job an earlier request may have created; the next attempt looks again", attempt)
			return fail(err)
		}
		p.Look = false
		if existing != "" {
			log.Info("adopting a request created by an earlier attempt", "RequestId", existing, "ReferenceId", in.ReferenceID)
			res = SubmitResult{RequestID: existing, Adopted: true, SubmittedAt: time.Now().UTC()}
		}
	}
	if res.RequestID == "" && in.LookOnly {
		log.Info("no request of an earlier submission found; nothing sent", "ReferenceId", in.ReferenceID)
		return SubmitResult{}, nil
	}
	if res.RequestID == "" {
		if err := a.checkAccountHold(ctx, in.WorkflowID); err != nil {
			p.Next = "the account is held: nothing was sent"
			return fail(withDetails(err, func(d *ErrorDetails) { d.Held = true }))
		}
		// Should this attempt die with its request in flight, the next one
		// looks for the job (it starts after StartToClose, by when the
		// request has landed or never will). A first attempt that dies
		// leaves no progress, and the next attempt assumes the worst
		// anyway (see above): only a later attempt, whose budget and
		// pacing must survive it, leaves its progress here, a round trip
		// to Temporal and a write of the activity's state spared on every
		// first submission. It is left before the send slot is reserved:
		// the first heartbeat waits for Temporal, and nothing may stand
		// between the reservation and the send.
		before := p
		p.Look, p.LookAfter = true, time.Now().Add(a.sendWaitMax(ctx)+2*a.SubmitSettle)
		p.Next = fmt.Sprintf("attempt %d is sending its request (from %s)", attempt, time.Now().UTC().Format(time.RFC3339))
		if known || attempt > 1 {
			leave(ctx, p)
		}
		if err := a.awaitSendSlot(ctx); err != nil {
			if ctx.Err() != nil {
				return SubmitResult{}, err
			}
			p = before
			p.PacedSince = time.Now()
			p.Next = fmt.Sprintf("attempt %d found the account's rolling minute full: nothing was sent; the next attempt sends when a slot frees", attempt)
			return fail(err)
		}
		resp, err := a.generate(ctx, in)
		if err != nil {
			stopped := time.Now()
			switch LandingOf(err) {
			case NothingCreated:
				p.Look = false
				p.Next = fmt.Sprintf("attempt %d was refused with %s: nothing was created; the next attempt sends again", attempt, describe(err))
				if w := advisedWait(err); w > 0 {
					p.Next += fmt.Sprintf(", %s later as the server advised", readable(w))
				}
			case MayHaveCreated:
				p.Look, p.LookAfter = true, stopped
				p.Next = fmt.Sprintf("attempt %d met %s: the server may have created the job before failing; the next attempt looks for it first", attempt, describe(err))
			default:
				p.Look, p.LookAfter = true, stopped.Add(a.SubmitSettle)
				p.Next = fmt.Sprintf("attempt %d met %s: the request may still land; the next attempt looks for it from %s, then sends if it finds none",
					attempt, describe(err), p.LookAfter.UTC().Format(time.RFC3339))
			}
			return fail(err)
		}
		p.Look = false
		res = SubmitResult{RequestID: resp.RequestID, SubmittedAt: time.Now().UTC()}
	}
	message := "submitted"
	if res.Adopted {
		message = "adopted the request an unanswered attempt had created"
	}
	if _, err := a.Store.UpdateJob(ctx, store.JobUpdate{
		WorkflowID:  in.WorkflowID,
		ExecutionID: in.ExecutionID,
		Attempt:     in.Attempt,
		Status:      store.StatusSubmitted,
		RequestID:   res.RequestID,
		SubmittedAt: &res.SubmittedAt,
		Message:     message,
	}); err != nil {
		if in.RecordLater {
			// The workflow records it with the database's own retries:
			// an outage of PostgreSQL spends none of the API's budget.
			log.Warn("submission accepted but not recorded; the workflow records it", "RequestId", res.RequestID, "Error", err)
			res.Unrecorded = true
			return res, nil
		}
		// The request exists at the vendor; the next attempt records it.
		p.RequestID, p.AnsweredAt = res.RequestID, res.SubmittedAt
		p.Next = fmt.Sprintf("the vendor accepted request %s but it could not be recorded; the next attempt records it", res.RequestID)
		return fail(storeError("record submission", err))
	}
	return res, nil
}

// awaitSendSlot reserves the moment to send a generation request in the
// account's rolling minute (SendBudget), waiting up to SendWaitMax for a
// slot; a longer wait is handed to Temporal as a retryable failure
// (nothing sent) with the wait as its next retry delay.
func (a *Activities) awaitSendSlot(ctx context.Context) error {
	if a.SendBudget <= 0 {
		return nil
	}
	waitMax := a.sendWaitMax(ctx)
	var waited time.Duration
	for {
		wait, err := a.Store.ReserveSend(ctx, store.DefaultAccount, a.SendBudget, time.Minute)
		if err != nil {
			return storeError("reserve a send in the account's rolling minute", err)
		}
		if wait == 0 {
			if waited > 0 {
				a.logger().Info("submission waited for a slot in the account's rolling minute", "waited", waited.Round(time.Millisecond), "budget_per_minute", a.SendBudget)
			}
			return nil
		}
		if waited+wait > waitMax {
			msg := fmt.Sprintf("submit: the account's rolling minute is full (%d generation requests sent in the last minute, the budget); nothing was sent; a slot frees in %s",
				a.SendBudget, readable(wait))
			a.metrics().ObserveRetryable(TypeSendBudget, wait)
			return temporal.NewApplicationErrorWithOptions(msg, TypeSendBudget, temporal.ApplicationErrorOptions{
				NextRetryDelay: wait,
				Details:        []any{ErrorDetails{Message: msg, RetryAfter: wait}},
			})
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
			waited += wait
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// sendWaitMax is the longest awaitSendSlot waits: SendWaitMax (10s by
// default), and never more than half the attempt's time left, which the
// request itself needs.
func (a *Activities) sendWaitMax(ctx context.Context) time.Duration {
	waitMax := a.SendWaitMax
	if waitMax <= 0 {
		waitMax = 10 * time.Second
	}
	if a.SendBudget <= 0 {
		return 0
	}
	if d, ok := ctx.Deadline(); ok {
		waitMax = max(0, min(waitMax, time.Until(d)/2))
	}
	return waitMax
}

// priorRuns sets up a first submission of an execution from what the
// job's records say of runs before it: the request this very attempt
// already recorded (a workflow reset ran the submission again) is taken as
// it is; when the job's workflow ID ran before, the submission looks for a
// request that run may have created, from the settle window after its last
// record, or, when that run was stopped from outside at a moment the
// records do not tell (terminated, say), from twice the window after now
// (its request was sent before it stopped, before now). A store that
// cannot tell means look (a list request is cheaper than a second job).
func (a *Activities) priorRuns(ctx context.Context, in SubmitInput, p *attemptProgress) {
	now := time.Now()
	prior, err := a.Store.PriorRuns(ctx, in.WorkflowID, in.ExecutionID, in.Attempt)
	switch {
	case err != nil:
		a.logger().Warn("could not tell whether the job ran before; looking for an earlier request first", "workflow_id", in.WorkflowID, "error", err)
		p.Look, p.LookAfter = true, now.Add(a.SubmitSettle)
	case prior.Recorded != "":
		p.RequestID, p.AnsweredAt = prior.Recorded, now.UTC()
		p.Next = fmt.Sprintf("request %s was recorded for this attempt before (the workflow was reset): taken, nothing sent", prior.Recorded)
	case !prior.Earlier:
	case prior.EarlierEnded:
		p.Look, p.LookAfter = true, prior.EarlierLast.Add(a.SubmitSettle)
	default:
		p.Look, p.LookAfter = true, now.Add(2*a.SubmitSettle)
	}
}

// retryable says whether an activity error is retried by Temporal.
func retryable(err error) bool {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return !appErr.NonRetryable()
	}
	return true
}

// settle waits until a request of an earlier attempt can no longer be
// landing at the server (until, on the worker's clock), so that looking
// for it finds it (found by fault-injecting slow answers: a retry that
// listed too early created a second job). It never waits longer than twice
// SubmitSettle, whatever the clocks say.
func (a *Activities) settle(ctx context.Context, until time.Time) error {
	wait := min(time.Until(until), 2*a.SubmitSettle)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// describe names an API failure for a person: its status and type.
func describe(err error) string {
	typ, status, _ := failureOf(err)
	if status != 0 {
		return fmt.Sprintf("HTTP %d (%s)", status, typ)
	}
	return typ
}

// readable writes a duration as a person reads it: 5s, 1m30s, 2h0m.
func readable(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	case d >= time.Second:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

// findEarlierSubmission returns the newest request with the job's
// reference_id that no earlier submission of the job owns, or "".
func (a *Activities) findEarlierSubmission(ctx context.Context, in SubmitInput) (string, error) {
	page, err := a.API.ListRequests(ctx, chamelaion.ListOptions{ReferenceID: in.ReferenceID, Limit: 100})
	if err != nil {
		return "", a.apiFailure("look for an earlier submission", err)
	}
	for _, r := range page.Data { // newest first
		if r.ReferenceID == in.ReferenceID && !slices.Contains(in.KnownRequestIDs, r.ID) {
			return r.ID, nil
		}
	}
	return "", nil
}

func (a *Activities) generate(ctx context.Context, in SubmitInput) (chamelaion.GenerateResponse, error) {
	videoPath, videoIsFile, err := LocalMediaPath(in.Video)
	if err != nil {
		return chamelaion.GenerateResponse{}, temporal.NewNonRetryableApplicationError("submit: video: "+err.Error(), TypeInvalidInput, nil)
	}
	audioPath, audioIsFile, err := LocalMediaPath(in.Audio)
	if err != nil {
		return chamelaion.GenerateResponse{}, temporal.NewNonRetryableApplicationError("submit: audio: "+err.Error(), TypeInvalidInput, nil)
	}
	if videoIsFile != audioIsFile {
		return chamelaion.GenerateResponse{}, temporal.NewNonRetryableApplicationError("submit: video and audio must both be URLs or both be files", TypeInvalidInput, nil)
	}
	if !videoIsFile {
		resp, err := a.API.Generate(ctx, chamelaion.GenerateRequest{
			ReferenceID:                   in.ReferenceID,
			DisableActiveSpeakerDetection: in.DisableActiveSpeakerDetection,
			VideoURL:                      in.Video,
			AudioURL:                      in.Audio,
		})
		if err != nil {
			return resp, a.apiFailure("submit", err)
		}
		return resp, nil
	}
	return a.generateWithFiles(ctx, in, videoPath, audioPath)
}
