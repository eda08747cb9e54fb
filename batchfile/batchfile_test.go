package batchfile

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCSVValid(t *testing.T) {
	in := "reference_id,video_url,audio_url,disable_active_speaker_detection\n" +
		"ep-1,https://cdn.example/v1.mp4?X-Amz-Signature=abc,https://cdn.example/a1.wav,false\n" +
		"\n" +
		"ep-2,https://cdn.example/v2.mp4,https://cdn.example/a2.wav,TRUE\n" +
		"ep-3,file:///media/v3.mp4,file:///media/a3.wav,\n"
	res, err := Parse(strings.NewReader(in), CSV, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Defects) != 0 {
		t.Fatalf("defects: %v", res.Defects)
	}
	want := []Job{
		{Line: 2, ReferenceID: "ep-1", VideoURL: "https://cdn.example/v1.mp4?X-Amz-Signature=abc", AudioURL: "https://cdn.example/a1.wav"},
		{Line: 4, ReferenceID: "ep-2", VideoURL: "https://cdn.example/v2.mp4", AudioURL: "https://cdn.example/a2.wav", DisableActiveSpeakerDetection: true},
		{Line: 5, ReferenceID: "ep-3", VideoURL: "file:///media/v3.mp4", AudioURL: "file:///media/a3.wav"},
	}
	if len(res.Jobs) != len(want) {
		t.Fatalf("jobs = %+v", res.Jobs)
	}
	for i := range want {
		if res.Jobs[i] != want[i] {
			t.Errorf("job %d = %+v, want %+v", i, res.Jobs[i], want[i])
		}
	}
}

func TestParseCSVColumnOrderAndOptionalColumn(t *testing.T) {
	in := "audio_url,reference_id,video_url\nhttps://a/x.wav,r1,https://v/x.mp4\n"
	res, err := Parse(strings.NewReader(in), CSV, nil)
	if err != nil || len(res.Defects) != 0 || len(res.Jobs) != 1 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	if j := res.Jobs[0]; j.ReferenceID != "r1" || j.VideoURL != "https://v/x.mp4" || j.AudioURL != "https://a/x.wav" {
		t.Fatalf("job = %+v", j)
	}
}

// TestParseCSVEveryDefect: one precise message per defect, with its line,
// and no URL repeated.
func TestParseCSVEveryDefect(t *testing.T) {
	secret := "X-Amz-Signature=topsecret"
	in := strings.Join([]string{
		"reference_id,video_url,audio_url,disable_active_speaker_detection",
		"ok-1,https://v/1.mp4?" + secret + ",https://a/1.wav,false", // 2 ok
		"ok-1,https://v/2.mp4?" + secret + ",https://a/2.wav,false", // 3 duplicate
		",https://v/3.mp4,https://a/3.wav,false",                    // 4 empty reference
		"r-5,ftp://v/5.mp4?" + secret + ",https://a/5.wav,false",    // 5 bad URL
		"r-6,https://v/6.mp4,,false",                                // 6 empty audio
		"r-7,https://v/7.mp4,https://a/7.wav,maybe",                 // 7 wrong type
		"r-8,https://v/8.mp4",                                       // 8 missing field
		"r-9,https://v/9.mp4,https://a/9.wav,false,extra",           // 9 extra field
		"r-10,https://v/10.mp4,https://a/10.wav,1",                  // 10 ok
	}, "\n") + "\n"
	res, err := Parse(strings.NewReader(in), CSV, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`line 3: duplicate reference_id "ok-1" (first on line 2)`,
		`line 4: reference_id is empty`,
		`line 5: video_url is not an http(s) URL or a file:/// reference`,
		`line 6: audio_url is empty`,
		`line 7: disable_active_speaker_detection must be true or false, got "maybe"`,
		`line 8: has 2 fields, the header has 4`,
		`line 9: has 5 fields, the header has 4`,
	}
	if len(res.Defects) != len(want) {
		t.Fatalf("defects = %v", res.Defects)
	}
	for i, w := range want {
		if got := res.Defects[i].String(); got != w {
			t.Errorf("defect %d = %q, want %q", i, got, w)
		}
	}
	if len(res.Jobs) != 2 || res.Jobs[0].ReferenceID != "ok-1" || res.Jobs[1].ReferenceID != "r-10" {
		t.Fatalf("valid jobs = %+v", res.Jobs)
	}
	msg := (&Error{Name: "jobs.csv", Defects: res.Defects}).Error()
	if strings.Contains(msg, secret) || strings.Contains(msg, "https://") {
		t.Fatalf("error repeats a URL: %s", msg)
	}
}

func TestParseCSVHeaderDefects(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"missing column": {"reference_id,video_url\nr,https://v\n", `line 1: the header lacks the column "audio_url"`},
		"unknown column": {"reference_id,video_url,audio_url,colour\n", `line 1: unknown column "colour" in the header`},
		"twice":          {"reference_id,video_url,audio_url,video_url\n", `line 1: column "video_url" appears twice in the header`},
		"empty file":     {"", "the file is empty: want a header row"},
		"header only":    {"reference_id,video_url,audio_url\n", "the file holds no jobs"},
		"broken quote":   {"reference_id,video_url,audio_url\nr,\"https://v,x\n", "line 2: malformed CSV: extraneous or missing \" in quoted-field"},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := Parse(strings.NewReader(tc.in), CSV, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Defects) != 1 || res.Defects[0].String() != tc.want {
				t.Fatalf("defects = %q, want [%q]", res.Defects, tc.want)
			}
			if len(res.Jobs) != 0 {
				t.Fatalf("jobs = %+v", res.Jobs)
			}
		})
	}
}

func TestParseJSONLEveryDefect(t *testing.T) {
	in := strings.Join([]string{
		`{"reference_id":"j-1","video_url":"https://v/1.mp4?sig=s3cr3t","audio_url":"https://a/1.wav"}`,
		`{"reference_id":"j-1","video_url":"https://v/1.mp4","audio_url":"https://a/1.wav"}`,
		`{"reference_id":"j-3","video_url":"https://v/3.mp4"}`,
		`{"reference_id":3,"video_url":"https://v/4.mp4","audio_url":"https://a/4.wav"}`,
		`{"reference_id":"j-5","video_url":"https://v/5.mp4","audio_url":"https://a/5.wav","disable_active_speaker_detection":"yes"}`,
		`{"reference_id":"j-6","video_url":"https://v/6.mp4?sig=s3cr3t",`,
		`["j-7"]`,
		``,
		`{"reference_id":"j-9","video_url":"https://v/9.mp4","audio_url":"https://a/9.wav","colour":"red"}`,
		`{"reference_id":"j-10","video_url":"mailto:x","audio_url":"https://a/10.wav","disable_active_speaker_detection":true}`,
		`{"reference_id":"j-11","video_url":"https://v/11.mp4","audio_url":"https://a/11.wav","disable_active_speaker_detection":true}`,
	}, "\n")
	res, err := Parse(strings.NewReader(in), JSONL, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`line 2: duplicate reference_id "j-1" (first on line 1)`,
		`line 3: missing field "audio_url"`,
		`line 4: field "reference_id" must be a string`,
		`line 5: field "disable_active_speaker_detection" must be true or false`,
		`line 6: not a JSON object: syntax error at byte 63`,
		`line 7: not a JSON object: want an object, got array`,
		`line 9: unknown field(s) "colour"`,
		`line 10: video_url is not an http(s) URL or a file:/// reference`,
	}
	got := make([]string, len(res.Defects))
	for i, d := range res.Defects {
		got[i] = d.String()
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("defects:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(res.Jobs) != 2 || res.Jobs[1].ReferenceID != "j-11" || !res.Jobs[1].DisableActiveSpeakerDetection || res.Jobs[1].Line != 11 {
		t.Fatalf("jobs = %+v", res.Jobs)
	}
	if strings.Contains(strings.Join(got, ""), "s3cr3t") {
		t.Fatal("a defect repeats a URL")
	}
}

func TestValidatorDefects(t *testing.T) {
	in := "reference_id,video_url,audio_url\nr 1,https://v/1,https://a/1\nr2,https://v/2,https://a/2\n"
	res, err := Parse(strings.NewReader(in), CSV, func(j Job) error {
		if strings.Contains(j.ReferenceID, " ") {
			return errors.New("reference_id has a space")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Defects) != 1 || res.Defects[0].String() != "line 2: reference_id has a space" || len(res.Jobs) != 1 {
		t.Fatalf("res = %+v", res)
	}
}

func TestFormatOf(t *testing.T) {
	for name, want := range map[string]Format{"a.csv": CSV, "b.JSONL": JSONL, "c.ndjson": JSONL} {
		if got, err := FormatOf(name); err != nil || got != want {
			t.Errorf("FormatOf(%q) = %q, %v", name, got, err)
		}
	}
	if _, err := FormatOf("jobs.xlsx"); err == nil || !strings.Contains(err.Error(), `unknown file type ".xlsx"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestExampleFileIsValid(t *testing.T) {
	for _, name := range []string{"../docs/examples/batch.csv", "../docs/examples/batch.jsonl"} {
		res, err := ParseFile(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Defects) != 0 || len(res.Jobs) < 3 {
			t.Fatalf("%s: %+v", name, res)
		}
	}
}
