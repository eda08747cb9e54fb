package pollplan

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func seconds(xs ...float64) []time.Duration {
	out := make([]time.Duration, len(xs))
	for i, x := range xs {
		out[i] = time.Duration(x * float64(time.Second))
	}
	return out
}

func TestLearnNeedsEnoughPastJobs(t *testing.T) {
	if _, err := Learn(seconds(1, 2, 3), time.Second, time.Minute); err == nil {
		t.Fatal("a plan from 3 past jobs was accepted")
	}
	if _, err := Learn(make([]time.Duration, MinSamples), 0, time.Minute); err == nil {
		t.Fatal("a zero target was accepted")
	}
}

func TestLearnTakesQuantiles(t *testing.T) {
	var past []time.Duration
	for i := 100; i >= 1; i-- { // 1s..100s, unsorted
		past = append(past, time.Duration(i)*time.Second)
	}
	p, err := Learn(past, 10*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := Plan{Samples: 100, Earliest: time.Second, Latest: 97 * time.Second, Every: 9600 * time.Millisecond, Max: time.Minute}
	if p != want {
		t.Fatalf("plan = %+v, want %+v", p, want)
	}
}

func TestNextChecksDenselyThenBacksOff(t *testing.T) {
	p := Plan{Earliest: 10 * time.Second, Latest: 40 * time.Second, Every: 10 * time.Second, Max: 60 * time.Second}
	var got []time.Duration
	for at := time.Duration(0); at < 5*time.Minute; {
		at = p.Next(at)
		got = append(got, at)
	}
	want := seconds(10, 20, 30, 40, 60, 100, 160, 220, 280, 340)
	if !slices.Equal(got, want) {
		t.Fatalf("checks at %v, want %v", got, want)
	}
	// A check just before a planned one delays it by a quarter gap.
	if n := p.Next(19 * time.Second); n != 21500*time.Millisecond {
		t.Fatalf("after a check at 19s the next is %v, want 21.5s", n)
	}
	// Started_at learned late: the next planned check after now.
	if n := p.Next(33 * time.Second); n != 40*time.Second {
		t.Fatalf("after 33s the next is %v, want 40s", n)
	}
	if w := p.QueuedWait(); w != 20*time.Second {
		t.Fatalf("queued wait %v, want Earliest+Every = 20s", w)
	}
}

// TestPlanBeatsFixedIntervalOnLogNormalJobs simulates the schedule on the
// workload the benchmark runs: it must detect 95% of jobs as fast as
// polling at the target interval, with fewer checks.
func TestPlanBeatsFixedIntervalOnLogNormalJobs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lognormal := func(median time.Duration, sigma float64) time.Duration {
		return time.Duration(float64(median) * math.Exp(sigma*rng.NormFloat64()))
	}
	type job struct{ queue, processing time.Duration }
	draw := func(n int) []job {
		out := make([]job, n)
		for i := range out {
			out[i] = job{lognormal(75*time.Second, 1.3), lognormal(45*time.Second, 0.3)}
		}
		return out
	}
	var past []time.Duration
	for _, j := range draw(500) {
		past = append(past, j.processing)
	}
	jobs := draw(4000)
	for _, target := range []time.Duration{5 * time.Second, 30 * time.Second, 60 * time.Second} {
		plan, err := Learn(past, target, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var fixedChecks, planChecks int
		var fixedLat, planLat []time.Duration
		for _, j := range jobs {
			done := j.queue + j.processing
			// Fixed interval: checks at target, 2·target, ...
			n := done/target + 1
			fixedChecks += int(n)
			fixedLat = append(fixedLat, n*target-done)
			// The plan: queued checks until one sees the job started,
			// then the planned processing offsets.
			now, checks := time.Duration(0), 0
			for {
				if now < j.queue {
					now += plan.QueuedWait()
				} else {
					now = j.queue + plan.Next(now-j.queue)
				}
				checks++
				if now >= done {
					break
				}
			}
			planChecks += checks
			planLat = append(planLat, now-done)
		}
		p95 := func(xs []time.Duration) time.Duration {
			slices.Sort(xs)
			return xs[int(0.95*float64(len(xs)))]
		}
		t.Logf("target %v: fixed %.1f checks/job p95 %v; plan %.1f checks/job p95 %v", target,
			float64(fixedChecks)/float64(len(jobs)), p95(fixedLat), float64(planChecks)/float64(len(jobs)), p95(planLat))
		if planChecks >= fixedChecks {
			t.Errorf("target %v: the plan took %d checks, fixed polling %d", target, planChecks, fixedChecks)
		}
		if p95(planLat) > p95(fixedLat)*102/100 {
			t.Errorf("target %v: the plan's p95 latency %v is worse than fixed polling's %v", target, p95(planLat), p95(fixedLat))
		}
	}
}
