package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/pollplan"
)

// PlanLearnFrom is how many of the most recently completed jobs a poll plan
// learns from.
const PlanLearnFrom = 500

// PlanPollsInput asks for a job's poll plan.
type PlanPollsInput struct {
	// TargetLatency is the detection latency the plan aims at for 95% of
	// jobs.
	TargetLatency time.Duration
	// MaxInterval caps the plan's gaps.
	MaxInterval time.Duration
}

// PlanPollsResult is a job's poll plan.
type PlanPollsResult struct {
	// Plan is nil while fewer than pollplan.MinSamples jobs have completed:
	// the job then backs off geometrically.
	Plan *pollplan.Plan
	// Samples is the number of past jobs found.
	Samples int
}

// PlanPolls learns a poll plan from the processing times of the last
// PlanLearnFrom completed jobs recorded in PostgreSQL.
func (a *Activities) PlanPolls(ctx context.Context, in PlanPollsInput) (PlanPollsResult, error) {
	past, err := a.Store.RecentProcessingTimes(ctx, PlanLearnFrom)
	if err != nil {
		return PlanPollsResult{}, storeError("read past processing times", err)
	}
	res := PlanPollsResult{Samples: len(past)}
	if len(past) < pollplan.MinSamples {
		return res, nil
	}
	plan, err := pollplan.Learn(past, in.TargetLatency, in.MaxInterval)
	if err != nil {
		return PlanPollsResult{}, temporal.NewNonRetryableApplicationError("plan polls: "+err.Error(), TypeInvalidInput, nil)
	}
	res.Plan = &plan
	return res, nil
}
