package chamelaion_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/emulator"
)

const (
	key       = "sk-live-SECRET123"
	signedURL = "https://cdn.example.com/v.mp4?X-Amz-Signature=SIGSECRET&X-Amz-Credential=CREDSECRET"
)

var secrets = []string{"SECRET123", "SIGSECRET", "CREDSECRET"}

// newEmulated returns a client talking to a fresh emulator.
func newEmulated(t *testing.T, cfg emulator.Config, opts chamelaion.Options) (*chamelaion.Client, *emulator.Emulator) {
	t.Helper()
	if cfg.APIKeys == nil {
		cfg.APIKeys = map[string]string{key: "test-token"}
	}
	emu, err := emulator.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	if opts.APIKey == "" {
		opts.APIKey = key
	}
	opts.BaseURL = srv.URL + "/api"
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	c, err := chamelaion.New(opts)
	require.NoError(t, err)
	return c, emu
}

func requireNoSecrets(t *testing.T, err error) {
	t.Helper()
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), chamelaion.Classify(err).Message} {
		for _, s := range secrets {
			require.NotContains(t, strings.ToLower(text), strings.ToLower(s))
		}
	}
}

func gen(ref string) chamelaion.GenerateRequest {
	return chamelaion.GenerateRequest{ReferenceID: ref, VideoURL: signedURL, AudioURL: "https://cdn.example.com/a.wav?sig=SIGSECRET"}
}

func TestHappyPathAgainstTheEmulator(t *testing.T) {
	now := time.Date(2026, 4, 7, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	c, _ := newEmulated(t, emulator.Config{Clock: func() time.Time { return clock() }, QueuedFor: 5 * time.Second, ProcessingFor: 80 * time.Second}, chamelaion.Options{})
	ctx := context.Background()

	require.NoError(t, c.Health(ctx))
	me, err := c.Me(ctx)
	require.NoError(t, err)
	require.Equal(t, "test-token", me.Name)

	resp, err := c.Generate(ctx, gen("dub-episode-42"))
	require.NoError(t, err)
	require.Equal(t, "success", resp.Status)
	require.Len(t, resp.RequestID, 36)

	r, err := c.GetRequest(ctx, resp.RequestID)
	require.NoError(t, err)
	require.Equal(t, chamelaion.StatusQueued, r.Status)
	require.Equal(t, "dub-episode-42", r.ReferenceID)
	require.Nil(t, r.StartedAt)

	now = now.Add(10 * time.Second)
	r, err = c.GetRequest(ctx, "dub-episode-42") // by reference_id
	require.NoError(t, err)
	require.Equal(t, chamelaion.StatusProcessing, r.Status)
	require.Equal(t, time.Date(2026, 4, 7, 10, 0, 5, 0, time.UTC), r.StartedAt.UTC())

	now = now.Add(2 * time.Minute)
	r, err = c.GetRequest(ctx, resp.RequestID)
	require.NoError(t, err)
	require.Equal(t, chamelaion.StatusCompleted, r.Status)
	require.Equal(t, "https://storage.chamelaion.com/output/"+resp.RequestID+".mp4", r.OutputURL)
	require.Equal(t, time.Date(2026, 4, 7, 10, 1, 25, 0, time.UTC), r.FinishedAt.UTC())

	_, err = c.Generate(ctx, gen("dub-episode-42"))
	require.NoError(t, err)
	page, err := c.ListRequests(ctx, chamelaion.ListOptions{ReferenceID: "dub-episode-42"})
	require.NoError(t, err)
	require.Len(t, page.Data, 2)
	require.Equal(t, 2, page.Pagination.Total)
	require.NotEqual(t, resp.RequestID, page.Data[0].ID, "newest first")
}

func TestBothAuthSchemes(t *testing.T) {
	for _, scheme := range []chamelaion.AuthScheme{chamelaion.AuthBearer, chamelaion.AuthAPIKeyHeader} {
		c, _ := newEmulated(t, emulator.Config{}, chamelaion.Options{AuthScheme: scheme})
		me, err := c.Me(context.Background())
		require.NoError(t, err, scheme)
		require.Equal(t, "test-token", me.Name)
	}
}

// TestEveryDocumentedError drives every documented error string and every
// status of the contract's table through the emulator, and checks the typed
// error and its classification.
func TestEveryDocumentedError(t *testing.T) {
	type row struct {
		name      string
		setup     func(*emulator.Emulator)
		call      func(context.Context, *chamelaion.Client) error
		status    int
		message   string
		typ       string
		retryable bool
		wait      time.Duration
	}
	generate := func(ref string) func(context.Context, *chamelaion.Client) error {
		return func(ctx context.Context, c *chamelaion.Client) error { _, err := c.Generate(ctx, gen(ref)); return err }
	}
	scenario := func(ref string, f emulator.Fault) func(*emulator.Emulator) {
		return func(e *emulator.Emulator) {
			_ = e.SetScenario(emulator.Scenario{ReferenceID: ref, SubmitFaults: []emulator.Fault{f}})
		}
	}
	rows := []row{
		{name: "404 not found", call: func(ctx context.Context, c *chamelaion.Client) error {
			_, err := c.GetRequest(ctx, "no-such-job")
			return err
		}, status: 404, message: "lipsync request not found", typ: chamelaion.TypeNotFound},
		{name: "412 quota", setup: func(e *emulator.Emulator) {}, call: func(ctx context.Context, c *chamelaion.Client) error {
			_, _ = c.Generate(ctx, gen("q1"))
			_, err := c.Generate(ctx, gen("q2"))
			return err
		}, status: 412, message: "token limit reached", typ: chamelaion.TypeQuotaExceeded},
		{name: "429 rate limit", call: func(ctx context.Context, c *chamelaion.Client) error {
			var err error
			for i := 0; i < 3 && err == nil; i++ {
				_, err = c.Generate(ctx, gen(fmt.Sprint("r", i)))
			}
			return err
		}, status: 429, message: "rate limit exceeded", typ: chamelaion.TypeRateLimited, retryable: true, wait: 60 * time.Second},
	}
	for _, st := range []struct {
		status    int
		message   string
		typ       string
		retryable bool
	}{
		{400, "invalid request body", chamelaion.TypeBadRequest, false},
		{401, "unauthorized", chamelaion.TypeUnauthorized, false},
		{403, "Unauthorized: Please check your Chameleon Account Secret", chamelaion.TypeForbidden, false},
		{404, "lipsync request not found", chamelaion.TypeNotFound, false},
		{409, "Conflict: Please check the preconditions in the API docs https://developers.chameleon.io", chamelaion.TypeConflict, false},
		{412, "token limit reached", chamelaion.TypeQuotaExceeded, false},
		{422, "Unprocessable: Please check the request parameters with the API docs https://developers.chameleon.io", chamelaion.TypeUnprocessable, false},
		{418, "error 418", chamelaion.TypeClientError, false},
		{408, "error 408", chamelaion.TypeTimeout, true},
		{429, "rate limit exceeded", chamelaion.TypeRateLimited, true},
		{500, "internal error", chamelaion.TypeServerError, true},
		{502, "bad gateway", chamelaion.TypeBadGateway, true},
		{503, "<html><body><h1>503 Service Unavailable</h1></body></html>", chamelaion.TypeUnavailable, true},
		{504, "Internal timeout: An internal operation took too long.", chamelaion.TypeGatewayTimeout, true},
		{507, "error 507", chamelaion.TypeServerError, true},
	} {
		ref := fmt.Sprint("status-", st.status)
		var wait time.Duration
		if st.status == 429 {
			wait = time.Second // the emulator's default Retry-After on an injected 429
		}
		rows = append(rows, row{name: fmt.Sprint(st.status, " injected"), setup: scenario(ref, emulator.Fault{Status: st.status}),
			call: generate(ref), status: st.status, message: st.message, typ: st.typ, retryable: st.retryable, wait: wait})
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			cfg := emulator.Config{RateLimitPerMinute: -1}
			if r.typ == chamelaion.TypeRateLimited && r.setup == nil {
				cfg.RateLimitPerMinute = 2
			}
			if r.typ == chamelaion.TypeQuotaExceeded && r.setup != nil {
				cfg.TokenQuota = 1
			}
			c, emu := newEmulated(t, cfg, chamelaion.Options{})
			if r.setup != nil {
				r.setup(emu)
			}
			err := r.call(context.Background(), c)
			require.Error(t, err)
			var apiErr *chamelaion.APIError
			require.True(t, errors.As(err, &apiErr), "%T %v", err, err)
			require.Equal(t, r.status, apiErr.StatusCode)
			require.Equal(t, r.message, apiErr.Message)
			if r.wait > 0 {
				require.InDelta(t, r.wait.Seconds(), apiErr.RetryAfter.Seconds(), 1)
			}
			cl := chamelaion.Classify(err)
			require.Equal(t, r.typ, cl.Type)
			require.Equal(t, r.retryable, cl.Retryable)
			require.Equal(t, r.status, cl.StatusCode)
			require.Equal(t, !r.retryable, chamelaion.IsPermanent(err))
			requireNoSecrets(t, err)
		})
	}
}

// TestValidationMessages sends malformed requests straight to the emulator
// and checks the client reports the exact documented strings.
func TestValidationMessages(t *testing.T) {
	c, _ := newEmulated(t, emulator.Config{RateLimitPerMinute: -1}, chamelaion.Options{})
	ctx := context.Background()
	_, err := c.Generate(ctx, chamelaion.GenerateRequest{AudioURL: "https://a/x.wav"})
	var apiErr *chamelaion.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "invalid request body", apiErr.Message, "an empty video url is an invalid body")

	_, err = c.GenerateWithMedia(ctx, chamelaion.GenerateWithMediaRequest{
		Video: chamelaion.MediaFile{Name: "v.mp4", Content: strings.NewReader("v")},
		Audio: chamelaion.MediaFile{Name: "a.wav", Content: strings.NewReader("a")},
		Model: "lipsync-1",
	})
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, `model must be "lipsync-2"`, apiErr.Message)
	require.Equal(t, chamelaion.TypeBadRequest, chamelaion.Classify(err).Type)
}

func TestUnauthorizedCauses(t *testing.T) {
	c, _ := newEmulated(t, emulator.Config{}, chamelaion.Options{APIKey: "sk-wrong-SECRET123"})
	_, err := c.Me(context.Background())
	var apiErr *chamelaion.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 401, apiErr.StatusCode)
	require.Equal(t, "invalid token", apiErr.Message)
	require.False(t, chamelaion.Classify(err).Retryable)
	requireNoSecrets(t, err)
}

// TestWaitAdvice covers every form of advised wait.
func TestWaitAdvice(t *testing.T) {
	date := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		headers map[string]string
		body    string
		want    time.Duration
	}{
		{"Retry-After seconds", map[string]string{"Retry-After": "7"}, `{"error":"rate limit exceeded"}`, 7 * time.Second},
		{"Retry-After HTTP date", map[string]string{"Retry-After": date.Add(90 * time.Second).Format(http.TimeFormat), "Date": date.Format(http.TimeFormat)}, `{"error":"rate limit exceeded"}`, 90 * time.Second},
		{"X-Ratelimit-Wait", map[string]string{"X-Ratelimit-Wait": "114"}, `{"code":429,"messages":["Rate Limited"]}`, 114 * time.Second},
		{"X-Retry-After fractional", map[string]string{"X-Retry-After": "2.5"}, `{"error":"rate limit exceeded"}`, 2500 * time.Millisecond},
		{"body wait", nil, `{"code":429,"messages":["Rate Limited: Please refer to the API docs"],"wait":14}`, 14 * time.Second},
		{"largest wins", map[string]string{"X-Ratelimit-Wait": "114"}, `{"code":429,"messages":["x"],"wait":14}`, 114 * time.Second},
		{"garbage ignored", map[string]string{"Retry-After": "soon"}, `{"error":"rate limit exceeded"}`, 0},
		{"negative ignored", map[string]string{"X-Ratelimit-Wait": "-3"}, `{"error":"rate limit exceeded"}`, 0},
		{"capped at a day", map[string]string{"Retry-After": "99999999"}, `{"error":"rate limit exceeded"}`, 24 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, emu := newEmulated(t, emulator.Config{}, chamelaion.Options{})
			require.NoError(t, emu.SetScenario(emulator.Scenario{ReferenceID: "w", SubmitFaults: []emulator.Fault{{Status: 429, Headers: tc.headers, Body: tc.body}}}))
			_, err := c.Generate(context.Background(), gen("w"))
			var apiErr *chamelaion.APIError
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, tc.want, apiErr.RetryAfter)
			cl := chamelaion.Classify(err)
			require.True(t, cl.Retryable)
			require.Equal(t, chamelaion.TypeRateLimited, cl.Type)
			require.Equal(t, tc.want, cl.RetryAfter)
		})
	}
}

func TestSecondVendorMessagesAreJoined(t *testing.T) {
	c, emu := newEmulated(t, emulator.Config{}, chamelaion.Options{})
	require.NoError(t, emu.SetScenario(emulator.Scenario{ReferenceID: "m", SubmitFaults: []emulator.Fault{{Status: 503, Body: `{"code":503,"messages":["one","two"]}`}}}))
	_, err := c.Generate(context.Background(), gen("m"))
	var apiErr *chamelaion.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "one; two", apiErr.Message)
}

func TestNonJSONBodyIsTruncated(t *testing.T) {
	c, emu := newEmulated(t, emulator.Config{}, chamelaion.Options{})
	long := "<html>" + strings.Repeat("bad gateway ", 100) + "</html>"
	require.NoError(t, emu.SetScenario(emulator.Scenario{ReferenceID: "h", SubmitFaults: []emulator.Fault{{Status: 503, Body: long, ContentType: "text/html"}}}))
	_, err := c.Generate(context.Background(), gen("h"))
	var apiErr *chamelaion.APIError
	require.ErrorAs(t, err, &apiErr)
	require.LessOrEqual(t, len(apiErr.Message), 204)
	require.True(t, strings.HasPrefix(apiErr.Message, "<html>bad gateway"))
	require.Equal(t, chamelaion.TypeUnavailable, chamelaion.Classify(err).Type)
}

func TestTransportFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		l.Close()
		c, err := chamelaion.New(chamelaion.Options{BaseURL: "http://" + addr + "/api?token=SECRET123", APIKey: key})
		require.NoError(t, err)
		_, err = c.Generate(ctx, gen("x"))
		var te *chamelaion.TransportError
		require.ErrorAs(t, err, &te)
		cl := chamelaion.Classify(err)
		require.Equal(t, chamelaion.TypeConnectionFailed, cl.Type)
		require.True(t, cl.Retryable)
		require.Contains(t, err.Error(), "connection refused")
		requireNoSecrets(t, err)
	})
	t.Run("timeout", func(t *testing.T) {
		c, emu := newEmulated(t, emulator.Config{}, chamelaion.Options{Timeout: 200 * time.Millisecond})
		require.NoError(t, emu.SetScenario(emulator.Scenario{ReferenceID: "slow", SubmitFaults: []emulator.Fault{{Delay: emulator.D(5 * time.Second)}}}))
		_, err := c.Generate(ctx, gen("slow"))
		cl := chamelaion.Classify(err)
		require.Equal(t, chamelaion.TypeTimeout, cl.Type, err.Error())
		require.True(t, cl.Retryable)
		requireNoSecrets(t, err)
	})
	t.Run("response lost after the job was created", func(t *testing.T) {
		c, emu := newEmulated(t, emulator.Config{}, chamelaion.Options{})
		require.NoError(t, emu.SetScenario(emulator.Scenario{ReferenceID: "lost", LoseResponses: 1}))
		_, err := c.Generate(ctx, gen("lost"))
		cl := chamelaion.Classify(err)
		require.Equal(t, chamelaion.TypeConnectionFailed, cl.Type, err.Error())
		require.True(t, cl.Retryable)
		require.Equal(t, 1, emu.Stats().JobsByReferenceID["lost"], "the job exists although the answer was lost")
		requireNoSecrets(t, err)
	})
	t.Run("caller canceled", func(t *testing.T) {
		c, emu := newEmulated(t, emulator.Config{}, chamelaion.Options{})
		require.NoError(t, emu.SetScenario(emulator.Scenario{ReferenceID: "c", SubmitFaults: []emulator.Fault{{Delay: emulator.D(5 * time.Second)}}}))
		cctx, cancel := context.WithCancel(ctx)
		go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		_, err := c.Generate(cctx, gen("c"))
		require.Equal(t, chamelaion.TypeCanceled, chamelaion.Classify(err).Type)
	})
}

// TestInvalidSuccessBodies: a 2xx answer that cannot be trusted is a
// retryable InvalidResponse, never success.
func TestInvalidSuccessBodies(t *testing.T) {
	cases := map[string]string{
		"truncated":         `{"id":"6f82a2d8","status":"compl`,
		"not json":          `<html>ok</html>`,
		"unknown status":    `{"id":"6f82a2d8","status":"done"}`,
		"missing id":        `{"status":"queued"}`,
		"completed no url":  `{"id":"6f82a2d8","status":"completed"}`,
		"wrong field types": `{"id":6,"status":"queued"}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, body)
			}))
			defer srv.Close()
			c, err := chamelaion.New(chamelaion.Options{BaseURL: srv.URL, APIKey: key})
			require.NoError(t, err)
			_, err = c.GetRequest(context.Background(), "6f82a2d8")
			var re *chamelaion.ResponseError
			require.ErrorAs(t, err, &re)
			cl := chamelaion.Classify(err)
			require.Equal(t, chamelaion.TypeInvalidResponse, cl.Type)
			require.True(t, cl.Retryable)
		})
	}
	t.Run("generate without request_id", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"status":"success"}`)
		}))
		defer srv.Close()
		c, _ := chamelaion.New(chamelaion.Options{BaseURL: srv.URL, APIKey: key})
		_, err := c.Generate(context.Background(), gen("x"))
		require.Equal(t, chamelaion.TypeInvalidResponse, chamelaion.Classify(err).Type)
	})
}

// TestServerEchoesAreRedacted: a server that repeats the key or a
// pre-signed URL in its message does not leak them through our errors.
func TestServerEchoesAreRedacted(t *testing.T) {
	c, emu := newEmulated(t, emulator.Config{}, chamelaion.Options{})
	require.NoError(t, emu.SetScenario(emulator.Scenario{ReferenceID: "echo", SubmitFaults: []emulator.Fault{{
		Status: 400, Body: `{"error":"cannot fetch ` + signedURL + ` with token sk-live-SECRET123"}`,
	}}}))
	_, err := c.Generate(context.Background(), gen("echo"))
	require.Error(t, err)
	requireNoSecrets(t, err)
	require.Contains(t, err.Error(), "https://cdn.example.com/v.mp4?[REDACTED]")
}

func TestOptionsMaskTheKey(t *testing.T) {
	o := chamelaion.Options{BaseURL: "https://api", APIKey: key}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		require.NotContains(t, fmt.Sprintf(f, o), "SECRET123", f)
	}
	_, err := chamelaion.New(chamelaion.Options{BaseURL: "ftp://x", APIKey: key})
	require.Error(t, err)
	_, err = chamelaion.New(chamelaion.Options{BaseURL: "https://x"})
	require.Error(t, err)
	_, err = chamelaion.New(chamelaion.Options{BaseURL: "https://x", APIKey: key, AuthScheme: "basic"})
	require.Error(t, err)
}

// countingReader produces n bytes without holding them.
type countingReader struct{ left int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > r.left {
		n = r.left
	}
	for i := range p[:n] {
		p[i] = 'x'
	}
	r.left -= n
	return int(n), nil
}

// TestGenerateWithMediaStreams uploads 64 MiB and checks both that the
// emulator received every byte and that the heap never held the file.
func TestGenerateWithMediaStreams(t *testing.T) {
	const size = 64 << 20
	done := make(chan struct{})
	peakc := make(chan uint64, 1)
	received := make(chan int64, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mr, err := r.MultipartReader()
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var video int64
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			n, _ := io.Copy(io.Discard, p)
			if p.FormName() == "video" {
				video = n
			}
		}
		received <- video
		_, _ = io.WriteString(w, `{"status":"success","request_id":"6f82a2d8-a6d4-4e8a-a0fa-e8b09823a2d8"}`)
	}))
	defer srv.Close()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	go func() {
		var ms runtime.MemStats
		var peak uint64
		for {
			select {
			case <-done:
				peakc <- peak
				return
			case <-time.After(5 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	c, err := chamelaion.New(chamelaion.Options{BaseURL: srv.URL, APIKey: key, Timeout: time.Minute})
	require.NoError(t, err)
	resp, err := c.GenerateWithMedia(context.Background(), chamelaion.GenerateWithMediaRequest{
		Video:       chamelaion.MediaFile{Name: "v.mp4", Content: &countingReader{left: size}},
		Audio:       chamelaion.MediaFile{Name: "a.wav", Content: strings.NewReader("audio")},
		ReferenceID: "upload",
	})
	close(done)
	peak := <-peakc
	require.NoError(t, err)
	require.Equal(t, "success", resp.Status)
	require.Equal(t, int64(size), <-received)
	growth := int64(peak) - int64(before.HeapInuse)
	require.Less(t, growth, int64(size/4), "heap grew by %d bytes for a %d-byte upload", growth, size)

	// And against the emulator: the byte counts and the fields arrive.
	ce, emu := newEmulated(t, emulator.Config{}, chamelaion.Options{})
	resp, err = ce.GenerateWithMedia(context.Background(), chamelaion.GenerateWithMediaRequest{
		Video:       chamelaion.MediaFile{Name: "v.mp4", Content: &countingReader{left: 3 << 20}},
		Audio:       chamelaion.MediaFile{Name: "a.wav", Content: strings.NewReader("audio")},
		Model:       "lipsync-2",
		ReferenceID: "upload",
	})
	require.NoError(t, err)
	require.Equal(t, 1, emu.Stats().JobsByReferenceID["upload"])
}
