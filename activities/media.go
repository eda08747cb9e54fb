package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// ValidateMedia checks a job's two media sources: each an http(s) URL or a
// file:///absolute/path, both of one kind. Its messages never repeat a URL.
func ValidateMedia(video, audio string) error {
	_, videoFile, err := LocalMediaPath(video)
	if err != nil {
		return fmt.Errorf("video %w", err)
	}
	_, audioFile, err := LocalMediaPath(audio)
	if err != nil {
		return fmt.Errorf("audio %w", err)
	}
	if videoFile != audioFile {
		return fmt.Errorf("video and audio must both be URLs or both be file:// references")
	}
	return nil
}

// generateWithFiles submits a job whose media are local files the worker
// uploads: each must be a regular file inside MEDIA_ROOT, no larger than
// MEDIA_MAX_BYTES. A refusal names what the operator can act on (file://
// media off, not allowed, not a regular file, too large, not readable to
// the end) and nothing more; the precise cause, which would tell whoever
// started the job facts about the host, goes to the worker's log only.
func (a *Activities) generateWithFiles(ctx context.Context, in SubmitInput, videoPath, audioPath string) (chamelaion.GenerateResponse, error) {
	video, videoSize, err := a.openMedia(in, "video", videoPath)
	if err != nil {
		return chamelaion.GenerateResponse{}, err
	}
	defer video.Close()
	audio, audioSize, err := a.openMedia(in, "audio", audioPath)
	if err != nil {
		return chamelaion.GenerateResponse{}, err
	}
	defer audio.Close()
	resp, err := a.API.GenerateWithMedia(ctx, chamelaion.GenerateWithMediaRequest{
		Video:                         chamelaion.MediaFile{Name: filepath.Base(videoPath), Content: exactly(video, videoSize)},
		Audio:                         chamelaion.MediaFile{Name: filepath.Base(audioPath), Content: exactly(audio, audioSize)},
		ReferenceID:                   in.ReferenceID,
		DisableActiveSpeakerDetection: in.DisableActiveSpeakerDetection,
	})
	var upload *chamelaion.UploadError
	if errors.As(err, &upload) {
		// The file failed, not the network: the same file fails again.
		a.logger().Warn("media file unreadable during upload", "workflow_id", in.WorkflowID, "field", upload.Field, "error", upload.Err)
		return resp, mediaError(upload.Field, errMediaRead)
	}
	if err != nil {
		return resp, a.apiFailure("submit with media", err)
	}
	return resp, nil
}

// openMedia opens one media file under the media root, logging the precise
// cause of a refusal for the operator.
func (a *Activities) openMedia(in SubmitInput, which, path string) (*os.File, int64, error) {
	f, size, err := a.Media.Open(path)
	if err != nil {
		var me *MediaError
		if errors.As(err, &me) && me.cause != nil {
			a.logger().Warn("media file refused", "workflow_id", in.WorkflowID, "field", which, "path", path, "refusal", me.Error(), "cause", me.cause)
		}
		return nil, 0, mediaError(which, err)
	}
	return f, size, nil
}

func mediaError(which string, err error) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("submit: the %s file %v", which, err), TypeMediaUnreadable, nil)
}

// MediaRoot confines the files the worker reads on behalf of a job
// (file:// media, and batch files) to one folder: a path is resolved
// inside it without following a link out of it, only a regular file is
// opened, and only up to a size. The zero value refuses every path
// (file:// media off).
type MediaRoot struct {
	// Dir is the folder (MEDIA_ROOT); "" refuses everything.
	Dir string
	// MaxBytes bounds a file's size (MEDIA_MAX_BYTES); 0 = no bound.
	MaxBytes int64
}

// MediaError is a refusal to read a local file. Its message is fit for a
// workflow history, an escalation and a webhook: it says what an operator
// can act on and never why a path is unreadable (whether it exists, its
// permissions, where a link points).
type MediaError struct {
	msg string
	// cause is the precise reason, for the worker's log only.
	cause error
}

// Error implements error.
func (e *MediaError) Error() string { return e.msg }

// The refusals.
var (
	// ErrMediaOff: no MEDIA_ROOT is configured.
	ErrMediaOff = &MediaError{msg: "cannot be read: file:// media are off on this worker (set MEDIA_ROOT to the folder they are read from)"}
	// ErrMediaNotAllowed: outside the root, through a link out of it,
	// missing or unreadable; which of these is not said.
	ErrMediaNotAllowed = &MediaError{msg: "is not allowed: file:// media must name an existing, readable file inside MEDIA_ROOT"}
	// ErrMediaNotRegular: a folder, a device, a pipe, a socket.
	ErrMediaNotRegular = &MediaError{msg: "is not a regular file"}
	// errMediaRead: the file failed or changed while it was uploaded.
	errMediaRead = &MediaError{msg: "could not be read to the end (a read error, or the file changed while it was uploaded)"}
)

// Is makes errors.Is match refusals of the same kind.
func (e *MediaError) Is(target error) bool {
	t, ok := target.(*MediaError)
	return ok && (t == e || (t.msg == e.msg && t.cause == nil))
}

func refuse(kind *MediaError, cause error) *MediaError {
	return &MediaError{msg: kind.msg, cause: cause}
}

// Open opens path (absolute, as a file:// media names it) for reading if
// it is a regular file inside the root of at most MaxBytes, and returns
// it with its size. Every refusal is a *MediaError.
func (r MediaRoot) Open(path string) (*os.File, int64, error) {
	if r.Dir == "" {
		return nil, 0, ErrMediaOff
	}
	if !filepath.IsAbs(path) {
		return nil, 0, refuse(ErrMediaNotAllowed, errors.New("not an absolute path"))
	}
	rel, err := filepath.Rel(filepath.Clean(r.Dir), filepath.Clean(path))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, 0, refuse(ErrMediaNotAllowed, errors.New("outside MEDIA_ROOT"))
	}
	root, err := os.OpenRoot(r.Dir)
	if err != nil {
		return nil, 0, refuse(ErrMediaNotAllowed, fmt.Errorf("open MEDIA_ROOT: %w", err))
	}
	defer root.Close()
	// Never block on a pipe, never take a terminal; links are resolved
	// only as long as they stay inside the root.
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, 0, refuse(ErrMediaNotAllowed, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, refuse(ErrMediaNotAllowed, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, refuse(ErrMediaNotRegular, fmt.Errorf("mode %s", st.Mode().Type()))
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 {
		// A hard link may name a file outside the root (os.Root cannot
		// tell): a file with more than one name is not read.
		f.Close()
		return nil, 0, refuse(ErrMediaNotAllowed, fmt.Errorf("%d hard links", sys.Nlink))
	}
	if r.MaxBytes > 0 && st.Size() > r.MaxBytes {
		f.Close()
		return nil, 0, &MediaError{msg: fmt.Sprintf("is too large: %d bytes, more than MEDIA_MAX_BYTES (%d)", st.Size(), r.MaxBytes)}
	}
	return f, st.Size(), nil
}

// OpenUnderRoot opens path for reading if it is a regular file inside root
// of at most maxBytes (0 = no bound); see MediaRoot.Open. For batch files
// and any other file the worker reads on a caller's word.
func OpenUnderRoot(root, path string, maxBytes int64) (*os.File, error) {
	f, _, err := MediaRoot{Dir: root, MaxBytes: maxBytes}.Open(path)
	return f, err
}

// exactly reads exactly size bytes of r: a file that grows while it is
// uploaded is cut at the size it had when opened, and one that shrinks
// fails (io.ErrUnexpectedEOF) rather than upload something else.
func exactly(r io.Reader, size int64) io.Reader {
	return &exactReader{r: io.LimitReader(r, size), left: size}
}

type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// LocalMediaPath tells a media source's kind: for a file:// reference it
// returns the local path and true; for an http(s) URL, "" and false. Anything
// else is an error that says what is accepted (without repeating the value,
// which may carry credentials).
func LocalMediaPath(source string) (string, bool, error) {
	if strings.TrimSpace(source) == "" {
		return "", false, fmt.Errorf("is empty")
	}
	u, err := url.Parse(source)
	if err != nil {
		return "", false, fmt.Errorf("is not a valid URL")
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return "", false, fmt.Errorf("has no host")
		}
		return "", false, nil
	case "file":
		if (u.Host != "" && u.Host != "localhost") || u.Path == "" || !filepath.IsAbs(u.Path) {
			return "", false, fmt.Errorf("file references must be absolute, as file:///path/to/media")
		}
		if strings.HasSuffix(u.Path, "/") {
			return "", false, fmt.Errorf("file reference must name a file, not a folder")
		}
		return u.Path, true, nil
	default:
		return "", false, fmt.Errorf("must be an http(s) URL or a file:///absolute/path reference")
	}
}
