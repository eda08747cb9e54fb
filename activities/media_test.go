package activities_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// mediaTree is a media root with every kind of entry an attacker would
// name, and a secret file beside it.
type mediaTree struct {
	root, outside string
}

func newMediaTree(t *testing.T) mediaTree {
	t.Helper()
	base := t.TempDir()
	m := mediaTree{root: filepath.Join(base, "media"), outside: filepath.Join(base, "secret.env")}
	require.NoError(t, os.MkdirAll(filepath.Join(m.root, "sub"), 0o755))
	require.NoError(t, os.WriteFile(m.outside, []byte("CHAMELAION_API_KEY=SECRETKEY"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(m.root, "v.mp4"), []byte("video"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(m.root, "sub", "a.wav"), []byte("audio"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(m.root, "big.mp4"), make([]byte, 2048), 0o600))
	require.NoError(t, os.Symlink(m.outside, filepath.Join(m.root, "abs-link")))
	require.NoError(t, os.Symlink("../secret.env", filepath.Join(m.root, "rel-link")))
	require.NoError(t, os.Symlink("/proc/self/environ", filepath.Join(m.root, "environ-link")))
	require.NoError(t, os.Symlink("..", filepath.Join(m.root, "up")))
	require.NoError(t, os.Symlink("sub/a.wav", filepath.Join(m.root, "inside-link")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(m.root, "fifo"), 0o600))
	// A hard link names the secret from inside the root (os.Root cannot
	// tell; found by a review).
	require.NoError(t, os.Link(m.outside, filepath.Join(m.root, "hard.mp4")))
	return m
}

// TestMediaRootConfinesWhatTheWorkerReads: the paths an attacker who can
// start a workflow would name are refused with one message that says
// nothing of why (exists? readable? where does the link point?); what an
// operator can act on (off, not a regular file, too large) is said.
func TestMediaRootConfinesWhatTheWorkerReads(t *testing.T) {
	m := newMediaTree(t)
	root := activities.MediaRoot{Dir: m.root, MaxBytes: 1024}

	for _, ok := range []string{"v.mp4", "sub/a.wav", "inside-link", "sub/../v.mp4"} {
		f, size, err := root.Open(filepath.Join(m.root, ok))
		require.NoError(t, err, ok)
		require.Positive(t, size)
		f.Close()
	}
	notAllowed := []string{
		m.outside,                                 // outside the root
		"/proc/self/environ",                      // the worker's secrets
		"/etc/shadow",                             // outside, unreadable
		"/nonexistent/x",                          // outside, missing
		filepath.Join(m.root, "../secret.env"),    // .. out of the root
		filepath.Join(m.root, "abs-link"),         // a link out (absolute)
		filepath.Join(m.root, "rel-link"),         // a link out (relative)
		filepath.Join(m.root, "environ-link"),     // a link to /proc
		filepath.Join(m.root, "up", "secret.env"), // a link to the parent
		filepath.Join(m.root, "missing.mp4"),      // inside, missing
		filepath.Join(m.root, "hard.mp4"),         // a hard link to the secret
		"relative/v.mp4",
	}
	var messages []string
	for _, p := range notAllowed {
		_, _, err := root.Open(p)
		require.ErrorIs(t, err, activities.ErrMediaNotAllowed, p)
		messages = append(messages, err.Error())
		for _, leak := range []string{"no such file", "permission", "escapes", "denied", "symlink", "secret", "environ", "/tmp", "/proc", "/etc", "/nonexistent"} {
			require.NotContains(t, strings.ToLower(err.Error()), leak, "%s: %v", p, err)
		}
	}
	for _, msg := range messages {
		require.Equal(t, messages[0], msg, "every refusal reads the same, so none tells a path exists")
	}

	for _, p := range []string{m.root + "/sub", m.root + "/fifo"} {
		done := make(chan error, 1)
		go func() { _, _, err := root.Open(p); done <- err }()
		select {
		case err := <-done:
			require.ErrorIs(t, err, activities.ErrMediaNotRegular, p)
		case <-time.After(5 * time.Second):
			t.Fatalf("opening %s blocked", p)
		}
	}
	_, _, err := root.Open(filepath.Join(m.root, "big.mp4"))
	require.ErrorContains(t, err, "too large: 2048 bytes, more than MEDIA_MAX_BYTES (1024)")

	_, _, err = activities.MediaRoot{}.Open(filepath.Join(m.root, "v.mp4"))
	require.ErrorIs(t, err, activities.ErrMediaOff)
	require.ErrorContains(t, err, "MEDIA_ROOT")

	f, err := activities.OpenUnderRoot(m.root, filepath.Join(m.root, "v.mp4"), 0)
	require.NoError(t, err)
	f.Close()
	_, err = activities.OpenUnderRoot(m.root, m.outside, 0)
	require.ErrorIs(t, err, activities.ErrMediaNotAllowed)
}

// submitFiles runs the Submit activity for two file:// media.
func submitFiles(t *testing.T, acts *activities.Activities, video, audio string) error {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(quiet))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	_, err := env.ExecuteActivity(acts.Submit, activities.SubmitInput{WorkflowID: "wf-media", ReferenceID: "media", Attempt: 1,
		Video: "file://" + video, Audio: "file://" + audio})
	return err
}

func requirePermanentMedia(t *testing.T, err error, want string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "got %v", err)
	require.Equal(t, activities.TypeMediaUnreadable, appErr.Type(), appErr.Message())
	require.True(t, appErr.NonRetryable(), appErr.Message())
	require.Contains(t, appErr.Message(), want)
}

// TestSubmitNeverUploadsHostFiles: through the Submit activity, on the
// emulator, no file outside MEDIA_ROOT reaches the vendor, and file://
// media are off without it.
func TestSubmitNeverUploadsHostFiles(t *testing.T) {
	f := newFixture(t)
	m := newMediaTree(t)
	audio := filepath.Join(m.root, "sub", "a.wav")
	requirePermanentMedia(t, submitFiles(t, f.acts, filepath.Join(m.root, "v.mp4"), audio), "file:// media are off")
	f.acts.Media = activities.MediaRoot{Dir: m.root, MaxBytes: 1 << 20}
	for _, p := range []string{"/proc/self/environ", m.outside, filepath.Join(m.root, "abs-link"), filepath.Join(m.root, "environ-link"), filepath.Join(m.root, "missing.mp4")} {
		err := submitFiles(t, f.acts, p, audio)
		requirePermanentMedia(t, err, "the video file is not allowed")
		require.NotContains(t, err.Error(), "SECRETKEY")
	}
	require.Zero(t, f.emu.Stats().JobsCreated, "nothing was uploaded")
}

// TestUnreadableMediaIsPermanent (issue 13, defect 7): a folder, a pipe,
// or a file that fails while it is uploaded is a permanent MediaUnreadable
// with a precise message, not a network failure retried for half an hour.
func TestUnreadableMediaIsPermanent(t *testing.T) {
	f := newFixture(t)
	m := newMediaTree(t)
	f.acts.Media = activities.MediaRoot{Dir: m.root, MaxBytes: 1 << 20}
	audio := filepath.Join(m.root, "sub", "a.wav")
	requirePermanentMedia(t, submitFiles(t, f.acts, filepath.Join(m.root, "sub"), audio), "the video file is not a regular file")
	requirePermanentMedia(t, submitFiles(t, f.acts, filepath.Join(m.root, "fifo"), audio), "the video file is not a regular file")

	f.acts.API = failingUpload{field: "audio"}
	requirePermanentMedia(t, submitFiles(t, f.acts, filepath.Join(m.root, "v.mp4"), audio), "the audio file could not be read to the end")
}

// failingUpload is an API whose uploads fail reading their content.
type failingUpload struct {
	activities.API
	field string
}

func (u failingUpload) GenerateWithMedia(context.Context, chamelaion.GenerateWithMediaRequest) (chamelaion.GenerateResponse, error) {
	return chamelaion.GenerateResponse{}, &chamelaion.UploadError{Field: u.field, Err: syscall.EIO}
}
