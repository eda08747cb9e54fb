package emulator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config configures an Emulator. Zero values mean the documented defaults.
type Config struct {
	// APIKeys maps each accepted token to the name /v1/users/me reports.
	// Defaults to {"emulator-key": "emulator"}.
	APIKeys map[string]string
	// RateLimitPerMinute is the number of generation requests per rolling
	// minute per token. Defaults to 60; negative disables the limit.
	RateLimitPerMinute int
	// TokenQuota is the number of jobs a token may create before 412
	// "token limit reached". 0 means unlimited.
	TokenQuota int
	// QueuedFor is how long a job stays queued. Defaults to 2s.
	QueuedFor time.Duration
	// ProcessingFor is how long a job stays processing. Defaults to 5s.
	ProcessingFor time.Duration
	// Durations, when set, draws each job's queue and processing times
	// from a seeded model instead of using QueuedFor and ProcessingFor.
	// A scenario's queued_for and processing_for still win for its
	// reference_id.
	Durations *DurationModel
	// TimestampPrecision is the precision of the API's created_at,
	// started_at and finished_at. 0 or >= 1s gives whole seconds in RFC
	// 3339, as the vendor documents; below 1s (time.Millisecond, say) the
	// times are truncated to it and written with fractional seconds
	// (time.RFC3339Nano, still valid RFC 3339), for measurements on
	// scaled time.
	TimestampPrecision time.Duration
	// OutputBaseURL prefixes output_url. Defaults to
	// https://storage.chamelaion.com/output/.
	OutputBaseURL string
	// Faults is a seeded random mix of faults over all API requests.
	Faults RandomFaults
	// Clock is the emulator's time. Defaults to time.Now; tests inject
	// their own (a workflow test environment's, for one).
	Clock func() time.Time
	// Logger receives one line per request (never a token, never a query
	// string). Defaults to discarding.
	Logger *slog.Logger
}

// RandomFaults answers a share of API requests (all but /health) with a
// fault drawn from Statuses, and delays another share.
type RandomFaults struct {
	// Rate is the share of requests answered with a fault (0..1).
	Rate float64
	// Statuses to draw from. Defaults to 429, 500, 503, 504.
	Statuses []int
	// SlowRate is the share of requests delayed by SlowDelay, then handled
	// normally (0..1).
	SlowRate float64
	// SlowDelay defaults to 3s.
	SlowDelay time.Duration
	// Seed makes the draws repeatable.
	Seed int64
}

// Emulator is an in-memory Chamelaion API. It is safe for concurrent use.
type Emulator struct {
	cfg Config
	log *slog.Logger

	mu         sync.Mutex
	rng        *mrand.Rand
	jobs       map[string]*job
	order      []*job // creation order
	scenarios  map[string]*scenarioState
	window     map[string][]time.Time // token → accepted generation times
	created    map[string]int         // account → jobs created (quota, draws)
	requests   map[requestKey]int
	byAccount  map[accountRequestKey]int
	lost       int
	rateLimits int
	requestLog []RequestRecord
	// revoked holds the accounts whose tokens are revoked (by token).
	revoked map[string]bool
}

// job is one job. Its Go field names are the state file's JSON keys.
type job struct {
	ID          string
	ReferenceID string
	Account     string // the token's account: a hash, never the token
	AccountName string // Config.APIKeys' name; "" in older state files
	CreatedAt   time.Time
	// QueuedFor and ProcessingFor time the lifecycle from CreatedAt.
	QueuedFor     time.Duration
	ProcessingFor time.Duration
	Outcome       string
	ErrorMessage  string
	Source        string // "urls" or "media"
	VideoBytes    int64
	AudioBytes    int64
	DisableASD    bool
	// StatusReads counts the GET /v1/lipsync/requests/{id} reads of the
	// job answered 200.
	StatusReads int
	// FirstTerminalReadAt is the emulator clock's time of the first 200
	// read that showed the job completed or failed.
	FirstTerminalReadAt *time.Time
}

type scenarioState struct {
	Scenario
	submitUsed, loseUsed, statusUsed, listUsed int
}

type requestKey struct {
	endpoint string
	status   int
}

type accountRequestKey struct {
	account  string
	endpoint string
	status   int
}

// New validates cfg, fills in the defaults and returns an Emulator.
func New(cfg Config) (*Emulator, error) {
	if len(cfg.APIKeys) == 0 {
		cfg.APIKeys = map[string]string{"emulator-key": "emulator"}
	}
	for k := range cfg.APIKeys {
		if strings.TrimSpace(k) == "" {
			return nil, errors.New("emulator: an API key must not be empty")
		}
	}
	if cfg.RateLimitPerMinute == 0 {
		cfg.RateLimitPerMinute = 60
	}
	if cfg.TokenQuota < 0 {
		return nil, errors.New("emulator: TokenQuota must not be negative")
	}
	if cfg.QueuedFor == 0 {
		cfg.QueuedFor = 2 * time.Second
	}
	if cfg.ProcessingFor == 0 {
		cfg.ProcessingFor = 5 * time.Second
	}
	if cfg.QueuedFor < 0 || cfg.ProcessingFor < 0 {
		return nil, errors.New("emulator: durations must not be negative")
	}
	if cfg.Durations != nil {
		if err := cfg.Durations.validate(); err != nil {
			return nil, fmt.Errorf("emulator: duration model: %w", err)
		}
		m := *cfg.Durations // the caller's model cannot change under us
		cfg.Durations = &m
	}
	if cfg.TimestampPrecision < 0 {
		return nil, fmt.Errorf("emulator: TimestampPrecision must not be negative, got %s", cfg.TimestampPrecision)
	}
	if cfg.OutputBaseURL == "" {
		cfg.OutputBaseURL = "https://storage.chamelaion.com/output/"
	}
	f := &cfg.Faults
	if f.Rate < 0 || f.Rate > 1 || f.SlowRate < 0 || f.SlowRate > 1 {
		return nil, errors.New("emulator: fault rates must be between 0 and 1")
	}
	if len(f.Statuses) == 0 {
		f.Statuses = []int{429, 500, 503, 504}
	}
	for _, s := range f.Statuses {
		if s < 400 || s > 599 {
			return nil, fmt.Errorf("emulator: fault status %d is not an error status", s)
		}
	}
	if f.SlowDelay == 0 {
		f.SlowDelay = 3 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Emulator{cfg: cfg, log: log}
	e.resetLocked()
	return e, nil
}

// Reset forgets every job, scenario and counter.
func (e *Emulator) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resetLocked()
}

func (e *Emulator) resetLocked() {
	seed := uint64(e.cfg.Faults.Seed)
	e.rng = mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	e.jobs = make(map[string]*job)
	e.order = nil
	e.scenarios = make(map[string]*scenarioState)
	e.window = make(map[string][]time.Time)
	e.created = make(map[string]int)
	e.requests = make(map[requestKey]int)
	e.byAccount = make(map[accountRequestKey]int)
	e.lost, e.rateLimits = 0, 0
	e.requestLog = nil
	e.revoked = make(map[string]bool)
}

// SetScenario installs (or replaces) the scenario of a reference_id.
func (e *Emulator) SetScenario(s Scenario) error {
	if err := s.validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.scenarios[s.ReferenceID] = &scenarioState{Scenario: s}
	return nil
}

// Scenarios returns the installed scenarios, by reference_id.
func (e *Emulator) Scenarios() []Scenario {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Scenario, 0, len(e.scenarios))
	for _, s := range e.scenarios {
		out = append(out, s.Scenario)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ReferenceID < out[j].ReferenceID })
	return out
}

// ClearScenarios removes every scenario.
func (e *Emulator) ClearScenarios() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.scenarios = make(map[string]*scenarioState)
}

// Stats is what the emulator received.
type Stats struct {
	// JobsCreated counts every job created.
	JobsCreated int `json:"jobs_created"`
	// JobsByReferenceID counts the jobs created per reference_id (jobs
	// without one are not listed): more than 1 is a duplicate submission.
	JobsByReferenceID map[string]int `json:"jobs_by_reference_id"`
	// Requests counts requests per endpoint and answered status (0 for an
	// answer that was never sent).
	Requests []RequestCount `json:"requests"`
	// LostResponses counts generation calls that created a job but whose
	// answer was withheld.
	LostResponses int `json:"lost_responses"`
	// RateLimited counts 429 answers of the rate limit.
	RateLimited int `json:"rate_limited"`
	// RequestsByAccount counts requests per account name, endpoint and
	// answered status, sorted in that order.
	RequestsByAccount []AccountRequestCount `json:"requests_by_account"`
}

// RequestCount is the number of requests of one endpoint answered with one
// status.
type RequestCount struct {
	Endpoint string `json:"endpoint"`
	Status   int    `json:"status"`
	Count    int    `json:"count"`
}

// Stats reports what the emulator received.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Stats{JobsCreated: len(e.order), JobsByReferenceID: map[string]int{}, LostResponses: e.lost, RateLimited: e.rateLimits}
	for _, j := range e.order {
		if j.ReferenceID != "" {
			st.JobsByReferenceID[j.ReferenceID]++
		}
	}
	for k, n := range e.requests {
		st.Requests = append(st.Requests, RequestCount{Endpoint: k.endpoint, Status: k.status, Count: n})
	}
	sort.Slice(st.Requests, func(i, j int) bool {
		a, b := st.Requests[i], st.Requests[j]
		if a.Endpoint != b.Endpoint {
			return a.Endpoint < b.Endpoint
		}
		return a.Status < b.Status
	})
	st.RequestsByAccount = make([]AccountRequestCount, 0, len(e.byAccount))
	for k, n := range e.byAccount {
		st.RequestsByAccount = append(st.RequestsByAccount, AccountRequestCount{Account: k.account, Endpoint: k.endpoint, Status: k.status, Count: n})
	}
	sort.Slice(st.RequestsByAccount, func(i, j int) bool {
		a, b := st.RequestsByAccount[i], st.RequestsByAccount[j]
		if a.Account != b.Account {
			return a.Account < b.Account
		}
		if a.Endpoint != b.Endpoint {
			return a.Endpoint < b.Endpoint
		}
		return a.Status < b.Status
	})
	return st
}

// Count returns how many requests of an endpoint were answered with status.
func (st Stats) Count(endpoint string, status int) int {
	for _, r := range st.Requests {
		if r.Endpoint == endpoint && r.Status == status {
			return r.Count
		}
	}
	return 0
}

// Endpoint labels used in Stats.
const (
	EndpointHealth            = "GET /health"
	EndpointMe                = "GET /v1/users/me"
	EndpointGenerate          = "POST /v1/lipsync/generate"
	EndpointGenerateWithMedia = "POST /v1/lipsync/generate-with-media"
	EndpointGetRequest        = "GET /v1/lipsync/requests/{id}"
	EndpointListRequests      = "GET /v1/lipsync/requests"
	EndpointOther             = "other"
)

// Handler returns the emulator's HTTP handler: the API under /api and the
// control endpoints under /_emulator.
func (e *Emulator) Handler() http.Handler {
	mux := http.NewServeMux()
	api := func(endpoint string, auth bool, h func(http.ResponseWriter, *http.Request, string)) http.Handler {
		return e.instrument(endpoint, auth, h)
	}
	mux.Handle("GET /api/health", api(EndpointHealth, false, func(w http.ResponseWriter, r *http.Request, _ string) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	mux.Handle("GET /api/v1/users/me", api(EndpointMe, true, func(w http.ResponseWriter, r *http.Request, token string) {
		writeJSON(w, http.StatusOK, map[string]string{"name": e.cfg.APIKeys[token]})
	}))
	mux.Handle("POST /api/v1/lipsync/generate", api(EndpointGenerate, true, e.generate))
	mux.Handle("POST /api/v1/lipsync/generate-with-media", api(EndpointGenerateWithMedia, true, e.generateWithMedia))
	mux.Handle("GET /api/v1/lipsync/requests/{id}", api(EndpointGetRequest, true, e.getRequest))
	mux.Handle("GET /api/v1/lipsync/requests", api(EndpointListRequests, true, e.listRequests))
	mux.Handle("/api/", api(EndpointOther, false, func(w http.ResponseWriter, r *http.Request, _ string) {
		writeError(w, http.StatusNotFound, "not found")
	}))

	mux.HandleFunc("PUT /_emulator/scenarios", e.putScenarios)
	mux.HandleFunc("POST /_emulator/scenarios", e.putScenarios)
	mux.HandleFunc("GET /_emulator/scenarios", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Scenarios())
	})
	mux.HandleFunc("DELETE /_emulator/scenarios", func(w http.ResponseWriter, r *http.Request) {
		e.ClearScenarios()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /_emulator/quota", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			TokenQuota *int `json:"token_quota"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.TokenQuota == nil || *body.TokenQuota < 0 {
			writeError(w, http.StatusBadRequest, `want {"token_quota": N} with N >= 0 (0 = unlimited)`)
			return
		}
		e.SetTokenQuota(*body.TokenQuota)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /_emulator/keys", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Revoked *bool `json:"revoked"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Revoked == nil {
			writeError(w, http.StatusBadRequest, `want {"revoked": true} or {"revoked": false}`)
			return
		}
		e.RevokeKeys(*body.Revoked)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_emulator/reset", func(w http.ResponseWriter, r *http.Request) {
		e.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_emulator/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Stats())
	})
	mux.HandleFunc("GET /_emulator/requests", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]RequestRecord{"requests": e.Requests(r.URL.Query().Get("reference_id"))})
	})
	mux.HandleFunc("GET /_emulator/jobs", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]JobRecord{"jobs": e.Jobs()})
	})
	mux.HandleFunc("GET /_emulator/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		j, ok := e.jobs[r.PathValue("id")]
		var cp job
		if ok {
			cp = *j
		}
		e.mu.Unlock()
		if !ok {
			writeError(w, http.StatusNotFound, "lipsync request not found")
			return
		}
		writeJSON(w, http.StatusOK, cp)
	})
	return mux
}

func (e *Emulator) putScenarios(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "cannot read body")
		return
	}
	var list []Scenario
	trimmed := strings.TrimSpace(string(b))
	if strings.HasPrefix(trimmed, "[") {
		err = json.Unmarshal(b, &list)
	} else {
		var one Scenario
		err = json.Unmarshal(b, &one)
		list = []Scenario{one}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "scenarios: "+err.Error())
		return
	}
	for _, s := range list {
		if err := s.validate(); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	for _, s := range list {
		_ = e.SetScenario(s)
	}
	w.WriteHeader(http.StatusNoContent)
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
	// ref is the reference_id the request names, for the request log.
	ref string
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// errLost aborts a handler whose answer is withheld.
type errLost struct{}

// instrument counts the request (per endpoint, and per account name when it
// carries a valid token, whatever it is answered), applies random faults,
// checks the token, then runs h.
func (e *Emulator) instrument(endpoint string, auth bool, h func(http.ResponseWriter, *http.Request, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		arrived := e.cfg.Clock()
		account := e.accountName(r)
		defer func() {
			v := recover()
			status := rec.status
			if _, lost := v.(errLost); lost {
				status = 0
			}
			e.mu.Lock()
			e.requests[requestKey{endpoint, status}]++
			e.byAccount[accountRequestKey{account, endpoint, status}]++
			if endpoint != EndpointHealth {
				e.logRequestLocked(RequestRecord{At: arrived.UTC(), Endpoint: endpoint, ReferenceID: rec.ref, Status: status,
					RetryAfter: rec.Header().Get("Retry-After")})
			}
			e.mu.Unlock()
			e.log.Info("request", "endpoint", endpoint, "status", status, "duration", time.Since(start))
			if v != nil {
				if _, lost := v.(errLost); lost {
					panic(http.ErrAbortHandler)
				}
				panic(v)
			}
		}()
		if endpoint != EndpointHealth && endpoint != EndpointOther {
			if fault, slow := e.drawRandomFault(); fault != 0 {
				e.writeFault(rec, Fault{Status: fault})
				return
			} else if slow > 0 && !sleepCtx(r.Context(), slow) {
				return
			}
		}
		var token string
		if auth {
			var msg string
			if token, msg = e.authenticate(r); msg != "" {
				writeError(rec, http.StatusUnauthorized, msg)
				return
			}
		}
		h(rec, r, token)
	})
}

func (e *Emulator) drawRandomFault() (status int, slow time.Duration) {
	f := e.cfg.Faults
	if f.Rate == 0 && f.SlowRate == 0 {
		return 0, 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if f.Rate > 0 && e.rng.Float64() < f.Rate {
		return f.Statuses[e.rng.IntN(len(f.Statuses))], 0
	}
	if f.SlowRate > 0 && e.rng.Float64() < f.SlowRate {
		return 0, f.SlowDelay
	}
	return 0, 0
}

// authenticate returns the token, or the documented 401 message.
// validToken says whether a token is configured and not revoked.
func (e *Emulator) validToken(tok string) bool {
	if _, ok := e.cfg.APIKeys[tok]; !ok {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.revoked[tok]
}

// RevokeKeys revokes every configured token (true), as a key rotation on
// the vendor's dashboard would: every authenticated request is answered
// 401 "invalid token" until RevokeKeys(false) restores them.
func (e *Emulator) RevokeKeys(revoked bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for tok := range e.cfg.APIKeys {
		if revoked {
			e.revoked[tok] = true
		} else {
			delete(e.revoked, tok)
		}
	}
}

func (e *Emulator) authenticate(r *http.Request) (string, string) {
	authz, hasAuthz := r.Header["Authorization"]
	key, hasKey := r.Header["X-Api-Key"]
	switch {
	case hasAuthz:
		v := authz[0]
		if !strings.HasPrefix(v, "Bearer ") {
			if strings.TrimSpace(v) == "Bearer" {
				return "", "missing token"
			}
			return "", "invalid authorization format"
		}
		tok := strings.TrimPrefix(v, "Bearer ")
		if strings.TrimSpace(tok) == "" {
			return "", "missing token"
		}
		if !e.validToken(tok) {
			return "", "invalid token"
		}
		return tok, ""
	case hasKey:
		tok := key[0]
		if strings.TrimSpace(tok) == "" {
			return "", "unauthorized"
		}
		if !e.validToken(tok) {
			return "", "invalid token"
		}
		return tok, ""
	}
	return "", "missing authorization header"
}

// submission is a parsed generation request.
type submission struct {
	referenceID string
	disableASD  bool
	source      string
	videoBytes  int64
	audioBytes  int64
	problem     string // the documented 400 message, "" when valid
}

func (e *Emulator) generate(w http.ResponseWriter, r *http.Request, token string) {
	sub := submission{source: "urls"}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		sub.problem = "content-type must be application/json"
	} else {
		var body struct {
			ReferenceID string `json:"reference_id"`
			DisableASD  bool   `json:"disable_active_speaker_detection"`
			Inputs      []struct {
				Type string `json:"type"`
				URL  string `json:"url"`
			} `json:"inputs"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
			sub.problem = "invalid request body"
		} else {
			sub.referenceID, sub.disableASD = body.ReferenceID, body.DisableASD
			videos, audios := 0, 0
			for _, in := range body.Inputs {
				switch in.Type {
				case "video":
					videos++
				case "audio":
					audios++
				default:
					if sub.problem == "" {
						sub.problem = `input type must be "video" or "audio"`
					}
				}
				if strings.TrimSpace(in.URL) == "" && sub.problem == "" {
					sub.problem = "invalid request body"
				}
			}
			switch {
			case sub.problem != "":
			case videos != 1:
				sub.problem = "expected exactly one video input"
			case audios != 1:
				sub.problem = "expected exactly one audio input"
			}
		}
	}
	setReferenceID(w, sub.referenceID)
	e.create(w, r, token, sub)
}

func (e *Emulator) generateWithMedia(w http.ResponseWriter, r *http.Request, token string) {
	sub := submission{source: "media"}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		sub.problem = "content-type must be multipart/form-data"
		e.create(w, r, token, sub)
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		sub.problem = "invalid request body"
		e.create(w, r, token, sub)
		return
	}
	var model string
	var hasVideo, hasAudio bool
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			sub.problem = "invalid request body"
			break
		}
		name := part.FormName()
		switch {
		case (name == "video" || name == "audio") && part.FileName() != "":
			// Streamed: counted and discarded, never held in memory.
			n, err := io.Copy(io.Discard, part)
			if err != nil {
				sub.problem = "invalid request body"
			}
			if name == "video" {
				hasVideo, sub.videoBytes = true, n
			} else {
				hasAudio, sub.audioBytes = true, n
			}
		default:
			v, _ := io.ReadAll(io.LimitReader(part, 4096))
			switch name {
			case "model":
				model = string(v)
			case "reference_id":
				sub.referenceID = string(v)
			case "disable_active_speaker_detection":
				sub.disableASD, _ = strconv.ParseBool(string(v))
			}
		}
		part.Close()
		if sub.problem != "" {
			break
		}
	}
	setReferenceID(w, sub.referenceID)
	switch {
	case sub.problem != "":
	case !hasVideo:
		sub.problem = "video file is required"
	case !hasAudio:
		sub.problem = "audio file is required"
	case model != "" && model != "lipsync-2":
		sub.problem = `model must be "lipsync-2"`
	}
	e.create(w, r, token, sub)
}

// create applies, in order: the rate limit, the scenario's submit faults,
// validation, the quota; then creates the job and answers (or withholds the
// answer).
func (e *Emulator) create(w http.ResponseWriter, r *http.Request, token string, sub submission) {
	now := e.cfg.Clock()
	e.mu.Lock()
	if limit := e.cfg.RateLimitPerMinute; limit > 0 {
		win := e.window[token]
		cut := 0
		for cut < len(win) && now.Sub(win[cut]) >= time.Minute {
			cut++
		}
		win = win[cut:]
		if len(win) >= limit {
			wait := win[0].Add(time.Minute).Sub(now)
			secs := max(1, int((wait+time.Second-1)/time.Second))
			e.window[token] = win
			e.rateLimits++
			e.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeError(w, http.StatusTooManyRequests, "rate limit exceeded")
			return
		}
		e.window[token] = append(win, now)
	}
	sc := e.scenarios[sub.referenceID]
	if sc != nil && sc.submitUsed < len(sc.SubmitFaults) {
		f := sc.SubmitFaults[sc.submitUsed]
		sc.submitUsed++
		e.mu.Unlock()
		if !e.applyFault(w, r, f) {
			return
		}
		e.mu.Lock()
	} else if sc != nil && sc.RejectSubmits != nil {
		f := *sc.RejectSubmits
		e.mu.Unlock()
		e.applyFault(w, r, f)
		return
	}
	if sub.problem != "" {
		e.mu.Unlock()
		writeError(w, http.StatusBadRequest, sub.problem)
		return
	}
	if q := e.cfg.TokenQuota; q > 0 && e.created[accountOf(token)] >= q {
		e.mu.Unlock()
		writeError(w, http.StatusPreconditionFailed, "token limit reached")
		return
	}
	j := &job{
		ID: newUUID(), ReferenceID: sub.referenceID, Account: accountOf(token), AccountName: e.cfg.APIKeys[token],
		CreatedAt: now, QueuedFor: e.cfg.QueuedFor, ProcessingFor: e.cfg.ProcessingFor, Outcome: "completed",
		Source: sub.source, VideoBytes: sub.videoBytes, AudioBytes: sub.audioBytes, DisableASD: sub.disableASD,
	}
	if m := e.cfg.Durations; m != nil {
		j.QueuedFor, j.ProcessingFor = m.Draw(e.created[j.Account])
	}
	lose, mode := false, ""
	if sc != nil {
		if sc.QueuedFor != nil {
			j.QueuedFor = sc.QueuedFor.Duration
		}
		if sc.ProcessingFor != nil {
			j.ProcessingFor = sc.ProcessingFor.Duration
		}
		if sc.Outcome == "failed" {
			j.Outcome = "failed"
			j.ErrorMessage = sc.ErrorMessage
			if j.ErrorMessage == "" {
				j.ErrorMessage = "video URL is not accessible"
			}
		}
		if sc.loseUsed < sc.LoseResponses {
			sc.loseUsed++
			lose, mode = true, sc.LoseMode
		}
	}
	e.jobs[j.ID] = j
	e.order = append(e.order, j)
	e.created[accountOf(token)]++
	if lose {
		e.lost++
	}
	e.mu.Unlock()
	if lose {
		if mode == "hang" {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Minute):
			}
		}
		panic(errLost{})
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "success", "request_id": j.ID})
}

// requestView is a job as the API shows it.
type requestView struct {
	ID           string  `json:"id"`
	ReferenceID  string  `json:"reference_id,omitempty"`
	Status       string  `json:"status"`
	CreatedAt    string  `json:"created_at"`
	StartedAt    *string `json:"started_at,omitempty"`
	FinishedAt   *string `json:"finished_at,omitempty"`
	OutputURL    string  `json:"output_url,omitempty"`
	ErrorMessage string  `json:"error_message,omitempty"`
}

func (e *Emulator) view(j *job, now time.Time) requestView {
	ts := func(t time.Time) *string { s := e.formatTime(t); return &s }
	v := requestView{ID: j.ID, ReferenceID: j.ReferenceID, CreatedAt: *ts(j.CreatedAt)}
	started := j.CreatedAt.Add(j.QueuedFor)
	finished := started.Add(j.ProcessingFor)
	switch {
	case now.Before(started):
		v.Status = "queued"
	case now.Before(finished):
		v.Status = "processing"
		v.StartedAt = ts(started)
	default:
		v.Status = j.Outcome
		v.StartedAt, v.FinishedAt = ts(started), ts(finished)
		if j.Outcome == "completed" {
			v.OutputURL = e.cfg.OutputBaseURL + j.ID + ".mp4"
		} else {
			v.ErrorMessage = j.ErrorMessage
		}
	}
	return v
}

// findLocked returns the job with this id, or the newest with this
// reference_id, of the token's account.
func (e *Emulator) findLocked(id, token string) *job {
	account := accountOf(token)
	if j, ok := e.jobs[id]; ok && j.Account == account {
		return j
	}
	for i := len(e.order) - 1; i >= 0; i-- {
		if j := e.order[i]; j.ReferenceID == id && j.Account == account {
			return j
		}
	}
	return nil
}

func (e *Emulator) getRequest(w http.ResponseWriter, r *http.Request, token string) {
	id := r.PathValue("id")
	now := e.cfg.Clock()
	e.mu.Lock()
	j := e.findLocked(id, token)
	ref := id
	if j != nil {
		ref = j.ReferenceID
	}
	setReferenceID(w, ref)
	if sc := e.scenarios[ref]; sc != nil && sc.statusUsed < len(sc.StatusFaults) {
		f := sc.StatusFaults[sc.statusUsed]
		sc.statusUsed++
		e.mu.Unlock()
		if !e.applyFault(w, r, f) {
			return
		}
		now = e.cfg.Clock()
		e.mu.Lock()
	}
	if j == nil {
		e.mu.Unlock()
		writeError(w, http.StatusNotFound, "lipsync request not found")
		return
	}
	v := e.view(j, now)
	j.StatusReads++
	if (v.Status == "completed" || v.Status == "failed") && j.FirstTerminalReadAt == nil {
		at := now
		j.FirstTerminalReadAt = &at
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

// formatTime writes an API timestamp at the configured precision.
func (e *Emulator) formatTime(t time.Time) string {
	if p := e.cfg.TimestampPrecision; p > 0 && p < time.Second {
		return t.UTC().Truncate(p).Format(time.RFC3339Nano)
	}
	return t.UTC().Format(time.RFC3339)
}

func (e *Emulator) listRequests(w http.ResponseWriter, r *http.Request, token string) {
	q := r.URL.Query()
	limit, offset := 20, 0
	var err error
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 100 {
			writeError(w, http.StatusBadRequest, "invalid request body")
			return
		}
	}
	if s := q.Get("offset"); s != "" {
		if offset, err = strconv.Atoi(s); err != nil || offset < 0 {
			writeError(w, http.StatusBadRequest, "invalid request body")
			return
		}
	}
	ref := q.Get("reference_id")
	setReferenceID(w, ref)
	now := e.cfg.Clock()
	e.mu.Lock()
	if sc := e.scenarios[ref]; ref != "" && sc != nil && sc.listUsed < len(sc.ListFaults) {
		f := sc.ListFaults[sc.listUsed]
		sc.listUsed++
		e.mu.Unlock()
		if !e.applyFault(w, r, f) {
			return
		}
		now = e.cfg.Clock()
		e.mu.Lock()
	}
	var matched []*job
	for i := len(e.order) - 1; i >= 0; i-- {
		j := e.order[i]
		if j.Account == accountOf(token) && (ref == "" || j.ReferenceID == ref) {
			matched = append(matched, j)
		}
	}
	page := []requestView{}
	for i := offset; i < len(matched) && i < offset+limit; i++ {
		page = append(page, e.view(matched[i], now))
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"data":       page,
		"pagination": map[string]int{"limit": limit, "offset": offset, "total": len(matched)},
	})
}

// applyFault waits the fault's delay, then answers with the fault and
// returns false; a fault without a status only delays, and applyFault
// returns true for the request to be handled normally.
func (e *Emulator) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if f.Delay != nil && !sleepCtx(r.Context(), f.Delay.Duration) {
		return false
	}
	if f.Status == 0 {
		return true
	}
	e.writeFault(w, f)
	return false
}

// writeFault answers with an injected fault.
func (e *Emulator) writeFault(w http.ResponseWriter, f Fault) {
	body, ctype := defaultFaultBody(f.Status)
	if f.Body != "" {
		body, ctype = f.Body, "application/json"
	}
	if f.ContentType != "" {
		ctype = f.ContentType
	}
	if f.Status == http.StatusTooManyRequests && len(f.Headers) == 0 {
		w.Header().Set("Retry-After", "1")
	}
	for k, v := range f.Headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(f.Status)
	_, _ = io.WriteString(w, body)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// accountOf names a token's account without revealing the token.
func accountOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// SetTokenQuota changes the number of jobs each account may create (0 =
// unlimited), as a plan upgrade would; jobs created so far still count.
func (e *Emulator) SetTokenQuota(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cfg.TokenQuota = n
}
