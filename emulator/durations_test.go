package emulator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/emulator"
)

// workload is a realistic model: long-tailed queue, steady processing.
var workload = emulator.DurationModel{
	QueueMedian: 75 * time.Second, QueueSigma: 1.3,
	ProcessingMedian: 45 * time.Second, ProcessingSigma: 0.3,
	Seed: 7,
}

func TestDrawIsDeterministic(t *testing.T) {
	for n := 0; n < 50; n++ {
		q1, p1 := workload.Draw(n)
		q2, p2 := workload.Draw(n)
		require.Equal(t, q1, q2, "draw %d", n)
		require.Equal(t, p1, p2, "draw %d", n)
		require.Positive(t, q1)
		require.Positive(t, p1)
	}
	q0, _ := workload.Draw(0)
	q1, _ := workload.Draw(1)
	require.NotEqual(t, q0, q1, "successive jobs get different durations")
	other := workload
	other.Seed = 8
	qo, _ := other.Draw(0)
	require.NotEqual(t, q0, qo, "the seed selects the sequence")
}

// median returns the median of ds (an even count: the lower middle).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func TestDrawMediansFollowTheModel(t *testing.T) {
	var queued, processing []time.Duration
	for n := 0; n < 2000; n++ {
		q, p := workload.Draw(n)
		queued = append(queued, q)
		processing = append(processing, p)
	}
	require.InEpsilon(t, float64(workload.QueueMedian), float64(median(queued)), 0.10)
	require.InEpsilon(t, float64(workload.ProcessingMedian), float64(median(processing)), 0.10)
	// The queue's long tail is really there: P(Z > 1) = 15.9% of the
	// draws exceed median·e^sigma (about 4.6 minutes).
	tail := time.Duration(float64(workload.QueueMedian) * math.Exp(workload.QueueSigma))
	long := 0
	for _, q := range queued {
		if q > tail {
			long++
		}
	}
	require.InDelta(t, 0.159*2000, long, 50)
}

func TestDrawMaxCapsQueuePlusProcessing(t *testing.T) {
	m := workload
	m.Max = 4 * time.Minute
	capped := 0
	for n := 0; n < 2000; n++ {
		q, p := m.Draw(n)
		uq, up := workload.Draw(n)
		require.LessOrEqual(t, q+p, m.Max, "draw %d", n)
		if uq+up > m.Max {
			capped++
			require.Equal(t, m.Max, q+p, "a capped draw uses the whole cap")
			require.Equal(t, min(up, m.Max), p, "the queue time gives way first")
		} else {
			require.Equal(t, uq, q)
			require.Equal(t, up, p)
		}
	}
	require.Greater(t, capped, 100, "the cap was exercised")

	fixed := emulator.DurationModel{QueueMedian: 20 * time.Minute, ProcessingMedian: 15 * time.Minute, Max: 30 * time.Minute}
	q, p := fixed.Draw(0)
	require.Equal(t, 15*time.Minute, q, "the queue is shortened to fit the cap")
	require.Equal(t, 15*time.Minute, p)
	fixed.ProcessingMedian = time.Hour
	q, p = fixed.Draw(0)
	require.Zero(t, q, "processing alone over the cap: no queue")
	require.Equal(t, 30*time.Minute, p)
}

func TestDrawScaleMultipliesAfterTheCap(t *testing.T) {
	m := workload
	m.Max = 4 * time.Minute
	fast := m
	fast.Scale = 0.05
	for n := 0; n < 200; n++ {
		q, p := m.Draw(n)
		fq, fp := fast.Draw(n)
		require.InDelta(t, float64(q)*0.05, float64(fq), 1, "draw %d", n)
		require.InDelta(t, float64(p)*0.05, float64(fp), 1, "draw %d", n)
		require.LessOrEqual(t, fq+fp, 12*time.Second+time.Nanosecond)
	}
	exact := emulator.DurationModel{QueueMedian: 75 * time.Second, ProcessingMedian: 45 * time.Second, Scale: 0.05}
	q, p := exact.Draw(3)
	require.Equal(t, 3750*time.Millisecond, q, "sigma 0 is always the median, scaled")
	require.Equal(t, 2250*time.Millisecond, p)
}

func TestDurationModelIsValidated(t *testing.T) {
	ok := emulator.DurationModel{QueueMedian: time.Second, ProcessingMedian: time.Second}
	cases := []struct {
		mutate func(*emulator.DurationModel)
		want   string
	}{
		{func(m *emulator.DurationModel) { m.QueueMedian = 0 }, "QueueMedian must be positive"},
		{func(m *emulator.DurationModel) { m.ProcessingMedian = -time.Second }, "ProcessingMedian must be positive"},
		{func(m *emulator.DurationModel) { m.QueueSigma = -0.1 }, "QueueSigma"},
		{func(m *emulator.DurationModel) { m.ProcessingSigma = -1 }, "ProcessingSigma"},
		{func(m *emulator.DurationModel) { m.Max = -time.Minute }, "Max must not be negative"},
		{func(m *emulator.DurationModel) { m.Scale = -0.5 }, "Scale"},
	}
	for _, tc := range cases {
		m := ok
		tc.mutate(&m)
		_, err := emulator.New(emulator.Config{Durations: &m})
		require.ErrorContains(t, err, tc.want)
		require.ErrorContains(t, err, "duration model")
	}
	_, err := emulator.New(emulator.Config{Durations: &ok})
	require.NoError(t, err)
	_, err = emulator.New(emulator.Config{TimestampPrecision: -time.Millisecond})
	require.ErrorContains(t, err, "TimestampPrecision")
}

// twoAccounts is the API keys of two accounts.
var twoAccounts = map[string]string{"tok-alice": "alice", "tok-bob": "bob"}

func submitAs(f *fixture, tok, ref string) string {
	f.t.Helper()
	status, body, _ := f.do("POST", "/api/v1/lipsync/generate", map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}, genBody(ref))
	require.Equal(f.t, 200, status, body)
	return body["request_id"].(string)
}

// durationsByAccount returns each account's jobs' queue and processing
// times, in creation order.
func durationsByAccount(jobs []emulator.JobRecord) map[string][][2]time.Duration {
	out := map[string][][2]time.Duration{}
	for _, j := range jobs {
		out[j.Account] = append(out[j.Account], [2]time.Duration{j.StartedAt.Sub(j.CreatedAt), j.FinishedAt.Sub(j.StartedAt)})
	}
	return out
}

func TestDrawsAreKeyedPerAccountWhateverTheInterleaving(t *testing.T) {
	m := workload
	m.Scale = 0.05
	cfg := emulator.Config{APIKeys: twoAccounts, RateLimitPerMinute: -1, Durations: &m}
	sequential := newFixture(t, cfg)
	for _, tok := range []string{"tok-alice", "tok-alice", "tok-alice", "tok-bob", "tok-bob", "tok-bob"} {
		submitAs(sequential, tok, "")
	}
	interleaved := newFixture(t, cfg)
	for _, tok := range []string{"tok-bob", "tok-alice", "tok-bob", "tok-alice", "tok-bob", "tok-alice"} {
		submitAs(interleaved, tok, "")
	}
	var want [][2]time.Duration
	for n := 0; n < 3; n++ {
		q, p := m.Draw(n)
		want = append(want, [2]time.Duration{q, p})
	}
	for _, f := range []*fixture{sequential, interleaved} {
		got := durationsByAccount(f.emu.Jobs())
		require.Equal(t, want, got["alice"])
		require.Equal(t, want, got["bob"])
	}

	// A scenario still overrides the drawn queue time; the job still uses
	// up its account's draw.
	require.NoError(t, interleaved.emu.SetScenario(emulator.Scenario{ReferenceID: "pinned", QueuedFor: emulator.D(time.Hour)}))
	submitAs(interleaved, "tok-alice", "pinned")
	submitAs(interleaved, "tok-alice", "")
	got := durationsByAccount(interleaved.emu.Jobs())["alice"]
	_, p3 := m.Draw(3)
	require.Equal(t, [2]time.Duration{time.Hour, p3}, got[3])
	q4, p4 := m.Draw(4)
	require.Equal(t, [2]time.Duration{q4, p4}, got[4])
}

func TestDrawnDurationsDriveTheLifecycle(t *testing.T) {
	m := emulator.DurationModel{QueueMedian: 10 * time.Second, ProcessingMedian: 20 * time.Second, QueueSigma: 0.5, ProcessingSigma: 0.5, Seed: 3}
	f := newFixture(t, emulator.Config{Durations: &m})
	id := submitAs(f, token, "drawn")
	q, p := m.Draw(0)
	read := func() string {
		status, body, _ := f.do("GET", "/api/v1/lipsync/requests/"+id, auth(), nil)
		require.Equal(t, 200, status)
		return body["status"].(string)
	}
	f.clock.Add(q - time.Millisecond)
	require.Equal(t, "queued", read())
	f.clock.Add(time.Millisecond)
	require.Equal(t, "processing", read())
	f.clock.Add(p - time.Millisecond)
	require.Equal(t, "processing", read())
	f.clock.Add(time.Millisecond)
	require.Equal(t, "completed", read())
}

func TestTimestampPrecision(t *testing.T) {
	const frac = 123456789 * time.Nanosecond
	for _, tc := range []struct {
		precision                  time.Duration
		created, started, finished string
	}{
		{0, "2026-04-07T10:00:00Z", "2026-04-07T10:00:02Z", "2026-04-07T10:00:07Z"},
		{time.Second, "2026-04-07T10:00:00Z", "2026-04-07T10:00:02Z", "2026-04-07T10:00:07Z"},
		{time.Minute, "2026-04-07T10:00:00Z", "2026-04-07T10:00:02Z", "2026-04-07T10:00:07Z"},
		{time.Millisecond, "2026-04-07T10:00:00.123Z", "2026-04-07T10:00:02.373Z", "2026-04-07T10:00:07.623Z"},
	} {
		t.Run(tc.precision.String(), func(t *testing.T) {
			f := newFixture(t, emulator.Config{TimestampPrecision: tc.precision, QueuedFor: 2250 * time.Millisecond, ProcessingFor: 5250 * time.Millisecond})
			f.clock.Add(frac)
			id := submitAs(f, token, "ts")
			f.clock.Add(time.Minute)
			_, body, _ := f.do("GET", "/api/v1/lipsync/requests/"+id, auth(), nil)
			require.Equal(t, tc.created, body["created_at"])
			require.Equal(t, tc.started, body["started_at"])
			require.Equal(t, tc.finished, body["finished_at"])
			_, list, _ := f.do("GET", "/api/v1/lipsync/requests", auth(), nil)
			require.Equal(t, tc.created, list["data"].([]any)[0].(map[string]any)["created_at"], "the list uses the same format")

			// The worker's client parses both forms.
			c, err := chamelaion.New(chamelaion.Options{BaseURL: f.srv.URL + "/api", APIKey: token})
			require.NoError(t, err)
			r, err := c.GetRequest(context.Background(), id)
			require.NoError(t, err)
			want, err := time.Parse(time.RFC3339, tc.created)
			require.NoError(t, err)
			require.True(t, want.Equal(r.CreatedAt), "%s != %s", want, r.CreatedAt)
			require.NotNil(t, r.FinishedAt)
			want, err = time.Parse(time.RFC3339, tc.finished)
			require.NoError(t, err)
			require.True(t, want.Equal(*r.FinishedAt))
		})
	}
}

func jobByID(t *testing.T, emu *emulator.Emulator, id string) emulator.JobRecord {
	t.Helper()
	for _, j := range emu.Jobs() {
		if j.ID == id {
			return j
		}
	}
	t.Fatalf("job %s not listed", id)
	return emulator.JobRecord{}
}

func TestStatusReadsAndFirstTerminalRead(t *testing.T) {
	f := newFixture(t, emulator.Config{APIKeys: map[string]string{token: "me", "tok-other": "other"}, QueuedFor: 10 * time.Second, ProcessingFor: time.Minute})
	require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "r", StatusFaults: []emulator.Fault{{Status: 500}, {Delay: emulator.D(time.Millisecond)}}}))
	id := submitAs(f, token, "r")
	read := func(idOrRef string) int {
		status, _, _ := f.do("GET", "/api/v1/lipsync/requests/"+idOrRef, auth(), nil)
		return status
	}
	require.Equal(t, 500, read("r"), "a scenario fault is not a read of the job")
	require.Equal(t, 200, read(id), "a slow-then-normal fault is")
	require.Equal(t, 200, read("r"), "by reference_id")
	status, _, _ := f.do("GET", "/api/v1/lipsync/requests/"+id, map[string]string{"x-api-key": "tok-other"}, nil)
	require.Equal(t, 404, status, "another account's read finds nothing")
	f.do("GET", "/api/v1/lipsync/requests?reference_id=r", auth(), nil)
	j := jobByID(t, f.emu, id)
	require.Equal(t, 2, j.StatusReads)
	require.Nil(t, j.FirstTerminalReadAt)

	f.clock.Add(30 * time.Second) // processing
	require.Equal(t, 200, read(id))
	require.Nil(t, jobByID(t, f.emu, id).FirstTerminalReadAt)

	f.clock.Add(45 * time.Second) // completed 5s ago
	firstSeen := f.clock.Now()
	require.Equal(t, 200, read(id))
	f.clock.Add(time.Minute)
	require.Equal(t, 200, read("r"))
	j = jobByID(t, f.emu, id)
	require.Equal(t, 5, j.StatusReads)
	require.NotNil(t, j.FirstTerminalReadAt)
	require.True(t, firstSeen.Equal(*j.FirstTerminalReadAt), "the first terminal read is kept")
	require.Equal(t, 5*time.Second, j.FirstTerminalReadAt.Sub(j.FinishedAt), "noticed 5s after finishing")
}

func TestFailedJobsCountTerminalReadsToo(t *testing.T) {
	f := newFixture(t, emulator.Config{QueuedFor: time.Second, ProcessingFor: time.Second})
	require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "bad", Outcome: "failed"}))
	id := submitAs(f, token, "bad")
	f.clock.Add(3 * time.Second)
	status, body, _ := f.do("GET", "/api/v1/lipsync/requests/bad", auth(), nil)
	require.Equal(t, 200, status)
	require.Equal(t, "failed", body["status"])
	j := jobByID(t, f.emu, id)
	require.Equal(t, "failed", j.Outcome)
	require.NotNil(t, j.FirstTerminalReadAt)
}

func TestRandomFaultsAreNotReadsOfTheJob(t *testing.T) {
	f := newFixture(t, emulator.Config{RateLimitPerMinute: -1, Faults: emulator.RandomFaults{Rate: 0.4, Seed: 11}})
	var id string
	for id == "" {
		status, body, _ := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("rf"))
		if status == 200 {
			id = body["request_id"].(string)
		}
	}
	ok := 0
	for range 100 {
		status, _, _ := f.do("GET", "/api/v1/lipsync/requests/"+id, auth(), nil)
		if status == 200 {
			ok++
		}
	}
	require.Less(t, ok, 90, "faults happened")
	require.Greater(t, ok, 10)
	require.Equal(t, ok, jobByID(t, f.emu, id).StatusReads)
	require.Equal(t, ok, f.emu.Stats().Count(emulator.EndpointGetRequest, 200))
}

func TestRequestsByAccount(t *testing.T) {
	f := newFixture(t, emulator.Config{APIKeys: twoAccounts})
	id := submitAs(f, "tok-alice", "a")
	get := func(headers map[string]string, path string) {
		f.do("GET", "/api/v1/lipsync/requests/"+path, headers, nil)
	}
	alice := map[string]string{"Authorization": "Bearer tok-alice"}
	bob := map[string]string{"x-api-key": "tok-bob"}
	get(alice, id)
	get(alice, "a")
	get(bob, id)
	get(map[string]string{"Authorization": "Bearer tok-nobody"}, id)
	get(nil, id)
	f.do("GET", "/api/health", nil, nil)
	st := f.emu.Stats()
	require.Equal(t, []emulator.AccountRequestCount{
		{Account: "", Endpoint: emulator.EndpointHealth, Status: 200, Count: 1},
		{Account: "", Endpoint: emulator.EndpointGetRequest, Status: 401, Count: 2},
		{Account: "alice", Endpoint: emulator.EndpointGetRequest, Status: 200, Count: 2},
		{Account: "alice", Endpoint: emulator.EndpointGenerate, Status: 200, Count: 1},
		{Account: "bob", Endpoint: emulator.EndpointGetRequest, Status: 404, Count: 1},
	}, st.RequestsByAccount)

	_, stats, _ := f.do("GET", "/_emulator/stats", nil, nil)
	require.Equal(t, float64(1), stats["jobs_created"], "the old fields are still there")
	require.Contains(t, stats, "requests")
	byAccount := stats["requests_by_account"].([]any)
	require.Len(t, byAccount, 5)
	require.Equal(t, map[string]any{"account": "alice", "endpoint": emulator.EndpointGenerate, "status": float64(200), "count": float64(1)}, byAccount[3])
	b, err := json.Marshal(stats)
	require.NoError(t, err)
	require.NotContains(t, string(b), "tok-", "never a token")

	f.emu.Reset()
	require.Empty(t, f.emu.Stats().RequestsByAccount)
}

func TestRandomFaultsCountUnderTheAccount(t *testing.T) {
	f := newFixture(t, emulator.Config{APIKeys: twoAccounts, Faults: emulator.RandomFaults{Rate: 1, Statuses: []int{503}}})
	f.do("GET", "/api/v1/users/me", map[string]string{"x-api-key": "tok-bob"}, nil)
	require.Equal(t, []emulator.AccountRequestCount{{Account: "bob", Endpoint: emulator.EndpointMe, Status: 503, Count: 1}}, f.emu.Stats().RequestsByAccount)
}

func TestJobsEndpoint(t *testing.T) {
	f := newFixture(t, emulator.Config{APIKeys: twoAccounts, QueuedFor: 1500 * time.Millisecond, ProcessingFor: 2 * time.Second})
	f.clock.Add(250 * time.Millisecond)
	first := submitAs(f, "tok-alice", "one")
	f.clock.Add(time.Second)
	second := submitAs(f, "tok-bob", "")
	f.clock.Add(10 * time.Second)
	f.do("GET", "/api/v1/lipsync/requests/"+first, map[string]string{"x-api-key": "tok-alice"}, nil)

	resp, err := http.Get(f.srv.URL + "/_emulator/jobs")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var raw struct {
		Jobs []map[string]any `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal(b, &raw))
	require.Len(t, raw.Jobs, 2)
	require.Equal(t, map[string]any{
		"id": first, "reference_id": "one", "account": "alice",
		"created_at":             "2026-04-07T10:00:00.25Z",
		"started_at":             "2026-04-07T10:00:01.75Z",
		"finished_at":            "2026-04-07T10:00:03.75Z",
		"outcome":                "completed",
		"status_reads":           float64(1),
		"first_terminal_read_at": "2026-04-07T10:00:11.25Z",
	}, raw.Jobs[0])
	require.Equal(t, map[string]any{
		"id": second, "reference_id": "", "account": "bob",
		"created_at":   "2026-04-07T10:00:01.25Z",
		"started_at":   "2026-04-07T10:00:02.75Z",
		"finished_at":  "2026-04-07T10:00:04.75Z",
		"outcome":      "completed",
		"status_reads": float64(0),
	}, raw.Jobs[1], "never read: no first_terminal_read_at, but exact times")

	var typed struct {
		Jobs []emulator.JobRecord `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal(b, &typed))
	require.Equal(t, f.emu.Jobs(), typed.Jobs, "Jobs() is what the endpoint serves")

	f.emu.Reset()
	_, body, _ := f.do("GET", "/_emulator/jobs", nil, nil)
	require.Equal(t, []any{}, body["jobs"], "an empty list, not null")
}

func TestObservationSurvivesARestart(t *testing.T) {
	m := emulator.DurationModel{QueueMedian: time.Second, ProcessingMedian: 2 * time.Second, QueueSigma: 1, ProcessingSigma: 1, Seed: 5}
	cfg := emulator.Config{APIKeys: twoAccounts, Durations: &m}
	f := newFixture(t, cfg)
	a := submitAs(f, "tok-alice", "a")
	submitAs(f, "tok-alice", "b")
	f.clock.Add(time.Hour)
	f.do("GET", "/api/v1/lipsync/requests/"+a, map[string]string{"x-api-key": "tok-alice"}, nil)
	f.do("GET", "/api/v1/lipsync/requests/a", map[string]string{"x-api-key": "tok-alice"}, nil)
	before := f.emu.Jobs()
	require.Equal(t, 2, before[0].StatusReads)
	require.NotNil(t, before[0].FirstTerminalReadAt)
	path := t.TempDir() + "/state.json"
	require.NoError(t, f.emu.SaveState(path))
	saved, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(saved), "tok-", "the state file holds no token")

	g := newFixture(t, cfg)
	require.NoError(t, g.emu.LoadState(path))
	require.Equal(t, before, g.emu.Jobs())
	// The draw index continues where the account left off.
	submitAs(g, "tok-alice", "c")
	submitAs(g, "tok-bob", "d")
	got := durationsByAccount(g.emu.Jobs())
	q2, p2 := m.Draw(2)
	q0, p0 := m.Draw(0)
	require.Equal(t, [2]time.Duration{q2, p2}, got["alice"][2])
	require.Equal(t, [2]time.Duration{q0, p0}, got["bob"][0])
}

func TestOldStateFilesStillLoad(t *testing.T) {
	// Written by an emulator without account names or read counters; the
	// account is the hash of "tok-alice".
	f := newFixture(t, emulator.Config{APIKeys: twoAccounts})
	submitAs(f, "tok-alice", "probe")
	path := t.TempDir() + "/state.json"
	require.NoError(t, f.emu.SaveState(path))
	var probe struct {
		Jobs []map[string]any `json:"jobs"`
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &probe))
	hash := probe.Jobs[0]["Account"].(string)

	old := fmt.Sprintf(`{"jobs":[{"ID":"6f82a2d8-a6d4-4e8a-a0fa-e8b09823a2d8","ReferenceID":"legacy","Account":%q,`+
		`"CreatedAt":"2026-04-07T09:00:00Z","QueuedFor":2000000000,"ProcessingFor":5000000000,"Outcome":"completed",`+
		`"ErrorMessage":"","Source":"urls","VideoBytes":0,"AudioBytes":0,"DisableASD":false}],"created":{%q:1}}`, hash, hash)
	require.NoError(t, os.WriteFile(path, []byte(old), 0o600))
	g := newFixture(t, emulator.Config{APIKeys: twoAccounts})
	require.NoError(t, g.emu.LoadState(path))
	jobs := g.emu.Jobs()
	require.Len(t, jobs, 1)
	require.Equal(t, emulator.JobRecord{
		ID: "6f82a2d8-a6d4-4e8a-a0fa-e8b09823a2d8", ReferenceID: "legacy", Account: "alice",
		CreatedAt:  time.Date(2026, 4, 7, 9, 0, 0, 0, time.UTC),
		StartedAt:  time.Date(2026, 4, 7, 9, 0, 2, 0, time.UTC),
		FinishedAt: time.Date(2026, 4, 7, 9, 0, 7, 0, time.UTC),
		Outcome:    "completed",
	}, jobs[0])
	status, body, _ := g.do("GET", "/api/v1/lipsync/requests/legacy", map[string]string{"x-api-key": "tok-alice"}, nil)
	require.Equal(t, 200, status)
	require.Equal(t, "completed", body["status"])
	require.Equal(t, 1, g.emu.Jobs()[0].StatusReads)
	require.Equal(t, time.Date(2026, 4, 7, 10, 0, 0, 0, time.UTC), *g.emu.Jobs()[0].FirstTerminalReadAt)
}
