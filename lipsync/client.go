// Package lipsync is what a backend service imports to hand a lip-sync job
// to the worker and await it:
//
//	jobs := lipsync.NewClient(temporalClient, "lipsync")
//	run, err := jobs.Submit(ctx, lipsync.Job{Video: videoURL, Audio: audioURL, ReferenceID: "dub-episode-42"})
//	result, err := run.Wait(ctx)
//
// Submitting a reference_id whose job is running attaches to that job; one
// whose job has finished returns the finished job. A job is never started
// twice for one reference_id.
package lipsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/workflows"
)

// Job is one lip-sync job's input.
type Job = workflows.LipSyncInput

// Result is a completed job.
type Result = workflows.LipSyncResult

// Status is a job's current state, as its status query answers.
type Status = workflows.JobStatus

// Escalation describes why a job ended in front of a human.
type Escalation = workflows.EscalationDetails

// ErrInvalidJob wraps every refusal of a job's input by Submit.
var ErrInvalidJob = errors.New("lipsync: invalid job")

// Client starts and awaits jobs through Temporal.
type Client struct {
	temporal  client.Client
	taskQueue string
}

// NewClient returns a Client that starts jobs on taskQueue (the worker's
// TEMPORAL_TASK_QUEUE, "lipsync" by default).
func NewClient(c client.Client, taskQueue string) *Client {
	if taskQueue == "" {
		taskQueue = "lipsync"
	}
	return &Client{temporal: c, taskQueue: taskQueue}
}

// Run is a submitted job.
type Run struct {
	// WorkflowID is the job's workflow ID: "lipsync-" + reference_id.
	WorkflowID string
	// ReferenceID is the job's reference_id.
	ReferenceID string
	// Attached is true when the job already existed (running or finished)
	// and this submission attached to it rather than starting another.
	Attached bool
	run      client.WorkflowRun
	client   *Client
}

// Submit validates the job (refusing bad input before anything starts) and
// starts it, or attaches to the job with the same reference_id. A job
// without a ReferenceID gets a new random one.
func (c *Client) Submit(ctx context.Context, job Job) (*Run, error) {
	if job.Resume != nil {
		return nil, fmt.Errorf("%w: Job.Resume is internal and must be nil", ErrInvalidJob)
	}
	if job.ReferenceID == "" {
		job.ReferenceID = uuid.NewString()
	}
	if err := workflows.ValidateNewJob(job); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJob, err)
	}
	id := workflows.WorkflowID(job.ReferenceID)
	opts := client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                c.taskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// What the Web UI shows of the job at a glance (never a URL).
		StaticSummary: fmt.Sprintf("lip-sync job `%s`", job.ReferenceID),
		// The job's search attributes from its first moment: the workflow
		// need not upsert them (an event and a visibility write saved).
		TypedSearchAttributes: workflows.StartAttributes(job.ReferenceID, job.BatchID, time.Now()),
	}
	run, err := c.temporal.ExecuteWorkflow(ctx, opts, workflows.WorkflowName, job)
	var invalid *serviceerror.InvalidArgument
	if errors.As(err, &invalid) && strings.Contains(invalid.Error(), "search attribute") {
		// The namespace does not know the attributes yet (no worker of
		// this release has started against it): the workflow sets them
		// itself once a worker, which registers them, runs it.
		opts.TypedSearchAttributes = temporal.SearchAttributes{}
		run, err = c.temporal.ExecuteWorkflow(ctx, opts, workflows.WorkflowName, job)
	}
	if err == nil {
		return &Run{WorkflowID: id, ReferenceID: job.ReferenceID, run: run, client: c}, nil
	}
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &started) {
		return nil, fmt.Errorf("lipsync: start job %s: %w", id, err)
	}
	return &Run{
		WorkflowID:  id,
		ReferenceID: job.ReferenceID,
		Attached:    true,
		run:         c.temporal.GetWorkflow(ctx, id, ""),
		client:      c,
	}, nil
}

// Attach returns the job with this reference_id without submitting anything.
func (c *Client) Attach(ctx context.Context, referenceID string) *Run {
	id := workflows.WorkflowID(referenceID)
	return &Run{WorkflowID: id, ReferenceID: referenceID, Attached: true, run: c.temporal.GetWorkflow(ctx, id, ""), client: c}
}

// Wait blocks until the job ends (following continue-as-new) and returns
// its result. A job that ended escalated returns an error for which
// EscalationOf reports the reason.
func (r *Run) Wait(ctx context.Context) (Result, error) {
	var res Result
	if err := r.run.Get(ctx, &res); err != nil {
		return Result{}, fmt.Errorf("lipsync: job %s: %w", r.WorkflowID, err)
	}
	return res, nil
}

// WaitingForDecisionError says a job was escalated and now waits for a
// human's answer (Client.Resolve).
type WaitingForDecisionError struct {
	WorkflowID string
	Status     Status
}

// Error implements error.
func (e *WaitingForDecisionError) Error() string {
	return fmt.Sprintf("lipsync: job %s escalated (%s: %s) and waits for a decision: starter resolve %s retry|abandon",
		e.WorkflowID, e.Status.Escalated, e.Status.LastError, e.Status.ReferenceID)
}

// WaitUntilSettled is Wait that also returns, with a
// *WaitingForDecisionError, as soon as the job is escalated and waits for a
// human, instead of waiting for the answer.
func (r *Run) WaitUntilSettled(ctx context.Context) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := r.Wait(ctx)
		done <- outcome{res, err}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case o := <-done:
			return o.res, o.err
		case <-tick.C:
			st, err := r.client.Status(ctx, r.ReferenceID)
			if err == nil && st.WaitingForDecision {
				return Result{}, &WaitingForDecisionError{WorkflowID: r.WorkflowID, Status: st}
			}
		}
	}
}

// Decision is a human's answer to an escalated job.
type Decision = workflows.Decision

// Resolve answers an escalated job that waits for a decision: "retry"
// resubmits it as a new attempt, "abandon" ends it recorded as abandoned.
// The job is named by its reference_id or its workflow ID. A job that is
// not waiting, or an unknown action, is refused with the reason.
func (c *Client) Resolve(ctx context.Context, job string, d Decision) (workflows.DecisionResult, error) {
	if err := workflows.ValidateDecision(d); err != nil {
		return workflows.DecisionResult{}, fmt.Errorf("%w: %v", ErrInvalidJob, err)
	}
	id := job
	if !strings.HasPrefix(id, workflows.WorkflowIDPrefix) {
		id = workflows.WorkflowID(job)
	}
	h, err := c.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   workflows.UpdateResolve,
		Args:         []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var res workflows.DecisionResult
	if err == nil {
		err = h.Get(ctx, &res)
	}
	if err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return res, fmt.Errorf("lipsync: job %s is not waiting for a decision: it has ended or does not exist", id)
		}
		return res, fmt.Errorf("lipsync: resolve %s refused: %w", id, err)
	}
	return res, nil
}

// Status asks the running job for its state.
func (c *Client) Status(ctx context.Context, referenceID string) (Status, error) {
	v, err := c.temporal.QueryWorkflow(ctx, workflows.WorkflowID(referenceID), "", workflows.QueryStatus)
	if err != nil {
		return Status{}, fmt.Errorf("lipsync: query job %s: %w", referenceID, err)
	}
	var s Status
	if err := v.Get(&s); err != nil {
		return Status{}, fmt.Errorf("lipsync: decode status of %s: %w", referenceID, err)
	}
	return s, nil
}

// EscalationOf reports why a job ended escalated, given the error Wait
// returned; ok is false for any other error.
func EscalationOf(err error) (esc Escalation, ok bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.HasDetails() {
		return Escalation{}, false
	}
	if appErr.Details(&esc) != nil || esc.Reason == "" {
		return Escalation{}, false
	}
	return esc, true
}
