package emulator

import (
	"fmt"
	"math"
	mrand "math/rand/v2"
	"time"
)

// DurationModel draws each job's queue and processing durations from two
// log-normal distributions, so that a workload looks like real traffic:
// most jobs are quick, a few sit in the queue for a long time.
//
// Draws are deterministic and keyed by the job's index within its account:
// the n-th job an account creates (n from 0) gets Draw(n), whatever the
// other accounts do in the meantime. A benchmark can therefore call Draw
// itself to know the durations of the workload it is about to run.
type DurationModel struct {
	// QueueMedian is the median time a job stays queued. Must be > 0.
	QueueMedian time.Duration
	// QueueSigma is the spread of the queue time: the time is
	// QueueMedian·exp(QueueSigma·Z), Z standard normal. 0 makes every
	// queue time QueueMedian. Must be >= 0.
	QueueSigma float64
	// ProcessingMedian is the median time a job stays processing. Must be
	// > 0.
	ProcessingMedian time.Duration
	// ProcessingSigma is the spread of the processing time, as QueueSigma
	// is of the queue time. Must be >= 0.
	ProcessingSigma float64
	// Max caps queue+processing; 0 means no cap. A draw over the cap has
	// its queue time shortened; if the processing time alone exceeds Max,
	// the job is processed for Max and not queued at all.
	Max time.Duration
	// Scale multiplies every drawn duration after the cap (0 means 1):
	// 0.05 runs the workload 20 times faster than real time.
	Scale float64
	// Seed selects the sequence of draws.
	Seed int64
}

// maxDraw bounds a single drawn duration (about 73 years), so that a huge
// sigma cannot overflow time.Duration, nor can queue+processing.
const maxDraw = float64(1 << 61)

// validate checks the model's values.
func (m DurationModel) validate() error {
	switch {
	case m.QueueMedian <= 0:
		return fmt.Errorf("QueueMedian must be positive, got %s", m.QueueMedian)
	case m.ProcessingMedian <= 0:
		return fmt.Errorf("ProcessingMedian must be positive, got %s", m.ProcessingMedian)
	case !finiteNonNegative(m.QueueSigma):
		return fmt.Errorf("QueueSigma must be a finite number >= 0, got %v", m.QueueSigma)
	case !finiteNonNegative(m.ProcessingSigma):
		return fmt.Errorf("ProcessingSigma must be a finite number >= 0, got %v", m.ProcessingSigma)
	case m.Max < 0:
		return fmt.Errorf("Max must not be negative, got %s", m.Max)
	case !finiteNonNegative(m.Scale):
		return fmt.Errorf("Scale must be a finite number >= 0, got %v", m.Scale)
	}
	return nil
}

func finiteNonNegative(f float64) bool { return f >= 0 && !math.IsInf(f, 1) }

// Draw returns the queue and processing durations of the n-th job (n from
// 0) of an account. It depends on m and n only: the same model and index
// always give the same durations. The emulator uses exactly this function.
func (m DurationModel) Draw(n int) (queued, processing time.Duration) {
	rng := mrand.New(mrand.NewPCG(uint64(m.Seed), splitmix64(uint64(n))))
	queued = logNormal(m.QueueMedian, m.QueueSigma, rng.NormFloat64())
	processing = logNormal(m.ProcessingMedian, m.ProcessingSigma, rng.NormFloat64())
	if m.Max > 0 {
		switch {
		case processing >= m.Max:
			queued, processing = 0, m.Max
		case queued+processing > m.Max:
			queued = m.Max - processing
		}
	}
	if m.Scale != 0 && m.Scale != 1 {
		queued = toDuration(float64(queued) * m.Scale)
		processing = toDuration(float64(processing) * m.Scale)
	}
	return queued, processing
}

// logNormal returns median·exp(sigma·z).
func logNormal(median time.Duration, sigma, z float64) time.Duration {
	return toDuration(float64(median) * math.Exp(sigma*z))
}

// toDuration rounds nanoseconds to a Duration within [0, maxDraw].
func toDuration(ns float64) time.Duration {
	return time.Duration(math.Round(math.Max(0, math.Min(ns, maxDraw))))
}

// splitmix64 scrambles a job index into a well-mixed PCG seed, so that
// neighbouring indexes start unrelated streams.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
