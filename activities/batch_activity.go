package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/batchfile"
)

// BatchSource is a batch file the worker reads itself (on storage the
// starter and the workers share), for batches too large to ride in a
// workflow input.
type BatchSource struct {
	// Path is the file's absolute path as the workers see it (.csv or
	// .jsonl).
	Path string
	// SHA256 is the hex digest of the file the starter checked; a file
	// that changed since is refused.
	SHA256 string
	// Jobs is the number of valid jobs in it.
	Jobs int
	// SkipInvalid runs the valid rows of a file with invalid ones.
	SkipInvalid bool
}

// LoadBatchJobsInput asks for a page of a batch file's valid jobs.
type LoadBatchJobsInput struct {
	Source BatchSource
	// From is the index of the first valid job wanted; Limit how many.
	From  int
	Limit int
}

// BatchJob is one job of a batch file.
type BatchJob struct {
	ReferenceID                   string
	Video                         string
	Audio                         string
	DisableActiveSpeakerDetection bool
}

// LoadBatchJobs reads a page of a batch file's valid jobs. The file is
// checked again as the starter checked it: a changed file, or invalid rows
// without SkipInvalid, are refused (not retried).
func (a *Activities) LoadBatchJobs(ctx context.Context, in LoadBatchJobsInput) ([]BatchJob, error) {
	src := in.Source
	if !filepath.IsAbs(src.Path) || in.From < 0 || in.Limit < 1 {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("load batch jobs: want an absolute path, From >= 0 and Limit >= 1 (got %q, %d, %d)", src.Path, in.From, in.Limit), TypeInvalidInput, nil)
	}
	raw, err := os.ReadFile(src.Path)
	if err != nil {
		// Shared storage may be briefly unavailable: retried.
		return nil, fmt.Errorf("load batch jobs: %w", err)
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != src.SHA256 {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("load batch jobs: %s changed since the batch started (SHA-256 %s, want %s)", src.Path, got, src.SHA256), TypeInvalidInput, nil)
	}
	format, err := batchfile.FormatOf(src.Path)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError("load batch jobs: "+err.Error(), TypeInvalidInput, nil)
	}
	res, err := batchfile.Parse(bytes.NewReader(raw), format, func(j batchfile.Job) error {
		return ValidateMedia(j.VideoURL, j.AudioURL)
	})
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError("load batch jobs: "+err.Error(), TypeInvalidInput, nil)
	}
	if len(res.Defects) > 0 && !src.SkipInvalid {
		return nil, temporal.NewNonRetryableApplicationError("load batch jobs: "+(&batchfile.Error{Name: src.Path, Defects: res.Defects}).Error(), TypeInvalidInput, nil)
	}
	if len(res.Jobs) != src.Jobs {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("load batch jobs: %s holds %d valid jobs, the batch expects %d", src.Path, len(res.Jobs), src.Jobs), TypeInvalidInput, nil)
	}
	end := min(in.From+in.Limit, len(res.Jobs))
	var page []BatchJob
	for _, j := range res.Jobs[min(in.From, end):end] {
		page = append(page, BatchJob{ReferenceID: j.ReferenceID, Video: j.VideoURL, Audio: j.AudioURL, DisableActiveSpeakerDetection: j.DisableActiveSpeakerDetection})
	}
	return page, nil
}

// SourceCursor is where the reading of a batch's Source stands.
type SourceCursor struct {
	// Offset and Line are the byte offset and line number of the next row.
	Offset int64
	Line   int
	// Read counts the valid jobs read so far.
	Read int
	// Size and ModTime are the file as the first page checked it (its
	// digest and every row): a later page refuses a file whose size or
	// modification time changed since.
	Size    int64
	ModTime time.Time
	// Skip lists the lines of the invalid rows the batch skips
	// (SkipInvalid), ascending.
	Skip []int `json:",omitempty"`
}

// Checked says whether the first page has checked the file.
func (c SourceCursor) Checked() bool { return c.Size > 0 }

// LoadBatchPageInput asks for the next page of a batch file's valid jobs.
type LoadBatchPageInput struct {
	Source BatchSource
	// Cursor is where the page starts (the zero cursor: the file's start,
	// where the whole file is checked first).
	Cursor SourceCursor
	// From is the index of the first valid job wanted when the cursor is
	// the zero cursor (a batch whose earlier runs read pages by index).
	From  int
	Limit int
}

// LoadBatchPageResult is a page of jobs and where the next page starts.
type LoadBatchPageResult struct {
	Jobs []BatchJob
	Next SourceCursor
}

// LoadBatchPage reads the next page of a batch file's valid jobs, from the
// cursor the previous page returned.
func (a *Activities) LoadBatchPage(ctx context.Context, in LoadBatchPageInput) (LoadBatchPageResult, error) {
	return LoadBatchPageResult{}, fmt.Errorf("not yet")
}
