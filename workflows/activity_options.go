package workflows

import (
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
)

// The activity options both workflows use, in one place: the database
// activities, the notification, and the API calls.

// storeActivityOptions are the options of the database activities.
func storeActivityOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         storeRetryPolicy(),
	})
}

// storeRetryPolicy is how database writes are retried: backing off to a
// minute, for as long as the database is away, never on invalid input.
func storeRetryPolicy() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        time.Minute,
		NonRetryableErrorTypes: []string{activities.TypeInvalidInput},
	}
}

// storeLocalOptions are the options of a database write run as a local
// activity (a run of the job epoch records its job that way): retried as
// the store activities are for half a minute, within the workflow task
// and with nothing in the history; the caller goes on with an activity
// when the database is away longer.
func storeLocalOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            storeRetryPolicy(),
		Summary:                summary,
	})
}

// notifyActivityOptions are the options of NotifyHuman: retried, bounded,
// never blocking the workflow for long.
func notifyActivityOptions(ctx workflow.Context, notifyTimeout time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    notifyTimeout + 5*time.Second,
		ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        2 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        8,
			NonRetryableErrorTypes: []string{activities.TypeInvalidInput},
		},
	})
}

func (j *job) storeOptions(ctx workflow.Context) workflow.Context {
	return storeActivityOptions(ctx)
}

// apiOptions are the options of the API activities (Submit, CheckStatus)
// on their rate-limited task queue, with a summary for the Web UI.
func (j *job) apiOptions(ctx workflow.Context, taskQueue, summary string) workflow.Context {
	s := j.state.Settings
	opts := workflow.ActivityOptions{
		TaskQueue: taskQueue,
		// A retried submission may wait one request timeout for an
		// earlier request to land, then take two requests (look for it,
		// then create), plus a database write.
		StartToCloseTimeout:    3*s.RequestTimeout + 15*time.Second,
		ScheduleToCloseTimeout: s.RetryMaxElapsed,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        s.RetryInitial,
			BackoffCoefficient:     2,
			MaximumInterval:        s.RetryMax,
			NonRetryableErrorTypes: activities.PermanentErrorTypes(),
		},
		Summary: summary,
	}
	if j.v >= 1 {
		// The retry budget (RetryMaxElapsed) is counted by the activity
		// from its first attempt's start: waiting in the rate-limited task
		// queue spends none of it. ScheduleToClose only bounds a call that
		// cannot even start: by the job's deadline.
		opts.ScheduleToCloseTimeout = max(s.Deadline, s.RetryMaxElapsed)
	}
	return workflow.WithActivityOptions(ctx, opts)
}

// withSummary sets the summary the Web UI shows for the next activity.
func withSummary(ctx workflow.Context, summary string) workflow.Context {
	opts := workflow.GetActivityOptions(ctx)
	opts.Summary = summary
	return workflow.WithActivityOptions(ctx, opts)
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

// pageActivityOptions are the options of LoadBatchPage: its first page
// reads and checks the whole file (a million rows of long pre-signed URLs
// is gigabytes), so it may run long while it heartbeats.
func pageActivityOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{activities.TypeInvalidInput},
		},
	})
}

// reconcileActivityOptions are the options of ReconcileJobs: bounded, so
// that a Temporal frontend that does not answer delays the batch's loop by
// minutes at most (the batch tries again later).
func reconcileActivityOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    2 * time.Minute,
		HeartbeatTimeout:       30 * time.Second,
		ScheduleToCloseTimeout: 5 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	})
}
