package activities_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/chamelaion-lipsync/worker/activities"
)

// BenchmarkPageThroughBatchFile pages through a --worker-file batch of
// each size, 500 jobs a page, as a batch reads it: with LoadBatchPage (from
// the cursor the last page returned) and, for comparison at the smaller
// sizes, with LoadBatchJobs (which the batch used before: it re-read and
// re-parsed the whole file for every page). It reports the seconds per
// pass and the peak heap in use while paging.
//
//	go test -run XXX -bench PageThroughBatchFile -benchtime 1x ./activities/
func BenchmarkPageThroughBatchFile(b *testing.B) {
	for _, rows := range []int{10_000, 50_000, 100_000, 200_000} {
		path, src := benchBatchFile(b, rows)
		b.Run(fmt.Sprintf("page/rows=%d", rows), func(b *testing.B) {
			for range b.N {
				peak := trackPeakHeap(func() { pageWithCursor(b, src) })
				b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			}
		})
		if rows <= 50_000 {
			b.Run(fmt.Sprintf("reparse/rows=%d", rows), func(b *testing.B) {
				for range b.N {
					peak := trackPeakHeap(func() { pageByReparsing(b, src) })
					b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
				}
			})
		}
		_ = path
	}
}

func benchBatchFile(b *testing.B, rows int) (string, activities.BatchSource) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "catalogue.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	fmt.Fprintln(f, "reference_id,video_url,audio_url")
	fmt.Fprintln(h, "reference_id,video_url,audio_url")
	for i := range rows {
		line := fmt.Sprintf("cat-%07d,https://media.example.com/video/cat-%07d.mp4?X-Amz-Signature=%064d,https://media.example.com/audio/cat-%07d.wav\n", i, i, i, i)
		f.WriteString(line)
		h.Write([]byte(line))
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path, activities.BatchSource{Path: path, SHA256: hex.EncodeToString(h.Sum(nil)), Jobs: rows}
}

func pageWithCursor(b *testing.B, src activities.BatchSource) {
	acts := &activities.Activities{Media: activities.MediaRoot{Dir: filepath.Dir(src.Path)}}
	cursor, read := activities.SourceCursor{}, 0
	for read < src.Jobs {
		res, err := acts.LoadBatchPage(context.Background(), activities.LoadBatchPageInput{Source: src, Cursor: cursor, From: read, Limit: 500})
		if err != nil || len(res.Jobs) == 0 {
			b.Fatalf("page at %d: %v", read, err)
		}
		read += len(res.Jobs)
		cursor = res.Next
	}
}

func pageByReparsing(b *testing.B, src activities.BatchSource) {
	acts := &activities.Activities{Media: activities.MediaRoot{Dir: filepath.Dir(src.Path)}}
	for read := 0; read < src.Jobs; {
		jobs, err := acts.LoadBatchJobs(context.Background(), activities.LoadBatchJobsInput{Source: src, From: read, Limit: 500})
		if err != nil || len(jobs) == 0 {
			b.Fatalf("page at %d: %v", read, err)
		}
		read += len(jobs)
	}
}

// trackPeakHeap runs fn and samples the heap in use meanwhile.
func trackPeakHeap(fn func()) uint64 {
	runtime.GC()
	done := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var max uint64
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			max = maxU(max, ms.HeapInuse)
			select {
			case <-done:
				peak <- max
				return
			default:
				runtime.Gosched()
			}
		}
	}()
	fn()
	close(done)
	return <-peak
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
