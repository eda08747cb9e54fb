package main

import (
	"encoding/csv"
	"fmt"
	"os"

	"github.com/chamelaion-lipsync/worker/lipsync"
)

// writeResults writes one CSV line per job: reference_id, status,
// output_url, error.
func writeResults(path string, outcomes []lipsync.JobOutcome) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("results file: %w", err)
	}
	cw := csv.NewWriter(f)
	_ = cw.Write([]string{"reference_id", "status", "output_url", "error"})
	for _, o := range outcomes {
		_ = cw.Write([]string{o.ReferenceID, o.Status, o.OutputURL, o.Error})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		f.Close()
		return fmt.Errorf("results file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("results file %s: %w", path, err)
	}
	return nil
}
