package activities

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

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
// uploads.
func (a *Activities) generateWithFiles(ctx context.Context, in SubmitInput, videoPath, audioPath string) (chamelaion.GenerateResponse, error) {
	video, err := os.Open(videoPath)
	if err != nil {
		return chamelaion.GenerateResponse{}, mediaError("video", err)
	}
	defer video.Close()
	audio, err := os.Open(audioPath)
	if err != nil {
		return chamelaion.GenerateResponse{}, mediaError("audio", err)
	}
	defer audio.Close()
	resp, err := a.API.GenerateWithMedia(ctx, chamelaion.GenerateWithMediaRequest{
		Video:                         chamelaion.MediaFile{Name: filepath.Base(videoPath), Content: video},
		Audio:                         chamelaion.MediaFile{Name: filepath.Base(audioPath), Content: audio},
		ReferenceID:                   in.ReferenceID,
		DisableActiveSpeakerDetection: in.DisableActiveSpeakerDetection,
	})
	if err != nil {
		return resp, a.apiFailure("submit with media", err)
	}
	return resp, nil
}

func mediaError(which string, err error) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("submit: cannot read the %s file: %v", which, err), TypeMediaUnreadable, nil)
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
