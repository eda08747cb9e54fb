// Package pollplan decides when to check a job's status from what past jobs
// took. A job's total time is its wait in the vendor's queue, which depends
// on the vendor's traffic and is unpredictable, plus its processing time,
// which past jobs predict well. Once the vendor reports that it started the
// job (started_at), a plan checks densely only while the job is likely to
// finish, instead of polling at a fixed interval for the whole time.
//
// The plan is a pure function of the past processing times and a target
// latency, so a workflow can apply it deterministically.
package pollplan

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Quantiles of the past processing times between which a plan checks
// densely: jobs finishing before Low or after High (4% of them, if the
// future is like the past) may be detected later than the target; the
// others never are.
const (
	Low  = 0.01
	High = 0.97
	// MinSamples is the number of past jobs a plan needs.
	MinSamples = 20
	// denseShare is the share of jobs finishing inside the dense window.
	denseShare = High - Low
)

// Plan is a status-check schedule learned from past processing times.
// Offsets are processing time: time since the vendor started the job.
type Plan struct {
	// Samples is the number of past jobs the plan was learned from.
	Samples int
	// Earliest is the first check's offset: 1% of past jobs finished
	// sooner.
	Earliest time.Duration
	// Latest ends the dense checks: 97% of past jobs finished sooner.
	Latest time.Duration
	// Every is the gap between checks from Earliest to Latest.
	Every time.Duration
	// Max caps the gaps after Latest (which double each time) and the
	// gap between checks while the vendor has not started the job.
	Max time.Duration
}

// Learn builds a plan from past processing times for a target: 95% of
// the jobs like the past ones are detected within target of finishing.
// The dense gap is target × 0.96, so that the 96% of jobs finishing in the
// dense window are detected within it and the 95th percentile of the
// detection latency is 0.95 × target, as for polling every target. maxGap
// caps every other gap. It fails with fewer than MinSamples times.
func Learn(processing []time.Duration, target, maxGap time.Duration) (Plan, error) {
	if target <= 0 || maxGap <= 0 {
		return Plan{}, errors.New("pollplan: target and max must be positive")
	}
	if len(processing) < MinSamples {
		return Plan{}, fmt.Errorf("pollplan: %d past jobs, %d needed", len(processing), MinSamples)
	}
	sorted := slices.Clone(processing)
	slices.Sort(sorted)
	every := time.Duration(float64(target) * denseShare)
	return Plan{
		Samples:  len(sorted),
		Earliest: max0(quantile(sorted, Low)),
		Latest:   max0(quantile(sorted, High)),
		Every:    min(max(every, time.Millisecond), maxGap),
		Max:      maxGap,
	}, nil
}

// quantile is the nearest-rank quantile q of sorted values.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func max0(d time.Duration) time.Duration { return max(d, 0) }

// QueuedWait is the gap between checks while the vendor has not started
// the job: a job cannot finish sooner than Earliest after it starts, so a
// check this often learns started_at in time for the dense checks, and a
// job that starts and finishes between two checks is still detected within
// Every of finishing.
func (p Plan) QueuedWait() time.Duration {
	return min(p.Earliest+p.Every, p.Max)
}

// Next returns the offset of the next check after a check at processing
// time elapsed: the first planned offset after it, but never sooner than a
// quarter gap after it (a check just made says little new so soon).
func (p Plan) Next(elapsed time.Duration) time.Duration {
	return max(p.planned(elapsed), elapsed+p.Every/4)
}

// planned returns the first planned offset after elapsed.
func (p Plan) planned(elapsed time.Duration) time.Duration {
	if elapsed < p.Earliest {
		return p.Earliest
	}
	// The dense checks: Earliest, Earliest+Every, ... until one is at or
	// past Latest.
	steps := (p.Latest - p.Earliest + p.Every - 1) / p.Every
	last := p.Earliest + steps*p.Every
	if elapsed < last {
		return p.Earliest + ((elapsed-p.Earliest)/p.Every+1)*p.Every
	}
	// Then gaps doubling from Every up to Max.
	off, gap := last, p.Every
	for off <= elapsed {
		gap = min(2*gap, p.Max)
		if gap == p.Max {
			return off + ((elapsed-off)/gap+1)*gap
		}
		off += gap
	}
	return off
}
