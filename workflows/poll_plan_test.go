package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/pollplan"
)

// vendorJob answers status checks like the vendor for a job queued for
// queue and processing for processing after submission, on a vendor clock
// an hour ahead of the workflow's (the plan must not depend on the skew).
func (h *harness) vendorJob(queue, processing time.Duration) {
	skew := time.Hour
	h.statusReturns(func(int) (activities.CheckStatusResult, error) {
		created := h.submits[0].Add(skew)
		now := h.env.Now().Add(skew)
		started := created.Add(queue)
		finished := started.Add(processing)
		r := activities.CheckStatusResult{Status: chamelaion.StatusQueued, CreatedAt: created}
		if !now.Before(started) {
			r.Status, r.StartedAt = chamelaion.StatusProcessing, &started
		}
		if !now.Before(finished) {
			r.Status, r.FinishedAt, r.OutputURL = chamelaion.StatusCompleted, &finished, "https://storage.chamelaion.com/output/req-1.mp4"
		}
		return r, nil
	})
}

func TestChecksFollowTheLearnedPlanFromTheVendorsStart(t *testing.T) {
	s := testSettings()
	s.Poll.TargetLatency = 30 * time.Second
	h := newHarness(t, s)
	h.submitReturns()
	plan := pollplan.Plan{Samples: 500, Earliest: 40 * time.Second, Latest: 100 * time.Second, Every: 20 * time.Second, Max: time.Minute}
	var asked []activities.PlanPollsInput
	h.env.OnActivity(a.PlanPolls, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PlanPollsInput) (activities.PlanPollsResult, error) {
			asked = append(asked, in)
			return activities.PlanPollsResult{Plan: &plan, Samples: 500}, nil
		})
	// Queued 50s, then processing 75s: done 125s after submission.
	h.vendorJob(50*time.Second, 75*time.Second)
	res, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, []activities.PlanPollsInput{{TargetLatency: 30 * time.Second, MaxInterval: time.Minute}}, asked)
	// While queued: every Earliest+Every = 60s. The check at 60s learns
	// the vendor started at 50s; the plan's checks are then at 50s + 40s,
	// +60s, +80s: the last one sees the job done at 125s.
	var at []time.Duration
	for _, c := range h.checks {
		at = append(at, c.Sub(h.submits[0]))
	}
	require.Equal(t, []time.Duration{60 * time.Second, 90 * time.Second, 110 * time.Second, 130 * time.Second}, at)
	require.Equal(t, 4, res.StatusChecks)
}

func TestWithoutAPlanTheChecksBackOffGeometrically(t *testing.T) {
	for name, answer := range map[string]func(context.Context, activities.PlanPollsInput) (activities.PlanPollsResult, error){
		"too few past jobs": func(context.Context, activities.PlanPollsInput) (activities.PlanPollsResult, error) {
			return activities.PlanPollsResult{Samples: 3}, nil
		},
		"store unavailable": func(context.Context, activities.PlanPollsInput) (activities.PlanPollsResult, error) {
			return activities.PlanPollsResult{}, errors.New("connection refused")
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := testSettings()
			s.Poll.TargetLatency = 30 * time.Second
			h := newHarness(t, s)
			h.submitReturns()
			h.env.OnActivity(a.PlanPolls, mock.Anything, mock.Anything).Return(answer)
			h.vendorJob(2*time.Second, 5*time.Minute)
			_, err := h.run(testInput())
			require.NoError(t, err)
			// After the store gave up (a minute of retries) the first wait
			// is the geometric schedule's 5s, then 10s, 20s.
			gs := gaps(h.checks, h.submits[0])
			require.Equal(t, []time.Duration{10 * time.Second, 20 * time.Second}, gs[1:3])
		})
	}
}

// TestARetriedJobsPlanIsAnchoredOnItsNewRequest: the vendor started the
// first request, then failed it; a human retried. The new request's
// checks follow the plan from the new request alone (queued: every
// Earliest+Every), not from the old request's start an hour before.
func TestARetriedJobsPlanIsAnchoredOnItsNewRequest(t *testing.T) {
	s := testSettings()
	s.Poll.TargetLatency = 30 * time.Second
	s.DecisionWait = 24 * time.Hour
	h := newHarness(t, s)
	h.submitReturns()
	plan := pollplan.Plan{Samples: 500, Earliest: 40 * time.Second, Latest: 100 * time.Second, Every: 20 * time.Second, Max: time.Minute}
	h.env.OnActivity(a.PlanPolls, mock.Anything, mock.Anything).Return(activities.PlanPollsResult{Plan: &plan, Samples: 500}, nil)
	h.statusReturns(func(int) (activities.CheckStatusResult, error) {
		created := h.submits[len(h.submits)-1]
		if len(h.submits) == 1 {
			// The first request: started 10s after its creation, failed.
			started := created.Add(10 * time.Second)
			return activities.CheckStatusResult{Status: chamelaion.StatusFailed, CreatedAt: created, StartedAt: &started, ErrorMessage: "no face"}, nil
		}
		if h.env.Now().Sub(created) < 3*time.Minute {
			return activities.CheckStatusResult{Status: chamelaion.StatusQueued, CreatedAt: created}, nil
		}
		return activities.CheckStatusResult{Status: chamelaion.StatusCompleted, CreatedAt: created, OutputURL: "https://o/x.mp4"}, nil
	})
	h.resolve(time.Hour, Decision{Action: "retry"}, new(error), new(bool))
	_, err := h.run(testInput())
	require.NoError(t, err)
	require.Len(t, h.submits, 2)
	var after []time.Duration
	for _, c := range h.checks[1:] {
		after = append(after, c.Sub(h.submits[1]))
	}
	require.Equal(t, []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute}, after, "queued: every Earliest+Every from the new request")
}
