package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chamelaion-lipsync/worker/emulator"
)

const token = "tok-1"

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	t     *testing.T
	emu   *emulator.Emulator
	srv   *httptest.Server
	clock *fakeClock
}

func newFixture(t *testing.T, cfg emulator.Config) *fixture {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 4, 7, 10, 0, 0, 0, time.UTC)}
	if cfg.Clock == nil {
		cfg.Clock = clock.Now
	}
	if cfg.APIKeys == nil {
		cfg.APIKeys = map[string]string{token: "my token"}
	}
	emu, err := emulator.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	return &fixture{t: t, emu: emu, srv: srv, clock: clock}
}

// do sends a request and returns the status and decoded JSON body.
func (f *fixture) do(method, path string, headers map[string]string, body io.Reader) (int, map[string]any, http.Header) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	require.NoError(f.t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, m, resp.Header
}

func auth() map[string]string {
	return map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
}

func genBody(ref string) io.Reader {
	return strings.NewReader(fmt.Sprintf(`{"reference_id":%q,"inputs":[{"type":"video","url":"https://v/x.mp4"},{"type":"audio","url":"https://a/x.wav"}]}`, ref))
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	cases := []struct {
		headers map[string]string
		status  int
		msg     string
	}{
		{nil, 401, "missing authorization header"},
		{map[string]string{"Authorization": "Token abc"}, 401, "invalid authorization format"},
		{map[string]string{"Authorization": "Bearer "}, 401, "missing token"},
		{map[string]string{"Authorization": "Bearer nope"}, 401, "invalid token"},
		{map[string]string{"x-api-key": ""}, 401, "unauthorized"},
		{map[string]string{"x-api-key": "nope"}, 401, "invalid token"},
		{map[string]string{"Authorization": "Bearer " + token}, 200, ""},
		{map[string]string{"x-api-key": token}, 200, ""},
	}
	for _, tc := range cases {
		status, body, _ := f.do("GET", "/api/v1/users/me", tc.headers, nil)
		require.Equal(t, tc.status, status, tc.headers)
		if tc.msg != "" {
			require.Equal(t, tc.msg, body["error"])
		} else {
			require.Equal(t, "my token", body["name"])
		}
	}
	status, body, _ := f.do("GET", "/api/health", nil, nil)
	require.Equal(t, 200, status, "health needs no token")
	require.Equal(t, "ok", body["status"])
}

func TestGenerateValidation(t *testing.T) {
	f := newFixture(t, emulator.Config{RateLimitPerMinute: -1})
	cases := []struct {
		ctype, body, msg string
	}{
		{"text/plain", `{}`, "content-type must be application/json"},
		{"application/json", `{"inputs":`, "invalid request body"},
		{"application/json", `{"inputs":"x"}`, "invalid request body"},
		{"application/json", `{"inputs":[{"type":"image","url":"u"},{"type":"audio","url":"u"}]}`, `input type must be "video" or "audio"`},
		{"application/json", `{"inputs":[{"type":"audio","url":"u"}]}`, "expected exactly one video input"},
		{"application/json", `{"inputs":[{"type":"video","url":"u"},{"type":"video","url":"u"},{"type":"audio","url":"u"}]}`, "expected exactly one video input"},
		{"application/json", `{"inputs":[{"type":"video","url":"u"}]}`, "expected exactly one audio input"},
		{"application/json", `{"inputs":[{"type":"video","url":""},{"type":"audio","url":"u"}]}`, "invalid request body"},
	}
	for _, tc := range cases {
		h := auth()
		h["Content-Type"] = tc.ctype
		status, body, _ := f.do("POST", "/api/v1/lipsync/generate", h, strings.NewReader(tc.body))
		require.Equal(t, 400, status, tc.body)
		require.Equal(t, tc.msg, body["error"], tc.body)
	}
	h := auth()
	h["Content-Type"] = "application/json; charset=utf-8"
	status, body, _ := f.do("POST", "/api/v1/lipsync/generate", h, genBody("ok"))
	require.Equal(t, 200, status)
	require.Equal(t, "success", body["status"])
	require.Len(t, body["request_id"], 36)
	require.Equal(t, 1, f.emu.Stats().JobsCreated)
}

func multipartBody(t *testing.T, fields map[string]string, files map[string]int) (io.Reader, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		require.NoError(t, mw.WriteField(k, v))
	}
	for name, size := range files {
		w, err := mw.CreateFormFile(name, name+".bin")
		require.NoError(t, err)
		_, _ = w.Write(bytes.Repeat([]byte("x"), size))
	}
	require.NoError(t, mw.Close())
	return &buf, mw.FormDataContentType()
}

func TestGenerateWithMedia(t *testing.T) {
	f := newFixture(t, emulator.Config{RateLimitPerMinute: -1})
	cases := []struct {
		fields map[string]string
		files  map[string]int
		msg    string
	}{
		{nil, map[string]int{"audio": 10}, "video file is required"},
		{nil, map[string]int{"video": 10}, "audio file is required"},
		{map[string]string{"model": "lipsync-1"}, map[string]int{"video": 10, "audio": 10}, `model must be "lipsync-2"`},
	}
	for _, tc := range cases {
		body, ctype := multipartBody(t, tc.fields, tc.files)
		status, resp, _ := f.do("POST", "/api/v1/lipsync/generate-with-media", map[string]string{"Authorization": "Bearer " + token, "Content-Type": ctype}, body)
		require.Equal(t, 400, status)
		require.Equal(t, tc.msg, resp["error"])
	}
	status, resp, _ := f.do("POST", "/api/v1/lipsync/generate-with-media", auth(), strings.NewReader("{}"))
	require.Equal(t, 400, status)
	require.Equal(t, "content-type must be multipart/form-data", resp["error"])

	body, ctype := multipartBody(t, map[string]string{"model": "lipsync-2", "reference_id": "m1"}, map[string]int{"video": 5000, "audio": 300})
	status, resp, _ = f.do("POST", "/api/v1/lipsync/generate-with-media", map[string]string{"Authorization": "Bearer " + token, "Content-Type": ctype}, body)
	require.Equal(t, 200, status)
	id := resp["request_id"].(string)
	_, job, _ := f.do("GET", "/_emulator/jobs/"+id, nil, nil)
	require.Equal(t, float64(5000), job["VideoBytes"])
	require.Equal(t, float64(300), job["AudioBytes"])
	require.NotContains(t, fmt.Sprint(job), token, "the token is never shown")
}

func TestLifecycleFollowsTheClock(t *testing.T) {
	f := newFixture(t, emulator.Config{QueuedFor: 10 * time.Second, ProcessingFor: time.Minute})
	_, resp, _ := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("life"))
	id := resp["request_id"].(string)
	get := func(idOrRef string) map[string]any {
		status, body, _ := f.do("GET", "/api/v1/lipsync/requests/"+idOrRef, auth(), nil)
		require.Equal(t, 200, status)
		return body
	}
	r := get(id)
	require.Equal(t, "queued", r["status"])
	require.Equal(t, "2026-04-07T10:00:00Z", r["created_at"])
	require.Nil(t, r["started_at"])
	f.clock.Add(10 * time.Second)
	r = get("life")
	require.Equal(t, "processing", r["status"])
	require.Equal(t, "2026-04-07T10:00:10Z", r["started_at"])
	f.clock.Add(time.Minute)
	r = get(id)
	require.Equal(t, "completed", r["status"])
	require.Equal(t, "2026-04-07T10:01:10Z", r["finished_at"])
	require.Equal(t, "https://storage.chamelaion.com/output/"+id+".mp4", r["output_url"])

	status, body, _ := f.do("GET", "/api/v1/lipsync/requests/nope", auth(), nil)
	require.Equal(t, 404, status)
	require.Equal(t, "lipsync request not found", body["error"])
	// Another account's job is not found either.
	f2 := newFixture(t, emulator.Config{APIKeys: map[string]string{token: "a", "other": "b"}})
	_, resp, _ = f2.do("POST", "/api/v1/lipsync/generate", auth(), genBody("mine"))
	status, _, _ = f2.do("GET", "/api/v1/lipsync/requests/"+resp["request_id"].(string), map[string]string{"x-api-key": "other"}, nil)
	require.Equal(t, 404, status)
}

func TestFailedOutcomeAndQueuedScenario(t *testing.T) {
	f := newFixture(t, emulator.Config{QueuedFor: time.Second, ProcessingFor: time.Second})
	require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "bad", Outcome: "failed"}))
	require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "slow", QueuedFor: emulator.D(15 * time.Minute)}))
	f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("bad"))
	f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("slow"))
	f.clock.Add(14 * time.Minute)
	_, r, _ := f.do("GET", "/api/v1/lipsync/requests/bad", auth(), nil)
	require.Equal(t, "failed", r["status"])
	require.Equal(t, "video URL is not accessible", r["error_message"])
	require.Nil(t, r["output_url"])
	_, r, _ = f.do("GET", "/api/v1/lipsync/requests/slow", auth(), nil)
	require.Equal(t, "queued", r["status"])
	f.clock.Add(time.Minute)
	_, r, _ = f.do("GET", "/api/v1/lipsync/requests/slow", auth(), nil)
	require.Equal(t, "processing", r["status"])
}

func TestRateLimitRollingWindow(t *testing.T) {
	f := newFixture(t, emulator.Config{RateLimitPerMinute: 3})
	for i := 0; i < 3; i++ {
		status, _, _ := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody(fmt.Sprint("r", i)))
		require.Equal(t, 200, status)
		f.clock.Add(10 * time.Second)
	}
	status, body, h := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("r3"))
	require.Equal(t, 429, status)
	require.Equal(t, "rate limit exceeded", body["error"])
	require.Equal(t, "30", h.Get("Retry-After"), "the first slot frees 60s after the first request")
	// Status reads are not limited.
	status, _, _ = f.do("GET", "/api/v1/lipsync/requests?limit=5", auth(), nil)
	require.Equal(t, 200, status)
	f.clock.Add(30 * time.Second)
	status, _, _ = f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("r4"))
	require.Equal(t, 200, status)
	st := f.emu.Stats()
	require.Equal(t, 1, st.RateLimited)
	require.Equal(t, 1, st.Count(emulator.EndpointGenerate, 429))
	require.Equal(t, 4, st.Count(emulator.EndpointGenerate, 200))
}

func TestTokenQuota(t *testing.T) {
	f := newFixture(t, emulator.Config{TokenQuota: 2})
	for i := 0; i < 2; i++ {
		status, _, _ := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody(fmt.Sprint("q", i)))
		require.Equal(t, 200, status)
	}
	status, body, _ := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("q2"))
	require.Equal(t, 412, status)
	require.Equal(t, "token limit reached", body["error"])
}

func TestScenarioFaultsAreConsumedInOrder(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	status, _, _ := f.do("PUT", "/_emulator/scenarios", nil, strings.NewReader(`[{"reference_id":"s","submit_faults":[503,{"status":429,"headers":{"X-Ratelimit-Wait":"4"}}],"status_faults":[500],"list_faults":[504]}]`))
	require.Equal(t, 204, status)
	status, body, _ := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("s"))
	require.Equal(t, 503, status)
	require.Contains(t, body["raw"], "503 Service Unavailable", "a non-JSON 503")
	status, _, h := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("s"))
	require.Equal(t, 429, status)
	require.Equal(t, "4", h.Get("X-Ratelimit-Wait"))
	status, _, _ = f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("s"))
	require.Equal(t, 200, status)
	status, _, _ = f.do("GET", "/api/v1/lipsync/requests/s", auth(), nil)
	require.Equal(t, 500, status)
	status, _, _ = f.do("GET", "/api/v1/lipsync/requests/s", auth(), nil)
	require.Equal(t, 200, status)
	status, _, _ = f.do("GET", "/api/v1/lipsync/requests?reference_id=s", auth(), nil)
	require.Equal(t, 504, status)
	status, list, _ := f.do("GET", "/api/v1/lipsync/requests?reference_id=s", auth(), nil)
	require.Equal(t, 200, status)
	require.Len(t, list["data"], 1)
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["s"])

	status, body, _ = f.do("PUT", "/_emulator/scenarios", nil, strings.NewReader(`{"reference_id":"x","lose_mode":"sometimes"}`))
	require.Equal(t, 400, status)
	require.Contains(t, body["error"], "lose_mode")
}

func TestRejectedSubmissionsStayRejected(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	status, _, _ := f.do("PUT", "/_emulator/scenarios", nil, strings.NewReader(`{"reference_id":"bad","submit_faults":[503],"reject_submits":{"status":400,"body":"{\"error\":\"expected exactly one video input\"}"}}`))
	require.Equal(t, 204, status)
	status, _, _ = f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("bad"))
	require.Equal(t, 503, status, "the submit faults come first")
	for range 3 {
		status, body, _ := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("bad"))
		require.Equal(t, 400, status, "however often it is sent")
		require.Equal(t, "expected exactly one video input", body["error"])
	}
	require.Zero(t, f.emu.Stats().JobsByReferenceID["bad"])

	for _, bad := range []string{`{"delay":"1s"}`, `200`, `600`} {
		status, body, _ := f.do("PUT", "/_emulator/scenarios", nil, strings.NewReader(`{"reference_id":"x","reject_submits":`+bad+`}`))
		require.Equal(t, 400, status, bad)
		require.Contains(t, body["error"], "reject_submits", bad)
	}
}

func TestLostResponsesCreateTheJob(t *testing.T) {
	for _, mode := range []string{"reset", "hang"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t, emulator.Config{})
			require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "lost", LoseResponses: 1, LoseMode: mode}))
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", f.srv.URL+"/api/v1/lipsync/generate", genBody("lost"))
			for k, v := range auth() {
				req.Header.Set(k, v)
			}
			_, err := http.DefaultClient.Do(req)
			require.Error(t, err, "no answer arrives")
			st := f.emu.Stats()
			require.Equal(t, 1, st.JobsByReferenceID["lost"])
			require.Equal(t, 1, st.LostResponses)
			require.Eventually(t, func() bool { return f.emu.Stats().Count(emulator.EndpointGenerate, 0) == 1 }, 5*time.Second, 10*time.Millisecond)
			// The next call is answered normally.
			status, _, _ := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("lost"))
			require.Equal(t, 200, status)
		})
	}
}

func TestRandomFaultsAreSeeded(t *testing.T) {
	run := func() []int {
		f := newFixture(t, emulator.Config{RateLimitPerMinute: -1, Faults: emulator.RandomFaults{Rate: 0.3, Seed: 42}})
		var statuses []int
		for i := 0; i < 200; i++ {
			status, _, _ := f.do("GET", "/api/v1/users/me", auth(), nil)
			statuses = append(statuses, status)
		}
		return statuses
	}
	a, b := run(), run()
	require.Equal(t, a, b, "same seed, same faults")
	faults := 0
	for _, s := range a {
		if s != 200 {
			require.Contains(t, []int{429, 500, 503, 504}, s)
			faults++
		}
	}
	require.InDelta(t, 60, faults, 25, "about 30%% of 200")
}

func TestConcurrentSubmissions(t *testing.T) {
	f := newFixture(t, emulator.Config{RateLimitPerMinute: -1})
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/lipsync/generate", genBody(fmt.Sprintf("c-%d-%d", i, j)))
				for k, v := range auth() {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	st := f.emu.Stats()
	require.Equal(t, 200, st.JobsCreated)
	require.Len(t, st.JobsByReferenceID, 200)
}

func TestResetAndStatsEndpoint(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("z"))
	_, stats, _ := f.do("GET", "/_emulator/stats", nil, nil)
	require.Equal(t, float64(1), stats["jobs_created"])
	status, _, _ := f.do("POST", "/_emulator/reset", nil, nil)
	require.Equal(t, 204, status)
	require.Zero(t, f.emu.Stats().JobsCreated)
	status, body, _ := f.do("GET", "/api/nope", nil, nil)
	require.Equal(t, 404, status)
	require.Equal(t, "not found", body["error"])
}

// BenchmarkEmulatorThroughput measures requests per second through a real
// loopback server: status reads and submissions, in parallel.
func BenchmarkEmulatorThroughput(b *testing.B) {
	emu, err := emulator.New(emulator.Config{APIKeys: map[string]string{token: "t"}, RateLimitPerMinute: -1})
	require.NoError(b, err)
	srv := httptest.NewServer(emu.Handler())
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	client := &http.Client{Transport: tr}
	post := func(ref string) string {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/lipsync/generate", genBody(ref))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		require.NoError(b, err)
		defer resp.Body.Close()
		var m map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return m["request_id"]
	}
	id := post("bench")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if i%10 == 0 {
				post("bench")
				continue
			}
			req, _ := http.NewRequest("GET", srv.URL+"/api/v1/lipsync/requests/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func TestStateSurvivesARestart(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	_, resp, _ := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("kept"))
	id := resp["request_id"].(string)
	path := t.TempDir() + "/state.json"
	require.NoError(t, f.emu.SaveState(path))

	g := newFixture(t, emulator.Config{})
	require.NoError(t, g.emu.LoadState(path))
	status, body, _ := g.do("GET", "/api/v1/lipsync/requests/"+id, auth(), nil)
	require.Equal(t, 200, status)
	require.Equal(t, "kept", body["reference_id"])
	require.Equal(t, 1, g.emu.Stats().JobsByReferenceID["kept"])
	require.NoError(t, g.emu.LoadState(t.TempDir()+"/missing.json"))
}

func TestQuotaCanBeRaisedAtRunTime(t *testing.T) {
	f := newFixture(t, emulator.Config{TokenQuota: 1, RateLimitPerMinute: -1})
	gen := func(ref string) int {
		status, _, _ := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody(ref))
		return status
	}
	require.Less(t, gen("a"), 300)
	require.Equal(t, http.StatusPreconditionFailed, gen("b"))
	status, _, _ := f.do("PUT", "/_emulator/quota", nil, strings.NewReader(`{"token_quota": 0}`))
	require.Equal(t, http.StatusNoContent, status)
	require.Less(t, gen("b"), 300)
	status, _, _ = f.do("PUT", "/_emulator/quota", nil, strings.NewReader(`{"token_quota": -1}`))
	require.Equal(t, http.StatusBadRequest, status)
}

func TestRequestLogRecordsArrivalsPerReferenceID(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	status, _, _ := f.do("PUT", "/_emulator/scenarios", nil, strings.NewReader(`{"reference_id":"r","submit_faults":[{"status":429,"headers":{"Retry-After":"5"}}]}`))
	require.Equal(t, 204, status)
	start := f.clock.Now()
	status, _, _ = f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("r"))
	require.Equal(t, 429, status)
	f.clock.Add(5 * time.Second)
	status, _, _ = f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("r"))
	require.Equal(t, 200, status)
	f.clock.Add(time.Second)
	f.do("GET", "/api/v1/lipsync/requests/r", auth(), nil)
	f.do("GET", "/api/v1/lipsync/requests?reference_id=r", auth(), nil)
	f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("other"))

	got := f.emu.Requests("r")
	require.Len(t, got, 4)
	require.Equal(t, emulator.RequestRecord{At: start, Endpoint: emulator.EndpointGenerate, ReferenceID: "r", Status: 429, RetryAfter: "5"}, got[0])
	require.Equal(t, emulator.RequestRecord{At: start.Add(5 * time.Second), Endpoint: emulator.EndpointGenerate, ReferenceID: "r", Status: 200}, got[1])
	require.Equal(t, emulator.EndpointGetRequest, got[2].Endpoint)
	require.Equal(t, emulator.EndpointListRequests, got[3].Endpoint)
	require.Len(t, f.emu.Requests(""), 5)

	status, body, _ := f.do("GET", "/_emulator/requests?reference_id=r", nil, nil)
	require.Equal(t, 200, status)
	require.Len(t, body["requests"], 4)
	first := body["requests"].([]any)[0].(map[string]any)
	require.Equal(t, start.Format(time.RFC3339Nano), first["at"])
	require.Equal(t, float64(429), first["status"])
}

func TestRevokedKeysAreRefusedUntilRestored(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	status, _, _ := f.do("POST", "/api/v1/lipsync/generate", auth(), genBody("k"))
	require.Equal(t, 200, status)
	status, _, _ = f.do("PUT", "/_emulator/keys", nil, strings.NewReader(`{"revoked":true}`))
	require.Equal(t, 204, status)
	status, body, _ := f.do("GET", "/api/v1/lipsync/requests/k", auth(), nil)
	require.Equal(t, 401, status)
	require.Equal(t, "invalid token", body["error"])
	f.emu.RevokeKeys(false)
	status, _, _ = f.do("GET", "/api/v1/lipsync/requests/k", auth(), nil)
	require.Equal(t, 200, status)
	status, _, _ = f.do("PUT", "/_emulator/keys", nil, strings.NewReader(`{}`))
	require.Equal(t, 400, status)
}
