package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/lipsync"
)

// writeResults writes one CSV line per job: reference_id, status,
// output_url, error. The file is created 0600 (it lists every output URL,
// which may be pre-signed). A cell a spreadsheet would run as a formula
// is neutralised, an output_url that is not an https URL is left out (and
// said so in the error column), and the error column is redacted again.
func writeResults(path string, outcomes []lipsync.JobOutcome) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("results file: %w", err)
	}
	// An existing file keeps its mode through O_CREATE: narrow it.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("results file %s: %w", path, err)
	}
	if err := writeResultsTo(f, outcomes); err != nil {
		f.Close()
		return fmt.Errorf("results file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("results file %s: %w", path, err)
	}
	return nil
}

// writeResultsTo writes the results as CSV to w.
func writeResultsTo(w io.Writer, outcomes []lipsync.JobOutcome) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"reference_id", "status", "output_url", "error"})
	for _, o := range outcomes {
		_ = cw.Write(resultRow(o))
	}
	cw.Flush()
	return cw.Error()
}

// resultRow is one job's line of the results file.
func resultRow(o lipsync.JobOutcome) []string {
	output, errText := o.OutputURL, chamelaion.Redact(o.Error)
	switch {
	case output != "" && !isHTTPSURL(output):
		output = ""
		errText = strings.TrimPrefix(errText+"; output_url refused: the vendor's value is not an https URL", "; ")
	case neutralise(output) != output:
		// A URL is never altered: one a spreadsheet could run is dropped.
		output = ""
		errText = strings.TrimPrefix(errText+"; output_url refused: the vendor's value holds text a spreadsheet would run as a formula", "; ")
	}
	return []string{neutralise(o.ReferenceID), neutralise(o.Status), output, neutralise(errText)}
}

// isHTTPSURL says whether s is an absolute https URL with a host, with no
// white space or control character a reader could be fooled by.
func isHTTPSURL(s string) bool {
	if strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil
}

// neutralise keeps a spreadsheet from running a cell as a formula: a cell
// that begins with =, +, -, @, a tab or a carriage return (after any
// spaces) gets a leading quote (OWASP's advice for CSV injection), and so
// does every part of it after a ";" or a "," that would begin a cell when
// the file is read with another list separator (Excel in locales whose
// separator is ";" splits an unquoted "a;=1+1"). The cost: such text reads
// with a ' after its separator.
func neutralise(cell string) string {
	var b strings.Builder
	start := true
	for i := 0; i < len(cell); i++ {
		c := cell[i]
		if start {
			if c == ' ' {
				b.WriteByte(c)
				continue
			}
			if strings.IndexByte(formulaStarts, c) >= 0 {
				b.WriteByte('\'')
			}
			start = false
		}
		b.WriteByte(c)
		if c == ';' || c == ',' {
			start = true
		}
	}
	return b.String()
}

// formulaStarts are the first characters that make a cell a formula.
const formulaStarts = "=+-@\t\r"
