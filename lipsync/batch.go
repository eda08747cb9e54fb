package lipsync

import (
	"context"
	"errors"
	"fmt"
	"sync"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/workflows"
)

// Batch is a batch's input: its id, its jobs and how many run at once.
type Batch = workflows.BatchInput

// BatchProgress is a batch's progress, as its progress query answers.
type BatchProgress = workflows.BatchProgress

// BatchResult is a batch that ended.
type BatchResult = workflows.BatchResult

// BatchDecision is a human's answer to a batch paused on an account-wide
// failure.
type BatchDecision = workflows.BatchDecision

// MaxBatchInputBytes bounds the encoded jobs of one batch workflow input
// (Temporal refuses payloads over 2 MB by default); a larger catalogue is
// split into several batches.
const MaxBatchInputBytes = 1_500_000

// BatchRun is a started batch.
type BatchRun struct {
	BatchID    string
	WorkflowID string
	// Attached is true when the batch already existed (running or ended)
	// and nothing new was started.
	Attached bool
	client   *Client
}

// SubmitBatch validates the batch (refusing it whole before anything
// starts) and starts it, or attaches to the batch with the same id: a batch
// id runs once, so starting it again never submits a job twice.
func (c *Client) SubmitBatch(ctx context.Context, b Batch) (*BatchRun, error) {
	if b.Resume != nil {
		return nil, fmt.Errorf("%w: Batch.Resume is internal and must be nil", ErrInvalidJob)
	}
	if err := workflows.ValidateBatchInput(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJob, err)
	}
	for i, j := range b.Jobs {
		if err := workflows.ValidateNewJob(j); err != nil {
			return nil, fmt.Errorf("%w: job %d (%s): %v", ErrInvalidJob, i+1, j.ReferenceID, err)
		}
	}
	if n, err := encodedSize(b); err != nil {
		return nil, err
	} else if n > MaxBatchInputBytes {
		return nil, fmt.Errorf("%w: the batch's %d jobs encode to %d bytes, over the %d a workflow input may carry; let the workers read the file (starter batch --worker-file, Batch.Source) or split it into batches of about %d jobs",
			ErrInvalidJob, len(b.Jobs), n, MaxBatchInputBytes, len(b.Jobs)*MaxBatchInputBytes/n)
	}
	id := workflows.BatchWorkflowID(b.BatchID)
	_, err := c.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                c.taskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            fmt.Sprintf("lip-sync batch `%s`: %d jobs", b.BatchID, batchSize(b)),
	}, workflows.BatchWorkflowName, b)
	run := &BatchRun{BatchID: b.BatchID, WorkflowID: id, client: c}
	if err == nil {
		return run, nil
	}
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &started) {
		return nil, fmt.Errorf("lipsync: start batch %s: %w", id, err)
	}
	run.Attached = true
	return run, nil
}

// AttachBatch returns the batch with this id without starting anything.
func (c *Client) AttachBatch(batchID string) *BatchRun {
	return &BatchRun{BatchID: batchID, WorkflowID: workflows.BatchWorkflowID(batchID), Attached: true, client: c}
}

// Wait blocks until the batch ends (following continue-as-new).
func (r *BatchRun) Wait(ctx context.Context) (BatchResult, error) {
	var res BatchResult
	if err := r.client.temporal.GetWorkflow(ctx, r.WorkflowID, "").Get(ctx, &res); err != nil {
		return BatchResult{}, fmt.Errorf("lipsync: batch %s: %w", r.BatchID, err)
	}
	return res, nil
}

// Progress asks the batch for its progress; a batch that has ended answers
// from its result.
func (r *BatchRun) Progress(ctx context.Context) (BatchProgress, error) {
	return r.client.BatchProgress(ctx, r.BatchID)
}

// BatchProgress asks the batch with this id for its progress.
func (c *Client) BatchProgress(ctx context.Context, batchID string) (BatchProgress, error) {
	id := workflows.BatchWorkflowID(batchID)
	v, err := c.temporal.QueryWorkflow(ctx, id, "", workflows.QueryBatchProgress)
	if err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return BatchProgress{}, fmt.Errorf("lipsync: batch %s not found", batchID)
		}
		return BatchProgress{}, fmt.Errorf("lipsync: query batch %s: %w", batchID, err)
	}
	var p BatchProgress
	if err := v.Get(&p); err != nil {
		return BatchProgress{}, fmt.Errorf("lipsync: decode progress of batch %s: %w", batchID, err)
	}
	return p, nil
}

// ResolveBatch answers a batch paused on an account-wide failure: "resume"
// (after the key was fixed or the plan upgraded) or "abort". A batch that is
// not paused, or an unknown action, is refused with the reason.
func (c *Client) ResolveBatch(ctx context.Context, batchID string, d BatchDecision) error {
	if err := workflows.ValidateBatchDecision(d); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidJob, err)
	}
	id := workflows.BatchWorkflowID(batchID)
	h, err := c.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   workflows.UpdateBatchResolve,
		Args:         []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return fmt.Errorf("lipsync: batch %s is not paused: it has ended or does not exist", batchID)
		}
		return fmt.Errorf("lipsync: resolve batch %s refused: %w", batchID, err)
	}
	return nil
}

// JobOutcome is one line of a batch's results: how one job ended.
type JobOutcome struct {
	ReferenceID string
	// Status is completed, escalated, abandoned, not_submitted, duplicate,
	// or running (the job has not ended).
	Status    string
	OutputURL string
	Error     string
}

// BatchOutcomes returns every job's outcome, in the order of refs: the
// jobs the batch result lists as not completed from the result; every other
// job from its own workflow (a few at a time), which gives completed jobs
// their output URL and, for a batch that did not list every failure, the
// rest of the failures.
func (c *Client) BatchOutcomes(ctx context.Context, res BatchResult, refs []string) ([]JobOutcome, error) {
	listed := make(map[string]workflows.JobOutcome, len(res.Outcomes))
	for _, o := range res.Outcomes {
		listed[o.ReferenceID] = o
	}
	out := make([]JobOutcome, len(refs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make([]error, len(refs))
	for i, ref := range refs {
		if o, ok := listed[ref]; ok {
			out[i] = outcomeOf(o)
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = c.jobOutcome(ctx, ref, res.Aborted)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("lipsync: outcomes of batch %s: %w", res.BatchID, err)
	}
	return out, nil
}

func outcomeOf(o workflows.JobOutcome) JobOutcome {
	msg := o.Message
	if o.Reason != "" && o.Outcome != workflows.OutcomeNotSubmitted {
		msg = o.Reason + ": " + msg
	}
	return JobOutcome{ReferenceID: o.ReferenceID, Status: o.Outcome, Error: msg}
}

// jobOutcome reads one job's end from its workflow. A job still running
// after its batch settled waits for a human (or was answered and runs
// again): it is reported as such, without waiting for it.
func (c *Client) jobOutcome(ctx context.Context, ref string, aborted bool) (JobOutcome, error) {
	desc, err := c.temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(ref), "")
	if err == nil && desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		o := JobOutcome{ReferenceID: ref, Status: workflows.OutcomeEscalated, Error: "still running after the batch settled"}
		if st, err := c.Status(ctx, ref); err == nil && st.WaitingForDecision {
			o.Error = fmt.Sprintf("%s: %s (waiting for a human: starter resolve %s retry|abandon)", st.Escalated, st.LastError, ref)
		}
		return o, nil
	}
	r, err := c.Attach(ctx, ref).Wait(ctx)
	if err == nil {
		return JobOutcome{ReferenceID: ref, Status: r.Status, OutputURL: r.OutputURL}, nil
	}
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) && aborted {
		return JobOutcome{ReferenceID: ref, Status: workflows.OutcomeNotSubmitted, Error: "the batch was aborted before the job started"}, nil
	}
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return JobOutcome{ReferenceID: ref}, err
	}
	o := workflows.JobOutcome{ReferenceID: ref, Outcome: workflows.OutcomeEscalated, Reason: appErr.Type(), Message: appErr.Message()}
	switch appErr.Type() {
	case workflows.ReasonAbandoned:
		o.Outcome = workflows.OutcomeAbandoned
	case workflows.ReasonNotSubmitted:
		o.Outcome = workflows.OutcomeNotSubmitted
	}
	return outcomeOf(o), nil
}

// encodedSize is the size of the batch's input as Temporal will carry it.
func encodedSize(b Batch) (int, error) {
	p, err := converter.GetDefaultDataConverter().ToPayload(b)
	if err != nil {
		return 0, fmt.Errorf("lipsync: encode batch %s: %w", b.BatchID, err)
	}
	return p.Size(), nil
}

// batchSize is how many jobs the batch holds.
func batchSize(b Batch) int {
	if b.Source != nil {
		return b.Source.Jobs
	}
	return len(b.Jobs)
}
