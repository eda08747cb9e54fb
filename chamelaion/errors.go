package chamelaion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// Stable failure types. They name a class of cause, never change, and
// become the types of Temporal ApplicationErrors.
const (
	TypeBadRequest       = "BadRequest"       // 400
	TypeUnauthorized     = "Unauthorized"     // 401
	TypeForbidden        = "Forbidden"        // 403
	TypeNotFound         = "NotFound"         // 404
	TypeConflict         = "Conflict"         // 409
	TypeQuotaExceeded    = "QuotaExceeded"    // 412 token limit reached
	TypeUnprocessable    = "Unprocessable"    // 422
	TypeClientError      = "ClientError"      // any other 4xx
	TypeRateLimited      = "RateLimited"      // 429
	TypeServerError      = "ServerError"      // 500 and unlisted 5xx
	TypeBadGateway       = "BadGateway"       // 502
	TypeUnavailable      = "Unavailable"      // 503
	TypeGatewayTimeout   = "GatewayTimeout"   // 504
	TypeTimeout          = "Timeout"          // no answer in time (also 408)
	TypeConnectionFailed = "ConnectionFailed" // refused, reset, DNS, TLS, cut short
	TypeInvalidResponse  = "InvalidResponse"  // a 2xx answer that cannot be trusted
	TypeRedirected       = "Redirected"       // a 3xx: redirects are never followed
	TypeUploadFailed     = "UploadFailed"     // a file being uploaded could not be read
	TypeCanceled         = "Canceled"         // the caller's context was canceled
	TypeUnknown          = "Unknown"          // not an error of this package
)

// maxMessage bounds the server message kept in an error.
const maxMessage = 200

// APIError is a non-2xx answer.
type APIError struct {
	// Endpoint is the method and path template, e.g.
	// "POST /v1/lipsync/generate"; never a query string.
	Endpoint string
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the server's message: the "error" field, the second
	// vendor's "messages" joined, or the raw body of a non-JSON answer,
	// collapsed and truncated. Secrets are redacted.
	Message string
	// RetryAfter is the wait the server advised (Retry-After,
	// X-Ratelimit-Wait, X-Retry-After or a body "wait"; the largest), 0 if
	// none.
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	s := fmt.Sprintf("chamelaion: %s: %d %s", e.Endpoint, e.StatusCode, msg)
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// TransportError is a request that got no HTTP answer.
type TransportError struct {
	Endpoint string
	// Timeout is true when the request ran out of time.
	Timeout bool
	// Canceled is true when the caller's context was canceled.
	Canceled bool
	// Reason is a scrubbed description of the cause.
	Reason string
	err    error
}

// Error implements error.
func (e *TransportError) Error() string {
	return fmt.Sprintf("chamelaion: %s: %s", e.Endpoint, e.Reason)
}

// Unwrap returns the underlying cause (for errors.Is with context errors,
// syscall errnos and the like). Its own text may contain the request URL;
// use Error for messages.
func (e *TransportError) Unwrap() error { return e.err }

// ResponseError is a 2xx answer that is truncated, unparsable or
// semantically invalid (an unknown status, a missing field). It is never
// taken as success.
type ResponseError struct {
	Endpoint   string
	StatusCode int
	Reason     string
}

// Error implements error.
func (e *ResponseError) Error() string {
	return fmt.Sprintf("chamelaion: %s: invalid %d response: %s", e.Endpoint, e.StatusCode, e.Reason)
}

// UploadError is a file that could not be read while it was uploaded
// (GenerateWithMedia): a local failure, not the network's, and the same
// file fails the same way, so it is permanent. The request was cut short,
// so the vendor created nothing.
type UploadError struct {
	Endpoint string
	// Field is the form field whose content failed: video or audio.
	Field string
	// Err is the reader's error.
	Err error
}

// Error implements error.
func (e *UploadError) Error() string {
	return fmt.Sprintf("chamelaion: %s: cannot read the %s content: %v", e.Endpoint, e.Field, e.Err)
}

// Unwrap returns the reader's error.
func (e *UploadError) Unwrap() error { return e.Err }

// Classification is what the worker needs to know about a failure.
type Classification struct {
	// Retryable is true when trying again later may succeed.
	Retryable bool
	// Type is one of the Type* constants.
	Type string
	// StatusCode is the HTTP status, 0 when no answer arrived.
	StatusCode int
	// RetryAfter is the wait the server advised, 0 if none.
	RetryAfter time.Duration
	// Message describes the failure without secrets.
	Message string
}

// Classify sorts an error of this package into retryable or permanent:
// 429, 5xx, 408, timeouts, connection failures and invalid 2xx answers are
// retryable; every other 4xx is permanent. A canceled context is reported
// as retryable (the caller, not the server, gave up; Temporal decides).
// Errors of other origins are Unknown and retryable.
func Classify(err error) Classification {
	var apiErr *APIError
	var trErr *TransportError
	var respErr *ResponseError
	var upErr *UploadError
	switch {
	case err == nil:
		return Classification{Type: TypeUnknown, Retryable: true, Message: "no error"}
	case errors.As(err, &apiErr):
		typ, retryable := classifyStatus(apiErr.StatusCode)
		msg := apiErr.Message
		if msg == "" {
			msg = http.StatusText(apiErr.StatusCode)
		}
		return Classification{Retryable: retryable, Type: typ, StatusCode: apiErr.StatusCode, RetryAfter: apiErr.RetryAfter, Message: msg}
	case errors.As(err, &upErr):
		return Classification{Retryable: false, Type: TypeUploadFailed, Message: "cannot read the " + upErr.Field + " content"}
	case errors.As(err, &trErr):
		typ := TypeConnectionFailed
		if trErr.Timeout {
			typ = TypeTimeout
		}
		if trErr.Canceled {
			typ = TypeCanceled
		}
		return Classification{Retryable: true, Type: typ, Message: trErr.Reason}
	case errors.As(err, &respErr):
		return Classification{Retryable: true, Type: TypeInvalidResponse, StatusCode: respErr.StatusCode, Message: respErr.Reason}
	case errors.Is(err, context.DeadlineExceeded):
		return Classification{Retryable: true, Type: TypeTimeout, Message: "deadline exceeded"}
	case errors.Is(err, context.Canceled):
		return Classification{Retryable: true, Type: TypeCanceled, Message: "canceled"}
	default:
		return Classification{Retryable: true, Type: TypeUnknown, Message: "unclassified error"}
	}
}

// IsPermanent reports whether retrying err can never succeed.
func IsPermanent(err error) bool { return err != nil && !Classify(err).Retryable }

// classifyStatus maps an HTTP status to its type and retryability.
func classifyStatus(code int) (string, bool) {
	switch code {
	case http.StatusBadRequest:
		return TypeBadRequest, false
	case http.StatusUnauthorized:
		return TypeUnauthorized, false
	case http.StatusForbidden:
		return TypeForbidden, false
	case http.StatusNotFound:
		return TypeNotFound, false
	case http.StatusConflict:
		return TypeConflict, false
	case http.StatusPreconditionFailed:
		return TypeQuotaExceeded, false
	case http.StatusUnprocessableEntity:
		return TypeUnprocessable, false
	case http.StatusRequestTimeout:
		return TypeTimeout, true
	case http.StatusTooManyRequests:
		return TypeRateLimited, true
	case http.StatusBadGateway:
		return TypeBadGateway, true
	case http.StatusServiceUnavailable:
		return TypeUnavailable, true
	case http.StatusGatewayTimeout:
		return TypeGatewayTimeout, true
	}
	switch {
	case code >= 500:
		return TypeServerError, true
	case code >= 400:
		return TypeClientError, false
	case code >= 300 && code < 400:
		// The key is never sent after a redirect, and the same request
		// is redirected the same way: the base URL needs a human.
		return TypeRedirected, false
	}
	// A 1xx reaching here is an answer we cannot use; try again.
	return TypeInvalidResponse, true
}

// errorBody covers both vendors' error shapes.
type errorBody struct {
	Error    json.RawMessage `json:"error"`
	Message  string          `json:"message"`
	Code     json.Number     `json:"code"`
	Messages []string        `json:"messages"`
	Wait     json.Number     `json:"wait"`
}

// parseAPIError builds the APIError of a non-2xx answer from its status,
// headers and (already size-limited) body. now is the time the answer
// arrived, for HTTP-date Retry-After values. It never panics.
func parseAPIError(endpoint string, status int, header http.Header, body []byte, now time.Time, redact func(string) string) *APIError {
	e := &APIError{Endpoint: endpoint, StatusCode: status}
	var wait time.Duration
	var b errorBody
	trimmed := strings.TrimSpace(string(body))
	if strings.HasPrefix(trimmed, "{") && json.Unmarshal([]byte(trimmed), &b) == nil {
		var parts []string
		if len(b.Error) > 0 {
			var s string
			if json.Unmarshal(b.Error, &s) == nil {
				parts = append(parts, s)
			} else {
				parts = append(parts, string(b.Error))
			}
		}
		if b.Message != "" {
			parts = append(parts, b.Message)
		}
		parts = append(parts, b.Messages...)
		e.Message = strings.Join(nonEmpty(parts), "; ")
		if w, ok := parseSeconds(b.Wait.String()); ok {
			wait = max(wait, w)
		}
	} else {
		e.Message = trimmed
	}
	e.Message = sanitize(redact, e.Message)
	e.RetryAfter = max(wait, adviseWait(header, now))
	return e
}

// adviseWait reads the wait-advice headers; the largest wins.
func adviseWait(h http.Header, now time.Time) time.Duration {
	var wait time.Duration
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if d, ok := parseSeconds(v); ok {
			wait = max(wait, d)
		} else if t, err := http.ParseTime(v); err == nil {
			ref := now
			if date, err := http.ParseTime(h.Get("Date")); err == nil {
				ref = date
			}
			if d := t.Sub(ref); d > 0 {
				wait = max(wait, min(d, maxAdvisedWait))
			}
		}
	}
	for _, name := range []string{"X-Ratelimit-Wait", "X-Retry-After"} {
		if d, ok := parseSeconds(h.Get(name)); ok {
			wait = max(wait, d)
		}
	}
	return wait
}

// maxAdvisedWait caps an advised wait at a day, whatever a server says.
const maxAdvisedWait = 24 * time.Hour

// parseSeconds reads a non-negative number of seconds (fractions allowed).
func parseSeconds(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	if f > maxAdvisedWait.Seconds() {
		return maxAdvisedWait, true
	}
	return time.Duration(f * float64(time.Second)), true
}

// transportError describes a request that got no answer, without the URL
// (url.Error repeats it, with any query string).
func transportError(endpoint string, err error, ctxErr error) *TransportError {
	te := &TransportError{Endpoint: endpoint, err: err}
	var netErr net.Error
	switch {
	case errors.Is(ctxErr, context.Canceled) || errors.Is(err, context.Canceled):
		te.Canceled = true
		te.Reason = "request canceled"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctxErr, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		te.Timeout = true
		te.Reason = "no answer before the request timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		te.Reason = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		te.Reason = "connection reset by the server"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		te.Reason = "connection closed before the answer arrived"
	default:
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			te.Reason = "cannot resolve host " + dnsErr.Name
		} else {
			te.Reason = "connection failed: " + innermost(err)
		}
	}
	return te
}

// innermost returns the message of the deepest wrapped error, which for
// net/http failures is the cause without the request URL.
func innermost(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return truncate(err.Error(), maxMessage)
		}
		err = next
	}
}

// collapseSpace turns every run of white space and control characters (a
// terminal's escape sequences among them) into one space.
func collapseSpace(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func nonEmpty(ss []string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}
