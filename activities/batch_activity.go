package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/activity"
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
	f, err := a.openBatchFile(src.Path)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		// Shared storage may be briefly unavailable: retried.
		return nil, temporal.NewApplicationError("load batch jobs: the batch file could not be read", TypeSourceUnavailable)
	}
	sum := sha256.Sum256(raw)
	if hex.EncodeToString(sum[:]) != src.SHA256 {
		return nil, temporal.NewNonRetryableApplicationError("load batch jobs: the batch file changed since the batch started (its SHA-256 differs from the one the starter checked)", TypeInvalidInput, nil)
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
	From int
	// Limit bounds the jobs of the page, and MaxBytes (0 = none) their
	// size (reference_id and media URLs): the page ends at whichever comes
	// first, with at least one job.
	Limit    int
	MaxBytes int
}

// LoadBatchPageResult is a page of jobs and where the next page starts.
type LoadBatchPageResult struct {
	Jobs []BatchJob
	Next SourceCursor
}

// LoadBatchPage reads the next page of a batch file's valid jobs, from the
// cursor the previous page returned, in memory bounded by the page. The
// first page checks the whole file in one streaming pass, as the starter
// checked it (its SHA-256, every row with the starter's own check, the
// count of valid jobs) and notes the invalid rows to skip; later pages
// start at their offset and refuse a file whose size or modification time
// changed since. So reading a file of any size costs two passes over it in
// all, not one per page. Refusals name no digest or column of the file.
func (a *Activities) LoadBatchPage(ctx context.Context, in LoadBatchPageInput) (LoadBatchPageResult, error) {
	src := in.Source
	if !filepath.IsAbs(src.Path) || in.From < 0 || in.Limit < 1 {
		return LoadBatchPageResult{}, temporal.NewNonRetryableApplicationError("load batch page: want an absolute path, From >= 0 and Limit >= 1", TypeInvalidInput, nil)
	}
	format, err := batchfile.FormatOf(src.Path)
	if err != nil {
		return LoadBatchPageResult{}, temporal.NewNonRetryableApplicationError("load batch page: the batch file must be .csv or .jsonl", TypeInvalidInput, nil)
	}
	f, err := a.openBatchFile(src.Path)
	if err != nil {
		return LoadBatchPageResult{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return LoadBatchPageResult{}, temporal.NewApplicationError("load batch page: the batch file could not be read", TypeSourceUnavailable)
	}
	cursor := in.Cursor
	if !cursor.Checked() {
		if cursor, err = checkBatchFile(ctx, f, format, src, st); err != nil {
			return LoadBatchPageResult{}, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return LoadBatchPageResult{}, fmt.Errorf("load batch page: %w", err)
		}
	} else if st.Size() != cursor.Size || !st.ModTime().Equal(cursor.ModTime) {
		return LoadBatchPageResult{}, temporal.NewNonRetryableApplicationError("load batch page: the batch file changed since the batch started (its size or modification time differs)", TypeInvalidInput, nil)
	}
	sc, _, err := batchfile.NewScanner(f, format, batchfile.Position{Offset: cursor.Offset, Line: cursor.Line})
	if err != nil {
		return LoadBatchPageResult{}, fmt.Errorf("load batch page: %w", err)
	}
	skip := cursor.Skip
	res := LoadBatchPageResult{Next: cursor}
	size := 0
	for len(res.Jobs) < in.Limit && (in.MaxBytes <= 0 || size < in.MaxBytes) && sc.Scan() {
		row := sc.Row()
		res.Next.Offset, res.Next.Line = row.Next.Offset, row.Next.Line
		if row.Job.Line%10000 == 0 && activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, row.Job.Line)
		}
		for len(skip) > 0 && skip[0] < row.Job.Line {
			skip = skip[1:]
		}
		if len(skip) > 0 && skip[0] == row.Job.Line {
			continue // invalid: the starter skipped it too
		}
		if row.Problem != "" {
			return LoadBatchPageResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("load batch page: line %d is not a valid row although the file was checked", row.Job.Line), TypeInvalidInput, nil)
		}
		res.Next.Read++
		if res.Next.Read <= in.From {
			continue // read by an earlier run (which paged by index)
		}
		j := row.Job
		size += len(j.ReferenceID) + len(j.VideoURL) + len(j.AudioURL) + 100
		res.Jobs = append(res.Jobs, BatchJob{ReferenceID: j.ReferenceID, Video: j.VideoURL, Audio: j.AudioURL, DisableActiveSpeakerDetection: j.DisableActiveSpeakerDetection})
	}
	if err := sc.Err(); err != nil {
		return LoadBatchPageResult{}, temporal.NewApplicationError("load batch page: the batch file could not be read", TypeSourceUnavailable)
	}
	res.Next.Skip = skip
	return res, nil
}

// checkBatchFile reads the whole file once, as the starter did: its digest,
// every row with the starter's check, and the count of valid jobs. It
// returns the cursor of the file's first row, with the invalid rows to
// skip.
func checkBatchFile(ctx context.Context, f *os.File, format batchfile.Format, src BatchSource, st os.FileInfo) (SourceCursor, error) {
	refuse := func(msg string) (SourceCursor, error) {
		return SourceCursor{}, temporal.NewNonRetryableApplicationError("load batch page: "+msg, TypeInvalidInput, nil)
	}
	h := sha256.New()
	var fileDefects []batchfile.Defect
	var skip []int
	valid, rows := 0, 0
	err := batchfile.Scan(io.TeeReader(f, h), format, ValidateBatchRow, func(r batchfile.Row) error {
		if rows++; rows%10000 == 0 && activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, rows)
		}
		if r.Problem != "" {
			skip = append(skip, r.Job.Line)
			return nil
		}
		valid++
		return nil
	}, &fileDefects)
	if err != nil {
		return SourceCursor{}, temporal.NewApplicationError("load batch page: the batch file could not be read", TypeSourceUnavailable)
	}
	// The digest covers the whole file, whatever the scan left unread.
	if _, err := io.Copy(h, f); err != nil {
		return SourceCursor{}, temporal.NewApplicationError("load batch page: the batch file could not be read", TypeSourceUnavailable)
	}
	switch {
	case hex.EncodeToString(h.Sum(nil)) != src.SHA256:
		return refuse("the batch file changed since the batch started (its SHA-256 differs from the one the starter checked)")
	case len(fileDefects) > 0:
		return refuse("the batch file's header is not valid")
	case len(skip) >= batchfile.MaxDefects:
		return refuse(fmt.Sprintf("the batch file has %d or more invalid rows", batchfile.MaxDefects))
	case len(skip) > 0 && !src.SkipInvalid:
		return refuse(fmt.Sprintf("the batch file has %d invalid rows and the batch does not skip them", len(skip)))
	case valid != src.Jobs:
		return refuse(fmt.Sprintf("the batch file holds %d valid jobs, the batch expects %d", valid, src.Jobs))
	}
	return SourceCursor{Size: st.Size(), ModTime: st.ModTime(), Skip: skip}, nil
}

// TypeSourceUnavailable: a batch file could not be read (shared storage
// may be briefly away). Retried.
const TypeSourceUnavailable = "SourceUnavailable"

// openBatchFile opens a batch file the way file:// media are opened: inside
// MEDIA_ROOT, without following a link out of it, a regular file only (of
// any size). The refusal says what an operator can act on and nothing of
// the host; it is not retried.
func (a *Activities) openBatchFile(path string) (*os.File, error) {
	f, _, err := MediaRoot{Dir: a.Media.Dir}.Open(path)
	if err == nil {
		return f, nil
	}
	var me *MediaError
	if errors.As(err, &me) {
		a.logger().Warn("batch file refused", "path", path, "refusal", me.Error(), "cause", me.cause)
		msg := "the batch file " + me.Error()
		if errors.Is(err, ErrMediaOff) {
			msg = "the batch file cannot be read: the workers read batch files only inside MEDIA_ROOT, which is not set"
		}
		return nil, temporal.NewNonRetryableApplicationError("load batch page: "+msg, TypeInvalidInput, nil)
	}
	return nil, temporal.NewApplicationError("load batch page: the batch file could not be opened", TypeSourceUnavailable)
}
