// Package config reads the worker's and the starter's configuration from the
// environment, once, and validates it before anything connects anywhere.
//
// The variable names are a public contract: they are listed, with their
// defaults, in the README's configuration table. Every error names the
// variable it is about and never repeats a secret's value.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/chamelaion-lipsync/worker/codec"
)

// Config is the whole configuration. Read it with Load, then call the
// Validate method that fits the program (ValidateWorker, ValidateStarter).
type Config struct {
	API      API
	Database Database
	Temporal Temporal
	Jobs     Jobs
	Notify   Notify
	Log      Log
	Worker   Worker
	Codec    Codec
}

// Codec configures the payload encryption of workflow histories.
type Codec struct {
	// Keys are the AES-256 keys, "id:base64key" comma separated ("" = no
	// encryption). A secret: never logged.
	Keys string `envconfig:"PAYLOAD_ENCRYPTION_KEYS"`
	// ActiveKeyID is the id of the key that encrypts new payloads; the
	// others only decrypt. Defaults to the first key listed.
	ActiveKeyID string `envconfig:"PAYLOAD_ENCRYPTION_KEY_ID"`
	// Mode states the intent: "" (keys set: payloads encrypted, and a
	// payload that arrives in the clear with a URL in it is refused; no
	// keys: a warning at start-up that histories hold URLs in the clear),
	// "off" (no keys, on purpose: no warning), or "migrate" (keys set,
	// clear payloads still accepted while jobs started before encryption
	// finish). Defaults to "".
	Mode string `envconfig:"PAYLOAD_ENCRYPTION"`
}

// Worker configures the worker process itself.
type Worker struct {
	// MetricsAddr is where the worker serves /metrics (Prometheus) and
	// /healthz; "off" disables them. Defaults to 127.0.0.1:9090.
	MetricsAddr string `envconfig:"METRICS_ADDR" default:"127.0.0.1:9090"`
	// ProfileAddr is where the worker serves Go's profiles
	// (/debug/pprof/: CPU, heap, allocations, goroutines); "off", the
	// default, serves none. A profile carries code paths and sizes, no
	// secret, but it costs CPU while taken: keep it off the network.
	ProfileAddr string `envconfig:"PROFILE_ADDR" default:"off"`
	// ShutdownTimeout bounds a graceful stop: in-flight activities get this
	// long to finish before they are left to Temporal's retries.
	// Defaults to 30s.
	ShutdownTimeout time.Duration `envconfig:"WORKER_SHUTDOWN_TIMEOUT" default:"30s"`
	// MediaRoot is the only folder file:// media (and batch files) are
	// read from; "" turns file:// media off. Paths are resolved inside
	// it without following links out of it, and only regular files are
	// read. Defaults to "" (off).
	MediaRoot string `envconfig:"MEDIA_ROOT"`
	// MediaMaxBytes is the largest file:// media file uploaded.
	// Defaults to 1073741824 (1 GiB).
	MediaMaxBytes int64 `envconfig:"MEDIA_MAX_BYTES" default:"1073741824"`
	// WorkflowCacheSize is how many workflows the worker keeps in memory
	// (Temporal's sticky cache); a workflow evicted from it is replayed
	// from its history when it next runs. About 50 KiB each with a job
	// waiting on a timer (docs/benchmarks-memory.md). Defaults to 2000
	// (Temporal's own default is 10000), which keeps the worker within
	// 256 MiB however many jobs are in flight; a job's workflow is
	// replayed from its short history (a run keeps it bounded) only when
	// more jobs wait than the cache holds.
	WorkflowCacheSize int `envconfig:"WORKFLOW_CACHE_SIZE" default:"2000"`
}

// API configures the Chamelaion API client.
type API struct {
	// Key is the account's API token. Required by the worker. A secret: it
	// is never logged, never put into a workflow input or result, and String
	// masks it.
	Key string `envconfig:"CHAMELAION_API_KEY"`
	// BaseURL is the API's base URL: https, or http to a loopback host.
	// Defaults to https://api.chamelaion.com/api.
	BaseURL string `envconfig:"CHAMELAION_BASE_URL" default:"https://api.chamelaion.com/api"`
	// AllowHTTP permits a plain http:// BaseURL on a host that is not
	// loopback (an emulator in a container network); the key then crosses
	// the network in the clear. Defaults to false.
	AllowHTTP bool `envconfig:"CHAMELAION_ALLOW_HTTP" default:"false"`
	// AuthScheme is how the key is sent: "bearer" (Authorization: Bearer) or
	// "x-api-key". Defaults to bearer.
	AuthScheme string `envconfig:"CHAMELAION_AUTH_SCHEME" default:"bearer"`
	// RequestTimeout bounds one HTTP request to the API. Defaults to 30s.
	RequestTimeout time.Duration `envconfig:"CHAMELAION_REQUEST_TIMEOUT" default:"30s"`
	// RateLimitPerMinute is the account's budget of generation requests per
	// minute, shared by every worker through the submission task queue.
	// Defaults to 60.
	RateLimitPerMinute int `envconfig:"CHAMELAION_RATE_LIMIT_PER_MINUTE" default:"60"`
	// RateHeadroom is the share of RateLimitPerMinute kept unused, so that
	// the task queue's rate limiter (whose first second may burst) never
	// puts more than the limit into one rolling minute. Defaults to 0.02:
	// submissions run at 98% of the limit, rounded down to whole requests
	// a minute (SendBudgetPerMinute).
	RateHeadroom float64 `envconfig:"CHAMELAION_RATE_HEADROOM" default:"0.02"`
	// StatusRateLimitPerMinute is the budget of status reads per minute,
	// shared by every worker through the status task queue. Status reads
	// are not generation calls, but they must not flood the API either.
	// Defaults to 600.
	StatusRateLimitPerMinute int `envconfig:"CHAMELAION_STATUS_RATE_LIMIT_PER_MINUTE" default:"600"`
}

// SubmitRatePerSecond is the task-queue-wide rate of submissions: the
// send budget (the account's limit less the headroom, rounded down), so
// that the queue never dispatches faster than the send log lets requests go.
func (a API) SubmitRatePerSecond() float64 {
	return float64(a.SendBudgetPerMinute()) / 60
}

// SendBudgetPerMinute is the most generation requests sent in any
// rolling minute, counted when each is sent: the account's limit less the
// headroom, rounded down (at least 1).
func (a API) SendBudgetPerMinute() int {
	return max(1, int(math.Floor(float64(a.RateLimitPerMinute)*(1-a.RateHeadroom)+1e-9)))
}

// Database configures PostgreSQL.
type Database struct {
	// URL is the PostgreSQL connection URL (pool settings may ride in it).
	// Required by the worker.
	URL string `envconfig:"DATABASE_URL"`
}

// Temporal configures the connection to the Temporal frontend.
type Temporal struct {
	// Address is the frontend's host:port. Defaults to localhost:7233.
	Address string `envconfig:"TEMPORAL_ADDRESS" default:"localhost:7233"`
	// Namespace is the Temporal namespace. Defaults to default.
	Namespace string `envconfig:"TEMPORAL_NAMESPACE" default:"default"`
	// TaskQueue is the task queue of the workflows and status activities.
	// Submissions use TaskQueue + "-submit", so that their rate is
	// enforced for the whole queue. Defaults to lipsync.
	TaskQueue string `envconfig:"TEMPORAL_TASK_QUEUE" default:"lipsync"`
	// WebUIURL is the Temporal Web UI's base URL, used for the links in
	// escalations. Defaults to http://localhost:8233.
	WebUIURL string `envconfig:"TEMPORAL_WEB_UI_URL" default:"http://localhost:8233"`
	// TLS turns on TLS to the frontend (implied by the certificate
	// variables and by TEMPORAL_API_KEY). Defaults to false.
	TLS bool `envconfig:"TEMPORAL_TLS" default:"false"`
	// TLSCertFile and TLSKeyFile are a client certificate and its key
	// (mTLS, as Temporal Cloud's certificate auth wants).
	TLSCertFile string `envconfig:"TEMPORAL_TLS_CERT"`
	TLSKeyFile  string `envconfig:"TEMPORAL_TLS_KEY"`
	// TLSCAFile is a CA bundle for a server with a private CA.
	TLSCAFile string `envconfig:"TEMPORAL_TLS_CA"`
	// TLSServerName overrides the server name checked in its certificate.
	TLSServerName string `envconfig:"TEMPORAL_TLS_SERVER_NAME"`
	// APIKey authenticates to Temporal Cloud with an API key. A secret.
	APIKey string `envconfig:"TEMPORAL_API_KEY"`
	// GRPCCompression is how requests to Temporal are compressed: "none"
	// (the default) or "gzip" (the SDK's default). The worker's payloads
	// are encrypted, which no compressor shrinks: gzip spent about 15% of
	// the worker's CPU under load for next to nothing
	// (docs/efficiency.md). Choose gzip for a frontend far away over a
	// metered link.
	GRPCCompression string `envconfig:"TEMPORAL_GRPC_COMPRESSION" default:"none"`
}

// Jobs holds the defaults of every job's schedule. A job may override the
// poll schedule, the stuck threshold and the deadline in its input.
type Jobs struct {
	// PollInitialInterval is the first wait before a status check.
	// Defaults to 5s.
	PollInitialInterval time.Duration `envconfig:"POLL_INITIAL_INTERVAL" default:"5s"`
	// PollMaxInterval caps the wait between status checks. Defaults to 1m.
	PollMaxInterval time.Duration `envconfig:"POLL_MAX_INTERVAL" default:"1m"`
	// PollBackoffCoefficient multiplies the wait after each check.
	// Defaults to 2.
	PollBackoffCoefficient float64 `envconfig:"POLL_BACKOFF_COEFFICIENT" default:"2"`
	// PollTargetLatency is how soon after finishing 95% of jobs should be
	// seen finished. Once 20 jobs have completed, each job's checks
	// follow a plan learned from the processing times of the last 500
	// (dense while a job like them would finish, sparse otherwise, and
	// anchored on the vendor's started_at); before that, and with 0, the
	// checks back off geometrically from POLL_INITIAL_INTERVAL. Defaults
	// to 30s.
	PollTargetLatency time.Duration `envconfig:"POLL_TARGET_LATENCY" default:"30s"`
	// StuckAfter is how long a job may stay queued before one "stuck"
	// notification is sent (the vendor advises 10 minutes). Shorter than
	// JOB_DEADLINE. Defaults to 10m.
	StuckAfter time.Duration `envconfig:"JOB_STUCK_AFTER" default:"10m"`
	// Deadline is how long a job may take from its start before it is
	// escalated and ended. Defaults to 24h.
	Deadline time.Duration `envconfig:"JOB_DEADLINE" default:"24h"`
	// RetryMaxElapsed bounds the total time one API call is retried
	// (across attempts, counted from the first attempt's start, so that
	// waiting in a rate-limited task queue spends none of it) before the
	// job is escalated. At least 3 × CHAMELAION_REQUEST_TIMEOUT. Defaults
	// to 30m.
	RetryMaxElapsed time.Duration `envconfig:"RETRY_MAX_ELAPSED" default:"30m"`
	// RetryInitialInterval is the first retry backoff of an activity.
	// Defaults to 1s.
	RetryInitialInterval time.Duration `envconfig:"RETRY_INITIAL_INTERVAL" default:"1s"`
	// RetryMaxInterval caps the retry backoff of an activity. Defaults to 1m.
	RetryMaxInterval time.Duration `envconfig:"RETRY_MAX_INTERVAL" default:"1m"`
	// DecisionWait is how long an escalated job waits for a human's answer
	// (starter resolve) before it ends failed; 0 ends it at once.
	// Defaults to 168h (a week).
	DecisionWait time.Duration `envconfig:"ESCALATION_DECISION_WAIT" default:"168h"`
	// MaxPollsPerRun is how many status checks one workflow run makes
	// before it continues as new, which keeps every history bounded.
	// Defaults to 200.
	MaxPollsPerRun int `envconfig:"MAX_POLLS_PER_RUN" default:"200"`
}

// Notify configures how escalations reach a human.
type Notify struct {
	// WebhookURL receives a Slack-compatible JSON message for every
	// escalation ("" = log only). Treated as a secret (webhook URLs embed
	// tokens): never logged.
	WebhookURL string `envconfig:"NOTIFY_WEBHOOK_URL"`
	// Timeout bounds one webhook delivery. Defaults to 10s.
	Timeout time.Duration `envconfig:"NOTIFY_TIMEOUT" default:"10s"`
}

// Log configures log/slog output.
type Log struct {
	// Level is debug, info, warn or error. Defaults to info.
	Level string `envconfig:"LOG_LEVEL" default:"info"`
	// Format is json or text. Defaults to json.
	Format string `envconfig:"LOG_FORMAT" default:"json"`
}

// Error is a configuration error about one environment variable.
type Error struct {
	// Variable is the environment variable's name.
	Variable string
	// Problem says what is wrong with it.
	Problem string
}

// Error implements error as "VARIABLE: problem".
func (e *Error) Error() string {
	return e.Variable + ": " + e.Problem
}

// Load reads the configuration from the process environment. It fails on a
// malformed value (naming the variable); required values are checked by the
// Validate methods, since each program needs a different set.
func Load() (Config, error) {
	var c Config
	// Each part is processed on its own with no prefix, so that every key is
	// exactly the variable named in its tag (envconfig would otherwise
	// prefix nested structs' keys with the field name).
	parts := []any{&c.API, &c.Database, &c.Temporal, &c.Jobs, &c.Notify, &c.Log, &c.Worker, &c.Codec}
	for _, part := range parts {
		if err := envconfig.Process("", part); err != nil {
			var pe *envconfig.ParseError
			if errors.As(err, &pe) {
				return Config{}, &Error{Variable: pe.KeyName, Problem: fmt.Sprintf("cannot parse as %s: %v", pe.TypeName, pe.Err)}
			}
			return Config{}, fmt.Errorf("config: %w", err)
		}
	}
	if err := c.validateCommon(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Variable describes one environment variable of the configuration.
type Variable struct {
	Name    string
	Default string
	// RequiredByWorker is true for the values the worker cannot start
	// without.
	RequiredByWorker bool
}

// Variables lists every environment variable the configuration reads.
func Variables() []Variable {
	var c Config
	var out []Variable
	for _, part := range []any{c.API, c.Database, c.Temporal, c.Jobs, c.Notify, c.Log, c.Worker, c.Codec} {
		t := reflect.TypeOf(part)
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := f.Tag.Get("envconfig")
			if name == "" {
				continue
			}
			out = append(out, Variable{Name: name, Default: f.Tag.Get("default"),
				RequiredByWorker: name == "CHAMELAION_API_KEY" || name == "DATABASE_URL"})
		}
	}
	return out
}

// validateCommon checks the values every program uses.
func (c Config) validateCommon() error {
	if err := checkHTTPURL("CHAMELAION_BASE_URL", c.API.BaseURL, false); err != nil {
		return err
	}
	switch c.API.AuthScheme {
	case "bearer", "x-api-key":
	default:
		return &Error{"CHAMELAION_AUTH_SCHEME", fmt.Sprintf("must be bearer or x-api-key, not %q", c.API.AuthScheme)}
	}
	checks := []struct {
		name string
		ok   bool
		want string
	}{
		{"CHAMELAION_REQUEST_TIMEOUT", c.API.RequestTimeout > 0, "must be a positive duration such as 30s"},
		{"CHAMELAION_RATE_LIMIT_PER_MINUTE", c.API.RateLimitPerMinute > 0, "must be a positive whole number"},
		{"CHAMELAION_RATE_HEADROOM", c.API.RateHeadroom >= 0 && c.API.RateHeadroom < 1, "must be a fraction from 0 up to (not including) 1, such as 0.02"},
		{"CHAMELAION_STATUS_RATE_LIMIT_PER_MINUTE", c.API.StatusRateLimitPerMinute > 0, "must be a positive whole number"},
		{"TEMPORAL_ADDRESS", strings.TrimSpace(c.Temporal.Address) != "", "must not be empty"},
		{"TEMPORAL_NAMESPACE", strings.TrimSpace(c.Temporal.Namespace) != "", "must not be empty"},
		{"TEMPORAL_TASK_QUEUE", strings.TrimSpace(c.Temporal.TaskQueue) != "", "must not be empty"},
		{"POLL_INITIAL_INTERVAL", c.Jobs.PollInitialInterval > 0, "must be a positive duration such as 5s"},
		{"POLL_MAX_INTERVAL", c.Jobs.PollMaxInterval >= c.Jobs.PollInitialInterval, "must be at least POLL_INITIAL_INTERVAL"},
		{"POLL_BACKOFF_COEFFICIENT", c.Jobs.PollBackoffCoefficient >= 1, "must be at least 1"},
		{"POLL_TARGET_LATENCY", c.Jobs.PollTargetLatency >= 0, "must be a duration such as 30s, or 0 to back off geometrically only"},
		{"JOB_STUCK_AFTER", c.Jobs.StuckAfter > 0, "must be a positive duration such as 10m"},
		{"JOB_DEADLINE", c.Jobs.Deadline > 0, "must be a positive duration such as 24h"},
		{"RETRY_MAX_ELAPSED", c.Jobs.RetryMaxElapsed > 0, "must be a positive duration such as 30m"},
		{"RETRY_INITIAL_INTERVAL", c.Jobs.RetryInitialInterval > 0, "must be a positive duration such as 1s"},
		{"RETRY_MAX_INTERVAL", c.Jobs.RetryMaxInterval >= c.Jobs.RetryInitialInterval, "must be at least RETRY_INITIAL_INTERVAL"},
		{"MAX_POLLS_PER_RUN", c.Jobs.MaxPollsPerRun >= 10, "must be at least 10"},
		{"ESCALATION_DECISION_WAIT", c.Jobs.DecisionWait >= 0, "must not be negative"},
		{"METRICS_ADDR", c.Worker.MetricsAddr == "off" || validHostPort(c.Worker.MetricsAddr), "must be host:port (such as 0.0.0.0:9090) or off"},
		{"TEMPORAL_GRPC_COMPRESSION", c.Temporal.GRPCCompression == "none" || c.Temporal.GRPCCompression == "gzip", "must be none or gzip"},
		{"PROFILE_ADDR", c.Worker.ProfileAddr == "off" || validHostPort(c.Worker.ProfileAddr), "must be host:port (such as 127.0.0.1:6060) or off"},
		{"NOTIFY_TIMEOUT", c.Notify.Timeout > 0, "must be a positive duration such as 10s"},
		{"WORKER_SHUTDOWN_TIMEOUT", c.Worker.ShutdownTimeout > 0, "must be a positive duration such as 30s"},
	}
	for _, ch := range checks {
		if !ch.ok {
			return &Error{ch.name, ch.want}
		}
	}
	// Values that are valid alone but cannot work together.
	if least := 3 * c.API.RequestTimeout; c.Jobs.RetryMaxElapsed < least {
		return &Error{"RETRY_MAX_ELAPSED", fmt.Sprintf("is %s, less than 3 × CHAMELAION_REQUEST_TIMEOUT (%s): a submission that times out (%s), the wait for its request to land before looking for it (%s) and one more attempt must fit in the budget, or every transient failure escalates as RetriesExhausted",
			c.Jobs.RetryMaxElapsed, least, c.API.RequestTimeout, c.API.RequestTimeout)}
	}
	if c.Jobs.StuckAfter >= c.Jobs.Deadline {
		return &Error{"JOB_STUCK_AFTER", fmt.Sprintf("is %s, not shorter than JOB_DEADLINE (%s): the stuck notification would never fire, the job is escalated at its deadline first",
			c.Jobs.StuckAfter, c.Jobs.Deadline)}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return &Error{"LOG_LEVEL", fmt.Sprintf("must be debug, info, warn or error, not %q", c.Log.Level)}
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		return &Error{"LOG_FORMAT", fmt.Sprintf("must be json or text, not %q", c.Log.Format)}
	}
	if err := checkHTTPURL("TEMPORAL_WEB_UI_URL", c.Temporal.WebUIURL, false); err != nil {
		return err
	}
	if (c.Temporal.TLSCertFile == "") != (c.Temporal.TLSKeyFile == "") {
		return &Error{"TEMPORAL_TLS_CERT", "and TEMPORAL_TLS_KEY must be set together"}
	}
	for name, path := range map[string]string{"TEMPORAL_TLS_CERT": c.Temporal.TLSCertFile, "TEMPORAL_TLS_KEY": c.Temporal.TLSKeyFile, "TEMPORAL_TLS_CA": c.Temporal.TLSCAFile} {
		if path != "" {
			if _, err := os.Stat(path); err != nil {
				return &Error{name, fmt.Sprintf("cannot read %s: %v", path, errors.Unwrap(err))}
			}
		}
	}
	if c.Notify.WebhookURL != "" {
		if err := checkHTTPURL("NOTIFY_WEBHOOK_URL", c.Notify.WebhookURL, true); err != nil {
			return err
		}
	}
	return c.validateSecurity()
}

// ValidateWorker checks what the worker needs beyond the common values: the
// API key and the database URL.
func (c Config) ValidateWorker() error {
	if strings.TrimSpace(c.API.Key) == "" {
		return &Error{"CHAMELAION_API_KEY", "is required (the Chamelaion API token)"}
	}
	if strings.TrimSpace(c.API.Key) != c.API.Key {
		return &Error{"CHAMELAION_API_KEY", "has leading or trailing white space (a common cause of 401 invalid token)"}
	}
	if strings.TrimSpace(c.Database.URL) == "" {
		return &Error{"DATABASE_URL", "is required (a PostgreSQL URL such as postgres://user:pass@host:5432/db)"}
	}
	u, err := url.Parse(c.Database.URL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return &Error{"DATABASE_URL", "must be a postgres:// or postgresql:// URL"}
	}
	return c.validateWorkerSecurity()
}

// ValidateStarter checks what the starter needs: only the common values,
// since it talks to Temporal alone and never to the API or the database.
func (c Config) ValidateStarter() error { return nil }

// String renders the configuration for a start-up log line, with every
// secret masked.
func (c Config) String() string {
	return fmt.Sprintf("api{base_url=%s auth=%s key=%s timeout=%s rate=%d/min headroom=%g status_rate=%d/min} database{url=%s} temporal{address=%s namespace=%s task_queue=%s} jobs{poll=%s..%s x%g stuck_after=%s deadline=%s retry_max_elapsed=%s} notify{webhook=%s} codec{%s} %s",
		c.API.BaseURL, c.API.AuthScheme, mask(c.API.Key), c.API.RequestTimeout, c.API.RateLimitPerMinute, c.API.RateHeadroom, c.API.StatusRateLimitPerMinute,
		RedactURL(c.Database.URL), c.Temporal.Address, c.Temporal.Namespace, c.Temporal.TaskQueue,
		c.Jobs.PollInitialInterval, c.Jobs.PollMaxInterval, c.Jobs.PollBackoffCoefficient, c.Jobs.StuckAfter, c.Jobs.Deadline, c.Jobs.RetryMaxElapsed,
		mask(c.Notify.WebhookURL), c.codecSummary(), c.securitySummary())
}

func (c Config) codecSummary() string {
	if c.Codec.Keys == "" {
		return "off"
	}
	k, err := codec.ParseKeys(c.Codec.Keys, c.Codec.ActiveKeyID)
	if err != nil {
		return "invalid"
	}
	return fmt.Sprintf("on, active key %s of %s", k.ActiveKeyID(), strings.Join(k.KeyIDs(), ","))
}

// PayloadCodec returns the payload codec, or nil when encryption is off.
// It refuses payloads that arrive in the clear with a URL in them (a
// starter or service without the keys wrote them), unless
// PAYLOAD_ENCRYPTION=migrate.
func (c Config) PayloadCodec() (*codec.Codec, error) {
	if c.Codec.Keys == "" {
		return nil, nil
	}
	k, err := codec.ParseKeys(c.Codec.Keys, c.Codec.ActiveKeyID)
	if err != nil {
		return nil, &Error{"PAYLOAD_ENCRYPTION_KEYS", err.Error()}
	}
	if c.Codec.Mode == PayloadEncryptionMigrate {
		return k, nil
	}
	return k.RefusingClear(), nil
}

func validHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	return err == nil && port != ""
}

// mask says whether a secret is set without showing it.
func mask(secret string) string {
	if secret == "" {
		return "unset"
	}
	return "set"
}

// RedactURL removes a URL's password and query string, keeping what an
// operator needs to recognise it. A value that does not parse is replaced
// whole.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparsable URL]"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	return u.String()
}

func checkHTTPURL(name, raw string, secret bool) error {
	u, err := url.Parse(raw)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return nil
	}
	problem := "must be an absolute http:// or https:// URL"
	if !secret {
		problem += fmt.Sprintf(", got %q", raw)
	}
	return &Error{name, problem}
}
