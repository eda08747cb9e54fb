package emulator

import (
	"net/http"
	"time"
)

// maxRequestLog bounds the request log: the oldest entries go first.
const maxRequestLog = 100_000

// RequestRecord is one API request as the emulator received it: when it
// arrived (the emulator's clock), what it asked and how it was answered.
// GET /_emulator/requests?reference_id=ID returns {"requests": [...]}, in
// arrival order; the times are RFC 3339 with nanoseconds, in UTC.
type RequestRecord struct {
	// At is when the request arrived.
	At time.Time `json:"at"`
	// Endpoint is one of the Endpoint* labels.
	Endpoint string `json:"endpoint"`
	// ReferenceID is the reference_id the request named: the generation
	// body's, the list filter's, or the read job's ("" when none, and for a
	// generation call answered with a random fault before its body was
	// read).
	ReferenceID string `json:"reference_id,omitempty"`
	// Status is the answered HTTP status (0 = the answer was withheld).
	Status int `json:"status"`
	// RetryAfter is the Retry-After header of the answer, if any.
	RetryAfter string `json:"retry_after,omitempty"`
}

// Requests returns the logged requests naming referenceID ("" = every
// request), in arrival order. The log keeps the last 100,000 requests.
func (e *Emulator) Requests(referenceID string) []RequestRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []RequestRecord{}
	for _, r := range e.requestLog {
		if referenceID == "" || r.ReferenceID == referenceID {
			out = append(out, r)
		}
	}
	return out
}

// logRequestLocked appends to the request log.
func (e *Emulator) logRequestLocked(r RequestRecord) {
	if len(e.requestLog) >= maxRequestLog {
		n := copy(e.requestLog, e.requestLog[len(e.requestLog)/10:])
		e.requestLog = e.requestLog[:n]
	}
	e.requestLog = append(e.requestLog, r)
}

// setReferenceID tells the request log which reference_id the request
// being handled names.
func setReferenceID(w http.ResponseWriter, ref string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.ref = ref
	}
}
