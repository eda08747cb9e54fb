package chamelaion

import (
	"encoding/json"
	"net/http"
	"net/url"
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

// FuzzRedact embeds a secret in every form a vendor may echo it (a signed
// URL plain, JSON-escaped or percent-encoded, a bare signature or token
// parameter, a bearer header, a URL's password, the API key) between
// arbitrary text: the redacted text never holds the secret or the key
// more often than the surrounding text did, Redact is idempotent, and a
// sanitized message is one bounded line.
func FuzzRedact(f *testing.F) {
	f.Add("cannot fetch ", "SIGSECRET0", " (403)", 0)
	f.Add(`{"error":"`, "abcDEF123", `"}`, 1)
	f.Add("x", "Zz9Zz9Zz9", "%26X-Amz-Date%3D2026", 2)
	f.Add("", "tok123456", "&next=1", 6)
	f.Add("https://", "s3cr3t999", "", 8)
	f.Add("prefix\n\t", "QWERTY123", strings.Repeat("y", 300), 9)
	const key = "sk-KEY-0123456789"
	redact := newRedactor(key)
	forms := []func(s string) string{
		func(s string) string {
			return "https://cdn.example.com/v.mp4?X-Amz-Signature=" + s + "&X-Amz-Credential=c"
		},
		func(s string) string { return `https:\/\/cdn.example.com\/v.mp4?X-Amz-Signature=` + s },
		func(s string) string { return url.QueryEscape("https://cdn.example.com/v.mp4?sig=" + s) },
		func(s string) string {
			return url.QueryEscape(url.QueryEscape("https://cdn.example.com/v.mp4?sig=" + s))
		},
		func(s string) string { return "X-Amz-Signature=" + s },
		func(s string) string { return "Signature=" + s },
		func(s string) string { return "token=" + s },
		func(s string) string { return "Authorization: Bearer " + s },
		func(s string) string { return "http://user:" + s + "@cdn.example.com/x" },
		func(s string) string { return "key " + key + " and " + "sig=" + s },
	}
	f.Fuzz(func(t *testing.T, prefix, secret, suffix string, form int) {
		if len(secret) < 6 || strings.Trim(secret, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
			return
		}
		if form < 0 {
			form = -form
		}
		in := prefix + forms[form%len(forms)](secret) + suffix
		out := redact(in)
		around := prefix + "\x00" + suffix
		if strings.Count(out, secret) > strings.Count(around, secret) {
			t.Fatalf("secret leaked:\nin  %q\nout %q", in, out)
		}
		if strings.Count(out, key) > strings.Count(around, key) {
			t.Fatalf("key leaked:\nin  %q\nout %q", in, out)
		}
		if again := Redact(out); again != Redact(again) {
			t.Fatalf("not idempotent: %q", out)
		}
		msg := sanitize(redact, in)
		if len(msg) > maxMessage+len("…") || strings.ContainsAny(msg, "\n\r\t") {
			t.Fatalf("not one bounded line: %q", msg)
		}
	})
}
