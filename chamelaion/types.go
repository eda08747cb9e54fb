// Package chamelaion is a typed client of the Chamelaion lip-sync API.
//
// It never retries: retrying is Temporal's job. Every failure is one typed
// error (*APIError for a non-2xx answer, *TransportError when no answer
// arrived, *ResponseError for a 2xx answer that cannot be trusted), and
// Classify sorts any of them into retryable or permanent with a stable type
// string. No error ever contains the API key or a media URL's query string.
package chamelaion

import (
	"fmt"
	"io"
	"time"
)

// AuthScheme is how the API key is sent.
type AuthScheme string

// The two schemes the API accepts.
const (
	// AuthBearer sends "Authorization: Bearer <key>" (recommended).
	AuthBearer AuthScheme = "bearer"
	// AuthAPIKeyHeader sends "x-api-key: <key>".
	AuthAPIKeyHeader AuthScheme = "x-api-key"
)

// Options configures a Client.
type Options struct {
	// BaseURL is the API's base URL, such as https://api.chamelaion.com/api.
	BaseURL string
	// APIKey is the account's token. A secret: Options' String and GoString
	// mask it.
	APIKey string
	// AuthScheme defaults to AuthBearer.
	AuthScheme AuthScheme
	// Timeout bounds each request. Defaults to 30s.
	Timeout time.Duration
	// HTTPClient is used for requests when set; its own Timeout, if any,
	// also applies.
	HTTPClient HTTPDoer
	// UserAgent is sent when set.
	UserAgent string
	// Observe, when set, is called after every request with the endpoint
	// (method and path template), the HTTP status (0 when no answer
	// arrived) and the duration: a hook for metrics.
	Observe func(endpoint string, statusCode int, d time.Duration)
	// AllowInsecureHTTP permits a plain http:// BaseURL on a host that is
	// not loopback (an emulator in a container network): the key then
	// crosses the network in the clear. Defaults to false: http only to
	// localhost, 127.0.0.0/8 and ::1.
	AllowInsecureHTTP bool
}

// String renders the options with the key masked.
func (o Options) String() string {
	key := "unset"
	if o.APIKey != "" {
		key = "[REDACTED]"
	}
	return fmt.Sprintf("{BaseURL:%s APIKey:%s AuthScheme:%s Timeout:%s}", o.BaseURL, key, o.AuthScheme, o.Timeout)
}

// GoString renders the options with the key masked (for %#v).
func (o Options) GoString() string { return "chamelaion.Options" + o.String() }

// Format makes every verb (%v, %+v, %s, %#v) mask the key.
func (o Options) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, o.GoString())
		return
	}
	_, _ = io.WriteString(f, o.String())
}

// GenerateRequest submits a job from media URLs.
type GenerateRequest struct {
	// ReferenceID is the caller's identifier (optional; not unique on the
	// server side).
	ReferenceID string
	// DisableActiveSpeakerDetection selects max-face mode.
	DisableActiveSpeakerDetection bool
	// VideoURL and AudioURL are publicly reachable media URLs.
	VideoURL string
	AudioURL string
}

// Input is one item of a generate request's inputs.
type Input struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// generateBody is the JSON body of POST /v1/lipsync/generate.
type generateBody struct {
	ReferenceID                   string  `json:"reference_id,omitempty"`
	DisableActiveSpeakerDetection bool    `json:"disable_active_speaker_detection"`
	Inputs                        []Input `json:"inputs"`
}

// MediaFile is one uploaded file, streamed from Content.
type MediaFile struct {
	// Name is the file name sent in the multipart header.
	Name string
	// Content is read once, to the end, while the request is sent.
	Content io.Reader
}

// GenerateWithMediaRequest submits a job with uploaded files.
type GenerateWithMediaRequest struct {
	Video MediaFile
	Audio MediaFile
	// Model is optional; the API accepts only "lipsync-2".
	Model                         string
	ReferenceID                   string
	DisableActiveSpeakerDetection bool
}

// GenerateResponse is the answer to a submission.
type GenerateResponse struct {
	Status    string `json:"status"`
	RequestID string `json:"request_id"`
}

// Status is a job's state at the vendor.
type Status string

// The job lifecycle: queued → processing → completed or failed.
const (
	StatusQueued     Status = "queued"
	StatusProcessing Status = "processing"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
)

// Known says whether s is one of the four documented statuses.
func (s Status) Known() bool {
	switch s {
	case StatusQueued, StatusProcessing, StatusCompleted, StatusFailed:
		return true
	}
	return false
}

// Terminal says whether s ends the job.
func (s Status) Terminal() bool { return s == StatusCompleted || s == StatusFailed }

// Request is one job as the API reports it.
type Request struct {
	ID           string     `json:"id"`
	ReferenceID  string     `json:"reference_id,omitempty"`
	Status       Status     `json:"status"`
	CreatedAt    time.Time  `json:"created_at"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	OutputURL    string     `json:"output_url,omitempty"`
	ErrorMessage string     `json:"error_message,omitempty"`
}

// ListOptions filters and pages GET /v1/lipsync/requests.
type ListOptions struct {
	// ReferenceID keeps only requests with this reference_id ("" = all).
	ReferenceID string
	// Limit is the page size (the API's default, 20, when 0).
	Limit int
	// Offset skips that many requests.
	Offset int
}

// Pagination describes a page.
type Pagination struct {
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
	Total  int `json:"total"`
}

// RequestPage is one page of requests, newest first.
type RequestPage struct {
	Data       []Request  `json:"data"`
	Pagination Pagination `json:"pagination"`
}

// User is the token's owner as /v1/users/me reports it.
type User struct {
	Name string `json:"name"`
}
