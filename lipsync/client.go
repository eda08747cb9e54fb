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
	if err := workflows.ValidateInput(job); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJob, err)
	}
	id := workflows.WorkflowID(job.ReferenceID)
	run, err := c.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                c.taskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}, workflows.WorkflowName, job)
	if err == nil {
		return &Run{WorkflowID: id, ReferenceID: job.ReferenceID, run: run}, nil
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
	}, nil
}

// Attach returns the job with this reference_id without submitting anything.
func (c *Client) Attach(ctx context.Context, referenceID string) *Run {
	id := workflows.WorkflowID(referenceID)
	return &Run{WorkflowID: id, ReferenceID: referenceID, Attached: true, run: c.temporal.GetWorkflow(ctx, id, "")}
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
