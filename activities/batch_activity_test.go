package activities_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/batchfile"
)

// writeBatchFile writes a CSV batch file of n rows in which every 97th row
// has a reference_id with a space (invalid to the starter: before, the
// worker did not check it, counted more valid jobs than the starter and
// failed the --skip-invalid batch) and every 89th repeats an earlier
// reference_id. It returns the path, the source the starter would build,
// and the valid reference_ids in order.
func writeBatchFile(t *testing.T, n int) (string, activities.BatchSource, []string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("\ufeffreference_id,video_url,audio_url\n")
	var valid []string
	for i := range n {
		ref := fmt.Sprintf("row-%05d", i)
		switch {
		case i%97 == 50:
			ref = "row " + ref
		case i%89 == 88:
			ref = fmt.Sprintf("row-%05d", i-1)
		default:
			valid = append(valid, ref)
		}
		fmt.Fprintf(&b, "%s,\"https://cdn.example.com/%d.mp4?X-Amz-Signature=SIG,x\",https://cdn.example.com/%d.wav\n", ref, i, i)
	}
	path := filepath.Join(t.TempDir(), "catalogue.csv")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	sum := sha256.Sum256([]byte(b.String()))
	res, err := batchfile.ParseFile(path, activities.ValidateBatchRow)
	require.NoError(t, err)
	require.Len(t, res.Jobs, len(valid), "the starter's parse agrees with the file")
	return path, activities.BatchSource{Path: path, SHA256: hex.EncodeToString(sum[:]), Jobs: len(res.Jobs), SkipInvalid: true}, valid
}

// pageEnv runs the activities with MEDIA_ROOT set to root ("" = unset).
func pageEnv(t *testing.T, root string) *testsuite.TestActivityEnvironment {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(quiet))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(&activities.Activities{Media: activities.MediaRoot{Dir: root}, Logger: quiet})
	return env
}

func loadPage(env *testsuite.TestActivityEnvironment, in activities.LoadBatchPageInput) (activities.LoadBatchPageResult, error) {
	var res activities.LoadBatchPageResult
	v, err := env.ExecuteActivity((&activities.Activities{}).LoadBatchPage, in)
	if err != nil {
		return res, err
	}
	return res, v.Get(&res)
}

// TestLoadBatchPageReadsEveryValidJobOnceFromItsOffset: pages read from the
// cursor the last one returned yield every valid job once, in order,
// skipping exactly the rows the starter skipped.
func TestLoadBatchPageReadsEveryValidJobOnceFromItsOffset(t *testing.T) {
	path, src, valid := writeBatchFile(t, 2345)
	env := pageEnv(t, filepath.Dir(path))
	// Pages bounded by bytes (long URLs) read the same jobs in more pages.
	var small []string
	cursor := activities.SourceCursor{}
	for page := 0; len(small) < len(valid); page++ {
		require.Less(t, page, 1000)
		res, err := loadPage(env, activities.LoadBatchPageInput{Source: src, Cursor: cursor, From: len(small), Limit: 100, MaxBytes: 2000})
		require.NoError(t, err)
		require.NotEmpty(t, res.Jobs)
		require.LessOrEqual(t, len(res.Jobs), 12, "about 2,000 bytes of jobs (about 180 each)")
		for _, j := range res.Jobs {
			small = append(small, j.ReferenceID)
		}
		cursor = res.Next
	}
	require.Equal(t, valid, small)

	var got []string
	cursor = activities.SourceCursor{}
	for page := 0; len(got) < len(valid); page++ {
		require.Less(t, page, 100)
		res, err := loadPage(env, activities.LoadBatchPageInput{Source: src, Cursor: cursor, From: len(got), Limit: 100})
		require.NoError(t, err)
		require.NotEmpty(t, res.Jobs)
		for _, j := range res.Jobs {
			got = append(got, j.ReferenceID)
		}
		require.Equal(t, len(got), res.Next.Read)
		cursor = res.Next
	}
	require.Equal(t, valid, got)
	res, err := loadPage(env, activities.LoadBatchPageInput{Source: src, Cursor: cursor, From: len(got), Limit: 100})
	require.NoError(t, err)
	require.Empty(t, res.Jobs, "nothing after the last job")

	// A batch continued from a run that paged by index starts at From.
	res, err = loadPage(env, activities.LoadBatchPageInput{Source: src, From: 1000, Limit: 3})
	require.NoError(t, err)
	require.Equal(t, valid[1000:1003], []string{res.Jobs[0].ReferenceID, res.Jobs[1].ReferenceID, res.Jobs[2].ReferenceID})
}

// TestLoadBatchPageRefusesAChangedFile: a file that changed since the
// batch started is refused, by its digest on the first page and by its size
// or modification time later; no refusal repeats the file's digest.
func TestLoadBatchPageRefusesAChangedFile(t *testing.T) {
	path, src, _ := writeBatchFile(t, 300)
	env := pageEnv(t, filepath.Dir(path))
	first, err := loadPage(env, activities.LoadBatchPageInput{Source: src, Limit: 50})
	require.NoError(t, err)

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	changed := append([]byte{}, raw...)
	changed[len(changed)-3] = 'x'
	require.NoError(t, os.WriteFile(path, changed, 0o600))
	require.NoError(t, os.Chtimes(path, time.Now(), time.Now().Add(time.Minute)))

	_, err = loadPage(env, activities.LoadBatchPageInput{Source: src, Cursor: first.Next, Limit: 50})
	require.ErrorContains(t, err, "changed since the batch started")
	_, err = loadPage(env, activities.LoadBatchPageInput{Source: src, Limit: 50})
	require.ErrorContains(t, err, "SHA-256 differs")
	require.NotContains(t, err.Error(), hex.EncodeToString(sum[:]))

	noSkip := src
	noSkip.SkipInvalid = false
	require.NoError(t, os.WriteFile(path, raw, 0o600))
	_, err = loadPage(env, activities.LoadBatchPageInput{Source: noSkip, Limit: 50})
	require.ErrorContains(t, err, "invalid rows and the batch does not skip them")
}

// TestBatchFilesAreReadOnlyInsideTheMediaRoot: the workers read a batch
// file as they read file:// media: only inside MEDIA_ROOT, through no link
// out of it, with a refusal that says nothing of the host (before, any
// absolute path was read, and a changed file's refusal echoed its digest).
func TestBatchFilesAreReadOnlyInsideTheMediaRoot(t *testing.T) {
	path, src, _ := writeBatchFile(t, 10)
	_, err := loadPage(pageEnv(t, ""), activities.LoadBatchPageInput{Source: src, Limit: 5})
	require.ErrorContains(t, err, "the workers read batch files only inside MEDIA_ROOT, which is not set")
	other := t.TempDir()
	_, err = loadPage(pageEnv(t, other), activities.LoadBatchPageInput{Source: src, Limit: 5})
	require.ErrorContains(t, err, "is not allowed")
	require.NoError(t, os.Symlink(path, filepath.Join(other, "link.csv")))
	linked := src
	linked.Path = filepath.Join(other, "link.csv")
	_, err = loadPage(pageEnv(t, other), activities.LoadBatchPageInput{Source: linked, Limit: 5})
	require.ErrorContains(t, err, "is not allowed", "a link out of the root")
	for _, msg := range []string{err.Error()} {
		require.NotContains(t, msg, filepath.Dir(path))
		require.NotContains(t, msg, "no such file")
	}
	missing := src
	missing.Path = filepath.Join(other, "missing.csv")
	_, err2 := loadPage(pageEnv(t, other), activities.LoadBatchPageInput{Source: missing, Limit: 5})
	require.Error(t, err2)
	require.Equal(t, strings.SplitN(err.Error(), "is not allowed", 2)[1], strings.SplitN(err2.Error(), "is not allowed", 2)[1], "a missing file and a link out read alike")
	res, err := loadPage(pageEnv(t, filepath.Dir(path)), activities.LoadBatchPageInput{Source: src, Limit: 5})
	require.NoError(t, err)
	require.Len(t, res.Jobs, 5)
}
