package workflows

import (
	"strings"
	"testing"
	"time"
)

// FuzzValidateInput: whatever a caller sends, validation never panics, never
// repeats a media URL's query string in its message, and accepts only jobs
// whose media are both http(s) URLs or both file:// references and whose
// reference_id is printable and short.
func FuzzValidateInput(f *testing.F) {
	f.Add("https://cdn.example.com/v.mp4?X-Amz-Signature=SIGSECRET", "https://cdn.example.com/a.wav", "dub-42", int64(0), 2.0)
	f.Add("file:///data/v.mp4", "file:///data/a.wav", "", int64(time.Hour), 1.0)
	f.Add("ftp://x/v.mp4?sig=SIGSECRET", "https://a", "has space", int64(-1), 0.5)
	f.Add("https://v", "file:///a.wav", "ok", int64(0), 0.0)
	f.Add("http://[::1", "https://a/b", strings.Repeat("r", 201), int64(0), 3.0)
	f.Fuzz(func(t *testing.T, video, audio, ref string, deadline int64, coef float64) {
		in := LipSyncInput{Video: video, Audio: audio, ReferenceID: ref, Deadline: time.Duration(deadline),
			Poll: &PollSchedule{Initial: time.Second, Max: time.Minute, Coefficient: coef}}
		err := ValidateInput(in)
		if err != nil {
			// Seeds carry the marker SIGSECRET in query strings; whatever
			// the fuzzer makes of them, it must never come back in a message.
			if strings.Contains(err.Error(), "SIGSECRET") {
				t.Fatalf("error repeats a query string: %v", err)
			}
			return
		}
		if len(ref) > MaxReferenceIDLength || strings.ContainsAny(ref, " \t\n\r") {
			t.Fatalf("accepted reference_id %q", ref)
		}
		for _, u := range []string{strings.ToLower(video), strings.ToLower(audio)} { // schemes are case-insensitive
			if strings.HasSuffix(u, "/") && strings.HasPrefix(u, "file:") {
				t.Fatalf("accepted a folder %q", u)
			}
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "file:") {
				t.Fatalf("accepted media %q", u)
			}
		}
		if deadline < 0 || (coef != 0 && coef < 1) {
			t.Fatalf("accepted deadline %d coefficient %g", deadline, coef)
		}
	})
}
