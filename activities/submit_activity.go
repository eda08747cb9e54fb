package activities

import (
	"context"
	"slices"
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
}

// RecordJob writes the job's row in state pending. Recording the same job
// again is a no-op, so retries and continued runs are harmless.
func (a *Activities) RecordJob(ctx context.Context, in RecordJobInput) error {
	err := a.Store.RecordJob(ctx, store.NewJob{
		WorkflowID:  in.WorkflowID,
		ReferenceID: in.ReferenceID,
		BatchID:     in.BatchID,
		VideoSource: config.RedactURL(in.Video),
		AudioSource: config.RedactURL(in.Audio),
	})
	if err != nil {
		return storeError("record job", err)
	}
	return nil
}

// SubmitInput is one submission of a job to the API.
type SubmitInput struct {
	WorkflowID  string
	ReferenceID string
	// Attempt counts the job's submissions: 1, then one more for every
	// resubmission a human asks for.
	Attempt int
	// Video and Audio are http(s) URLs the vendor downloads, or file://
	// references to files the worker uploads. Both must be of one kind.
	Video                         string
	Audio                         string
	DisableActiveSpeakerDetection bool
	// KnownRequestIDs are the requests of earlier submissions of this job;
	// they are never adopted.
	KnownRequestIDs []string
}

// SubmitResult says which vendor request now carries the job.
type SubmitResult struct {
	RequestID string
	// Adopted is true when an earlier, unanswered activity attempt had in
	// fact created the request, and it was adopted instead of creating a
	// second one.
	Adopted     bool
	SubmittedAt time.Time
}

// Submit creates the job at the vendor, idempotently: on any activity retry
// it first asks the API whether a request with the job's reference_id
// already exists (an earlier attempt may have been accepted although its
// answer was lost) and adopts it rather than paying for the job twice.
func (a *Activities) Submit(ctx context.Context, in SubmitInput) (SubmitResult, error) {
	if in.ReferenceID == "" || in.WorkflowID == "" {
		return SubmitResult{}, temporal.NewNonRetryableApplicationError("submit: reference_id and workflow_id are required", TypeInvalidInput, nil)
	}
	log := activity.GetLogger(ctx)
	var res SubmitResult
	if activity.GetInfo(ctx).Attempt > 1 {
		if err := a.settle(ctx); err != nil {
			return SubmitResult{}, err
		}
		existing, err := a.findEarlierSubmission(ctx, in)
		if err != nil {
			return SubmitResult{}, err
		}
		if existing != "" {
			log.Info("adopting a request created by an earlier attempt", "RequestId", existing, "ReferenceId", in.ReferenceID)
			res = SubmitResult{RequestID: existing, Adopted: true}
		}
	}
	if res.RequestID == "" {
		if err := a.checkAccountHold(ctx); err != nil {
			return SubmitResult{}, err
		}
		resp, err := a.generate(ctx, in)
		if err != nil {
			return SubmitResult{}, err
		}
		res = SubmitResult{RequestID: resp.RequestID}
	}
	res.SubmittedAt = time.Now().UTC()
	message := "submitted"
	if res.Adopted {
		message = "adopted the request an unanswered attempt had created"
	}
	if _, err := a.Store.UpdateJob(ctx, store.JobUpdate{
		WorkflowID:  in.WorkflowID,
		Attempt:     in.Attempt,
		Status:      store.StatusSubmitted,
		RequestID:   res.RequestID,
		SubmittedAt: &res.SubmittedAt,
		Message:     message,
	}); err != nil {
		// The request exists at the vendor; the retry adopts it.
		return SubmitResult{}, storeError("record submission", err)
	}
	return res, nil
}

// settle waits SubmitSettle, so that a request of the previous attempt that
// the server was still processing when its answer timed out has landed
// before the attempt looks for it (found by fault-injecting slow answers:
// without it a retry listed too early and created a second job). It waits
// on the worker's own clock, whatever the attempt's scheduled time says,
// so clock skew cannot shorten it.
func (a *Activities) settle(ctx context.Context) error {
	if a.SubmitSettle <= 0 {
		return nil
	}
	t := time.NewTimer(a.SubmitSettle)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
