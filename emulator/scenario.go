package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Scenario scripts the behaviour of the jobs with one reference_id. Faults
// are used up in order: the first call of a kind gets the first fault, and
// so on; once they are used up, calls are handled normally.
type Scenario struct {
	// ReferenceID selects the jobs (and the calls naming them).
	ReferenceID string `json:"reference_id"`
	// SubmitFaults answer the first generation calls with this
	// reference_id, before any job is created.
	SubmitFaults []Fault `json:"submit_faults,omitempty"`
	// RejectSubmits, after the SubmitFaults, answers every further
	// generation call with this reference_id: a request the API refuses
	// however often it is sent (a 400), where a used-up fault would let a
	// retry that was never meant to happen succeed.
	RejectSubmits *Fault `json:"reject_submits,omitempty"`
	// LoseResponses: after the faults, the next N generation calls create
	// the job but their answer never arrives.
	LoseResponses int `json:"lose_responses,omitempty"`
	// LoseMode is "reset" (close the connection without answering; the
	// default) or "hang" (answer nothing until the client gives up).
	LoseMode string `json:"lose_mode,omitempty"`
	// StatusFaults answer the first GET /requests/{id} calls for the job.
	StatusFaults []Fault `json:"status_faults,omitempty"`
	// ListFaults answer the first list calls filtered by this reference_id.
	ListFaults []Fault `json:"list_faults,omitempty"`
	// QueuedFor and ProcessingFor override the configured durations.
	QueuedFor     *Duration `json:"queued_for,omitempty"`
	ProcessingFor *Duration `json:"processing_for,omitempty"`
	// Outcome is "completed" (default) or "failed".
	Outcome string `json:"outcome,omitempty"`
	// ErrorMessage is a failed job's error_message (default "video URL is
	// not accessible").
	ErrorMessage string `json:"error_message,omitempty"`
}

// validate checks a scenario's values.
func (s Scenario) validate() error {
	if s.ReferenceID == "" {
		return fmt.Errorf("scenario: reference_id is required")
	}
	switch s.LoseMode {
	case "", "reset", "hang":
	default:
		return fmt.Errorf("scenario %s: lose_mode must be reset or hang", s.ReferenceID)
	}
	switch s.Outcome {
	case "", "completed", "failed":
	default:
		return fmt.Errorf("scenario %s: outcome must be completed or failed", s.ReferenceID)
	}
	if s.LoseResponses < 0 {
		return fmt.Errorf("scenario %s: lose_responses must not be negative", s.ReferenceID)
	}
	if r := s.RejectSubmits; r != nil && (r.Status < 400 || r.Status > 599) {
		return fmt.Errorf("scenario %s: reject_submits needs an error status (4xx or 5xx)", s.ReferenceID)
	}
	for _, list := range [][]Fault{s.SubmitFaults, s.StatusFaults, s.ListFaults} {
		for _, f := range list {
			if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
				return fmt.Errorf("scenario %s: fault status %d is not an HTTP status", s.ReferenceID, f.Status)
			}
			if f.Status == 0 && f.Delay == nil {
				return fmt.Errorf("scenario %s: a fault needs a status, a delay, or both", s.ReferenceID)
			}
		}
	}
	return nil
}

// Fault is one injected answer. In JSON it is a bare status (503) or an
// object.
type Fault struct {
	// Status is the HTTP status; 0 with a Delay means "slow, then normal".
	Status int `json:"status"`
	// Body is the raw body (default: the documented body for the status).
	Body string `json:"body,omitempty"`
	// ContentType defaults to application/json (text/html for the default
	// 503 body).
	ContentType string `json:"content_type,omitempty"`
	// Headers are added to the answer, e.g. {"Retry-After": "3"}.
	Headers map[string]string `json:"headers,omitempty"`
	// Delay is waited before answering.
	Delay *Duration `json:"delay,omitempty"`
}

// UnmarshalJSON accepts a bare status number or an object.
func (f *Fault) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] != '{' {
		n, err := strconv.Atoi(string(b))
		if err != nil {
			return fmt.Errorf("fault: want a status number or an object, got %s", b)
		}
		*f = Fault{Status: n}
		return nil
	}
	type plain Fault
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*f = Fault(p)
	return nil
}

// Duration is a time.Duration that reads JSON "1m30s" or a number of
// seconds.
type Duration struct{ time.Duration }

// D makes a *Duration.
func D(d time.Duration) *Duration { return &Duration{d} }

// UnmarshalJSON reads "1m30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		d.Duration = v
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want \"1m30s\" or seconds, got %s", b)
	}
	d.Duration = time.Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// defaultFaultBody is the documented body of each status.
func defaultFaultBody(status int) (body, contentType string) {
	switch status {
	case 400:
		return errorJSON("invalid request body"), "application/json"
	case 401:
		return errorJSON("unauthorized"), "application/json"
	case 403:
		return `{"code":403,"messages":["Unauthorized: Please check your Chameleon Account Secret"]}`, "application/json"
	case 404:
		return errorJSON("lipsync request not found"), "application/json"
	case 409:
		return `{"code":409,"messages":["Conflict: Please check the preconditions in the API docs https://developers.chameleon.io"]}`, "application/json"
	case 412:
		return errorJSON("token limit reached"), "application/json"
	case 422:
		return `{"code":422,"messages":["Unprocessable: Please check the request parameters with the API docs https://developers.chameleon.io"]}`, "application/json"
	case 429:
		return errorJSON("rate limit exceeded"), "application/json"
	case 500:
		return errorJSON("internal error"), "application/json"
	case 502:
		return errorJSON("bad gateway"), "application/json"
	case 503:
		return "<html><body><h1>503 Service Unavailable</h1></body></html>", "text/html"
	case 504:
		return `{"code":504,"messages":["Internal timeout: An internal operation took too long."]}`, "application/json"
	}
	return errorJSON(fmt.Sprintf("error %d", status)), "application/json"
}

func errorJSON(msg string) string {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return string(b)
}
