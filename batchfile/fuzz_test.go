package batchfile

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParse: any input parses without panicking; every row ends up either
// a valid job or a defect with a line number inside the file; valid jobs
// have unique reference_ids and usable URLs; no defect repeats a URL.
func FuzzParse(f *testing.F) {
	f.Add([]byte("reference_id,video_url,audio_url\nr1,https://v/1?sig=S,https://a/1\n"), false)
	f.Add([]byte("reference_id,video_url,audio_url,disable_active_speaker_detection\nr1,https://v,https://a,maybe\nr1,\"x\n"), false)
	f.Add([]byte(`{"reference_id":"r1","video_url":"https://v/1?sig=S","audio_url":"https://a/1"}`+"\n{\n"), true)
	f.Add([]byte(`{"reference_id":"r1","video_url":"https://v","audio_url":"https://a","disable_active_speaker_detection":1}`), true)
	f.Fuzz(func(t *testing.T, data []byte, jsonl bool) {
		format := CSV
		if jsonl {
			format = JSONL
		}
		res, err := Parse(bytes.NewReader(data), format, nil)
		if err != nil {
			return
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		seen := map[string]bool{}
		for _, j := range res.Jobs {
			if j.Line < 1 || j.Line > lines {
				t.Fatalf("job on line %d of a %d-line file", j.Line, lines)
			}
			if j.ReferenceID == "" || seen[j.ReferenceID] {
				t.Fatalf("empty or duplicate reference_id accepted: %q", j.ReferenceID)
			}
			seen[j.ReferenceID] = true
			if urlProblem(j.VideoURL) != "" || urlProblem(j.AudioURL) != "" {
				t.Fatalf("bad URL accepted: %+v", j)
			}
		}
		for _, d := range res.Defects {
			if d.Line < 0 || d.Line > lines {
				t.Fatalf("defect on line %d of a %d-line file: %s", d.Line, lines, d)
			}
			for _, j := range res.Jobs {
				for _, u := range []string{j.VideoURL, j.AudioURL} {
					if len(u) > 12 && strings.Contains(d.Problem, u) {
						t.Fatalf("defect repeats a URL: %s", d)
					}
				}
			}
		}
	})
}
