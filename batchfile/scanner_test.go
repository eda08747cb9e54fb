package batchfile

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestScannerResumesFromEveryRow: reading from the position after any row
// yields exactly the rows a whole scan yields after it (same jobs, lines
// and problems), for CSV with quoted fields across lines, blank lines,
// CRLF and a byte-order mark, and for JSON Lines with blank lines and no
// final newline. Paged batches read their file this way.
func TestScannerResumesFromEveryRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for n := range 60 {
		format, file := randomFile(rng, n)
		all := scanAll(t, bytes.NewReader(file), format, Position{})
		for i, r := range all {
			rest := scanAll(t, bytes.NewReader(file), format, r.Next)
			if want := all[i+1:]; !reflect.DeepEqual(rest, want) && !(len(rest) == 0 && len(want) == 0) {
				t.Fatalf("file %d (%s), from row %d (%+v):\n got %+v\nwant %+v\nfile:\n%q", n, format, i, r.Next, rest, want, file)
			}
		}
	}
}

func scanAll(t *testing.T, r *bytes.Reader, format Format, from Position) []Row {
	t.Helper()
	sc, defects, err := NewScanner(r, format, from)
	if err != nil || len(defects) > 0 {
		t.Fatalf("scanner: %v %v", err, defects)
	}
	var rows []Row
	for sc.Scan() {
		rows = append(rows, sc.Row())
	}
	if sc.Err() != nil {
		t.Fatal(sc.Err())
	}
	return rows
}

func randomFile(rng *rand.Rand, n int) (Format, []byte) {
	var b strings.Builder
	if rng.IntN(3) == 0 {
		b.Write(utf8BOM)
	}
	eol := "\n"
	if rng.IntN(3) == 0 {
		eol = "\r\n"
	}
	rows := 1 + rng.IntN(12)
	if n%2 == 0 {
		b.WriteString("reference_id,video_url,audio_url,disable_active_speaker_detection" + eol)
		for i := range rows {
			switch rng.IntN(8) {
			case 0:
				b.WriteString(eol) // blank
			case 1:
				fmt.Fprintf(&b, "\"r-%d\nsecond line\",https://v/%d.mp4,https://a/%d.wav,true%s", i, i, i, eol)
			case 2:
				fmt.Fprintf(&b, "r-%d,https://v/%d.mp4%s", i, i, eol) // too few fields
			case 3:
				// a quoted last field over two lines (found by review: the
				// next row's line was counted from where the field began)
				fmt.Fprintf(&b, "r-%d,https://v/%d.mp4,https://a/%d.wav,\"%s\"%s", i, i, i, eol, eol)
			case 4:
				fmt.Fprintf(&b, "r-%d,https://v/%d.mp4,https://a/%d.wav,true%s", i%3, i, i, eol) // maybe a duplicate
			default:
				fmt.Fprintf(&b, "r-%d,\"https://v/%d.mp4?a=1,b=2\",https://a/%d.wav,%s", i, i, i, eol)
			}
		}
		return CSV, []byte(b.String())
	}
	for i := range rows {
		switch rng.IntN(5) {
		case 0:
			b.WriteString(eol)
		case 1:
			fmt.Fprintf(&b, "{\"reference_id\": %d}%s", i, eol)
		default:
			fmt.Fprintf(&b, `{"reference_id":"r-%d","video_url":"https://v/%d.mp4","audio_url":"https://a/%d.wav"}%s`, i, i, i, eol)
		}
	}
	s := b.String()
	if rng.IntN(2) == 0 {
		s = strings.TrimRight(s, "\r\n")
	}
	if strings.Trim(s, "\r\n\ufeff") == "" {
		s += `{"reference_id":"only","video_url":"https://v/o.mp4","audio_url":"https://a/o.wav"}`
	}
	return JSONL, []byte(s)
}

// TestParseAcceptsAByteOrderMark: a file saved with a UTF-8 byte-order
// mark reads as without one (before, a JSON Lines file failed on line 1).
func TestParseAcceptsAByteOrderMark(t *testing.T) {
	for format, body := range map[Format]string{
		JSONL: `{"reference_id":"r1","video_url":"https://v/1.mp4","audio_url":"https://a/1.wav"}` + "\n",
		CSV:   "reference_id,video_url,audio_url\nr1,https://v/1.mp4,https://a/1.wav\n",
	} {
		res, err := Parse(strings.NewReader("\ufeff"+body), format, nil)
		if err != nil || len(res.Defects) != 0 || len(res.Jobs) != 1 || res.Jobs[0].ReferenceID != "r1" || res.Jobs[0].Line != map[Format]int{JSONL: 1, CSV: 2}[format] {
			t.Errorf("%s: %+v %v", format, res, err)
		}
	}
}
