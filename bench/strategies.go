package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// The comparison strategies, written the way their sources show them:
//
//   - naive: the vendor documentation's loop, sleep-and-poll at a fixed
//     interval, retrying 429 after 1, 2 and 4 seconds, then giving up; no
//     idempotency, no durability.
//   - timer: Temporal's periodic polling sample, a workflow that sleeps on a
//     durable timer and runs a status activity, at a fixed interval.
//   - retry: Temporal's infrequent polling sample, one status activity that
//     fails until the job is done, retried by the server at a fixed
//     interval (backoff coefficient 1).
//
// The two Temporal strategies submit with an activity under Temporal's
// default retry policy (1s doubling to 100s, unlimited), as the samples do.

// Workflow type names of the comparison strategies.
const (
	timerWorkflowName = "BenchTimerPolling"
	retryWorkflowName = "BenchRetryPolling"
)

// PollInput is one job of a comparison strategy.
type PollInput struct {
	ReferenceID string
	Interval    time.Duration
}

// PollActivities call the API for the comparison strategies.
type PollActivities struct {
	API *chamelaion.Client
}

// Submit creates the job.
func (a *PollActivities) Submit(ctx context.Context, ref string) (string, error) {
	res, err := a.API.Generate(ctx, chamelaion.GenerateRequest{ReferenceID: ref, VideoURL: mediaURL(ref, "video"), AudioURL: mediaURL(ref, "audio")})
	if err != nil {
		return "", err
	}
	return res.RequestID, nil
}

// Check reads the job's status.
func (a *PollActivities) Check(ctx context.Context, id string) (string, error) {
	req, err := a.API.GetRequest(ctx, id)
	if err != nil {
		return "", err
	}
	return string(req.Status), nil
}

// errNotDone makes the server retry CheckDone.
var errNotDone = errors.New("job not done yet")

// CheckDone fails until the job ended.
func (a *PollActivities) CheckDone(ctx context.Context, id string) (string, error) {
	st, err := a.Check(ctx, id)
	if err != nil {
		return "", err
	}
	if st != string(chamelaion.StatusCompleted) && st != string(chamelaion.StatusFailed) {
		return "", temporal.NewApplicationError(errNotDone.Error(), "NotDone")
	}
	return st, nil
}

var pa *PollActivities

func submitJob(ctx workflow.Context, ref string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var id string
	err := workflow.ExecuteActivity(ctx, pa.Submit, ref).Get(ctx, &id)
	return id, err
}

// TimerPolling submits the job, then sleeps Interval and checks, until the
// job ended.
func TimerPolling(ctx workflow.Context, in PollInput) (string, error) {
	id, err := submitJob(ctx, in.ReferenceID)
	if err != nil {
		return "", err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	for {
		if err := workflow.Sleep(ctx, in.Interval); err != nil {
			return "", err
		}
		var st string
		if err := workflow.ExecuteActivity(actx, pa.Check, id).Get(ctx, &st); err != nil {
			return "", err
		}
		if st == string(chamelaion.StatusCompleted) || st == string(chamelaion.StatusFailed) {
			return st, nil
		}
	}
}

// RetryPolling submits the job, then runs one CheckDone activity that the
// server retries every Interval until the job ended.
func RetryPolling(ctx workflow.Context, in PollInput) (string, error) {
	id, err := submitJob(ctx, in.ReferenceID)
	if err != nil {
		return "", err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: in.Interval, BackoffCoefficient: 1, MaximumInterval: in.Interval},
	})
	var st string
	err = workflow.ExecuteActivity(actx, pa.CheckDone, id).Get(ctx, &st)
	return st, err
}

// naiveOptions configure the vendor-documentation loop.
type naiveOptions struct {
	Jobs     int
	Prefix   string
	Arrivals time.Duration // jobs start evenly over this window
	Interval time.Duration // sleep between status checks
	Backoff  time.Duration // first 429 backoff (then doubled, 3 retries)
	Deadline time.Duration // give up on everything after this
}

// naiveResult counts how the loop's jobs ended.
type naiveResult struct {
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	// Lost are jobs given up after the 429 retries or an error: nobody
	// hears of them again.
	Lost int `json:"lost"`
	// CPUSeconds and MaxRSS are the process's own resource use
	// (getrusage), reported because it exits before it can be measured.
	CPUSeconds float64 `json:"cpu_seconds"`
	MaxRSS     int64   `json:"max_rss_bytes"`
}

// runNaive runs the vendor documentation's loop for every job, each in its
// own goroutine, started evenly over the arrival window.
func runNaive(ctx context.Context, api *chamelaion.Client, o naiveOptions) naiveResult {
	ctx, cancel := context.WithTimeout(ctx, o.Deadline)
	defer cancel()
	var completed, failed, lost atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range o.Jobs {
		at := start.Add(time.Duration(float64(o.Arrivals) * float64(i) / float64(max(o.Jobs, 1))))
		if !sleepUntil(ctx, at) {
			lost.Add(int64(o.Jobs - i))
			break
		}
		ref := fmt.Sprintf("%s-%05d", o.Prefix, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch naiveJob(ctx, api, ref, o) {
			case chamelaion.StatusCompleted:
				completed.Add(1)
			case chamelaion.StatusFailed:
				failed.Add(1)
			default:
				lost.Add(1)
			}
		}()
	}
	wg.Wait()
	return naiveResult{Completed: int(completed.Load()), Failed: int(failed.Load()), Lost: int(lost.Load())}
}

// naiveJob is the documentation's snippet: submit (429: wait 1, 2, 4 s),
// then sleep and poll until the job ends. "" means the job was given up.
func naiveJob(ctx context.Context, api *chamelaion.Client, ref string, o naiveOptions) chamelaion.Status {
	var id string
	for attempt := 0; ; attempt++ {
		res, err := api.Generate(ctx, chamelaion.GenerateRequest{ReferenceID: ref, VideoURL: mediaURL(ref, "video"), AudioURL: mediaURL(ref, "audio")})
		if err == nil {
			id = res.RequestID
			break
		}
		var apiErr *chamelaion.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || attempt == 3 {
			return ""
		}
		if !sleepUntil(ctx, time.Now().Add(o.Backoff<<attempt)) {
			return ""
		}
	}
	for {
		if !sleepUntil(ctx, time.Now().Add(o.Interval)) {
			return ""
		}
		req, err := api.GetRequest(ctx, id)
		if err != nil {
			continue // the snippet keeps polling through errors
		}
		if req.Status == chamelaion.StatusCompleted || req.Status == chamelaion.StatusFailed {
			return req.Status
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// mediaURL is a pre-signed-looking media URL for a job.
func mediaURL(ref, kind string) string {
	return fmt.Sprintf("https://media.example.com/%s/%s.mp4?X-Amz-Signature=%016x", kind, ref, rand.Uint64())
}
