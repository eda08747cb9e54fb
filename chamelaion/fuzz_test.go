package chamelaion

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzParseAPIError feeds arbitrary statuses, wait headers and bodies to the
// error parser: it must never panic, never return a negative wait, and never
// let the API key or a URL's query string through.
func FuzzParseAPIError(f *testing.F) {
	f.Add(429, "Retry-After", "7", `{"error":"rate limit exceeded"}`)
	f.Add(429, "Retry-After", "Wed, 21 Oct 2026 07:28:00 GMT", `{"error":"rate limit exceeded"}`)
	f.Add(429, "X-Ratelimit-Wait", "114", `{"code":429,"messages":["Rate Limited"],"wait":14}`)
	f.Add(503, "X-Retry-After", "1.5", `<html><body><h1>503 Service Unavailable</h1></body></html>`)
	f.Add(400, "", "", `{"error":"cannot fetch https://cdn/x.mp4?X-Amz-Signature=abc with sk-KEY"}`)
	f.Add(500, "Retry-After", "-1", `{"error":{"nested":true}}`)
	f.Add(504, "X-Ratelimit-Wait", "NaN", `{"code":"504","messages":null,"wait":"x"}`)
	f.Add(412, "Retry-After", "1e308", "")
	const key = "sk-KEY"
	redact := newRedactor(key)
	f.Fuzz(func(t *testing.T, status int, header, value, body string) {
		h := http.Header{}
		if header != "" {
			h.Set(header, value)
		}
		e := parseAPIError("POST /v1/lipsync/generate", status, h, []byte(body), time.Unix(1_700_000_000, 0), redact)
		if e.RetryAfter < 0 || e.RetryAfter > maxAdvisedWait {
			t.Fatalf("wait %v out of range", e.RetryAfter)
		}
		if strings.Contains(e.Error(), key) {
			t.Fatalf("key leaked: %q", e.Error())
		}
		for _, m := range querySecret.FindAllString(e.Message, -1) {
			_, query, _ := strings.Cut(m, "?")
			query = strings.TrimSuffix(query, "…")
			if !strings.HasPrefix("[REDACTED]", query) && !strings.HasPrefix(query, "[REDACTED]") {
				t.Fatalf("query string leaked: %q", e.Message)
			}
		}
		if len(e.Message) > maxMessage+len("…") {
			t.Fatalf("message not truncated: %d bytes", len(e.Message))
		}
		_ = Classify(e)
	})
}

// FuzzDecodeRequest feeds arbitrary 2xx bodies to the job decoder: it must
// never panic, and whatever it accepts must be a job with an id, a known
// status and, when completed, an output URL.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(`{"id":"6f82a2d8","reference_id":"dub-42","status":"completed","created_at":"2026-04-07T10:00:00Z","output_url":"https://o/x.mp4"}`)
	f.Add(`{"id":"6f82a2d8","status":"queued","created_at":"2026-04-07T10:00:00Z"}`)
	f.Add(`{"id":"6f82a2d8","status":"done"}`)
	f.Add(`{"id":"","status":"failed","error_message":"video URL is not accessible"}`)
	f.Add(`{"id":"x","status":"compl`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		var r Request
		if json.Unmarshal([]byte(body), &r) != nil {
			return
		}
		if validateRequest(r) != nil {
			return
		}
		if r.ID == "" || !r.Status.Known() || (r.Status == StatusCompleted && r.OutputURL == "") {
			t.Fatalf("accepted an invalid job: %+v", r)
		}
	})
}
